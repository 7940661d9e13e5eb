import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Test-support failures: a server that would not start, a binary that is missing. They
/// fail the test run loudly; a missing server is never a skipped test.
public struct TestSupportError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Free ports, temporary folders, binaries and child processes for the real servers the
/// tests start.
public enum TestEnvironment {
    /// A TCP port nothing listens on right now (bound to port 0 on loopback, then released).
    /// Ports handed out are remembered so two servers of one run never get the same one.
    public static func freePort() throws -> Int {
        for _ in 0..<50 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw TestSupportError("socket() failed") }
            defer { close(fd) }
            guard LoopbackSocket.bind(fd, port: 0) else { continue }
            let port = LoopbackSocket.boundPort(fd)
            if PortLedger.claim(port) { return port }
        }
        throw TestSupportError("no free loopback port found")
    }

    /// A new temporary folder, world-writable so servers running as `postgres` can use it.
    /// `parent`: another folder than the temporary one (e.g. `/dev/shm`, another filesystem).
    public static func makeTempDirectory(_ prefix: String, in parent: String? = nil) throws -> String {
        let template = (parent.map { $0 + "/" } ?? NSTemporaryDirectory()) + "backstop-\(prefix)-XXXXXX"
        var bytes = Array(template.utf8CString)
        guard let result = mkdtemp(&bytes) else { throw TestSupportError("mkdtemp failed for \(template)") }
        let path = String(cString: result)
        chmod(path, 0o777)
        return path
    }

    /// The full path of a program, searched in PATH and the given extra folders, or an error
    /// that says which Debian package provides it.
    public static func binary(_ name: String, extraDirectories: [String] = [], package: String) throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in extraDirectories + path.split(separator: ":").map(String.init) {
            let candidate = dir + "/" + name
            if access(candidate, X_OK) == 0 { return candidate }
        }
        throw TestSupportError("\(name) not found: install the Debian package \(package) (apt-get install -y \(package)); the tests need the real server")
    }

    /// PostgreSQL's server programs live in /usr/lib/postgresql/<major>/bin on Debian.
    public static func postgresBinDirectories() -> [String] {
        let root = "/usr/lib/postgresql"
        let majors = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [])
            .compactMap(Int.init).sorted(by: >)
        return majors.map { "\(root)/\($0)/bin" }
    }

    /// Whether this process runs as root (initdb and postgres refuse to).
    public static var isRoot: Bool { geteuid() == 0 }

    /// The files under `folders` (searched recursively, binary files too: `grep -r -a -l`) that
    /// contain `text`; empty when none does. A folder grep cannot read throws.
    public static func filesContaining(_ text: String, in folders: String...) throws -> [String] {
        let result = try TestProcesses.run("/bin/grep", ["-r", "-a", "-l", text] + folders, check: false)
        guard result.status <= 1 else {
            throw TestSupportError("grep -r \(folders.joined(separator: " ")) failed (\(result.status)): \(result.stderr)")
        }
        return result.stdout.split(separator: "\n").map(String.init)
    }

    /// True once something accepts TCP connections on 127.0.0.1:`port`.
    public static func isListening(port: Int, host: String = "127.0.0.1") -> Bool {
        guard let fd = LoopbackSocket.connect(port: port, host: host) else { return false }
        close(fd)
        return true
    }

    /// Polls `condition` every 50 ms until it holds or `timeout` seconds pass.
    public static func waitUntil(timeout: Double, _ what: String, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if (try? condition()) == true { return }
            usleep(50_000)
        }
        throw TestSupportError("timed out after \(timeout) s waiting for \(what)")
    }
}

/// Ports already handed out in this test process.
private enum PortLedger {
    nonisolated(unsafe) static var used = Set<Int>()
    static let lock = NSLock()
    static func claim(_ port: Int) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return used.insert(port).inserted
    }
}

