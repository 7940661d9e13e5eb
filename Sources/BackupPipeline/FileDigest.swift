#if canImport(Glibc)
import Glibc
#endif
import BackstopCore
import Crypto

/// SHA-256 of a file that is not gzip (a base backup's manifest), in one streaming pass.
public enum FileDigest {
    public static func sha256(path: String) throws -> (sha256: String, sizeBytes: UInt64) {
        var hasher = SHA256()
        var total: UInt64 = 0
        try FileSystem.readChunks(of: path) { bytes in
            hasher.update(bufferPointer: bytes)
            total += UInt64(bytes.count)
        }
        return (hasher.finalize().map { hexByte($0) }.joined(), total)
    }

    /// fsync of one file (the base backup's files before their folder is renamed into place).
    public static func sync(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileSystemError.errno(errno, "open", path) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw FileSystemError.errno(errno, "fsync", path) }
    }
}
