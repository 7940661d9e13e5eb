#if canImport(Glibc)
import Glibc
#endif
import BackstopCore
import BackupJobs
import Foundation

/// `restore postgres --start --port N`: starts PostgreSQL on the restored data directory (as
/// the `postgres` user when run as root), waits until recovery has reached its target, and
/// reports the LSN and the time of the last transaction replayed.
///
/// The restored server gets `archive_mode=off` on its command line: a copy must not push its
/// own new timeline into the archive it is restored from. Run as root, the segments the
/// chain check proved are also copied into `pg_wal/`, because restore_command then runs as
/// `postgres`, which may not read BACKUP_DIR; recovery falls back to them.
public struct RecoveryStart: Sendable {
    public struct Reached: Sendable {
        public var lsn: String
        public var lastTransaction: String
        public var inRecovery: Bool
    }

    public let jobSettings: PostgresJobSettings
    public let dataDirectory: String
    public let port: Int
    public let say: @Sendable (String) -> Void
    /// Copies one WAL file into place (name, destination) for the root case above; nil: from
    /// the local archive. A restore from the bucket passes its own (restore_command's fallback).
    public var fetchFile: (@Sendable (String, String) throws -> Void)?
    /// SIGTERM/SIGINT of the command: the server this started is stopped and `run` throws
    /// `RecoveryStopped` (the caller removes the data directory it built).
    public var cancellation: JobCancellation?

    public init(jobSettings: PostgresJobSettings, dataDirectory: String, port: Int, say: @escaping @Sendable (String) -> Void) {
        self.jobSettings = jobSettings
        self.dataDirectory = dataDirectory
        self.port = port
        self.say = say
    }

    public func run(_ plan: PointInTimeRestore.Plan, action: String, timeout: Double = 600) throws -> Reached {
        do {
            return try steps(plan, action: action, timeout: timeout)
        } catch let error where cancellation?.isCancelled == true && !(error is RecoveryStopped) {
            // A step the signal cut (chown, pg_ctl, psql stopped by the handler): whatever it
            // was, a server started on the directory is stopped before the caller removes it.
            try stopServer()
        }
    }

    private func steps(_ plan: PointInTimeRestore.Plan, action: String, timeout: Double) throws -> Reached {
        let archive = WalArchive(backupDir: jobSettings.backupDir, identities: plan.identities, receiveDirectory: plan.receiveDirectory)
        let asPostgres = geteuid() == 0
        if asPostgres {
            var names = plan.chain.segments.map(\.name)
            names += plan.chain.path.map(\.timeline).filter { $0 > 1 }.map { historyFileName(timeline: $0) }
            for name in names {
                if cancellation?.isCancelled == true { throw RecoveryStopped(serverStopped: false) }
                if let fetchFile {
                    try fetchFile(name, dataDirectory + "/pg_wal/" + name)
                } else {
                    _ = try archive.fetch(name: name, to: dataDirectory + "/pg_wal/" + name, allowPartial: plan.allowPartial)
                }
            }
            say("copied \(names.count) WAL files into \(dataDirectory)/pg_wal (restore_command runs as postgres)")
            _ = try ChildProcess.output("chown", ["-R", "postgres:postgres", dataDirectory], scratchDirectory: jobSettings.stateDir)
        }
        var argv = [jobSettings.program("pg_ctl"), "-D", dataDirectory, "-l", dataDirectory + "/backstop-restore.log", "-w", "-t", "\(Int(timeout))",
                    "-o", "-p \(port) -c listen_addresses=127.0.0.1 -c unix_socket_directories=/tmp -c archive_mode=off", "start"]
        if asPostgres { argv = ["runuser", "-u", "postgres", "--"] + argv }
        let child = try ChildProcess(executable: argv[0], arguments: Array(argv.dropFirst()), captureStdout: false, scratchDirectory: jobSettings.stateDir)
        let status = try child.wait()
        if cancellation?.isCancelled == true { try stopServer() }
        if status != 0 && action != "shutdown" {
            throw WalArchiveError("pg_ctl start on \(dataDirectory) exited \(status): \(child.stderrText()); see \(dataDirectory)/backstop-restore.log")
        }
        say("PostgreSQL started on 127.0.0.1:\(port) from \(dataDirectory); waiting for recovery to end")
        let deadline = WallClock.now() + timeout
        while WallClock.now() < deadline {
            if cancellation?.isCancelled == true { try stopServer() }
            if action == "shutdown" {
                if !FileSystem.exists(dataDirectory + "/postmaster.pid") {
                    return Reached(lsn: "(server shut down at the target)", lastTransaction: "", inRecovery: true)
                }
            } else if let row = try? query("SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() ELSE '' END") {
                let fields = row.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
                if fields.first == "f" || (fields.count > 1 && fields[1] == "paused") {
                    let facts = try query("SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, COALESCE(pg_last_xact_replay_timestamp()::text, '')")
                        .split(separator: "|", omittingEmptySubsequences: false).map(String.init)
                    return Reached(lsn: facts.first ?? "", lastTransaction: facts.count > 1 ? facts[1] : "", inRecovery: fields.first == "t")
                }
            }
            usleep(300_000)
        }
        throw WalArchiveError("recovery on 127.0.0.1:\(port) had not ended after \(Int(timeout)) s; see \(dataDirectory)/backstop-restore.log (the server is left running)")
    }

