#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#else
import Darwin
#endif

/// Small files that must never be seen half-written (`.meta`, `alerts.json`, the inventory):
/// written to a temporary name in the same folder, fsynced, renamed over the final name,
/// and the folder fsynced so the rename survives a power cut. Created 0640 by default: what
/// Backstop writes (alerts, state, reports) tells about the databases and is nobody else's
/// business; the mode is given to open(2), so a permissive umask (000) cannot widen it.
public enum AtomicFile {
    public static func write(_ bytes: [UInt8], to path: String, mode: UInt32 = 0o640) throws {
        let dir = FileSystem.directory(of: path)
        try FileSystem.createDirectory(dir)
        let temp = "\(dir)/.\(FileSystem.lastComponent(of: path)).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw FileSystemError.errno(errno, "create", temp) }
        var ok = false
        defer {
            if !ok { unlink(temp) }
        }
        do {
            try FileSystem.writeAll(fd: fd, bytes, path: temp)
            guard fsync(fd) == 0 else { throw FileSystemError.errno(errno, "fsync", temp) }
        } catch {
            close(fd)
            throw error
        }
        close(fd)
        guard rename(temp, path) == 0 else { throw FileSystemError.errno(errno, "rename", path) }
        ok = true
        FileSystem.syncDirectory(dir)
    }

    public static func write(_ text: String, to path: String, mode: UInt32 = 0o640) throws {
        try write(Array(text.utf8), to: path, mode: mode)
    }
}

/// A failed file-system call, with the call, the path and the system's reason.
public enum FileSystemError: Error, CustomStringConvertible, Sendable {
    case errno(Int32, String, String)

    public var description: String {
        switch self {
        case let .errno(code, call, path):
            return "\(call) \(path): \(String(cString: strerror(code)))"
        }
    }

    public var code: Int32 {
        switch self { case let .errno(code, _, _): return code }
    }
}

/// Thin, Foundation-free helpers over POSIX file calls.
public enum FileSystem {
    public static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let dir = String(path[..<slash])
        return dir.isEmpty ? "/" : dir
    }

    public static func lastComponent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    /// `mkdir -p`; new folders 0750 (owner and group only, whatever the umask).
    public static func createDirectory(_ path: String, mode: UInt32 = 0o750) throws {
        if isDirectory(path) { return }
        let parent = directory(of: path)
        if parent != path, parent != "/", parent != "." { try createDirectory(parent, mode: mode) }
        if mkdir(path, mode) != 0, errno != EEXIST {
            throw FileSystemError.errno(errno, "mkdir", path)
        }
    }

    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    public static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    public static func writeAll(fd: Int32, _ bytes: [UInt8], path: String) throws {
        try bytes.withUnsafeBytes { raw in
            try writeAll(fd: fd, raw, path: path)
        }
    }

    public static func writeAll(fd: Int32, _ raw: UnsafeRawBufferPointer, path: String) throws {
        var offset = 0
        while offset < raw.count {
            let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw FileSystemError.errno(errno, "write", path)
            }
            offset += n
        }
    }

    /// Reads a whole (small) file.
    public static func read(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileSystemError.errno(errno, "open", path) }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw FileSystemError.errno(errno, "read", path)
            }
            if n == 0 { break }
            out.append(contentsOf: buffer[0..<n])
        }
        return out
    }

    /// Appends one line to a log file, creating folder and file as needed, rotated like every
    /// Backstop log (`LogFile.append`: one locked `O_APPEND` write per line).
    public static func appendLine(_ line: String, to path: String) throws {
        try LogFile.append(line, to: path)
    }

    /// fsync on a folder, so a rename inside it is durable. Errors are ignored: some file
    /// systems refuse fsync on folders, and the data itself is already synced.
    public static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            _ = fsync(fd)
            close(fd)
        }
    }

    /// Total and free bytes of the file system holding `path` (free = available to
    /// unprivileged users, as `df` shows it).
    public static func diskUsage(of path: String) throws -> (total: UInt64, free: UInt64) {
        var s = statvfs()
        guard statvfs(path, &s) == 0 else { throw FileSystemError.errno(errno, "statvfs", path) }
        let block = UInt64(s.f_frsize)
        return (UInt64(s.f_blocks) * block, UInt64(s.f_bavail) * block)
    }

    /// Names in a folder (not `.`/`..`), unsorted.
    public static func list(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else { throw FileSystemError.errno(errno, "opendir", path) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
