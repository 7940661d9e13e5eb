#if canImport(Glibc)
import Glibc
#endif
import AgeEncryption
import BackstopCore
import BackupPipeline

/// Inflates a gzip file and writes the bytes into a descriptor (a child's stdin), in fixed-size
/// chunks: memory stays bounded whatever the dump's size, and no `gunzip` process is needed.
/// Multi-member files (`cat a.gz b.gz`) are followed to their end, as `gunzip -c` does; the
/// inflating itself is `GzipInflater`'s, the one every `.gz` reader shares.
///
/// Not Sendable: one blocking thread owns the zlib stream for the whole copy.
final class GunzipStream {
    struct Failure: Error, CustomStringConvertible {
        var description: String
        /// The reader (the child) went away: EPIPE on write.
        var readerGone: Bool
    }

    private let outputSize = 1 << 20
    private(set) var compressedBytes: UInt64 = 0
    private(set) var uncompressedBytes: UInt64 = 0

    /// Copies the inflated content of `path` into `fd`, which a failed write names as
    /// `destination` (the file, so a full disk says which one). Blocking. `progress` is called
    /// after each chunk written with (compressed read, uncompressed written).
    func copy(path: String, to fd: Int32, named destination: String, progress: (UInt64, UInt64) -> Void = { _, _ in }) throws {
        try inflateFile(path: path, progress: progress) { try self.writeAll(fd, $0, destination: destination) }
    }

    /// Inflates `path` and hands its bytes to `write` in slices of at most 64 KiB (or a
    /// twentieth of `maxRate`), sleeping between them so no more than `maxRate` bytes a second
    /// go out (nil: as fast as `write` takes them). `write` gets each slice and whether it is
    /// the last one (`expectedBytes` reached): the caller decides there whether to go on (a
    /// stopped restore throws from it) and can make the final write one step with that check.
    func paced(path: String, expectedBytes: UInt64, maxRate: UInt64?,
               write: (UnsafeRawBufferPointer, _ last: Bool) throws -> Void) throws {
        let sliceBytes = maxRate.map { Int(max(1024, min(65536, $0 / 20))) } ?? 65536
        let started = MonotonicClock.seconds()
        try inflateFile(path: path, progress: { _, _ in }) { piece in
            var offset = 0
            while offset < piece.count {
                let n = min(sliceBytes, piece.count - offset)
                let last = uncompressedBytes + UInt64(n) >= expectedBytes
                try write(UnsafeRawBufferPointer(rebasing: piece[offset..<(offset + n)]), last)
                offset += n
                uncompressedBytes += UInt64(n)
                if let maxRate, maxRate > 0 {
                    let due = started + Double(uncompressedBytes) / Double(maxRate)
                    let wait = due - MonotonicClock.seconds()
                    if wait > 0 { usleep(UInt32(min(wait, 1) * 1_000_000)) }
                }
            }
        }
    }

    /// The whole inflated content (for small files: a globals script).
    func readAll(path: String) throws -> [UInt8] {
        var bytes: [UInt8] = []
        try inflateFile(path: path, progress: { _, _ in }) { piece in
            bytes.append(contentsOf: piece)
            self.uncompressedBytes += UInt64(piece.count)
        }
        return bytes
    }

    /// The first `count` inflated bytes (an RDB's `REDIS00NN` header).
    func prefix(path: String, count: Int) throws -> [UInt8] {
        struct Enough: Error {}
        var bytes: [UInt8] = []
        do {
            try inflateFile(path: path, progress: { _, _ in }) { piece in
                bytes.append(contentsOf: piece)
                if bytes.count >= count { throw Enough() }
            }
        } catch is Enough {}
        return Array(bytes.prefix(count))
    }

    private func inflateFile(path: String, progress: (UInt64, UInt64) -> Void,
                             sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        let inflater: GzipInflater
        do {
            inflater = try GzipInflater(outputSize: outputSize)
        } catch let failure as GzipInflater.Failure {
            throw Failure(description: "\(path): \(failure)", readerGone: false)
        }
        let file = open(path, O_RDONLY | O_CLOEXEC)
        guard file >= 0 else { throw FileSystemError.errno(errno, "open", path) }
        defer { close(file) }
        // `.age` files are read through the decrypter: only authenticated plaintext is inflated.
        let decryptor = try path.hasSuffix(".age") ? AgeDecryptor(identities: RestoreKeys.identities(for: path)) : nil
        do {
            try FileSystem.readChunks(fd: file, path: path) { bytes in
                compressedBytes += UInt64(bytes.count)
                if let decryptor {
                    try decryptor.update(bytes) { plain in try inflater.feed(plain, sink: sink) }
                } else {
                    try inflater.feed(bytes, sink: sink)
                }
                progress(compressedBytes, uncompressedBytes)
            }
            try decryptor?.finish { plain in try inflater.feed(plain, sink: sink) }
            try inflater.finish(sink: sink)
        } catch let error as AgeError {
            throw Failure(description: "\(path): \(error)", readerGone: false)
        } catch GzipInflater.Failure.truncated {
            throw Failure(description: "\(path): truncated gzip stream", readerGone: false)
        } catch let failure as GzipInflater.Failure {
            throw Failure(description: "\(path): \(failure)", readerGone: false)
        }
    }

    private func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, destination: String) throws {
        guard let base = bytes.baseAddress else { return }
        var offset = 0
        while offset < bytes.count {
            let w = write(fd, base + offset, bytes.count - offset)
            if w < 0 {
                if errno == EINTR { continue }
                if errno == EPIPE { throw Failure(description: "the loading program stopped reading", readerGone: true) }
                throw FileSystemError.errno(errno, "write", destination)
            }
            offset += w
        }
        uncompressedBytes += UInt64(bytes.count)
    }
}
