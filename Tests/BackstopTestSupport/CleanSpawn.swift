import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension TestProcesses {
    /// Starts a long-running server like `spawn`, but through `posix_spawn` with an EMPTY
    /// signal mask and default signal handlers in the child.
    ///
    /// Why: Foundation's `Process` passes on the calling thread's signal mask, and the
    /// Dispatch worker threads tests run on block most signals (SIGTERM, SIGUSR1, …).
    /// redis-server does not unblock them, so a server spawned that way ignores SIGTERM, and
    /// its diskless-replication child ignores the SIGUSR1 the parent sends to stop it when
    /// the last replica drops — the master then waits forever. A reaper thread collects the
    /// child's exit status so no zombie keeps the pid.
    public static func spawnWithCleanSignals(_ executable: String, _ arguments: [String], logFile: String,
                                             environment: [String: String]? = nil) throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logFile, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Nothing else may leak into the server: a pipe's write end inherited by a server
        // that runs for the whole test would keep another thread's reader from ever seeing EOF.
        // (glibc ≥ 2.34 has it, but Swift's Glibc module does not declare the _np function.)
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else {
            throw TestSupportError("posix_spawn_file_actions_addclosefrom_np is missing (glibc 2.34 or later is needed)")
        }
        typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        _ = unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in Int32(1)..<32 where signal != SIGKILL && signal != SIGSTOP { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let env = ProcessInfo.processInfo.environment.merging(environment ?? [:]) { _, new in new }
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard status == 0 else {
            throw TestSupportError("posix_spawn \(executable) failed: \(String(cString: strerror(status)))")
        }
        register(pid: pid)
        let child = pid
        Thread.detachNewThread {
            var exitStatus: Int32 = 0
            while waitpid(child, &exitStatus, 0) < 0 && errno == EINTR {}
        }
        return pid
    }
}
