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
/// With `BACKUP_ENCRYPTION_RECIPIENTS` the folder holds one file instead, `base.tar.gz.age`:
/// the data directory, the WAL it needs and its `backup_manifest` in one tar, gzip then age,
/// written by the one pipeline, so no plaintext byte reaches the disk (`streamEncrypted`).
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
            let (files, range) = settings.encryption.isEnabled
                ? try streamEncrypted(into: partial, label: name)
                : try writePlain(into: partial, label: name)
            FileSystem.syncDirectory(partial)
            guard rename(partial, final) == 0 else { throw FileSystemError.errno(errno, "rename to \(final)", partial) }
            FileSystem.syncDirectory(settings.postgresDir)
            let finished = WallClock.now()
            let total = files.reduce(UInt64(0)) { $0 + $1.sizeBytes }
            var meta = BackupMeta(kind: .postgresBase, target: target, file: name, startedAt: started, finishedAt: finished,
                                  sizeBytes: total, sha256: nil, compression: "gzip-\(settings.compressionLevel)", serverVersion: version)
            meta.files = files
            if settings.encryption.isEnabled {
                meta.encryption = "age"
                meta.recipients = settings.encryption.fingerprints.joined(separator: ",")
            }
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
            outcome.encrypted = settings.encryption.isEnabled
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

    /// pg_basebackup writes the tars itself (gzip by its `--compress`), WAL streamed alongside
    /// into `pg_wal.tar.gz`; every file is read back (gzip to its end, SHA-256) and fsynced.
    private func writePlain(into partial: String, label name: String) throws -> ([BackupMeta.FileEntry], ManifestFacts.Range) {
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
        return (files, try ManifestFacts.read(path: partial + "/backup_manifest"))
    }

    /// With recipients: ONE tar on pg_basebackup's stdout (`-D - -Ft`; WAL fetched into it
    /// with `-X fetch`, because WAL cannot be streamed beside a tar on stdout; the manifest
    /// appended to it by pg_basebackup) through the one pipeline — gzip, age, SHA-256,
    /// temporary file, fsync, rename — into `base.tar.gz.age`. Nothing plain is written: the
    /// WAL range for the `.meta` is read from the manifest as the stream passes, in memory.
    /// pg_basebackup refuses `-D -` for a cluster with extra tablespaces (said in its error).
    private func streamEncrypted(into partial: String, label name: String) throws -> ([BackupMeta.FileEntry], ManifestFacts.Range) {
        var manifest: [UInt8] = []
        var inManifest = false
        let tar = TarStreamReader(begin: { member in
            inManifest = member.name == "backup_manifest" && member.isRegularFile
            if inManifest { manifest.removeAll() }
        }, data: { bytes in
            if inManifest { manifest.append(contentsOf: bytes) }
        }, end: { inManifest = false })
        let written = try StreamedDump.run(program: settings.program("pg_basebackup"),
                                           arguments: ["--pgdata", "-", "--format=tar", "--wal-method=fetch", "--checkpoint=fast",
                                                       "--no-password", "--label", "backstop \(name)", "--manifest-checksums=SHA256"],
                                           destination: partial + "/" + Self.encryptedTarName, settings: settings, log: log,
                                           label: "postgres_base", cancellation: cancellation, observe: { try tar.feed($0) })
        do {
            try tar.finish()
            guard !manifest.isEmpty else { throw BackupJobError("pg_basebackup's tar stream has no backup_manifest") }
        } catch {
            unlink(written.path)
            throw BackupJobError("the base backup stream is not a whole PostgreSQL tar: \(error); no backup was kept")
        }
        let range = try ManifestFacts.range(of: manifest, name: "the backup_manifest in pg_basebackup's stream")
        return ([.init(name: Self.encryptedTarName, sizeBytes: written.sizeBytes, sha256: written.sha256)], range)
    }

    /// The one file of an encrypted base backup: data directory, its WAL and backup_manifest.
    public static let encryptedTarName = "base.tar.gz.age"
}
