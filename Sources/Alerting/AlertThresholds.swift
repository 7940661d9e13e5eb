import BackstopCore

/// The numbers the rules compare against. Defaults follow the schedules and DESIGN.md; every
/// one can be set through the environment (see `init(environment:…)`), and the Prometheus
/// rules in `alerts/` use the same defaults.
public struct AlertThresholds: Sendable, Equatable {
    /// BackupStale fires when the newest good backup of a kind is older than this. A kind
    /// without an entry has no BackupStale rule (its schedule is disabled).
    public var backupStaleAfter: [String: Duration]
    /// DiskSpaceLow warning / critical levels, in percent free.
    public var diskFreeWarningPercent: Double
    public var diskFreeCriticalPercent: Double
    /// S3UploadFailing fires after this many consecutive failed uploads.
    public var s3FailuresBeforeAlert: Int
    /// WalArchiveStalled fires when no WAL segment arrived for this long.
    public var walArchiveStaleAfter: Duration
    /// RestoreDrillFailed also fires when the newest good drill is older than this.
    public var restoreDrillMaxAge: Duration
    /// WalSlotRetentionHigh fires when a replication slot holds back more WAL than this
    /// (`ALERT_WAL_SLOT_RETAINED_BYTES`, default 10 GiB).
    public var walSlotRetainedBytes: Double = 10 * 1024 * 1024 * 1024

    /// The default schedules' intervals (`0 2 * * *`, `0 */6 * * *`, `0 */4 * * *`).
    public static let defaultScheduleIntervals: [String: Duration] = [
        "postgres_full": .seconds(24 * 3600),
        "postgres_base": .seconds(6 * 3600),
        "redis": .seconds(4 * 3600),
    ]

    /// Slack added to twice the interval: time for the run itself.
    public static let staleSlack: Duration = .seconds(30 * 60)

    /// BackupStale's default: two intervals (one missed run is tolerated, since BackupFailed
    /// already reports a failed run) plus 30 minutes for the run itself.
    public static func defaultStaleAfter(interval: Duration) -> Duration {
        interval * 2 + staleSlack
    }

    /// The variable that overrides BackupStale's threshold for a kind:
    /// `ALERT_BACKUP_STALE_POSTGRES_FULL`, `…_POSTGRES_BASE`, `…_REDIS`.
    public static func staleVariable(kind: String) -> String {
        "ALERT_BACKUP_STALE_" + kind.uppercased()
    }

    public init(backupStaleAfter: [String: Duration] = defaultScheduleIntervals.mapValues(defaultStaleAfter(interval:)),
                diskFreeWarningPercent: Double = 15, diskFreeCriticalPercent: Double = 5,
                s3FailuresBeforeAlert: Int = 1, walArchiveStaleAfter: Duration = .seconds(3600),
                restoreDrillMaxAge: Duration = .seconds(8 * 86400)) {
        self.backupStaleAfter = backupStaleAfter
        self.diskFreeWarningPercent = diskFreeWarningPercent
        self.diskFreeCriticalPercent = diskFreeCriticalPercent
        self.s3FailuresBeforeAlert = s3FailuresBeforeAlert
        self.walArchiveStaleAfter = walArchiveStaleAfter
        self.restoreDrillMaxAge = restoreDrillMaxAge
    }

    /// Reads the thresholds. `scheduleIntervals` maps each *enabled* backup kind to its
    /// schedule's interval (from the Scheduling module); a kind missing from it gets no
    /// BackupStale rule unless `ALERT_BACKUP_STALE_<KIND>` sets one explicitly. The disk levels
    /// come from `BackstopConfig` (DISK_FREE_WARNING_PERCENT / DISK_FREE_CRITICAL_PERCENT).
    ///
    /// Variables: `ALERT_BACKUP_STALE_<KIND>` (duration), `ALERT_S3_FAILURES` (whole number,
    /// default 1), `ALERT_WAL_ARCHIVE_STALE_AFTER` (duration, default 1h),
    /// `ALERT_RESTORE_DRILL_MAX_AGE` (duration, default 8d).
    public init(environment env: [String: String], config: BackstopConfig, scheduleIntervals: [String: Duration]) throws {
        try self.init(environment: env, scheduleIntervals: scheduleIntervals,
                      diskFreeWarningPercent: config.diskFreeWarningPercent, diskFreeCriticalPercent: config.diskFreeCriticalPercent)
    }

    /// The same, with the disk levels given directly.
    public init(environment env: [String: String], scheduleIntervals: [String: Duration],
                diskFreeWarningPercent: Double, diskFreeCriticalPercent: Double) throws {
        func value(_ name: String) -> String? {
            guard let v = env[name], !v.trimmingSpaces().isEmpty else { return nil }
            return v
        }
        var stale: [String: Duration] = [:]
        var kinds = Set(scheduleIntervals.keys)
        kinds.formUnion(Self.defaultScheduleIntervals.keys)
        for kind in kinds {
            let variable = Self.staleVariable(kind: kind)
            if let raw = value(variable) {
                stale[kind] = try ValueParsers.duration(raw, variable: variable)
            } else if let interval = scheduleIntervals[kind] {
                stale[kind] = Self.defaultStaleAfter(interval: interval)
            }
        }
        self.init(
            backupStaleAfter: stale,
            diskFreeWarningPercent: diskFreeWarningPercent,
            diskFreeCriticalPercent: diskFreeCriticalPercent,
            s3FailuresBeforeAlert: try value("ALERT_S3_FAILURES").map { try ValueParsers.integer($0, variable: "ALERT_S3_FAILURES", in: 1...1000) } ?? 1,
            walArchiveStaleAfter: try value("ALERT_WAL_ARCHIVE_STALE_AFTER").map { try ValueParsers.duration($0, variable: "ALERT_WAL_ARCHIVE_STALE_AFTER") } ?? .seconds(3600),
            restoreDrillMaxAge: try value("ALERT_RESTORE_DRILL_MAX_AGE").map { try ValueParsers.duration($0, variable: "ALERT_RESTORE_DRILL_MAX_AGE") } ?? .seconds(8 * 86400))
        if let raw = value("ALERT_WAL_SLOT_RETAINED_BYTES") {
            walSlotRetainedBytes = Double(try ValueParsers.integer(raw, variable: "ALERT_WAL_SLOT_RETAINED_BYTES", in: 1...Int.max))
        }
    }
}

/// Human text for durations and sizes in annotations (`2d 3h`, `1.5 GiB`).
enum Human {
    static func duration(_ seconds: Double) -> String {
        var s = Int(max(0, seconds).rounded())
        if s < 60 { return "\(s)s" }
        let d = s / 86400; s %= 86400
        let h = s / 3600; s %= 3600
        let m = s / 60; s %= 60
        var parts: [String] = []
        if d > 0 { parts.append("\(d)d") }
        if h > 0 { parts.append("\(h)h") }
        if m > 0 && d == 0 { parts.append("\(m)m") }
        if s > 0 && d == 0 && h == 0 { parts.append("\(s)s") }
        return parts.joined(separator: " ")
    }

    static func duration(_ d: Duration) -> String { duration(d.seconds) }

    static func bytes(_ n: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var value = Double(n)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(n) B" : "\(oneDecimal(value)) \(units[unit])"
    }

    static func oneDecimal(_ v: Double) -> String {
        let tenths = Int((v * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }

    static func time(_ t: Double) -> String { WallClock.rfc3339(t) }
}