/// The result of a finished command.
public struct CommandResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Child processes for tests: run-to-completion commands and long-lived servers, all killed
/// when the test process exits (an atexit hook), so no server outlives the run.
public enum TestProcesses {
    /// Runs a program to completion and returns its output. `asUser` runs it through
    /// `runuser` (for PostgreSQL's programs when the tests run as root).
    ///
    /// Uses posix_spawn and waitpid directly, not Foundation's Process: Process learns of a
    /// child's exit through a descriptor the child inherits, so when the child leaves a daemon
    /// behind (`pg_ctl start`), Process waits for the daemon instead.
    @discardableResult
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                           asUser: String? = nil, stdin: Data? = nil, check: Bool = true) throws -> CommandResult {
        let (path, argv) = commandLine(executable, arguments, asUser: asUser)
        var outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0], inPipe: [Int32] = [0, 0]
        // Pipes are made close-on-exec under the spawn lock, so no other child spawned by
        // these helpers can inherit them between pipe() and fcntl().
        SpawnLock.lock.lock()
        let piped = makeCloexecPipe(&outPipe) && makeCloexecPipe(&errPipe) && makeCloexecPipe(&inPipe)
        SpawnLock.lock.unlock()
        guard piped else { throw TestSupportError("pipe() failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if stdin != nil {
            posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        let pid = try spawnRaw(path, argv, environment: environment, actions: &actions)
        close(outPipe[1]); close(errPipe[1]); close(inPipe[0])
        let inputFD = inPipe[1]
        if let stdin {
            let writer = Thread {
                stdin.withUnsafeBytes { raw in
                    var offset = 0
                    while offset < raw.count {
                        let n = write(inputFD, raw.baseAddress! + offset, raw.count - offset)
                        if n <= 0 { break }
                        offset += n
                    }
                }
                close(inputFD)
            }
            writer.start()
        } else {
            close(inputFD)
        }
        let errBox = DataBox()
        let group = DispatchGroup()
        group.enter()
        let errFD = errPipe[0]
        Thread {
            errBox.data = readAll(errFD)
            group.leave()
        }.start()
        let outData = readAll(outPipe[0])
        group.wait()
        close(outPipe[0]); close(errPipe[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        let result = CommandResult(status: code, stdout: String(decoding: outData, as: UTF8.self),
                                   stderr: String(decoding: errBox.data, as: UTF8.self))
        if check && result.status != 0 {
            throw TestSupportError("\(([executable] + arguments).joined(separator: " ")) exited \(result.status): \(result.stderr)\(result.stdout)")
        }
        return result
    }

    /// Starts a long-running server; its output goes to `logFile`. The pid is registered for
    /// the exit hook.
    public static func spawn(_ executable: String, _ arguments: [String], logFile: String,
                             environment: [String: String]? = nil, asUser: String? = nil) throws -> Int32 {
        let (path, argv) = commandLine(executable, arguments, asUser: asUser)
        let pid = try withLogFileActions(logFile: logFile) { try spawnRaw(path, argv, environment: environment, actions: &$0) }
        register(pid: pid)
        return pid
    }

    /// posix_spawn file actions for a program whose output goes to a log: stdin from
    /// /dev/null, stdout and stderr appended to `logFile` (created with `mode`) and, with
    /// `closingInherited`, every other descriptor closed in the child. Valid during `body` only.
    static func withLogFileActions<T>(logFile: String, mode: mode_t = 0o644, closingInherited: Bool = false,
                                      _ body: (inout posix_spawn_file_actions_t) throws -> T) rethrows -> T {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logFile, O_WRONLY | O_CREAT | O_APPEND, mode)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        if closingInherited { closeInheritedDescriptors(&actions) }
        return try body(&actions)
    }

    /// posix_spawn attributes giving the child an EMPTY signal mask (the caller may be a thread
    /// with signals blocked) and, with `defaultHandlers`, the default disposition of every
    /// catchable signal. Valid during `body` only.
    static func withCleanSignalAttributes<T>(defaultHandlers: Bool, _ body: (inout posix_spawnattr_t) throws -> T) rethrows -> T {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var flags = POSIX_SPAWN_SETSIGMASK
        if defaultHandlers {
            var defaults = sigset_t()
            sigemptyset(&defaults)
            for signal in Int32(1)..<32 where signal != SIGKILL && signal != SIGSTOP { sigaddset(&defaults, signal) }
            posix_spawnattr_setsigdefault(&attributes, &defaults)
            flags |= POSIX_SPAWN_SETSIGDEF
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))
        return try body(&attributes)
    }

    private typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32

    /// glibc's posix_spawn_file_actions_addclosefrom_np (not visible to Swift's Glibc module,
    /// so looked up at run time); without it, every descriptor listed in /proc/self/fd.
    private static func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) {
        if let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, "posix_spawn_file_actions_addclosefrom_np") {
            let closeFrom = unsafeBitCast(symbol, to: CloseFrom.self)
            if closeFrom(&actions, 3) == 0 { return }
        }
        let fds = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap(Int32.init)
        for fd in fds where fd > 2 { posix_spawn_file_actions_addclose(&actions, fd) }
    }

    private static func commandLine(_ executable: String, _ arguments: [String], asUser: String?) -> (String, [String]) {
        if let asUser {
            return ("/usr/sbin/runuser", ["runuser", "-u", asUser, "--", executable] + arguments)
        }
        return (executable, [executable] + arguments)
    }

    private static func spawnRaw(_ path: String, _ argv: [String], environment: [String: String]?,
                                 actions: inout posix_spawn_file_actions_t) throws -> Int32 {
        var env = ProcessInfo.processInfo.environment
        if let environment { env.merge(environment) { _, new in new } }
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            cArgs.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        // The child starts with an empty signal mask and default handlers: a server must not
        // inherit the test thread's blocked SIGTERM (redis-server would then ignore shutdown).
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        SpawnLock.lock.lock()
        let rc = posix_spawn(&pid, path, &actions, &attributes, cArgs, cEnv)
        SpawnLock.lock.unlock()
        guard rc == 0 else { throw TestSupportError("cannot start \(path): \(String(cString: strerror(rc)))") }
        return pid
    }

    private static func makeCloexecPipe(_ fds: inout [Int32]) -> Bool {
        guard pipe(&fds) == 0 else { return false }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        return true
    }

    private static func readAll(_ fd: Int32) -> Data {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            data.append(contentsOf: buffer[0..<n])
        }
        return data
    }

    /// Registers a pid to be killed (SIGKILL) when the test process exits.
    public static func register(pid: Int32) {
        addToExitHook { ChildRegistry.pids.insert(pid) }
    }

    /// Registers a cleanup command to run at exit (for example `pg_ctl stop`).
    public static func atExit(_ body: @escaping @Sendable () -> Void) {
        addToExitHook { ChildRegistry.cleanups.append(body) }
    }

    /// Makes `change` to the registry under its lock, installing the atexit hook the first time.
    private static func addToExitHook(_ change: () -> Void) {
        ChildRegistry.lock.lock()
        defer { ChildRegistry.lock.unlock() }
        change()
        if !ChildRegistry.hookInstalled {
            ChildRegistry.hookInstalled = true
            atexit(killRegisteredChildren)
        }
    }

    public static func unregister(pid: Int32) {
        ChildRegistry.lock.lock()
        ChildRegistry.pids.remove(pid)
        ChildRegistry.lock.unlock()
    }
}

private final class DataBox: @unchecked Sendable {
    // Written by one thread before group.leave(), read after group.wait(): the group orders it.
    var data = Data()
}

private enum ChildRegistry {
    // Guarded by `lock`.
    nonisolated(unsafe) static var pids = Set<Int32>()
    nonisolated(unsafe) static var cleanups: [@Sendable () -> Void] = []
    nonisolated(unsafe) static var hookInstalled = false
    static let lock = NSLock()
}

/// The atexit hook: a plain C-compatible function, no captures.
private func killRegisteredChildren() {
    ChildRegistry.lock.lock()
    let pids = ChildRegistry.pids
    let cleanups = ChildRegistry.cleanups
    ChildRegistry.lock.unlock()
    for cleanup in cleanups { cleanup() }
    for pid in pids { kill(pid, SIGKILL) }
}

private enum SpawnLock {
    static let lock = NSLock()
}
