#if canImport(Glibc)
import Glibc
#endif
import AgeEncryption
import BackstopCore
import CZlib

/// Inflates a gzip file and writes the bytes into a descriptor (a child's stdin), in fixed-size
/// chunks: memory stays bounded whatever the dump's size, and no `gunzip` process is needed.
/// Multi-member files (`cat a.gz b.gz`) are followed to their end, as `gunzip -c` does.
///
/// Not Sendable: one blocking thread owns the zlib stream for the whole copy.
final class GunzipStream {
    struct Failure: Error, CustomStringConvertible {
        var description: String
        /// The reader (the child) went away: EPIPE on write.
        var readerGone: Bool
    }

    private let stream: UnsafeMutablePointer<z_stream>
    private let input: UnsafeMutableRawPointer
    private let output: UnsafeMutableRawPointer
    private let inputSize = 1 << 20
    private let outputSize = 1 << 20
    private var ready = false
    private(set) var compressedBytes: UInt64 = 0
    private(set) var uncompressedBytes: UInt64 = 0

    init() {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        input = .allocate(byteCount: inputSize, alignment: 16)
        output = .allocate(byteCount: outputSize, alignment: 16)
        ready = backstop_inflateInit2(stream, 15 + 16) == Z_OK
    }

    deinit {
        if ready { inflateEnd(stream) }
        stream.deinitialize(count: 1)
        stream.deallocate()
        input.deallocate()
        output.deallocate()
    }

    /// Copies the inflated content of `path` into `fd`. Blocking. `progress` is called after
    /// each chunk written with (compressed read, uncompressed written).
    func copy(path: String, to fd: Int32, progress: (UInt64, UInt64) -> Void = { _, _ in }) throws {
        try inflateFile(path: path, progress: progress) { try self.writeAll(fd, count: $0) }
    }

    /// The whole inflated content (for small files: a globals script).
    func readAll(path: String) throws -> [UInt8] {
        var bytes: [UInt8] = []
        try inflateFile(path: path, progress: { _, _ in }) { count in
            bytes.append(contentsOf: UnsafeRawBufferPointer(start: self.output, count: count))
            self.uncompressedBytes += UInt64(count)
        }
        return bytes
    }

    /// The first `count` inflated bytes (an RDB's `REDIS00NN` header).
    func prefix(path: String, count: Int) throws -> [UInt8] {
        struct Enough: Error {}
        var bytes: [UInt8] = []
        do {
            try inflateFile(path: path, progress: { _, _ in }) { n in
                bytes.append(contentsOf: UnsafeRawBufferPointer(start: self.output, count: n))
                if bytes.count >= count { throw Enough() }
            }
        } catch is Enough {}
        return Array(bytes.prefix(count))
    }

    private func inflateFile(path: String, progress: (UInt64, UInt64) -> Void, sink: (Int) throws -> Void) throws {
        guard ready else { throw Failure(description: "zlib inflateInit2 failed", readerGone: false) }
        let file = open(path, O_RDONLY | O_CLOEXEC)
        guard file >= 0 else { throw FileSystemError.errno(errno, "open", path) }
        defer { close(file) }
        // `.age` files are read through the decrypter: only authenticated plaintext is inflated.
        let decryptor = try path.hasSuffix(".age") ? AgeDecryptor(identities: RestoreKeys.identities(for: path)) : nil
        var inMember = false
        while true {
            let n = read(file, input, inputSize)
            if n < 0 {
                if errno == EINTR { continue }
                throw FileSystemError.errno(errno, "read", path)
            }
            if n == 0 { break }
            compressedBytes += UInt64(n)
            if let decryptor {
                do {
                    try decryptor.update(UnsafeRawBufferPointer(start: input, count: n)) { plain in
                        try self.inflateChunk(plain, path: path, inMember: &inMember, sink: sink)
                    }
                } catch let error as AgeError {
                    throw Failure(description: "\(path): \(error)", readerGone: false)
                }
            } else {
                try inflateChunk(UnsafeRawBufferPointer(start: input, count: n), path: path, inMember: &inMember, sink: sink)
            }
            progress(compressedBytes, uncompressedBytes)
        }
        if let decryptor {
            do {
                try decryptor.finish { plain in try self.inflateChunk(plain, path: path, inMember: &inMember, sink: sink) }
            } catch let error as AgeError {
                throw Failure(description: "\(path): \(error)", readerGone: false)
            }
        }
        if inMember { throw Failure(description: "\(path): truncated gzip stream", readerGone: false) }
    }

    /// Inflates one slice of gzip bytes, handing each produced piece to `sink`.
    private func inflateChunk(_ bytes: UnsafeRawBufferPointer, path: String, inMember: inout Bool, sink: (Int) throws -> Void) throws {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        stream.pointee.next_in = UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(bytes.count)
        do {
            while stream.pointee.avail_in > 0 {
                inMember = true
                stream.pointee.next_out = output.assumingMemoryBound(to: Bytef.self)
                stream.pointee.avail_out = uInt(outputSize)
                let rc = inflate(stream, Z_NO_FLUSH)
                let produced = outputSize - Int(stream.pointee.avail_out)
                if produced > 0 { try sink(produced) }
                switch rc {
                case Z_STREAM_END:
                    inMember = false
                    inflateReset(stream)
                case Z_OK, Z_BUF_ERROR:
                    continue
                default:
                    let message = stream.pointee.msg.map { String(cString: $0) } ?? "zlib error \(rc)"
                    throw Failure(description: "\(path): corrupt gzip data: \(message)", readerGone: false)
                }
            }
        }
    }

    private func writeAll(_ fd: Int32, count: Int) throws {
        var offset = 0
        while offset < count {
            let w = write(fd, output + offset, count - offset)
            if w < 0 {
                if errno == EINTR { continue }
                if errno == EPIPE { throw Failure(description: "the loading program stopped reading", readerGone: true) }
                throw FileSystemError.errno(errno, "write", "pipe")
            }
            offset += w
        }
        uncompressedBytes += UInt64(count)
    }
}
