import BackstopCore
import PostgresClient
import BackstopMetrics
import BackupCatalog
import BackupPipeline
import Foundation

/// `backstop backup postgres full`: a plain-format `pg_dump` of each configured database and
/// `pg_dumpall --globals-only` (roles, tablespaces), each streamed through the one pipeline
/// (`BackupFileWriter`) into `postgres/<db>_full_STAMP.sql.gz` / `globals_STAMP.sql.gz`, then
/// its `.meta`. A failure leaves only the failure: the temporary file is removed, no `.meta`
/// is written, the attempt is recorded in `.state/attempts.json` and the metrics.
///
/// Blocking: run it on a thread that may block (`Blocking.run`), never the cooperative pool.
public struct PostgresFullBackup: Sendable {
    public let settings: PostgresJobSettings
    public let log: BackupLog
    public let metrics: MetricsRegistry?
    public let cancellation: JobCancellation?

    /// - Parameters:
    ///   - metrics: when given, every outcome is recorded there too (`BackupMetrics.record`).
    ///   - cancellation: lets another thread stop the run (the scheduler at shutdown).
    public init(settings: PostgresJobSettings, log: BackupLog, metrics: MetricsRegistry? = nil, cancellation: JobCancellation? = nil) {
        self.settings = settings
        self.log = log
        self.metrics = metrics
        self.cancellation = cancellation
    }

    /// Runs the job. Throws `FileLock.Held` when another run holds the job's lock; otherwise
    /// returns one outcome per file (failed ones included).
    public func run() throws -> [BackupOutcome] {
        let lock = try FileLock(path: settings.locksDir + "/postgres_full.lock", purpose: "backup postgres full")
        defer { lock.release() }
        try FileSystem.createDirectory(settings.postgresDir)
        StaleFiles.removePartials(in: settings.postgresDir) { name in
            name.hasPrefix("globals_") || settings.databases.contains { name.hasPrefix("\($0)_full_") }
        }
        let started = WallClock.now()
        let stamp = StaleFiles.freeStamp(startingAt: started, in: settings.postgresDir) { stamp in
            settings.databases.map { "\($0)_full_\(stamp).sql.gz\(settings.encryptedSuffix)" } + ["globals_\(stamp).sql.gz\(settings.encryptedSuffix)"]
        }
        log.info("backup postgres full: started (databases \(settings.databases.joined(separator: ", ")) on \(settings.displayHost), gzip level \(settings.compressionLevel)\(settings.encryption.isEnabled ? ", age-encrypted to \(settings.encryption.recipients.count) recipient(s)" : ""))")
        let version = ServerFacts.serverVersion(settings: settings)
        var outcomes: [BackupOutcome] = []
        for database in settings.databases {
            let outcome = dump(kind: .postgresFull, target: database, file: "\(database)_full_\(stamp).sql.gz\(settings.encryptedSuffix)",
                               program: settings.program("pg_dump"),
                               arguments: ["--format=plain", "--no-password", "--dbname", database],
                               serverVersion: version)
            outcomes.append(outcome)
        }
        outcomes.append(dump(kind: .postgresGlobals, target: "globals", file: "globals_\(stamp).sql.gz\(settings.encryptedSuffix)",
                             program: settings.program("pg_dumpall"),
                             arguments: ["--globals-only", "--no-password"],
                             serverVersion: version))
        let failed = outcomes.filter { !$0.success }.count
        log.info("backup postgres full: finished, \(outcomes.count - failed) of \(outcomes.count) files written\(failed > 0 ? ", \(failed) FAILED" : "") in \(String(format: "%.1f", WallClock.now() - started)) s")
        return outcomes
    }

    private func dump(kind: BackupKind, target: String, file: String, program: String, arguments: [String],
                      serverVersion: String?) -> BackupOutcome {
        let destination = settings.postgresDir + "/" + file
        let started = WallClock.now()
        log.info("\(kind.rawValue) \(target): started → \(destination)")
        var outcome: BackupOutcome
        do {
            if cancellation?.isCancelled == true { throw BackupJobError("cancelled before it started (shutdown)") }
            let written = try StreamedDump.run(program: program, arguments: arguments, destination: destination,
                                               settings: settings, log: log, label: target, cancellation: cancellation)
            let finished = WallClock.now()
            var meta = BackupMeta(kind: kind, target: target, file: file, startedAt: started, finishedAt: finished,
                                  sizeBytes: written.sizeBytes, sha256: written.sha256,
                                  compression: "gzip-\(settings.compressionLevel)", serverVersion: serverVersion)
            meta.uncompressedBytes = written.uncompressedBytes
            meta.markEncryption(of: written)
            do {
                try meta.write(forData: destination)
            } catch {
                // A data file without its .meta is not a backup: remove it.
                unlink(destination)
                throw BackupJobError("writing \(BackupMeta.path(for: destination)) failed: \(error); the dump was removed")
            }
            outcome = BackupOutcome(kind: kind, target: target, path: destination, success: true, startedAt: started,
                                    finishedAt: finished, sizeBytes: written.sizeBytes, sha256: written.sha256, message: nil)
            log.info("\(kind.rawValue) \(target): success, \(HumanBytes.format(written.sizeBytes)) (\(HumanBytes.format(written.uncompressedBytes)) uncompressed) in \(String(format: "%.1f", finished - started)) s, sha256 \(written.sha256)")
        } catch {
            let finished = WallClock.now()
            outcome = BackupOutcome(kind: kind, target: target, path: nil, success: false, startedAt: started,
                                    finishedAt: finished, sizeBytes: 0, sha256: nil, message: "\(error)",
                                    interrupted: cancellation?.isCancelled == true)
            log.error("\(kind.rawValue) \(target): \(outcome.interrupted ? "INTERRUPTED" : "FAILED") after \(String(format: "%.1f", finished - started)) s: \(error)")
        }
        BackupRecorder.record(outcome, backupDir: settings.backupDir, metrics: metrics, log: log)
        return outcome
    }
}

