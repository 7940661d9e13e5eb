import BackstopCore

/// Which backups `backstop cleanup` keeps. Pure: it decides from (group, start time, good)
/// triples and a clock, so every rule is tested without touching a disk.
///
/// The rules, applied per group (a kind and target, e.g. `postgres_full/app`), all in UTC,
/// to the good backups only (a `.meta` that says completed). A backup is kept when ANY rule
/// keeps it:
/// - **newest**: the newest good backup of the group, always, whatever the other rules say —
///   a stopped backup job must never end with an empty folder.
/// - **age**: started within the last `retentionDays` × 24 h.
/// - **daily**: the newest backup of each of the `keepDaily` most recent UTC calendar days
///   that have a good backup (days without a backup do not use up a slot).
/// - **weekly**: the newest backup of each of the `keepWeekly` most recent ISO 8601 weeks
///   (Monday to Sunday) that have a good backup.
/// - **monthly**: the newest backup of each of the `keepMonthly` most recent calendar months
///   that have a good backup.
/// - **yearly**: the newest backup of each of the `keepYearly` most recent calendar years that
///   have a good backup (off by default; the old best practices' "archive yearly backups",
///   which S3 can move to an archive storage class: `RemoteArchive`).
///
/// Incomplete backups (no completed `.meta`: a failed or interrupted run, a partial copy) are
/// removed once they are more than `incompleteGraceSeconds` (a day) old; younger ones are left
/// alone because a run may still be writing them. A backup whose `.meta` exists but cannot be
/// read (truncated, not JSON, a newer format) is always kept: an unreadable description is
/// no proof that the data is bad.
public struct RetentionPolicy: Sendable, Equatable {
    public var retentionDays: Int
    public var keepDaily: Int
    public var keepWeekly: Int
    public var keepMonthly: Int
    public var keepYearly: Int
    /// Incomplete leftovers younger than this are left alone.
    public var incompleteGraceSeconds: Double = 86_400

    public init(retentionDays: Int = 30, keepDaily: Int = 7, keepWeekly: Int = 4, keepMonthly: Int = 12, keepYearly: Int = 0) {
        self.retentionDays = retentionDays
        self.keepDaily = keepDaily
        self.keepWeekly = keepWeekly
        self.keepMonthly = keepMonthly
        self.keepYearly = keepYearly
    }

    /// `BACKUP_RETENTION_DAYS` (30), `BACKUP_KEEP_DAILY` (7), `BACKUP_KEEP_WEEKLY` (4),
    /// `BACKUP_KEEP_MONTHLY` (12), `BACKUP_KEEP_YEARLY` (0); 0 turns a count rule off.
    public init(environment env: [String: String]) throws {
        func value(_ name: String, _ fallback: Int, _ range: ClosedRange<Int>) throws -> Int {
            guard let raw = env[name], !raw.isEmpty else { return fallback }
            return try ValueParsers.integer(raw, variable: name, in: range)
        }
        self.init(retentionDays: try value("BACKUP_RETENTION_DAYS", 30, 1...36_500),
                  keepDaily: try value("BACKUP_KEEP_DAILY", 7, 0...100_000),
                  keepWeekly: try value("BACKUP_KEEP_WEEKLY", 4, 0...100_000),
                  keepMonthly: try value("BACKUP_KEEP_MONTHLY", 12, 0...100_000),
                  keepYearly: try value("BACKUP_KEEP_YEARLY", 0, 0...1000))
    }

    /// One backup as the policy sees it.
    public struct Item: Sendable, Equatable {
        /// Kind and target, e.g. `postgres_full/app`: rules count within a group.
        public var group: String
        public var startedAt: Double
        public var isGood: Bool
        /// Its `.meta` is there but unreadable: kept, whatever its age.
        public var metaUnreadable: Bool = false
        public init(group: String, startedAt: Double, isGood: Bool, metaUnreadable: Bool = false) {
            self.metaUnreadable = metaUnreadable
            self.group = group
            self.startedAt = startedAt
            self.isGood = isGood
        }
    }

    /// Why a backup stays or goes.
    public enum Reason: Sendable, Equatable, CustomStringConvertible {
        case newest
        case age(days: Int)
        case daily(String)
        case weekly(String)
        case monthly(String)
        case yearly(String)
        case incompleteRecent
        case expired(days: Int)
        case incompleteLeftover
        case metaUnreadable

        public var description: String {
            switch self {
            case .newest: "newest good backup"
            case .age(let days): "younger than \(days) days"
            case .daily(let day): "daily \(day)"
            case .weekly(let week): "weekly \(week)"
            case .monthly(let month): "monthly \(month)"
            case .yearly(let year): "yearly \(year)"
            case .incompleteRecent: "incomplete, less than a day old (may be in progress)"
            case .expired(let days): "older than \(days) days and not kept by the daily/weekly/monthly/yearly rules"
            case .incompleteLeftover: "incomplete (no completed .meta) and older than a day"
            case .metaUnreadable: "its .meta cannot be read (kept: check or restore it by hand)"
            }
        }
    }

