import BackstopCore
import BackstopMetrics
import BackupCatalog
import BackupJobs
import Foundation
import Restore
import S3
import Scheduling

/// The jobs `serve` runs on their cron schedules — the same code the CLI subcommands call —
/// and the catch-up facts the scheduler needs at start-up.
enum ScheduledJobs {
    /// Job name → action. A job without an action here is not scheduled.
    /// With `s3` set, every backup job is followed by an upload of what is pending (also after a
    /// failed run: the backups of earlier runs, or the databases that did succeed, still go);
    /// the upload never changes the job's result.
    static func actions(environment env: [String: String], registry: MetricsRegistry,
                        s3: S3Settings? = nil) throws -> [String: @Sendable () async throws -> Void] {
        let postgres = try validated { try PostgresJobSettings(environment: env) }
        let redis = try validated { try RedisJobSettings(environment: env) }
        let log = BackupLog(backupDir: postgres.backupDir)
        let retention = try validated { try RetentionPolicy(environment: env) }
        let uploads = s3.map { OffsiteUploads(settings: $0, backupDir: postgres.backupDir, log: log, metrics: registry) }
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
        return [
            "full": thenUpload("backup postgres full") { try await BackupJobRunner.postgresFull(settings: postgres, log: log, metrics: registry) },
            "incremental": thenUpload("backup postgres incremental") { try await BackupJobRunner.postgresBase(settings: postgres, log: log, metrics: registry) },
            "redis": thenUpload("backup redis") { try await BackupJobRunner.redis(settings: redis, log: log, metrics: registry) },
            "cleanup": {
                // Local first; with S3 on, the bucket too (its failure is reported, never stops the local part).
                let outcome = try await CleanupRun.run(backupDir: postgres.backupDir, policy: retention, s3: s3, dryRun: false,
                                                       log: log, metrics: registry)
                let errors = outcome.local.errors + outcome.remoteErrors
                if !errors.isEmpty { throw BackupJobError("cleanup could not remove: " + errors.joined(separator: "; ")) }
            },
            "drill": {
                let drill = RestoreDrill(settings: postgres, redisServer: RestoreDrill.redisServer(environment: env), log: log, metrics: registry)
                let results = await Blocking.run { drill.run() }
                let failed = results.filter { !$0.success }
                if !failed.isEmpty {
                    throw BackupJobError("restore drill failed: " + failed.map { "\($0.kind): \($0.details)" }.joined(separator: "; "))
                }
            },
        ]
    }

    /// The series every configured job owns, at 0 until its first run, so a job that never
    /// succeeded is visible (and BackupStale can fire for it).
    static func expectedSeries(environment env: [String: String]) throws -> [BackupMetrics.Expected] {
        let postgres = try validated { try PostgresJobSettings(environment: env) }
        let redis = try validated { try RedisJobSettings(environment: env) }
        return BackupMetrics.expected(postgres: postgres) + BackupMetrics.expected(redis: redis)
    }

    /// The newest good backup of the kind a job makes, from the metrics filled from the
    /// catalog at start-up; `.never` makes the scheduler run the job once (catch-up).
    static func lastSuccess(job: String, registry: MetricsRegistry) -> LastSuccess {
        if job == "drill" {
            // A drill overdue by its schedule runs at start-up; one never run waits for its
            // slot (a new deployment has nothing to drill yet).
            let last = registry.series(Family.restoreDrillLastAttempt).map(\.value).filter { $0 > 0 }
            guard let oldest = last.min() else { return .unknown }
            return .at(Date(timeIntervalSince1970: oldest))
        }
        let kinds = ["full": "postgres_full", "incremental": "postgres_base", "redis": "redis"]
        guard let kind = kinds[job] else { return .unknown }
        let newest = registry.series(Family.backupLastSuccess)
            .filter { $0.labels["kind"] == kind }
            .map(\.value)
        // The oldest of the targets' newest backups: one database without a backup is enough
        // to need a run.
        guard let oldest = newest.min(), oldest > 0 else { return .never }
        return .at(Date(timeIntervalSince1970: oldest))
    }
}
