#if canImport(Glibc)
import Glibc
#endif
import BackstopCore
import BackstopMetrics
import BackupJobs
import Foundation
import Synchronization

/// Supervises `pg_receivewal` streaming into the receive folder (`BACKUP_WAL_RECEIVE_DIR`, by
/// default the archive's `.receiving/`) over a physical replication slot, and copies every
/// segment it completes into the archive (gzip, age with recipients, checksum, `.meta`; a
/// stream copy, so the receive folder may be on another filesystem), deleting the staged copy
/// only once the archived one is durable.
///
/// Nothing is lost across restarts: the slot makes the server keep WAL until pg_receivewal has
/// flushed it, pg_receivewal resumes from the `.partial` it left (or the slot's restart LSN),
/// and a segment streamed twice is recognised as identical. When the child dies (a SIGKILL, the
/// server restarting) it is started again after a backoff of 1 s doubling to 30 s (back to 1 s
/// after a minute of streaming). Connection settings come from libpq's variables in the
/// environment; nothing secret is put in argv.
///
/// `run()` blocks until `stop()`: give it a thread of its own.
public final class WalReceiver: Sendable {
    public let settings: WalArchiveSettings
    public let jobSettings: PostgresJobSettings
    public let archive: WalArchive
    let log: BackupLog
    let metrics: MetricsRegistry?
    private let state = Mutex(RunState())

    private struct RunState {
        var stopping = false
        var childPID: pid_t = 0
    }

    public init(settings: WalArchiveSettings, jobSettings: PostgresJobSettings, log: BackupLog, metrics: MetricsRegistry?) {
        self.settings = settings
        self.jobSettings = jobSettings
        archive = WalArchive(jobSettings: jobSettings, settings: settings)
        self.log = log
        self.metrics = metrics
    }

    /// The running pg_receivewal's process id (0 between runs).
    public var childPID: pid_t { state.withLock { $0.childPID } }

    private var stopping: Bool { state.withLock { $0.stopping } }

    /// Asks `run()` to end: pg_receivewal gets SIGTERM (it flushes and exits), the last
    /// completed segments are archived.
    public func stop() {
        let pid = state.withLock { s -> pid_t in
            s.stopping = true
            return s.childPID
        }
        if pid > 0 { kill(pid, SIGTERM) }
    }

    private var childEnvironment: [String: String] {
        var env = jobSettings.childEnvironment
        // application_name: what synchronous_standby_names must name for --synchronous.
        env["PGAPPNAME"] = settings.slot
        return env
    }

    /// Creates the slot when it does not exist. Throws with the remedy when the role lacks
    /// the REPLICATION attribute.
    public func ensureSlot() throws {
        let child = try ChildProcess(executable: jobSettings.program("pg_receivewal"),
                                     arguments: ["--create-slot", "--if-not-exists", "--slot", settings.slot, "--no-password"],
                                     environment: childEnvironment, captureStdout: false, scratchDirectory: jobSettings.stateDir)
        let status = try child.wait()
        guard status == 0 else {
            let text = child.stderrText()
            if text.contains("replication role") || text.contains("permission denied") || text.contains("pg_hba.conf") && text.contains("replication") {
                throw WalArchiveError("pg_receivewal cannot create the replication slot \(settings.slot) on \(jobSettings.displayHost): the role needs the REPLICATION attribute (ALTER ROLE <user> REPLICATION) and a `replication` line in pg_hba.conf (\(text))")
            }
            throw WalArchiveError("creating the replication slot \(settings.slot) with pg_receivewal failed (exit \(status)): \(text)")
        }
    }

