#if canImport(Glibc)
import Glibc
#endif
import BackstopCore
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
        let inflater = try makeInflater(path: path)
        var hasher = SHA256()
        do {
            try FileSystem.readChunks(fd: fd, path: path) { bytes in
                hasher.update(bufferPointer: bytes)
                try inflater.feed(bytes) { _ in }
            }
            try inflater.finish { _ in }
        } catch let failure as GzipInflater.Failure {
            throw GzipVerificationError(path: path, reason: failure == .empty ? "the file is empty (not a gzip file)" : failure.description)
        }
        return GzipVerification(path: path, compressedBytes: inflater.compressedBytes, uncompressedBytes: inflater.uncompressedBytes,
                                sha256: hasher.finalize().map { hexByte($0) }.joined(), members: inflater.members)
    }

    /// A new inflater, its (out-of-memory) start failure named for `path`.
    static func makeInflater(path: String) throws -> GzipInflater {
        do {
            return try GzipInflater()
        } catch let failure as GzipInflater.Failure {
            throw GzipVerificationError(path: path, reason: failure.description)
        }
    }
}
