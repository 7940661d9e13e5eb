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
        let env = ProcessInfo.processInfo.environment.merging(environment ?? [:]) { _, new in new }
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        // Nothing else may leak into the server: a pipe's write end inherited by a server
        // that runs for the whole test would keep another thread's reader from ever seeing EOF.
        let status = withLogFileActions(logFile: logFile, closingInherited: true) { actions in
            withCleanSignalAttributes(defaultHandlers: true) { posix_spawn(&pid, executable, &actions, &$0, argv, envp) }
        }
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
