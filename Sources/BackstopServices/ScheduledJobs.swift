import BackstopCore
import BackstopMetrics
import BackstopState
import BackupCatalog
import BackupJobs
import OffsiteCopies
import Restore
import S3
import WalArchive

/// The jobs `serve` runs on their cron schedules — the same runner the CLI subcommands use —
/// each writing its outcome into the state store, which renders the metrics and wakes the
/// alert evaluator.
public enum ScheduledJobs {
    /// Job name → action. A job without an action here is not scheduled.
    /// With S3 on, every backup job is followed by an upload of what is pending (also after a
    /// failed run: the backups of earlier runs, or the databases that did succeed, still go);
    /// the upload never changes the job's result.
    public static func actions(postgres: PostgresJobSettings, redis: RedisJobSettings, retention: RetentionPolicy, s3: S3Settings?,
                               environment: [String: String], store: StateStore, registry: MetricsRegistry,
                               pitrDrill: PitrDrill? = nil) -> [String: @Sendable () async throws -> Void] {
        let backupDir = postgres.backupDir
        let log = BackupLog(backupDir: backupDir)
        let runner = BackupJobRunner(log: log, record: { outcomes in await store.recordBackups(outcomes) })
        let uploads = s3.map {
            OffsiteUploads(settings: $0, backupDir: backupDir, log: log, metrics: registry,
                           finished: { await store.recordUploads(S3UploadState.load(backupDir: backupDir)) })
        }
        func thenUpload(_ job: String, _ body: @escaping @Sendable () async throws -> Void) -> @Sendable () async throws -> Void {
            guard let uploads else { return body }
            return {
                do {
                    try await body()
                } catch {
                    // A job stopped by shutdown leaves nothing new; don't start an upload then.
                    if !Task.isCancelled { await uploads.afterJob(job) }
                    throw error
                }
                if !Task.isCancelled { await uploads.afterJob(job) }
            }
        }
        let redisServer = RestoreDrill.redisServer(environment: environment)
        return [
            "full": thenUpload("backup postgres full") { try await runner.postgresFull(settings: postgres) },
            "incremental": thenUpload("backup postgres incremental") { try await runner.postgresBase(settings: postgres) },
            "redis": thenUpload("backup redis") { try await runner.redis(settings: redis) },
            "cleanup": {
                // Local first; with S3 on, the bucket too (its failure is reported, never stops the local part).
                let outcome = try await CleanupRun.run(backupDir: backupDir, policy: retention, s3: s3, dryRun: false,
                                                       log: log, metrics: registry)
                await store.refreshFromDisk()
                let errors = outcome.local.errors + outcome.remoteErrors
                if !errors.isEmpty { throw BackupJobError("cleanup could not remove: " + errors.joined(separator: "; ")) }
            },
            "drill": {
                // serve's shutdown cancels this task: the drill stops its scratch copies and records nothing.
                let cancellation = JobCancellation()
                let drill = RestoreDrill(settings: postgres, redisServer: redisServer, log: log, metrics: registry, cancellation: cancellation)
                let results = await withTaskCancellationHandler {
                    await Blocking.run { drill.run() }
                } onCancel: {
                    cancellation.cancel()
                }
                try Task.checkCancellation()
                var failed = results.filter { !$0.success }.map { "\($0.kind): \($0.details)" }
                // With the WAL archive on, the point-in-time drill too, recorded as its own kind.
                if let pitrDrill {
                    let pitr = await Blocking.run { pitrDrill.run() }
                    await Blocking.run {
                        try? RestoreRecord.recordDrill(kind: PitrDrill.kind, at: WallClock.now(), seconds: pitr.seconds,
                                                       error: pitr.success ? nil : pitr.message, backupDir: backupDir)
                    }
                    if !pitr.success { failed.append("\(PitrDrill.kind): \(pitr.message)") }
                }
                let record = await Blocking.run { RestoreRecord.load(backupDir: backupDir) }
                record.publish(into: registry)
                await store.recordRestores(record)
                if !failed.isEmpty {
                    throw BackupJobError("restore drill failed: " + failed.joined(separator: "; "))
                }
            },
        ]
    }
}