    /// Archives what pg_receivewal completed in the receive folder. Returns the names archived.
    @discardableResult
    public func ingest() -> [String] {
        let staging = archive.stagingDirectory
        let names = ((try? FileSystem.list(staging)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
        var done: [String] = []
        for name in names {
            guard let parsed = WalFileName(name) else { continue }
            switch parsed {
            case .segment, .history: break
            case .partial, .backupHistory: continue
            }
            let path = staging + "/" + name
            do {
                let result = try archive.store(path: path, name: name, source: "pg_receivewal")
                unlink(path)
                FileSystem.syncDirectory(staging)
                if case .stored(let meta) = result {
                    done.append(name)
                    log.info("wal: \(name) archived (\(HumanBytes.format(meta.sizeBytes)) gzip)")
                    if case .segment = parsed { metrics?.set(Family.walArchiveLastSegment, [:], meta.archivedAtSeconds) }
                }
            } catch let error as WalArchiveError {
                let kept = (try? archive.setAside(path: path, name: name)) ?? path
                log.error("wal: \(name): \(error); the received copy was kept as \(kept)")
            } catch {
                log.error("wal: archiving \(name) failed: \(error); it stays in \(staging) and is retried")
            }
        }
        return done
    }

    /// Streams until `stop()`.
    public func run() {
        var backoff = 1.0
        var slotReady = false
        try? FileSystem.createDirectory(archive.stagingDirectory, mode: 0o750)
        ingest()
        while !stopping {
            if !slotReady {
                do {
                    try ensureSlot()
                    slotReady = true
                } catch {
                    log.error("wal: \(error); retrying in \(Int(backoff)) s")
                    sleepUnlessStopped(backoff)
                    backoff = min(backoff * 2, 30)
                    continue
                }
            }
            if repairPartials() { ingest() }
            var arguments = ["--directory", archive.stagingDirectory, "--slot", settings.slot, "--no-loop", "--no-password",
                             "--status-interval=1"]
            if settings.synchronous { arguments.append("--synchronous") }
            let started = WallClock.now()
            let child: ChildProcess
            do {
                child = try ChildProcess(executable: jobSettings.program("pg_receivewal"), arguments: arguments,
                                         environment: childEnvironment, captureStdout: false, scratchDirectory: jobSettings.stateDir)
            } catch {
                log.error("wal: \(error); retrying in \(Int(backoff)) s")
                sleepUnlessStopped(backoff)
                backoff = min(backoff * 2, 30)
                continue
            }
            let stopNow = state.withLock { s -> Bool in
                s.childPID = child.pid
                return s.stopping
            }
            if stopNow { child.terminate() }
            metrics?.set(Family.walReceiverUp, [:], 1)
            log.info("wal: pg_receivewal streaming from \(jobSettings.displayHost) over slot \(settings.slot)\(settings.synchronous ? " (synchronous)" : "") into \(archive.stagingDirectory)")
            var status: Int32?
            while status == nil {
                ingest()
                status = child.tryWait()
                if status == nil { usleep(200_000) }
            }
            state.withLock { $0.childPID = 0 }
            metrics?.set(Family.walReceiverUp, [:], 0)
            ingest()
            if stopping { break }
            metrics?.add(Family.walReceiverRestarts, [:], 1)
            if WallClock.now() - started > 60 { backoff = 1 }
            let why = child.stderrText(limit: 600).replacingOccurrences(of: "\n", with: " | ")
            log.error("wal: pg_receivewal ended (status \(status ?? -1), receiving into \(archive.stagingDirectory)): \(why.isEmpty ? "no message" : why); restarting in \(Int(backoff)) s")
            // The server may have lost the slot (a restored or re-created cluster): check again.
            if why.contains("replication slot") { slotReady = false }
            sleepUnlessStopped(backoff)
            backoff = min(backoff * 2, 30)
        }
        log.info("wal: receiver stopped")
    }

    /// pg_receivewal zero-fills a new `.partial` to the full segment size before writing into
    /// it; killed during that (a SIGKILL, an OOM kill right after a segment switch) it leaves a
    /// shorter file and then refuses to start ("has N bytes, should be 0 or 16777216"). The
    /// bytes there are a valid prefix followed by zeros, so the file is zero-extended to the
    /// segment size — exactly what pg_receivewal would have written.
    ///
    /// A short `.partial` that is all zeros holds no WAL (pg_receivewal writes a segment from its
    /// first page, and a WAL page never is all zeros): it is what a full disk leaves, the
    /// zero-fill cut by ENOSPC. It is removed instead, so its space goes to archiving the
    /// completed segments staged beside it (pg_receivewal streams a backlog faster than it is
    /// archived, and on a small volume they filled it again and nothing moved); pg_receivewal
    /// starts that segment again from its first byte. Returns whether one was removed.
    @discardableResult
    func repairPartials() -> Bool {
        let staging = archive.stagingDirectory
        let size = archive.contents().segments.last.map { $0.meta.walBytes } ?? WalSegment.defaultSize
        var removed = false
        for name in ((try? FileSystem.list(staging)) ?? []) where name.hasSuffix(".partial") && !name.hasPrefix(".") {
            let path = staging + "/" + name
            var info = stat()
            guard stat(path, &info) == 0, info.st_size > 0, UInt64(info.st_size) < size else { continue }
            if Self.isAllZeros(path) {
                if unlink(path) == 0 {
                    FileSystem.syncDirectory(staging)
                    removed = true
                    log.info("wal: \(name) was cut short at \(info.st_size) bytes while pg_receivewal zero-filled it and holds no WAL (all zeros: the disk was full); removed, so its space goes to archiving the staged segments first")
                }
                continue
            }
            let fd = open(path, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            if ftruncate(fd, off_t(size)) == 0, fsync(fd) == 0 {
                log.info("wal: \(name) was cut short at \(info.st_size) bytes (pg_receivewal stopped while zero-filling it); zero-extended to \(size) bytes so streaming resumes")
            }
            close(fd)
        }
        return removed
    }

    /// Whether every byte of the file is zero (false when it cannot be read).
    static func isAllZeros(_ path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            if n == 0 { return true }
            if buffer[0..<n].contains(where: { $0 != 0 }) { return false }
        }
    }

    private func sleepUnlessStopped(_ seconds: Double) {
        let deadline = WallClock.now() + seconds
        while !stopping && WallClock.now() < deadline { usleep(100_000) }
    }
}

extension WalArchive {
    /// The archive serve keeps (receiver and monitor alike): under the jobs' BACKUP_DIR, with
    /// their compression level and encryption recipients, staging in the configured receive folder.
    public init(jobSettings: PostgresJobSettings, settings: WalArchiveSettings) {
        self.init(backupDir: jobSettings.backupDir, compressionLevel: jobSettings.compressionLevel,
                  recipients: jobSettings.encryption.recipients, receiveDirectory: settings.receiveDirectory)
    }
}
