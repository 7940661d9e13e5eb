#if canImport(Glibc)
import Glibc
#endif
import BackstopCore
import CZlib
import Crypto

/// The result of reading a gzip file to its end.
public struct GzipVerification: Sendable, Equatable {
    public var path: String
    public var compressedBytes: UInt64
    public var uncompressedBytes: UInt64
    /// SHA-256 of the file's bytes, lowercase hex.
    public var sha256: String
    /// gzip members in the file (1 for ours; `cat a.gz b.gz` makes 2).
    public var members: Int

    public init(path: String, compressedBytes: UInt64, uncompressedBytes: UInt64, sha256: String, members: Int) {
        self.path = path
        self.compressedBytes = compressedBytes
        self.uncompressedBytes = uncompressedBytes
        self.sha256 = sha256
        self.members = members
    }
}

/// A gzip file that does not decompress cleanly, with the reason.
public struct GzipVerificationError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var reason: String
    public var description: String { "\(path): \(reason)" }
}

/// Proves a backup file is intact: inflates every gzip member to its end (zlib checks each
/// member's CRC-32 and length), refuses truncation and trailing garbage, and computes the
/// SHA-256 of the file in the same pass so it can be compared with the `.meta`.
///
/// Blocking (reads the whole file): call from a thread that may block.
public enum GzipVerifier {
    public static func verify(path: String) throws -> GzipVerification {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileSystemError.errno(errno, "open", path) }
        defer { close(fd) }
        let inflater = GzipInflater()
        guard inflater.ready else { throw GzipVerificationError(path: path, reason: "inflateInit2 failed") }
        var hasher = SHA256()
        let chunkSize = 1 << 20
        let chunk = UnsafeMutableRawPointer.allocate(byteCount: chunkSize, alignment: 16)
        defer { chunk.deallocate() }
        var compressed: UInt64 = 0
        while true {
            let n = read(fd, chunk, chunkSize)
            if n < 0 {
                if errno == EINTR { continue }
                throw FileSystemError.errno(errno, "read", path)
            }
            if n == 0 { break }
            let bytes = UnsafeRawBufferPointer(start: chunk, count: n)
            hasher.update(bufferPointer: bytes)
            if let problem = inflater.feed(bytes, offset: compressed) {
                throw GzipVerificationError(path: path, reason: problem)
            }
            compressed += UInt64(n)
        }
        if compressed == 0 { throw GzipVerificationError(path: path, reason: "the file is empty (not a gzip file)") }
        if inflater.inMember {
            throw GzipVerificationError(path: path, reason: "truncated: the gzip stream ends after \(compressed) bytes without its end marker and checksum")
        }
        return GzipVerification(path: path, compressedBytes: compressed, uncompressedBytes: inflater.uncompressed,
                                sha256: hasher.finalize().map { hexByte($0) }.joined(), members: inflater.members)
    }
}

/// A gzip-mode inflate stream (owned by the one call that verifies a file). Its output is
/// dropped unless a sink is given: an encrypted base backup's tar is read through one, in
/// memory, so its manifest can be checked without plaintext on disk.
public final class GzipInflater {
    private let stream: UnsafeMutablePointer<z_stream>
    private let out: UnsafeMutableRawPointer
    private let outSize = 256 * 1024
    public let ready: Bool
    public private(set) var members = 0
    public private(set) var uncompressed: UInt64 = 0
    /// Bytes of a member have been fed but its end has not been seen.
    public private(set) var inMember = false

    public init() {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        out = .allocate(byteCount: outSize, alignment: 16)
        // 15 + 16: gzip wrapper only (no zlib or raw streams accepted).
        ready = backstop_inflateInit2(stream, 15 + 16) == Z_OK
    }

    deinit {
        if ready { inflateEnd(stream) }
        stream.deinitialize(count: 1)
        stream.deallocate()
        out.deallocate()
    }

    /// Inflates `bytes`; returns a reason when the data is bad.
    func feed(_ bytes: UnsafeRawBufferPointer, offset: UInt64) -> String? {
        // The sink never throws here.
        (try? feed(bytes, offset: offset) { _ in }) ?? nil
    }

    /// Inflates `bytes`, handing every inflated piece to `sink` (which may throw to stop);
    /// returns a reason when the gzip data is bad.
    public func feed(_ bytes: UnsafeRawBufferPointer, offset: UInt64, into sink: (UnsafeRawBufferPointer) throws -> Void) throws -> String? {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return nil }
        stream.pointee.next_in = UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(bytes.count)
        while stream.pointee.avail_in > 0 {
            inMember = true
            stream.pointee.next_out = out.assumingMemoryBound(to: Bytef.self)
            stream.pointee.avail_out = uInt(outSize)
            let rc = inflate(stream, Z_NO_FLUSH)
            let produced = outSize - Int(stream.pointee.avail_out)
            uncompressed += UInt64(produced)
            if produced > 0 { try sink(UnsafeRawBufferPointer(start: out, count: produced)) }
            switch rc {
            case Z_STREAM_END:
                members += 1
                inMember = false
                inflateReset(stream)
            case Z_OK:
                continue
            case Z_BUF_ERROR:
                // No progress possible with the room given; more output room always exists
                // here, so this means more input is needed.
                if stream.pointee.avail_in > 0 { continue }
            default:
                let consumed = UInt64(bytes.count - Int(stream.pointee.avail_in))
                let message = stream.pointee.msg.map { String(cString: $0) } ?? "zlib error \(rc)"
                let whereText = members > 0 ? " (after \(members) complete gzip member\(members == 1 ? "" : "s"): trailing data that is not gzip?)" : ""
                return "corrupt gzip data near byte \(offset + consumed): \(message)\(whereText)"
            }
        }
        return nil
    }
}
