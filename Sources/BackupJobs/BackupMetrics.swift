import BackstopCore
import BackstopMetrics
import BackupCatalog

/// The `backstop_backup_*` families: filled from the disk at start-up (catalog + attempts
/// record, so a restart never makes a good backup look missing or a failed run look good)
/// and updated after every run.
public enum BackupMetrics {
    /// A job whose series must exist even before its first run (value 0).
    public struct Expected: Sendable, Hashable {
        public var kind: String
        public var target: String
        public init(kind: String, target: String) {
            self.kind = kind
            self.target = target
        }
    }

    /// The series the PostgreSQL jobs configured by `settings` own.
    public static func expected(postgres settings: PostgresJobSettings) -> [Expected] {
        settings.databases.map { Expected(kind: BackupKind.postgresFull.rawValue, target: $0) }
            + [Expected(kind: BackupKind.postgresFull.rawValue, target: "globals"),
               Expected(kind: BackupKind.postgresBase.rawValue, target: settings.clusterTarget)]
    }

    /// The series the Redis job configured by `settings` owns (kind `redis`, target the
    /// Sentinel master name or `host:port`).
    public static func expected(redis settings: RedisJobSettings) -> [Expected] {
        [Expected(kind: BackupKind.redis.rawValue, target: settings.target)]
    }

    /// Declares the families and sets last success/attempt/size/duration/run-success from the
    /// newest good backup in the catalog and the newest attempt in `.state/attempts.json`.
    public static func load(into registry: MetricsRegistry, backupDir: String, expected: [Expected] = []) {
        publish(BackupStatus.load(backupDir: backupDir, expected: expected), into: registry)
    }

    /// Renders statuses into the `backstop_backup_last_*` gauges (0 = never) and makes sure
    /// both `result` series of the runs counter exist. The registry is written, never read.
    public static func publish(_ statuses: [BackupStatus], into registry: MetricsRegistry) {
        Family.declareStandard(in: registry)
        for status in statuses {
            let labels = ["kind": status.kind, "target": status.target]
            registry.set(Family.backupLastSuccess, labels, status.lastSuccess)
            registry.set(Family.backupLastSize, labels, Double(status.lastSizeBytes))
            registry.set(Family.backupLastAttempt, labels, status.lastAttempt)
            registry.set(Family.backupLastRunSuccess, labels, status.lastRunSucceeded ? 1 : 0)
            registry.set(Family.backupLastDuration, labels, status.lastDurationSeconds)
            registry.set(Family.backupEncrypted, ["kind": status.kind], status.encrypted ? 1 : 0)
            for result in ["success", "failure", "interrupted"] {
                registry.touch(Family.backupRuns, ["kind": status.kind, "target": status.target, "result": result])
            }
        }
    }

    /// Counts a finished run: the runs counter and the duration histogram (the events a
    /// status cannot carry). An interrupted run is counted, its duration is not (it is the
    /// time until the shutdown, not the job's).
    public static func count(_ outcome: BackupOutcome, into registry: MetricsRegistry) {
        Family.declareStandard(in: registry)
        let kind = outcome.kind.metricKind
        registry.add(Family.backupRuns, ["kind": kind, "target": outcome.target, "result": outcome.result])
        if !outcome.interrupted { registry.observe(Family.backupDuration, ["kind": kind], outcome.durationSeconds) }
    }

    /// Records a finished run: runs counter, duration histogram, last attempt/duration/result
    /// and, on success, last success and size. An interrupted run only counts
    /// (`result="interrupted"`): the last attempt's gauges stay those of the last run that
    /// finished, as BackupFailed reads them.
    public static func record(_ outcome: BackupOutcome, into registry: MetricsRegistry) {
        Family.declareStandard(in: registry)
        let kind = outcome.kind.metricKind
        let labels = ["kind": kind, "target": outcome.target]
        registry.add(Family.backupRuns, ["kind": kind, "target": outcome.target, "result": outcome.result])
        if outcome.interrupted { return }
        registry.observe(Family.backupDuration, ["kind": kind], outcome.durationSeconds)
        registry.set(Family.backupLastAttempt, labels, outcome.startedAt)
        registry.set(Family.backupLastDuration, labels, outcome.durationSeconds)
        registry.set(Family.backupLastRunSuccess, labels, outcome.success ? 1 : 0)
        if outcome.success {
            registry.set(Family.backupLastSuccess, labels, outcome.finishedAt)
            registry.set(Family.backupLastSize, labels, Double(outcome.sizeBytes))
            registry.set(Family.backupEncrypted, ["kind": kind], outcome.encrypted ? 1 : 0)
        }
    }
}
