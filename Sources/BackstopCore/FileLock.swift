#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#else
import Darwin
#endif

/// An exclusive lock on a job (`$BACKUP_DIR/.locks/<job>.lock`) so two runs of the same job —
/// cron and a person at a terminal, or two `serve` processes — never overlap. The lock is a
/// `flock`, so the kernel releases it when the holder dies; the file's text says who holds it.
public final class FileLock {
    public let path: String
    private var fd: Int32

    /// Who holds a lock that could not be taken.
    public struct Held: Error, CustomStringConvertible, Sendable {
        public var path: String
        public var holder: String
        public var description: String {
            "another run holds the lock \(path) (\(holder.isEmpty ? "holder unknown" : holder)); wait for it to finish or stop it"
        }
    }

    /// Takes the lock or throws `Held` at once (no waiting).
    public init(path: String, purpose: String) throws {
        try FileSystem.createDirectory(FileSystem.directory(of: path))
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw FileSystemError.errno(errno, "open", path) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let holder = (try? FileSystem.read(path)).map { String(decoding: $0, as: UTF8.self).trimmingSpaces() } ?? ""
            close(fd)
            throw Held(path: path, holder: holder)
        }
        self.path = path
        self.fd = fd
        _ = ftruncate(fd, 0)
        let text = "pid \(getpid()) since \(WallClock.rfc3339(WallClock.now())): \(purpose)\n"
        try? FileSystem.writeAll(fd: fd, Array(text.utf8), path: path)
    }

    /// Releases the lock; also done on deinit.
    public func release() {
        guard fd >= 0 else { return }
        _ = ftruncate(fd, 0)
        flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }

    deinit { release() }
}