/// A child program's stdout streamed through `BackupFileWriter` into a backup file;
/// `observe` sees the plain bytes on their way (the base backup reads its manifest there).
enum StreamedDump {
    static func run(program: String, arguments: [String], destination: String, settings: PostgresJobSettings,
                    log: BackupLog, label: String, cancellation: JobCancellation?,
                    observe: ((UnsafeRawBufferPointer) throws -> Void)? = nil) throws -> WrittenFile {
        let writer = try BackupFileWriter(destination: destination, compressionLevel: settings.compressionLevel,
                                          recipients: settings.encryption.recipients)
        let child: ChildProcess
        do {
            child = try ChildProcess(executable: program, arguments: arguments, environment: settings.childEnvironment,
                                     captureStdout: true, scratchDirectory: settings.stateDir)
        } catch {
            writer.abort()
            throw error
        }
        cancellation?.attach(child.pid)
        defer { cancellation?.detach() }
        let name = FileSystem.lastComponent(of: program)
        let t0 = MonotonicClock.seconds()
        var lastProgress = t0
        do {
            while try writer.read(from: child.stdoutFD, sourceName: "\(name) output", observe: observe) > 0 {
                let now = MonotonicClock.seconds()
                if now - lastProgress >= 1 {
                    lastProgress = now
                    log.progress(label, bytesIn: writer.uncompressedBytes, bytesOut: writer.compressedBytes, seconds: now - t0)
                }
            }
        } catch {
            child.terminate()
            child.closeStdout()
            _ = try? child.wait()
            throw error
        }
        let status = try child.wait()
        guard status == 0 else {
            writer.abort()
            let stderr = child.stderrText()
            if cancellation?.isCancelled == true { throw BackupJobError("cancelled (shutdown): \(name) was stopped; no backup file was kept") }
            throw BackupJobError("\(name) exited with status \(status)\(stderr.isEmpty ? "" : ": \(stderr)"); no backup file was kept")
        }
        return try writer.finish()
    }
}

/// Leftovers of interrupted runs and file-name stamps.
enum StaleFiles {
    /// Removes hidden temporary files and folders (`.NAME.partial`) of runs that died; the
    /// caller holds the job's lock, so none of them is in use.
    /// Removes the leftovers of this job's own crashed runs. Only names `owned` says are the
    /// job's: the full dump and the base backup share `postgres/` and run at the same time,
    /// and one must never delete the other's file in progress (the caller holds its job's
    /// lock, so its own partials are certainly stale).
    static func removePartials(in folder: String, owned: (String) -> Bool) {
        for name in (try? FileSystem.list(folder)) ?? [] where name.hasPrefix(".") && name.hasSuffix(".partial") && owned(String(name.dropFirst())) {
            try? FileManager.default.removeItem(atPath: folder + "/" + name)
        }
    }

    /// A YYYYMMDD_HHMMSS stamp whose names do not exist yet (two runs in one second must
    /// never replace each other's files).
    static func freeStamp(startingAt time: Double, in folder: String, names: (String) -> [String]) -> String {
        var t = time.rounded(.down)
        while true {
            let stamp = WallClock.fileStamp(t)
            if names(stamp).allSatisfy({ !FileSystem.exists(folder + "/" + $0) && !FileSystem.exists(folder + "/" + $0 + ".meta") }) {
                return stamp
            }
            t += 1
        }
    }
}

/// Facts about the server, asked over libpq (the client programs' settings, never argv).
enum ServerFacts {
    static func serverVersion(settings: PostgresJobSettings) -> String? {
        guard let connection = try? PostgresConnection(database: settings.databases.first ?? "postgres", timeout: .seconds(10),
                                                       applicationName: "backstop", extra: settings.libpqParameters) else { return nil }
        defer { connection.close() }
        return try? connection.scalar("SHOW server_version")
    }
}
