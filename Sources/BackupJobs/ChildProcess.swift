import BackstopCore
import CChildSpawn
import Foundation
import Synchronization

/// A child program (pg_dump, pg_dumpall, pg_basebackup, psql, pg_verifybackup, the drill's
/// redis-server) started by the CChildSpawn shim, which ties its life to this process
/// (PR_SET_PDEATHSIG): argv only (no shell), the parent's environment plus `environment` (passwords
/// travel there or in PGPASSFILE — never in argv), stdout on a pipe we read or /dev/null,
/// stderr into a file so its last lines can explain a failure, every other descriptor closed.
///
/// Not Sendable: one thread starts it, reads it and waits for it.
public final class ChildProcess {
    public let executable: String
    public let arguments: [String]
    public let pid: pid_t
    /// Read end of the child's stdout (when `captureStdout`), close-on-exec in this process.
    public private(set) var stdoutFD: Int32
    /// Write end of the child's stdin (when `stdinPipe`), close-on-exec in this process;
    /// -1 otherwise (the child reads /dev/null).
    public private(set) var stdinFD: Int32 = -1
    private let stderrPath: String
    private var exitStatus: Int32?

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// Starts `executable` with `arguments`. `stoppedBySignal` false keeps it out of
    /// `stopAll`: for a step past a restore's point of no return (Redis's restart command),
    /// which a first SIGTERM/SIGINT must let finish rather than cut in half.
    public init(executable: String, arguments: [String], environment: [String: String] = [:],
                captureStdout: Bool, stdinPipe: Bool = false, scratchDirectory: String, stoppedBySignal: Bool = true) throws {
        self.executable = executable
        self.arguments = arguments
        try FileSystem.createDirectory(scratchDirectory)
        stderrPath = scratchDirectory + "/.stderr-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        var fds: [Int32] = [-1, -1]
        if captureStdout {
            guard pipe(&fds) == 0 else { throw FileSystemError.errno(errno, "pipe", executable) }
            // Close-on-exec on both ends: only the dup2'ed copy (fd 1) reaches the child.
            _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
            // A 1 MiB pipe lets the child run ahead of us in bigger steps (fewer wake-ups).
            _ = fcntl(fds[1], 1031 /* F_SETPIPE_SZ */, 1 << 20)
        }
        var inFDs: [Int32] = [-1, -1]
        if stdinPipe {
            guard pipe(&inFDs) == 0 else {
                if captureStdout { close(fds[0]); close(fds[1]) }
                throw FileSystemError.errno(errno, "pipe", executable)
            }
            _ = fcntl(inFDs[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(inFDs[1], F_SETFD, FD_CLOEXEC)
            _ = fcntl(inFDs[1], 1031 /* F_SETPIPE_SZ */, 1 << 20)
        }
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        // The C shim forks on its own long-lived thread and, in the child, sets default signal
        // dispositions and an empty mask (`serve` ignores SIGTERM/SIGINT itself, and an ignored
        // signal stays ignored across exec), PR_SET_PDEATHSIG (a SIGKILLed serve leaves no
        // pg_dump or drill redis-server behind), the three descriptors, closes all others.
        var child: pid_t = 0
        let stderrFilePath = stderrPath
        let childStdin = stdinPipe ? inFDs[0] : -1
        let childStdout = captureStdout ? fds[1] : -1
        let rc = argv.withUnsafeBufferPointer { argvBuffer in
            envp.withUnsafeBufferPointer { envpBuffer in
                executable.withCString { executablePath in
                    stderrFilePath.withCString { stderrFile in
                        var request = backstop_spawn_request(
                            executable: executablePath, argv: argvBuffer.baseAddress, envp: envpBuffer.baseAddress,
                            stdin_fd: childStdin, stdout_fd: childStdout,
                            stderr_path: stderrFile, death_signal: Self.deathSignal)
                        return backstop_spawn(&request, &child)
                    }
                }
            }
        }
        if captureStdout { close(fds[1]) }
        if stdinPipe { close(inFDs[0]) }
        guard rc == 0 else {
            if captureStdout { close(fds[0]) }
            if stdinPipe { close(inFDs[1]) }
            unlink(stderrPath)
            throw Failure(description: "cannot start \(executable): \(String(cString: strerror(rc))) (is the PostgreSQL client installed and on PATH?)")
        }
        if stoppedBySignal { Self.live.adopt(child) }
        pid = child
        stdoutFD = captureStdout ? fds[0] : -1
        stdinFD = stdinPipe ? inFDs[1] : -1
    }

    deinit {
        if exitStatus == nil {
            Self.stop(pid)
            _ = try? wait()
        }
        if stdoutFD >= 0 { close(stdoutFD) }
        if stdinFD >= 0 { close(stdinFD) }
        unlink(stderrPath)
    }

    /// Closes our end of stdin: the child reads end-of-file.
    public func closeStdin() {
        if stdinFD >= 0 {
            close(stdinFD)
            stdinFD = -1
        }
    }

    /// Closes our end of stdout (the child gets SIGPIPE/EPIPE if it still writes).
    public func closeStdout() {
        if stdoutFD >= 0 {
            close(stdoutFD)
            stdoutFD = -1
        }
    }

    /// Asks the child to stop (SIGTERM), with what it started.
    public func terminate() { if exitStatus == nil { Self.stop(pid) } }

    /// SIGTERM to a child's process group (CChildSpawn makes each child the leader of its own),
    /// so the helpers it started stop with it: pg_basebackup's forked WAL streamer keeps running
    /// for seconds after its parent is gone otherwise, with the server's connection open. To
    /// the pid alone when the group is not there (yet: the child sets it right after fork).
    static func stop(_ pid: pid_t) {
        if kill(-pid, SIGTERM) != 0 { kill(pid, SIGTERM) }
    }

    /// Waits for the child; returns its exit status (128+signal when killed). Blocking.
    @discardableResult
    public func wait() throws -> Int32 {
        if let exitStatus { return exitStatus }
        closeStdin()
        // Waited for without reaping first, so the pid leaves `live` while it still names
        // this zombie: `stopAll` can never signal a stranger that reused it.
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) < 0 {
            guard errno == EINTR else { throw FileSystemError.errno(errno, "waitid", executable) }
        }
        Self.live.release(pid)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw FileSystemError.errno(errno, "waitpid", executable) }
        }
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        exitStatus = code
        return code
    }

    /// The exit status if the child has ended (reaped without blocking), nil while it runs:
    /// lets a supervisor (the WAL receiver) poll its child between other work.
    public func tryWait() -> Int32? {
        if let exitStatus { return exitStatus }
        var info = siginfo_t()
        var ended: Int32
        repeat { ended = waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) } while ended < 0 && errno == EINTR
        // With WNOHANG, a child still running leaves si_signo 0; an ended one reports SIGCHLD.
        guard ended == 0, info.si_signo == SIGCHLD else { return nil }
        Self.live.release(pid)
        var status: Int32 = 0
        var rc: pid_t
        repeat { rc = waitpid(pid, &status, WNOHANG) } while rc < 0 && errno == EINTR
        guard rc == pid else { return nil }
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        exitStatus = code
        return code
    }

    /// The child's stderr (the last `limit` bytes), trimmed.
    public func stderrText(limit: Int = 4000) -> String {
        guard let bytes = try? FileSystem.read(stderrPath) else { return "" }
        return String(decoding: bytes.suffix(limit), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs to completion and returns stdout (for short outputs: psql -Atc). Throws with stderr
    /// on a non-zero exit.
    public static func output(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                              scratchDirectory: String) throws -> String {
        let child = try ChildProcess(executable: executable, arguments: arguments, environment: environment,
                                     captureStdout: true, scratchDirectory: scratchDirectory)
        var data = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(child.stdoutFD, $0.baseAddress, $0.count) }
            if n > 0 { data += buffer[0..<n] } else if n == 0 || errno != EINTR { break }
        }
        let status = try child.wait()
        guard status == 0 else {
            throw Failure(description: "\(FileSystem.lastComponent(of: executable)) exited \(status): \(child.stderrText())")
        }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// What the kernel sends a child when this process dies: SIGKILL, because nobody is left
    /// to read its output or wait for it, and a program that traps SIGTERM must still go.
    public static let deathSignal = SIGKILL

    /// Every child of this process not yet waited for.
    static let live = LiveChildren()

    /// A one-shot command's answer to SIGTERM/SIGINT: SIGTERM to every child still running
    /// (pg_dump, the restore's psql, the drill's servers), and any child started afterwards is
    /// stopped at once. Each job then fails the ordinary way — a child that exits non-zero —
    /// and cleans up as it always does (temporary file, scratch database, scratch folder).
    /// `serve` never calls it: its scheduler cancels the jobs one by one after the grace period.
    public static func stopAll() { live.stopAll() }
}
