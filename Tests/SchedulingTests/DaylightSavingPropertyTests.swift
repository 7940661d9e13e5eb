import BackstopTestSupport
import Foundation
import Scheduling
import Testing

/// Random expressions around real daylight-saving transitions, checked against a
/// brute-force model that walks the time line minute by minute with Foundation's
/// `Calendar` (independent of `ZoneRules`):
/// - a matching wall-clock minute shown once runs at that instant;
/// - shown twice (fall back): a fixed-time job runs at the first showing only, a wildcard
///   job (minute or hour field starting with `*`) at both;
/// - never shown (spring forward): a fixed-time job runs once at the first instant after the
///   gap, a wildcard job does not run for it.
@Suite struct DaylightSavingPropertyTests {
    struct Window {
        var zone: String
        var from: Date
        var to: Date
    }

    static func windows() -> [Window] {
        func w(_ zone: String, _ from: Double, _ hours: Double = 48) -> Window {
            Window(zone: zone, from: Date(timeIntervalSince1970: from), to: Date(timeIntervalSince1970: from + hours * 3600))
        }
        return [
            w("Europe/Berlin", 1_774_699_200),     // 2026-03-28T12:00Z, spring forward on the 29th
            w("Europe/Berlin", 1_792_843_200),     // 2026-10-24T12:00Z, fall back on the 25th
            w("America/New_York", 1_772_884_800),  // 2026-03-07T12:00Z, spring forward on the 8th
            w("America/New_York", 1_793_448_000),  // 2026-10-31T12:00Z, fall back on 11-01
            w("Australia/Lord_Howe", 1_775_217_600), // 2026-04-03T12:00Z, 30-minute fall back on the 5th
            w("Australia/Lord_Howe", 1_790_942_400), // 2026-10-02T12:00Z, 30-minute spring forward on the 4th
        ]
    }

    /// The runs the model expects in [from, to).
    static func model(_ cron: CronExpression, _ window: Window) throws -> [Int64] {
        let zone = TimeZone(identifier: window.zone)!
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        var utcCalendar = Calendar(identifier: .gregorian)
        utcCalendar.timeZone = TimeZone(secondsFromGMT: 0)!
        let utc = TimeZone(secondsFromGMT: 0)!
        /// Wall-clock minute as seconds on a local epoch.
        func civil(_ instant: Int64) -> Int64 {
            let c = calendar.dateComponents([.year, .month, .day, .hour, .minute], from: Date(timeIntervalSince1970: Double(instant)))
            let d = utcCalendar.date(from: DateComponents(year: c.year, month: c.month, day: c.day, hour: c.hour, minute: c.minute))!
            return Int64(d.timeIntervalSince1970)
        }
        /// Whether a wall-clock minute matches: the UTC search (checked against croniter) finds it.
        func matches(_ local: Int64) -> Bool {
            cron.next(after: Date(timeIntervalSince1970: Double(local) - 0.5), in: utc)?.timeIntervalSince1970 == Double(local)
        }
        var expected: [Int64] = []
        var seen = Set<Int64>()
        let start = Int64(window.from.timeIntervalSince1970)
        let end = Int64(window.to.timeIntervalSince1970)
        var previousCivil = civil(start - 60)
        var u = start
        while u < end {
            let c = civil(u)
            // Wall-clock minutes skipped between the previous instant and this one.
            if c - previousCivil > 60, !cron.isWildcardTime {
                var skipped = previousCivil + 60
                while skipped < c {
                    if matches(skipped) { expected.append(u); break }
                    skipped += 60
                }
            }
            if matches(c) {
                // Windows start a day before the transition, so a first showing is always seen.
                if !seen.contains(c) || cron.isWildcardTime {
                    if expected.last != u { expected.append(u) }
                }
            }
            seen.insert(c)
            previousCivil = c
            u += 60
        }
        return expected
    }

    @Test func randomExpressionsAroundTransitionsMatchTheMinuteByMinuteModel() throws {
        var rng = SeededGenerator(seed: 99)
        var expressions = ["30 2 * * *", "0,15,30,45 2 * * *", "*/30 * * * *", "30 * * * *", "0 */2 * * *",
                           "15,45 1-3 * * *", "0 2 * * *", "*/20 2 * * *", "@hourly", "@daily", "0 3 * * *", "59 1 * * *"]
        let hourFields = ["*", "2", "1-3", "*/2", "2,3", "0-4/2", "1", "0-3", "3"]
        for _ in 0..<60 {
            var fields = CroniterComparisonTests.randomExpression(&rng).split(separator: " ").map(String.init)
            if fields.count != 5 { continue }
            fields[1] = hourFields.randomElement(using: &rng)!
            if Int.random(in: 0..<3, using: &rng) == 0 { fields[0] = ["0", "30", "*/15", "0,30", "45", "*"].randomElement(using: &rng)! }
            // Keep the days wide so that the transition day is included often.
            fields[2] = "*"
            fields[3] = "*"
            if Int.random(in: 0..<2, using: &rng) == 0 { fields[4] = "*" }
            expressions.append(fields.joined(separator: " "))
        }
        for window in Self.windows() {
            let zone = TimeZone(identifier: window.zone)!
            for text in expressions {
                let cron = try CronExpression(text)
                let expected = try Self.model(cron, window)
                var actual: [Int64] = []
                var cursor = window.from.addingTimeInterval(-0.5)
                while let next = cron.next(after: cursor, in: zone), next < window.to {
                    actual.append(Int64(next.timeIntervalSince1970))
                    cursor = next
                }
                #expect(actual == expected, "\"\(text)\" in \(window.zone) from \(window.from): got \(actual.map { ScheduleTimeZone.rfc3339(Date(timeIntervalSince1970: Double($0)), in: zone) }), model \(expected.map { ScheduleTimeZone.rfc3339(Date(timeIntervalSince1970: Double($0)), in: zone) })")
            }
        }
    }
}
