import BackupCatalog

/// What is known of one backup job's kind and target: its newest good backup and its newest
/// attempt. The state store keeps one per configured job, the metrics render them and the
/// alert rules read them; they are built from the disk (catalog + `.state/attempts.json`), so
/// a restart, or a backup written by another process (`backstop backup …` beside serve),
/// shows up the same way as a run of this process.
public struct BackupStatus: Sendable, Equatable {
    /// The metrics `kind` label (`postgres_full`, `postgres_base`, `redis`).
    public var kind: String
    public var target: String
    /// Unix time the newest good backup finished; 0 when there is none.
    public var lastSuccess: Double = 0
    /// Size of that backup in bytes.
    public var lastSizeBytes: UInt64 = 0
    /// Unix time the newest attempt started; 0 when it never ran.
    public var lastAttempt: Double = 0
    /// Whether the newest attempt succeeded (false also when it never ran).
    public var lastRunSucceeded = false
    public var lastDurationSeconds: Double = 0
    /// Why the newest attempt failed, when it did.
    public var lastError: String?
    /// Whether the newest good backup is encrypted (age); false when there is none.
    public var encrypted = false

    public init(kind: String, target: String) {
        self.kind = kind
        self.target = target
    }

    /// Folds one finished run in, as the run itself would be read back from the disk. An
    /// interrupted run changes nothing (it goes to the attempts record's `interrupted`, which
    /// `load` does not read either).
    public mutating func apply(_ outcome: BackupOutcome) {
        if outcome.interrupted { return }
        lastAttempt = outcome.startedAt
        lastDurationSeconds = outcome.durationSeconds
        lastRunSucceeded = outcome.success
        lastError = outcome.success ? nil : outcome.message
        if outcome.success {
            lastSuccess = outcome.finishedAt
            lastSizeBytes = outcome.sizeBytes
            encrypted = outcome.encrypted
        }
    }

    /// One status per kind and target that is expected (configured) or on disk, sorted by
    /// kind and target. Blocking (reads the catalog): call it off the cooperative pool.
    public static func load(backupDir: String, expected: [BackupMetrics.Expected] = []) -> [BackupStatus] {
        let catalog = BackupCatalog(backupDir: backupDir)
        let attempts = AttemptsRecord.load(backupDir: backupDir).attempts
        var keys = Set(expected)
        var newestGood: [BackupMetrics.Expected: CatalogEntry] = [:]
        for entry in catalog.latestGood() {
            let key = BackupMetrics.Expected(kind: entry.kind.metricKind, target: entry.target)
            keys.insert(key)
            if let existing = newestGood[key], existing.startedAt >= entry.startedAt { continue }
            newestGood[key] = entry
        }
        var newestAttempt: [BackupMetrics.Expected: AttemptsRecord.Attempt] = [:]
        for attempt in attempts.values {
            let key = BackupMetrics.Expected(kind: BackupKind(rawValue: attempt.kind)?.metricKind ?? attempt.kind, target: attempt.target)
            keys.insert(key)
            if let existing = newestAttempt[key], existing.startedAt >= attempt.startedAt { continue }
            newestAttempt[key] = attempt
        }
        return keys.sorted { ($0.kind, $0.target) < ($1.kind, $1.target) }.map { key in
            var status = BackupStatus(kind: key.kind, target: key.target)
            let good = newestGood[key]
            if let good {
                status.lastSuccess = good.finishedAt ?? good.startedAt
                status.lastSizeBytes = good.sizeBytes
                status.encrypted = good.path.hasSuffix(".age") || good.meta?.encryption == "age"
            }
            if let attempt = newestAttempt[key], attempt.startedAt >= (good?.startedAt ?? 0) {
                status.lastAttempt = attempt.startedAt
                status.lastRunSucceeded = attempt.success
                status.lastDurationSeconds = attempt.durationSeconds
                status.lastError = attempt.success ? nil : attempt.message
            } else if let good {
                status.lastAttempt = good.startedAt
                status.lastRunSucceeded = true
                status.lastDurationSeconds = good.meta?.durationSeconds ?? 0
            }
            return status
        }
    }
}
