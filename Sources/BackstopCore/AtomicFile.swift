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
        try write(to: path, mode: mode) { fd, temp in try FileSystem.writeAll(fd: fd, bytes, path: temp) }
    }

    /// The same for content streamed by `body` into the temporary file's descriptor (`temp`
    /// names it in errors). Whatever `body` throws, or a failed fsync or rename, removes the
    /// temporary file and leaves `path` as it was. `creatingDirectory`: the folder is made
    /// (`mkdir -p`) when missing.
    public static func write<T>(to path: String, mode: UInt32 = 0o640, creatingDirectory: Bool = true,
                                _ body: (_ fd: Int32, _ temp: String) throws -> T) throws -> T {
        let dir = FileSystem.directory(of: path)
        if creatingDirectory { try FileSystem.createDirectory(dir) }
        let temp = "\(dir)/.\(FileSystem.lastComponent(of: path)).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw FileSystemError.errno(errno, "create", temp) }
        var ok = false
        defer {
            if !ok { unlink(temp) }
        }
        let result: T
        do {
            result = try body(fd, temp)
            guard fsync(fd) == 0 else { throw FileSystemError.errno(errno, "fsync", temp) }
        } catch {
            close(fd)
            throw error
        }
        close(fd)
        guard rename(temp, path) == 0 else { throw FileSystemError.errno(errno, "rename", path) }
        ok = true
        FileSystem.syncDirectory(dir)
        return result
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
        var out: [UInt8] = []
        try readChunks(of: path, chunkSize: 65536) { out.append(contentsOf: $0) }
        return out
    }

    /// The one file-reading loop: opens `path` and calls `body` with each read, at most
    /// `chunkSize` bytes, to the file's end (reads interrupted by a signal are retried). The
    /// bytes are valid only during the call; whatever `body` throws stops the read and is
    /// rethrown. Blocking: call from a thread that may block.
    public static func readChunks(of path: String, chunkSize: Int = 1 << 20, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileSystemError.errno(errno, "open", path) }
        defer { close(fd) }
        try readChunks(fd: fd, path: path, chunkSize: chunkSize, body)
    }

    /// The same from a descriptor the caller opened (and closes); `path` names it in errors
    /// (`FileSystemError.errno(code, "read", path)`).
    public static func readChunks(fd: Int32, path: String, chunkSize: Int = 1 << 20, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let size = max(1, chunkSize)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, size)
            if n < 0 {
                if errno == EINTR { continue }
                throw FileSystemError.errno(errno, "read", path)
            }
            if n == 0 { return }
            try body(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
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