    /// The command was stopped: the server started on the restored directory (the postmaster
    /// named in its postmaster.pid) gets a fast shutdown (SIGINT), then SIGQUIT and SIGKILL if
    /// it lingers; throws `RecoveryStopped` once it is gone. Signals, not `pg_ctl stop`: once
    /// the command is stopping, no new child program is started.
    func stopServer() throws -> Never {
        let pidFile = dataDirectory + "/postmaster.pid"
        // pg_ctl may have been stopped between its fork and the postmaster writing the file.
        let appear = MonotonicClock.seconds() + 2
        while !FileSystem.exists(pidFile), MonotonicClock.seconds() < appear { usleep(50_000) }
        let lines = ((try? FileSystem.read(pidFile)).map { String(decoding: $0, as: UTF8.self) } ?? "").split(separator: "\n").map(String.init)
        guard let pid = lines.first.flatMap({ pid_t($0.trimmingCharacters(in: .whitespaces)) }), pid > 1,
              lines.count > 1, lines[1] == dataDirectory || FileSystem.lastComponent(of: lines[1]) == FileSystem.lastComponent(of: dataDirectory) else {
            say("stopped before a server ran on \(dataDirectory)")
            throw RecoveryStopped(serverStopped: false)
        }
        for (signal, seconds) in [(SIGINT, 15.0), (SIGQUIT, 5.0), (SIGKILL, 5.0)] {
            kill(pid, signal)
            let until = MonotonicClock.seconds() + seconds
            while Self.running(pid), MonotonicClock.seconds() < until { usleep(50_000) }
            if !Self.running(pid) {
                say("stopped: the recovering server (pid \(pid)) on 127.0.0.1:\(port) shut down (\(signal == SIGINT ? "fast" : signal == SIGQUIT ? "immediate" : "killed"))")
                throw RecoveryStopped(serverStopped: true)
            }
        }
        throw WalArchiveError("stopped, but the server (pid \(pid)) on \(dataDirectory) did not exit; stop it by hand: pg_ctl -D \(dataDirectory) -m immediate stop")
    }

    /// True while `pid` exists and is not a zombie (the postmaster is not our child: its
    /// parent is whoever reaps orphans here).
    static func running(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        guard let stat = try? FileSystem.read("/proc/\(pid)/stat") else { return true }
        let text = String(decoding: stat, as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return true }
        let state = text[text.index(after: close)...].split(separator: " ").first
        return state != "Z" && state != "X"
    }

    /// One row, fields joined by `|`.
    func query(_ sql: String) throws -> String {
        try ChildProcess.output(jobSettings.program("psql"), ["-X", "-A", "-t", "-h", "127.0.0.1", "-p", String(port), "-d", "postgres", "-c", sql],
                                environment: jobSettings.childEnvironment, scratchDirectory: jobSettings.stateDir)
    }
}

/// `restore postgres --start` was stopped (SIGTERM/SIGINT) before recovery ended.
public struct RecoveryStopped: Error, CustomStringConvertible, Sendable {
    /// Whether a server had been started (and was stopped).
    public var serverStopped: Bool
    public var description: String {
        serverStopped ? "stopped during recovery: the server started on the restored directory was shut down"
            : "stopped before recovery began: no server was left running"
    }
}
