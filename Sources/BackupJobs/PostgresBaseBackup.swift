import BackstopCore
import BackstopMetrics
import BackupCatalog
import BackupPipeline
import Foundation

/// `backstop backup postgres incremental`: a physical base backup with `pg_basebackup` (tar
/// format, WAL streamed alongside, backup manifest) into `postgres/wal_STAMP/`
/// (`base.tar.gz`, `pg_wal.tar.gz`, `backup_manifest`) with `wal_STAMP.meta` (start/end LSN,
/// timeline, server version, each file's size and SHA-256).
///
/// The backup is built in a hidden `.wal_STAMP.partial/` folder, every file is read back
/// (gzip inflated to its end, SHA-256), fsynced, and only then the folder is renamed into
/// place and the `.meta` written. A failure removes the partial folder.
///
/// The layout is ready for continuous WAL archiving: archived segments go to `postgres/wal/`
/// and the start LSN/timeline in the `.meta` say which of them a restore needs.
public struct PostgresBaseBackup: Sendable {
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

    public func run() throws -> BackupOutcome {
        let lock = try FileLock(path: settings.locksDir + "/postgres_base.lock", purpose: "backup postgres incremental")
        defer { lock.release() }
        try FileSystem.createDirectory(settings.postgresDir)
        StaleFiles.removePartials(in: settings.postgresDir) { $0.hasPrefix("wal_") }
        let started = WallClock.now()
        let stamp = StaleFiles.freeStamp(startingAt: started, in: settings.postgresDir) { ["wal_\($0)"] }
        let name = "wal_\(stamp)"
        let final = settings.postgresDir + "/" + name
        let partial = settings.postgresDir + "/." + name + ".partial"
        let target = settings.clusterTarget
        log.info("postgres_base \(target): started → \(final)/ (pg_basebackup on \(settings.displayHost))")
        var outcome: BackupOutcome
        do {
            let version = ServerFacts.serverVersion(settings: settings)
            try FileSystem.createDirectory(partial, mode: 0o750)
            let child = try ChildProcess(executable: settings.program("pg_basebackup"),
                                         arguments: ["--pgdata", partial, "--format=tar", "--wal-method=stream",
                                                     "--compress=\(settings.compressionLevel)", "--checkpoint=fast",
                                                     "--no-password", "--label", "backstop \(name)", "--manifest-checksums=SHA256"],
                                         environment: settings.childEnvironment, captureStdout: false, scratchDirectory: settings.stateDir)
            cancellation?.attach(child.pid)
            let status = try child.wait()
            cancellation?.detach()
            if cancellation?.isCancelled == true { throw BackupJobError("cancelled (shutdown): pg_basebackup was stopped; no backup was kept") }
            guard status == 0 else {
                throw BackupJobError("pg_basebackup exited with status \(status): \(child.stderrText()); no backup was kept")
            }
            var files: [BackupMeta.FileEntry] = []
            for file in try FileSystem.list(partial).sorted() {
                let path = partial + "/" + file
                if file.hasSuffix(".gz") {
                    let verified = try GzipVerifier.verify(path: path)
                    files.append(.init(name: file, sizeBytes: verified.compressedBytes, sha256: verified.sha256))
                } else {
                    let digest = try FileDigest.sha256(path: path)
                    files.append(.init(name: file, sizeBytes: digest.sizeBytes, sha256: digest.sha256))
                }
                try FileDigest.sync(path: path)
            }
            guard files.contains(where: { $0.name == "backup_manifest" }), files.contains(where: { $0.name == "base.tar.gz" }) else {
                throw BackupJobError("pg_basebackup finished but \(partial) lacks base.tar.gz or backup_manifest (found \(files.map(\.name)))")
            }
            let range = try ManifestFacts.read(path: partial + "/backup_manifest")
            FileSystem.syncDirectory(partial)
            guard rename(partial, final) == 0 else { throw FileSystemError.errno(errno, "rename to \(final)", partial) }
            FileSystem.syncDirectory(settings.postgresDir)
            let finished = WallClock.now()
            let total = files.reduce(UInt64(0)) { $0 + $1.sizeBytes }
            var meta = BackupMeta(kind: .postgresBase, target: target, file: name, startedAt: started, finishedAt: finished,
                                  sizeBytes: total, sha256: nil, compression: "gzip-\(settings.compressionLevel)", serverVersion: version)
            meta.files = files
            meta.startLSN = range.startLSN
            meta.endLSN = range.endLSN
            meta.timeline = range.timeline
            do {
                try meta.write(forData: final)
            } catch {
                try? FileManager.default.removeItem(atPath: final)
                throw BackupJobError("writing \(BackupMeta.path(for: final)) failed: \(error); the base backup was removed")
            }
            outcome = BackupOutcome(kind: .postgresBase, target: target, path: final, success: true, startedAt: started,
                                    finishedAt: finished, sizeBytes: total, sha256: nil, message: nil)
            log.info("postgres_base \(target): success, \(HumanBytes.format(total)) in \(String(format: "%.1f", finished - started)) s, WAL \(range.startLSN)–\(range.endLSN) timeline \(range.timeline)")
        } catch {
            try? FileManager.default.removeItem(atPath: partial)
            let finished = WallClock.now()
            outcome = BackupOutcome(kind: .postgresBase, target: target, path: nil, success: false, startedAt: started,
                                    finishedAt: finished, sizeBytes: 0, sha256: nil, message: "\(error)",
                                    interrupted: cancellation?.isCancelled == true)
            log.error("postgres_base \(target): \(outcome.interrupted ? "INTERRUPTED" : "FAILED") after \(String(format: "%.1f", finished - started)) s: \(error)")
        }
        BackupRecorder.record(outcome, backupDir: settings.backupDir, metrics: metrics, log: log)
        return outcome
    }
}

/// The WAL range of a base backup, from its `backup_manifest` (JSON, "WAL-Ranges").
public enum ManifestFacts {
    public struct Range: Sendable, Equatable {
        public var timeline: Int
        public var startLSN: String
        public var endLSN: String
    }

    public static func read(path: String) throws -> Range {
        let manifest = try JSONCoding.decode(Manifest.self, from: try FileSystem.read(path))
        guard let first = manifest.ranges?.first, let last = manifest.ranges?.last else {
            throw BackupJobError("\(path) has no WAL-Ranges (not a PostgreSQL 13+ backup manifest?)")
        }
        return Range(timeline: last.timeline, startLSN: first.start, endLSN: last.end)
    }

    /// The part of `backup_manifest` read here (the file list is left undecoded).
    private struct Manifest: Decodable {
        struct WALRange: Decodable {
            enum Key: String, CodingKey {
                case timeline = "Timeline", start = "Start-LSN", end = "End-LSN"
            }
            var timeline: Int, start: String, end: String

            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: Key.self)
                start = try c.decode(String.self, forKey: .start)
                end = try c.decode(String.self, forKey: .end)
                // A number in PostgreSQL's manifests; a string of digits is taken too.
                timeline = (try? c.decode(Int.self, forKey: .timeline)) ?? (try? c.decode(String.self, forKey: .timeline)).flatMap { Int($0) } ?? 0
            }
        }
        enum CodingKeys: String, CodingKey { case ranges = "WAL-Ranges" }
        var ranges: [WALRange]?
    }
}
