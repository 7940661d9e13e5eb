import BackstopCore
import BackstopMetrics
import BackupJobs
import Foundation
import Scheduling

/// The jobs `serve` runs on their cron schedules — the same code the CLI subcommands call —
/// and the catch-up facts the scheduler needs at start-up.
enum ScheduledJobs {
    /// Job name → action. A job without an action here is not scheduled.
    static func actions(config: BackstopConfig, postgres: PostgresJobSettings, registry: MetricsRegistry) -> [String: @Sendable () async throws -> Void] {
        let log = BackupLog(backupDir: config.backupDir)
        return [
            "full": { try await BackupJobRunner.postgresFull(settings: postgres, log: log, metrics: registry) },
            "incremental": { try await BackupJobRunner.postgresBase(settings: postgres, log: log, metrics: registry) },
        ]
    }

    /// The newest good backup of the kind a job makes, from the metrics filled from the
    /// catalog at start-up; `.never` makes the scheduler run the job once (catch-up).
    static func lastSuccess(job: String, registry: MetricsRegistry) -> LastSuccess {
        let kinds = ["full": "postgres_full", "incremental": "postgres_base", "redis": "redis"]
        guard let kind = kinds[job] else { return .unknown }
        let newest = registry.series(Family.backupLastSuccess)
            .filter { $0.labels["kind"] == kind && $0.value > 0 }
            .map(\.value).max()
        guard let newest else { return .never }
        return .at(Date(timeIntervalSince1970: newest))
    }
}
