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
        Family.declareStandard(in: registry)
        let catalog = BackupCatalog(backupDir: backupDir)
        let attempts = AttemptsRecord.load(backupDir: backupDir).attempts
        var keys = Set(expected)
        var newestGood: [Expected: CatalogEntry] = [:]
        for entry in catalog.latestGood() {
            let key = Expected(kind: entry.kind.metricKind, target: entry.target)
            keys.insert(key)
            if let existing = newestGood[key], existing.startedAt >= entry.startedAt { continue }
            newestGood[key] = entry
        }
        for attempt in attempts.values {
            keys.insert(Expected(kind: BackupKind(rawValue: attempt.kind)?.metricKind ?? attempt.kind, target: attempt.target))
        }
        for key in keys {
            let labels = ["kind": key.kind, "target": key.target]
            let good = newestGood[key]
            let attempt = attempts.values.filter {
                (BackupKind(rawValue: $0.kind)?.metricKind ?? $0.kind) == key.kind && $0.target == key.target
            }.max { $0.startedAt < $1.startedAt }
            let goodFinished = good.map { $0.finishedAt ?? $0.startedAt } ?? 0
            registry.set(Family.backupLastSuccess, labels, goodFinished)
            registry.set(Family.backupLastSize, labels, Double(good?.sizeBytes ?? 0))
            if let good { registry.set(Family.backupEncrypted, ["kind": key.kind], good.path.hasSuffix(".age") ? 1 : 0) }
            if let attempt, attempt.startedAt >= (good?.startedAt ?? 0) {
                registry.set(Family.backupLastAttempt, labels, attempt.startedAt)
                registry.set(Family.backupLastRunSuccess, labels, attempt.success ? 1 : 0)
                registry.set(Family.backupLastDuration, labels, attempt.durationSeconds)
            } else if let good {
                registry.set(Family.backupLastAttempt, labels, good.startedAt)
                registry.set(Family.backupLastRunSuccess, labels, 1)
                registry.set(Family.backupLastDuration, labels, good.meta?.durationSeconds ?? 0)
            } else {
                registry.set(Family.backupLastAttempt, labels, 0)
                registry.set(Family.backupLastRunSuccess, labels, 0)
                registry.set(Family.backupLastDuration, labels, 0)
            }
            for result in ["success", "failure"] {
                registry.touch(Family.backupRuns, ["kind": key.kind, "target": key.target, "result": result])
            }
        }
    }

    /// Records a finished run: runs counter, duration histogram, last attempt/duration/result
    /// and, on success, last success and size.
    public static func record(_ outcome: BackupOutcome, into registry: MetricsRegistry) {
        Family.declareStandard(in: registry)
        let kind = outcome.kind.metricKind
        let labels = ["kind": kind, "target": outcome.target]
        registry.add(Family.backupRuns, ["kind": kind, "target": outcome.target, "result": outcome.success ? "success" : "failure"])
        registry.observe(Family.backupDuration, ["kind": kind], outcome.durationSeconds)
        registry.set(Family.backupLastAttempt, labels, outcome.startedAt)
        registry.set(Family.backupLastDuration, labels, outcome.durationSeconds)
        registry.set(Family.backupLastRunSuccess, labels, outcome.success ? 1 : 0)
        if outcome.success {
            registry.set(Family.backupLastSuccess, labels, outcome.finishedAt)
            registry.set(Family.backupLastSize, labels, Double(outcome.sizeBytes))
            registry.set(Family.backupEncrypted, ["kind": kind], (outcome.path ?? "").hasSuffix(".age") ? 1 : 0)
        }
    }
}
