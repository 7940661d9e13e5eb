import Foundation

/// A five-field cron expression in the Vixie cron / cronie dialect, and the arithmetic that
/// finds its next run times.
///
/// Operators write these in `BACKUP_SCHEDULE_*`; they already know the dialect from
/// crontab(5), so Backstop reads it the way cronie does:
/// - fields `minute hour day-of-month month day-of-week`; `*`, lists `1,5`, ranges `1-5`,
///   steps `*/6`, `1-10/2` and `5/15` (= `5-59/15` in the minute field, as cronie reads it);
/// - month names `jan`…`dec` and weekday names `sun`…`sat`, any case; 0 and 7 are Sunday;
/// - `@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight`, `@hourly`;
/// - the day rule: when both day fields are restricted a day matches if EITHER does (OR);
///   as in cronie, a day field whose text starts with `*` (`*`, `*/2`) counts as
///   unrestricted for this rule, so `0 0 */2 * mon` means "odd days that are Mondays".
///
/// Daylight-saving time (times are wall-clock times in a zone):
/// - A time the clock skips (spring forward, e.g. 02:30 in Europe/Berlin on the last Sunday
///   of March) runs once, at the first instant after the gap (03:00), for a job with a
///   fixed minute and hour; several skipped times of one job still give one run.
///   A job whose minute or hour field starts with `*` ("wildcard" job in cronie's terms,
///   e.g. `*/15 * * * *`) simply has no run in the skipped hour: it runs again at its next
///   time after the gap, as cronie does.
/// - A time the clock shows twice (fall back) runs once, at its first occurrence, for a
///   fixed-time job; a wildcard job keeps its rhythm and runs in both passes of the hour
///   (an hourly job runs every hour), as cronie does.
public struct CronExpression: Sendable, Hashable, CustomStringConvertible {
    /// The expression as written (trimmed).
    public let text: String

    let minutes: UInt64       // bits 0...59
    let hours: UInt64         // bits 0...23
    let daysOfMonth: UInt64   // bits 1...31
    let months: UInt64        // bits 1...12
    let daysOfWeek: UInt64    // bits 0...6 (Sunday = 0)
    /// The day-of-month / day-of-week text started with `*` (cronie's DOM_STAR/DOW_STAR).
    let dayOfMonthStar: Bool
    let dayOfWeekStar: Bool
    /// Minute or hour text started with `*` (cronie's MIN_STAR/HR_STAR): a "wildcard" job
    /// for the daylight-saving rules.
    public let isWildcardTime: Bool

    public var description: String { text }

    /// Parses `text`; a bad expression throws a `CronError` naming the field.
    public init(_ text: String) throws(CronError) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        self.text = trimmed
        func fail(_ field: Int?, _ problem: String) -> CronError {
            CronError(expression: trimmed, field: field, problem: problem)
        }
        guard !trimmed.isEmpty else {
            throw fail(nil, "the expression is empty; expected five fields (minute hour day-of-month month day-of-week) or @daily, @hourly, @weekly, @monthly, @yearly")
        }
        var fieldTexts: [String]
        if trimmed.hasPrefix("@") {
            switch trimmed.lowercased() {
            case "@yearly", "@annually": fieldTexts = ["0", "0", "1", "1", "*"]
            case "@monthly": fieldTexts = ["0", "0", "1", "*", "*"]
            case "@weekly": fieldTexts = ["0", "0", "*", "*", "0"]
            case "@daily", "@midnight": fieldTexts = ["0", "0", "*", "*", "*"]
            case "@hourly": fieldTexts = ["0", "*", "*", "*", "*"]
            case "@reboot":
                throw fail(nil, "@reboot is not a schedule Backstop can run; use a time, e.g. @daily or 0 2 * * *")
            default:
                throw fail(nil, "unknown shortcut \(trimmed); expected @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly")
            }
        } else {
            fieldTexts = trimmed.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        }
        guard fieldTexts.count == 5 else {
            var problem = "has \(fieldTexts.count) field\(fieldTexts.count == 1 ? "" : "s"); expected five: minute hour day-of-month month day-of-week (e.g. 0 2 * * *)"
            if fieldTexts.count == 6 { problem += "; seconds and year fields are not part of the cron dialect" }
            throw fail(nil, problem)
        }
        minutes = try Self.parseField(fieldTexts[0], index: 1, low: 0, high: 59, names: nil, expression: trimmed)
        hours = try Self.parseField(fieldTexts[1], index: 2, low: 0, high: 23, names: nil, expression: trimmed)
        daysOfMonth = try Self.parseField(fieldTexts[2], index: 3, low: 1, high: 31, names: nil, expression: trimmed)
        months = try Self.parseField(fieldTexts[3], index: 4, low: 1, high: 12, names: Self.monthNames, expression: trimmed)
        var dow = try Self.parseField(fieldTexts[4], index: 5, low: 0, high: 7, names: Self.weekdayNames, expression: trimmed)
        if dow & (1 << 7) != 0 { dow = (dow | 1) & ~(1 << 7) }
        daysOfWeek = dow
        dayOfMonthStar = fieldTexts[2].hasPrefix("*")
        dayOfWeekStar = fieldTexts[4].hasPrefix("*")
        isWildcardTime = fieldTexts[0].hasPrefix("*") || fieldTexts[1].hasPrefix("*")

