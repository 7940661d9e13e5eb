import BackstopCore
import BackstopMetrics

/// The one way a backup job runs, from `serve`'s scheduler and from `backstop backup …`
/// alike: the blocking work on the blocking queue (never the cooperative pool), Task
/// cancellation stopping it (the child is killed, the temporary file removed), and every
/// outcome handed to `record` — the state store in serve, which the metrics and the alert
/// evaluator follow — before the result is returned or the failure thrown. So a CLI backup
/// and a scheduled one write the same log lines, the same `.meta` and attempts record.
public struct BackupJobRunner: Sendable {
    /// Receives the outcomes of every run (after `.state/attempts.json` has them).
    public typealias Record = @Sendable ([BackupOutcome]) async -> Void

    public let log: BackupLog
    public let metrics: MetricsRegistry?
    public let record: Record?

    public init(log: BackupLog, metrics: MetricsRegistry? = nil, record: Record? = nil) {
        self.log = log
        self.metrics = metrics
        self.record = record
    }

    /// `backup postgres full`; throws when any file failed (after recording every outcome),
    /// `BackupCancelled` when a shutdown stopped it and nothing else failed.
    @discardableResult
    public func postgresFull(settings: PostgresJobSettings) async throws -> [BackupOutcome] {
        let (log, metrics) = (self.log, self.metrics)
        let outcomes = try await run { cancellation in
            try PostgresFullBackup(settings: settings, log: log, metrics: metrics, cancellation: cancellation).run()
        }
        let failed = outcomes.filter { !$0.success && !$0.interrupted }
        if failed.isEmpty, outcomes.contains(where: \.interrupted) { throw BackupCancelled() }
        if !failed.isEmpty {
            throw BackupJobError("backup postgres full: \(failed.count) of \(outcomes.count) files failed: "
                + failed.map { "\($0.target): \($0.message ?? "failed")" }.joined(separator: "; "))
        }
        return outcomes
    }

    /// `backup postgres incremental`; throws when it failed.
    @discardableResult
    public func postgresBase(settings: PostgresJobSettings) async throws -> BackupOutcome {
        let (log, metrics) = (self.log, self.metrics)
        return try await single("backup postgres incremental") { cancellation in
            try PostgresBaseBackup(settings: settings, log: log, metrics: metrics, cancellation: cancellation).run()
        }
    }

    /// `backup redis`; throws when it failed. The snapshot is read in-process (no child), so
    /// cancellation is the flag the job checks between chunks, keepalives and polls.
    @discardableResult
    public func redis(settings: RedisJobSettings) async throws -> BackupOutcome {
        let (log, metrics) = (self.log, self.metrics)
        return try await single("backup redis") { cancellation in
            try RedisSnapshotBackup(settings: settings, log: log, metrics: metrics, cancellation: cancellation).run()
        }
    }

    /// A job with one outcome; throws `BackupJobError` naming `job` when it failed,
    /// `BackupCancelled` when a shutdown stopped it.
    private func single(_ job: String, _ body: @escaping @Sendable (JobCancellation) throws -> BackupOutcome) async throws -> BackupOutcome {
        let outcome = try await run { [try body($0)] }[0]
        if outcome.interrupted { throw BackupCancelled() }
        if !outcome.success { throw BackupJobError("\(job) failed: \(outcome.message ?? "")") }
        return outcome
    }

    private func run(_ body: @escaping @Sendable (JobCancellation) throws -> [BackupOutcome]) async throws -> [BackupOutcome] {
        let cancellation = JobCancellation()
        let outcomes = try await withTaskCancellationHandler {
            try await Blocking.run { try body(cancellation) }
        } onCancel: {
            cancellation.cancel()
        }
        await record?(outcomes)
        return outcomes
    }
}

extension BackupJobRunner {
    /// The runner without a store (tests, scripts): outcomes go to the disk and `metrics`.
    @discardableResult
    public static func postgresFull(settings: PostgresJobSettings, log: BackupLog, metrics: MetricsRegistry? = nil) async throws -> [BackupOutcome] {
        try await BackupJobRunner(log: log, metrics: metrics).postgresFull(settings: settings)
    }
}