    public struct Decision: Sendable, Equatable {
        public var keep: Bool
        /// Every rule that keeps it, or the one reason it goes.
        public var reasons: [Reason]
        public var summary: String { reasons.map(\.description).joined(separator: ", ") }
        /// Kept by the yearly rule (the backup an archive storage class applies to).
        public var isYearly: Bool { reasons.contains { if case .yearly = $0 { true } else { false } } }
        public init(keep: Bool, reasons: [Reason]) {
            self.keep = keep
            self.reasons = reasons
        }
    }

    /// A decision for each item, in the order given. O(n log n).
    public func decide(_ items: [Item], now: Double) -> [Decision] {
        var decisions = [Decision](repeating: Decision(keep: false, reasons: []), count: items.count)
        var groups: [String: [Int]] = [:]
        for (index, item) in items.enumerated() {
            if item.metaUnreadable {
                decisions[index] = Decision(keep: true, reasons: [.metaUnreadable])
            } else if item.isGood {
                groups[item.group, default: []].append(index)
            } else if now - item.startedAt > incompleteGraceSeconds {
                decisions[index] = Decision(keep: false, reasons: [.incompleteLeftover])
            } else {
                decisions[index] = Decision(keep: true, reasons: [.incompleteRecent])
            }
        }
        let cutoff = now - Double(retentionDays) * 86_400
        for indices in groups.values {
            let newestFirst = indices.sorted { items[$0].startedAt > items[$1].startedAt }
            var days = Set<Int>(), weeks = Set<Int>(), months = Set<Int>(), years = Set<Int>()
            for (position, index) in newestFirst.enumerated() {
                let t = items[index].startedAt
                var reasons: [Reason] = []
                if position == 0 { reasons.append(.newest) }
                if t >= cutoff { reasons.append(.age(days: retentionDays)) }
                let day = UTCCalendar.day(t)
                if days.count < keepDaily, days.insert(day).inserted { reasons.append(.daily(UTCCalendar.dayLabel(day))) }
                let week = UTCCalendar.isoWeekMonday(day)
                if weeks.count < keepWeekly, weeks.insert(week).inserted { reasons.append(.weekly(UTCCalendar.isoWeekLabel(week))) }
                let month = UTCCalendar.month(day)
                if months.count < keepMonthly, months.insert(month).inserted { reasons.append(.monthly(UTCCalendar.monthLabel(month))) }
                let year = month / 12
                if years.count < keepYearly, years.insert(year).inserted { reasons.append(.yearly(String(year))) }
                decisions[index] = reasons.isEmpty ? Decision(keep: false, reasons: [.expired(days: retentionDays)])
                                                   : Decision(keep: true, reasons: reasons)
            }
        }
        return decisions
    }
}

/// Calendar arithmetic in UTC on day numbers (days since 1970-01-01), fast enough for
/// 100,000 backups and free of time-zone surprises.
public enum UTCCalendar {
    public static func day(_ seconds: Double) -> Int { Int((seconds / 86_400).rounded(.down)) }

    /// (year, month 1–12, day 1–31) of a day number (H. Hinnant's civil_from_days).
    public static func civil(_ days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    /// The day number of the Monday starting the ISO week of `day` (1970-01-01 was a Thursday).
    public static func isoWeekMonday(_ day: Int) -> Int {
        let weekday = ((day + 3) % 7 + 7) % 7  // Monday = 0
        return day - weekday
    }

    /// A month as year × 12 + month − 1.
    public static func month(_ day: Int) -> Int {
        let c = civil(day)
        return c.year * 12 + c.month - 1
    }

    public static func dayLabel(_ day: Int) -> String {
        let c = civil(day)
        return "\(c.year)-\(pad(c.month))-\(pad(c.day))"
    }

    /// `2026-W05`: the ISO year is the year of the week's Thursday.
    public static func isoWeekLabel(_ monday: Int) -> String {
        let thursday = monday + 3
        let year = civil(thursday).year
        let janFirst = daysFromCivil(year: year, month: 1, day: 1)
        let week = (thursday - janFirst) / 7 + 1
        return "\(year)-W\(pad(week))"
    }

    public static func monthLabel(_ month: Int) -> String { "\(month / 12)-\(pad(month % 12 + 1))" }

    /// Day number of a civil date (H. Hinnant's days_from_civil).
    public static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = month > 2 ? month - 3 : month + 9
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    private static func pad(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
}
