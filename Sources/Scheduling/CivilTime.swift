/// A wall-clock minute (proleptic Gregorian calendar), the unit cron matches against.
///
/// Cron fields describe what a clock on the wall shows, not instants; the search for the
/// next match runs on these values and only then is the result placed on the time line of
/// a time zone (`ZoneRules`). Keeping the calendar arithmetic here, free of Foundation,
/// keeps the search fast and independent of the zone.
struct CivilTime: Equatable, Comparable, Sendable, CustomStringConvertible {
    var year: Int
    var month: Int   // 1...12
    var day: Int     // 1...31
    var hour: Int    // 0...23
    var minute: Int  // 0...59

    /// Seconds since 1970-01-01 00:00 on the same wall clock (a "local epoch").
    var localSeconds: Int64 {
        Int64(Self.daysFromCivil(year, month, day)) * 86_400 + Int64(hour * 3600 + minute * 60)
    }

    /// The wall-clock minute containing `localSeconds` (seconds are dropped).
    init(localSeconds: Int64) {
        let days = Int(localSeconds.floorDiv(86_400))
        let rest = Int(localSeconds - Int64(days) * 86_400)
        let (y, m, d) = Self.civilFromDays(days)
        year = y
        month = m
        day = d
        hour = rest / 3600
        minute = (rest % 3600) / 60
    }

    init(year: Int, month: Int, day: Int, hour: Int, minute: Int) {
        self.year = year
        self.month = month
        self.day = day
        self.hour = hour
        self.minute = minute
    }

    static func < (a: CivilTime, b: CivilTime) -> Bool { a.localSeconds < b.localSeconds }

    var description: String {
        func p(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(year)-\(p(month))-\(p(day)) \(p(hour)):\(p(minute))"
    }

    /// 0 = Sunday … 6 = Saturday.
    var weekday: Int { Self.weekday(year, month, day) }

    static func weekday(_ y: Int, _ m: Int, _ d: Int) -> Int {
        // 1970-01-01 was a Thursday (4).
        let days = daysFromCivil(y, m, d)
        return ((days % 7) + 7 + 4) % 7
    }

    static func isLeapYear(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    static func daysInMonth(_ y: Int, _ m: Int) -> Int {
        switch m {
        case 2: return isLeapYear(y) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 for a civil date (the era-based algorithm: 400-year cycles of
    /// 146 097 days, years starting in March so the leap day falls at the end).
    static func daysFromCivil(_ year: Int, _ month: Int, _ day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The inverse of `daysFromCivil`.
    static func civilFromDays(_ days: Int) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}

extension Int64 {
    /// Division rounding toward negative infinity (times before 1970 stay on the right minute).
    func floorDiv(_ d: Int64) -> Int64 {
        let q = self / d
        return (self % d != 0 && (self < 0) != (d < 0)) ? q - 1 : q
    }
}
