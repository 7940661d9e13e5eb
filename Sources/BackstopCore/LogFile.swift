#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#else
import Darwin
#endif
import CZlib

/// When `logs/backup.log` and `logs/health.log` are rotated: by size (`BACKUP_LOG_MAX_BYTES`,
/// default 10 MiB) and by age (`BACKUP_LOG_MAX_AGE`, default 1d: the first line of the live
/// file is older than that), keeping `BACKUP_LOG_KEEP` (default 7) gzipped generations
/// (`backup.log.1.gz` newest … `backup.log.7.gz` oldest). Like logrotate's
/// `daily maxsize 10M rotate 7 compress`, which is what an operator of the old scripts would
/// have set up by hand.
public struct LogRotation: Sendable, Equatable {
    /// A live file that would grow past this is rotated before the next line (0: never by size).
    public var maxBytes: UInt64
    /// Gzipped generations kept (0: a rotation drops the old lines).
    public var keep: Int
    /// A live file whose first line is older than this is rotated (0: never by age).
    public var maxAgeSeconds: Double

    public static let defaultMaxBytes: UInt64 = 10 << 20
    public static let defaultKeep = 7
    public static let defaultMaxAgeSeconds: Double = 86_400

    public init(maxBytes: UInt64 = defaultMaxBytes, keep: Int = defaultKeep, maxAgeSeconds: Double = defaultMaxAgeSeconds) {
        self.maxBytes = maxBytes
        self.keep = keep
        self.maxAgeSeconds = maxAgeSeconds
    }

    /// Reads the three variables; a bad value is a `ConfigError` naming it.
    public init(environment env: [String: String]) throws {
        self.init()
        if let raw = env["BACKUP_LOG_MAX_BYTES"], !raw.trimmingSpaces().isEmpty {
            guard let value = ValueParsers.byteSize(raw), value == 0 || value >= 4096 else {
                throw ConfigError(variable: "BACKUP_LOG_MAX_BYTES", value: raw,
                                  accepted: "a size of at least 4096 bytes such as 10MiB or 1048576, or 0 for no size limit")
            }
            maxBytes = value
        }
        if let raw = env["BACKUP_LOG_KEEP"], !raw.trimmingSpaces().isEmpty {
            keep = try ValueParsers.integer(raw, variable: "BACKUP_LOG_KEEP", in: 0...1000)
        }
        if let raw = env["BACKUP_LOG_MAX_AGE"], !raw.trimmingSpaces().isEmpty {
            maxAgeSeconds = raw.trimmingSpaces() == "0" ? 0 : try ValueParsers.duration(raw, variable: "BACKUP_LOG_MAX_AGE").seconds
        }
    }

    /// This process's settings, read once from its environment. A bad value falls back to the
    /// defaults here: start-up validation (`BackstopConfig`) has already refused it, and a log
    /// line must never be dropped over a setting.
    public static let process: LogRotation = (try? LogRotation(environment: ProcessEnvironment.current())) ?? LogRotation()
}

/// The one way Backstop appends to its log files, for every writer (`BackupLog`, the swift-log
/// handler, the alerts log) in every process (serve and a CLI backup beside it).
///
/// Each line is appended with one `write(2)` on an `O_APPEND` descriptor while holding an
/// exclusive `flock` on the live file itself; a writer that got the lock on a file that was
/// rotated away meanwhile (its inode is no longer the path's) opens the path again. The
/// rotation runs under the same lock, so no process can write into a file being rotated: no
/// line is lost, split or written twice. The rotation compresses the live file into a
/// temporary `.gz` (fsynced), shifts the generations, renames the new `.1.gz` into place and
/// only then removes the live file; a crash part-way leaves lines in two places at worst,
/// never in none.
public enum LogFile {
    /// `backup.log.3.gz`.
    public static func generation(_ index: Int, of path: String) -> String { path + ".\(index).gz" }

    /// Appends `line` (a newline added when missing), rotating first when the file is due.
    /// A failed rotation still writes the line (to the unrotated file) and then throws.
    public static func append(_ line: String, to path: String, rotation: LogRotation = .process, now: Double = WallClock.now()) throws {
        var bytes = Array(line.utf8)
        if bytes.last != 10 { bytes.append(10) }
        try FileSystem.createDirectory(FileSystem.directory(of: path))
        var fd = try openLocked(path)
        defer { close(fd) }
        var rotationError: (any Error)?
        // Checked again on the new file: other writers may have filled it between our rotation
        // and our lock on it (a 16 KiB generation once grew to 16,478 bytes that way).
        while rotationError == nil, isDue(fd: fd, path: path, adding: UInt64(bytes.count), rotation: rotation, now: now) {
            do { try rotateLocked(path, keep: rotation.keep) } catch { rotationError = error }
            close(fd)  // the rotated (or, on failure, the same) file; the lock goes with it
            fd = try openLocked(path)
        }
        try FileSystem.writeAll(fd: fd, bytes, path: path)
        if let rotationError { throw rotationError }
    }