        // cronie accepts "0 0 31 2 *" and never runs it; a backup that silently never runs
        // is worse than a start-up error. Only the AND form can be unsatisfiable (under OR
        // the weekday side always matches some day), and every calendar date falls on every
        // weekday within 28 years, so checking month/day pairs is exact.
        if dayOfMonthStar || dayOfWeekStar {
            var possible = false
            for m in 1...12 where months & (1 << UInt64(m)) != 0 {
                let longest = m == 2 ? 29 : CivilTime.daysInMonth(2001, m)
                if daysOfMonth & ((UInt64(1) << UInt64(longest + 1)) - 2) != 0 { possible = true; break }
            }
            if !possible {
                throw fail(3, "\(fieldTexts[2]) never occurs in the month(s) of field 4 (\(fieldTexts[3])), so this schedule would never run")
            }
        }
    }

    /// Parses `text` from the environment variable `variable`; the error names it.
    public init(_ text: String, variable: String) throws(CronError) {
        do {
            try self.init(text)
        } catch {
            throw error.naming(variable)
        }
    }

    static let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    static let weekdayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

    /// One field: a comma-separated list of `*`, `N`, `N-M`, each optionally `/STEP`, and
    /// `N/STEP` (= `N-high/STEP`). Names stand for numbers in the month and weekday fields.
    private static func parseField(_ text: String, index: Int, low: Int, high: Int, names: [String]?,
                                   expression: String) throws(CronError) -> UInt64 {
        func fail(_ problem: String) -> CronError {
            CronError(expression: expression, field: index, problem: problem)
        }
        var accepted = "\(low)-\(high)"
        if let names { accepted += " or a name " + names.joined(separator: ", ") }
        if index == 5 { accepted += " (0 and 7 are Sunday)" }
        func value(_ token: Substring) throws(CronError) -> Int {
            if let v = Int(token), token.allSatisfy({ $0.isASCII && $0.isNumber }) {
                guard v >= low && v <= high else {
                    throw fail("value \(token) is out of range \(low)-\(high)")
                }
                return v
            }
            if let names, let i = names.firstIndex(of: token.lowercased()) {
                return i + (index == 4 ? 1 : 0)
            }
            if token.isEmpty { throw fail("\"\(text)\" has an empty value; expected \(accepted)") }
            if names != nil, token.allSatisfy(\.isLetter) {
                throw fail("name \"\(token)\" is not known; expected \(accepted)")
            }
            throw fail("\"\(token)\" is not a value; expected \(accepted)")
        }
        var bits: UInt64 = 0
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !item.isEmpty else { throw fail("\"\(text)\" has an empty list element") }
            let parts = item.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count <= 2 else { throw fail("\"\(item)\" has more than one /") }
            var step = 1
            if parts.count == 2 {
                let s = parts[1]
                guard let n = Int(s), s.allSatisfy({ $0.isASCII && $0.isNumber }), n > 0 else {
                    throw fail("step \"\(s)\" in \"\(item)\" is not a whole number greater than 0")
                }
                step = n
            }
            let range = parts[0]
            var first: Int
            var last: Int
            if range == "*" {
                first = low
                last = high
            } else if let dash = range.firstIndex(of: "-") {
                first = try value(range[..<dash])
                last = try value(range[range.index(after: dash)...])
                guard first <= last else {
                    throw fail("range \(range) runs backwards; cron ranges do not wrap around (write it as two ranges, e.g. 22-23,0-2)")
                }
            } else {
                first = try value(range)
                // cronie: "N/STEP" means N through the end of the field, every STEP.
                last = parts.count == 2 ? high : first
            }
            var v = first
            while v <= last {
                bits |= 1 << UInt64(v)
                v += step
            }
        }
        return bits
    }

    // MARK: - Matching

    /// Whether the calendar day matches, with cronie's day-of-month/day-of-week rule.
    func dayMatches(_ y: Int, _ m: Int, _ d: Int) -> Bool {
        let domOK = daysOfMonth & (1 << UInt64(d)) != 0
        let dowOK = daysOfWeek & (1 << UInt64(CivilTime.weekday(y, m, d))) != 0
        return (dayOfMonthStar || dayOfWeekStar) ? (domOK && dowOK) : (domOK || dowOK)
    }

    /// Whether a wall-clock minute matches.
    func matches(_ c: CivilTime) -> Bool {
        minutes & (1 << UInt64(c.minute)) != 0 && hours & (1 << UInt64(c.hour)) != 0
            && months & (1 << UInt64(c.month)) != 0 && dayMatches(c.year, c.month, c.day)
    }

    /// The lowest set bit at or above `from`, if any.
    private static func nextBit(_ mask: UInt64, from: Int) -> Int? {
        guard from < 64 else { return nil }
        let rest = mask >> UInt64(from)
        return rest == 0 ? nil : from + rest.trailingZeroBitCount
    }

    /// The first matching wall-clock minute at or after `start`, not later than `limit`.
    func firstMatch(onOrAfter start: CivilTime, limit: Int64) -> CivilTime? {
        var y = start.year, mo = start.month, d = start.day, h = start.hour, mi = start.minute
        while true {
            if Int64(CivilTime.daysFromCivil(y, mo, d)) * 86_400 > limit { return nil }
            if months & (1 << UInt64(mo)) == 0 {
                if let next = Self.nextBit(months, from: mo + 1) {
                    mo = next
                } else {
                    y += 1
                    mo = Self.nextBit(months, from: 1)!
                }
                d = 1; h = 0; mi = 0
                continue
            }
            if d > CivilTime.daysInMonth(y, mo) {
                mo += 1
                if mo > 12 { mo = 1; y += 1 }
                d = 1; h = 0; mi = 0
                continue
            }
            if !dayMatches(y, mo, d) {
                d += 1; h = 0; mi = 0
                continue
            }
            guard let hh = Self.nextBit(hours, from: h) else {
                d += 1; h = 0; mi = 0
                continue
            }
            if hh != h { h = hh; mi = 0 }
            if let mm = Self.nextBit(minutes, from: mi) {
                let found = CivilTime(year: y, month: mo, day: d, hour: h, minute: mm)
                return found.localSeconds <= limit ? found : nil
            }
            h += 1; mi = 0
            if h > 23 { h = 0; d += 1 }
        }
    }

    // MARK: - Next run times

    /// The first run strictly after `instant` in `timeZone` (wall-clock fields are read in
    /// that zone, with the daylight-saving rules in the type's documentation). Nil only if
    /// no run exists within 60 years, which the parser's checks rule out in practice.
    public func next(after instant: Date, in timeZone: TimeZone) -> Date? {
        next(after: instant, rules: ZoneRules(timeZone))
    }

    /// The next `count` runs strictly after `instant`, in order.
    public func next(_ count: Int, after instant: Date, in timeZone: TimeZone) -> [Date] {
        let rules = ZoneRules(timeZone)
        var out: [Date] = []
        var cursor = instant
        while out.count < count, let n = next(after: cursor, rules: rules) {
            out.append(n)
            cursor = n
        }
        return out
    }

    func next(after instant: Date, rules: ZoneRules) -> Date? {
        let t = instant.timeIntervalSince1970
        let base = Int64(t.rounded(.down))
        // Start the wall-clock search early enough to see the second pass of a repeated
        // hour: with the smallest offset around `instant`.
        let lowestOffset = min(rules.offset(at: base - 86_400), rules.offset(at: base), rules.offset(at: base + 86_400))
        var cursor = CivilTime(localSeconds: base + lowestOffset)
        var limit = cursor.localSeconds + 60 * 366 * 86_400
        var best: Int64?
        var largestOffset: Int64 = 0
        while let match = firstMatch(onOrAfter: cursor, limit: limit) {
            let local = match.localSeconds
            // Instants follow wall-clock order except around an offset change, where a later
            // wall-clock minute can be an earlier instant. A wall-clock minute `local` is
            // never earlier than local - largestOffset, so past that nothing can beat `best`.
            if let best, local - largestOffset >= best { break }
            for run in runs(local: local, rules: rules) where Double(run) > t {
                if best == nil || run < best! { best = run }
            }
            if let found = best, limit > local + 86_400 {
                limit = local + 86_400
                largestOffset = max(rules.offset(at: found - 86_400), rules.offset(at: found), rules.offset(at: found + 86_400))
            }
            cursor = CivilTime(localSeconds: local + 60)
        }
        return best.map { Date(timeIntervalSince1970: Double($0)) }
    }

    /// The instants at which the matching wall-clock minute `local` runs.
    private func runs(local: Int64, rules: ZoneRules) -> [Int64] {
        switch rules.place(local: local) {
        case .unique(let u): return [u]
        case .repeated(let first, let second): return isWildcardTime ? [first, second] : [first]
        case .skipped(let gapEnd): return isWildcardTime ? [] : [gapEnd]
        }
    }

    // MARK: - Interval

    /// The typical spacing between runs: the median gap between consecutive runs over a
    /// reference year (UTC). Used where an approximate period is needed: whether a job
    /// missed its slot at start-up (catch-up), and default staleness thresholds.
    public var interval: Duration { intervals.typical }

    /// The longest gap between consecutive runs over the reference period, e.g. 72 h for
    /// `0 2 * * 1-5` (Friday to Monday). Staleness thresholds should not be shorter.
    public var longestInterval: Duration { intervals.longest }

    private var intervals: (typical: Duration, longest: Duration) {
        // A leap year starting 2028-01-01 (UTC), plus enough runs to see yearly schedules.
        let utc = ZoneRules(TimeZone(secondsFromGMT: 0)!)
        var gaps: [Int64] = []
        var cursor = Date(timeIntervalSince1970: 1_830_297_600 - 1) // 2028-01-01T00:00:00Z
        let end = 1_830_297_600.0 + 366 * 86_400
        var previous: Int64?
        var count = 0
        while count < 2000, let n = next(after: cursor, rules: utc) {
            let s = Int64(n.timeIntervalSince1970)
            if let previous { gaps.append(s - previous) }
            previous = s
            cursor = n
            count += 1
            if n.timeIntervalSince1970 > end && gaps.count >= 2 { break }
        }
        guard !gaps.isEmpty else { return (.seconds(86_400 * 365), .seconds(86_400 * 365)) }
        let sorted = gaps.sorted()
        return (.seconds(sorted[sorted.count / 2]), .seconds(sorted.last!))
    }
}
