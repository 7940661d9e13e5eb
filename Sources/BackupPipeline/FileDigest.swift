#if canImport(Glibc)
import Glibc
#endif
import BackstopCore
import Crypto

/// SHA-256 of a file that is not gzip (a base backup's manifest), in one streaming pass.
public enum FileDigest {
    public static func sha256(path: String) throws -> (sha256: String, sizeBytes: UInt64) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileSystemError.errno(errno, "open", path) }
        defer { close(fd) }
        var hasher = SHA256()
        let size = 1 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        defer { buffer.deallocate() }
        var total: UInt64 = 0
        while true {
            let n = read(fd, buffer, size)
            if n < 0 {
                if errno == EINTR { continue }
                throw FileSystemError.errno(errno, "read", path)
            }
            if n == 0 { break }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(start: buffer, count: n))
            total += UInt64(n)
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