    /// Rotates `path` now (under its lock), whatever its size; nothing happens to an empty or
    /// missing file.
    public static func rotate(_ path: String, keep: Int) throws {
        let fd = try openLocked(path)
        defer { close(fd) }
        try rotateLocked(path, keep: keep)
    }

    /// The live file opened for appending (created when missing) with its `flock` held, and
    /// still the file the path names (not one a rotation removed while we waited).
    static func openLocked(_ path: String) throws -> Int32 {
        while true {
            let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
            guard fd >= 0 else { throw FileSystemError.errno(errno, "open", path) }
            while flock(fd, LOCK_EX) != 0 {
                if errno == EINTR { continue }
                let code = errno
                close(fd)
                throw FileSystemError.errno(code, "flock", path)
            }
            var held = stat(), named = stat()
            if fstat(fd, &held) == 0, stat(path, &named) == 0, held.st_ino == named.st_ino, held.st_dev == named.st_dev {
                return fd
            }
            close(fd)  // rotated away while we waited: take the new file
        }
    }

    /// Whether the live file (`fd`, locked) must be rotated before `adding` more bytes.
    static func isDue(fd: Int32, path: String, adding: UInt64, rotation: LogRotation, now: Double) -> Bool {
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_size > 0 else { return false }
        let size = UInt64(st.st_size)
        if rotation.maxBytes > 0, size + adding > rotation.maxBytes { return true }
        guard rotation.maxAgeSeconds > 0 else { return false }
        // The age of a file is the time of its first line (every Backstop line starts with an
        // RFC 3339 time); a first line in another format (an old script's) counts as old.
        guard let started = firstLineTime(path) else { return true }
        return now - started > rotation.maxAgeSeconds
    }

    static func firstLineTime(_ path: String) -> Double? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var head = [UInt8](repeating: 0, count: 64)
        let n = head.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 64, 0) }
        guard n > 0 else { return nil }
        let text = head.prefix(n).prefix { $0 != 32 && $0 != 10 }
        return WallClock.parseRFC3339(String(decoding: text, as: UTF8.self))
    }

    /// The rotation proper; the caller holds the lock.
    static func rotateLocked(_ path: String, keep: Int) throws {
        var st = stat()
        guard stat(path, &st) == 0, st.st_size > 0 else { return }
        let dir = FileSystem.directory(of: path)
        if keep > 0 {
            let temp = dir + "/." + FileSystem.lastComponent(of: path) + ".1.gz.tmp-\(getpid())"
            do {
                try gzip(path, to: temp)
            } catch {
                unlink(temp)
                throw error
            }
            unlink(generation(keep, of: path))
            if keep > 1 {
                for index in (1..<keep).reversed() {
                    if rename(generation(index, of: path), generation(index + 1, of: path)) != 0, errno != ENOENT {
                        let code = errno
                        unlink(temp)
                        throw FileSystemError.errno(code, "rename", generation(index, of: path))
                    }
                }
            }
            guard rename(temp, generation(1, of: path)) == 0 else {
                let code = errno
                unlink(temp)
                throw FileSystemError.errno(code, "rename", generation(1, of: path))
            }
        }
        guard unlink(path) == 0 || errno == ENOENT else { throw FileSystemError.errno(errno, "unlink", path) }
        FileSystem.syncDirectory(dir)
    }

    /// `gzip -6` of a file into `destination` (created 0640, fsynced), read 64 KiB at a time.
    static func gzip(_ source: String, to destination: String) throws {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw FileSystemError.errno(errno, "open", source) }
        defer { close(input) }
        let output = open(destination, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
        guard output >= 0 else { throw FileSystemError.errno(errno, "create", destination) }
        defer { close(output) }
        let copy = dup(output)
        guard copy >= 0, let gz = gzdopen(copy, "wb6") else {
            if copy >= 0 { close(copy) }
            throw FileSystemError.errno(errno == 0 ? ENOMEM : errno, "gzdopen", destination)
        }
        var closed = false
        defer { if !closed { gzclose(gz) } }
        try FileSystem.readChunks(fd: input, path: source, chunkSize: 1 << 16) { chunk in
            guard gzwrite(gz, chunk.baseAddress, UInt32(chunk.count)) == Int32(chunk.count) else {
                throw FileSystemError.errno(EIO, "gzwrite", destination)
            }
        }
        closed = true
        guard gzclose(gz) == Z_OK else { throw FileSystemError.errno(EIO, "gzclose", destination) }
        guard fsync(output) == 0 else { throw FileSystemError.errno(errno, "fsync", destination) }
    }
}
