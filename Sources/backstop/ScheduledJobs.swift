import BackstopCore
import BackstopMetrics
import BackupCatalog
import BackupJobs
import Foundation
import Scheduling

/// The jobs `serve` runs on their cron schedules — the same code the CLI subcommands call —
/// and the catch-up facts the scheduler needs at start-up.
enum ScheduledJobs {
    /// Job name → action. A job without an action here is not scheduled.
    static func actions(environment env: [String: String], registry: MetricsRegistry) throws -> [String: @Sendable () async throws -> Void] {
        let postgres = try validated { try PostgresJobSettings(environment: env) }
        let log = BackupLog(backupDir: postgres.backupDir)
        let retention = try validated { try RetentionPolicy(environment: env) }
        return [
            "full": {
                let outcomes = try await cancellable {
                    try PostgresFullBackup(settings: postgres, log: log, metrics: registry).run()
                }
                let failed = outcomes.filter { !$0.success }
                if !failed.isEmpty {
                    throw BackupJobError(failed.map { "\($0.target): \($0.message ?? "failed")" }.joined(separator: "; "))
                }
            },
            "incremental": {
                let outcome = try await cancellable {
                    try PostgresBaseBackup(settings: postgres, log: log, metrics: registry).run()
                }
                if !outcome.success { throw BackupJobError(outcome.message ?? "base backup failed") }
            },
            "cleanup": {
                let report = try await cancellable {
                    try BackupCleanup(backupDir: postgres.backupDir, policy: retention, log: log, metrics: registry).run(dryRun: false)
                }
                if !report.errors.isEmpty { throw BackupJobError("cleanup could not remove: " + report.errors.joined(separator: "; ")) }
            },
        ]
    }

    /// The series every configured job owns, at 0 until its first run, so a job that never
    /// succeeded is visible (and BackupStale can fire for it).
    static func expectedSeries(environment env: [String: String]) throws -> [BackupMetrics.Expected] {
        let postgres = try validated { try PostgresJobSettings(environment: env) }
        return BackupMetrics.expected(postgres: postgres)
    }

    /// Runs a blocking job off the cooperative pool. When the task is cancelled (the
    /// shutdown grace period ran out), the job's child processes get SIGTERM: the job then
    /// fails, aborts its writer and removes its temporary file.
    static func cancellable<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withTaskCancellationHandler {
            try await Blocking.run(body)
        } onCancel: {
            ChildProcess.stopAll()
        }
    }

    /// The newest good backup of the kind a job makes, from the metrics filled from the
    /// catalog at start-up; `.never` makes the scheduler run the job once (catch-up).
    static func lastSuccess(job: String, registry: MetricsRegistry) -> LastSuccess {
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
