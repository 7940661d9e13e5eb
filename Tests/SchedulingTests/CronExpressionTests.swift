import BackstopCore
import Foundation
import Scheduling
import Testing

/// Hand-checked cases (calendars looked up independently) for the dialect, the day rule,
/// leap days, daylight-saving changes and the error messages.
@Suite struct CronExpressionTests {
    static let utc = TimeZone(identifier: "UTC")!
    static let berlin = TimeZone(identifier: "Europe/Berlin")!
    static let newYork = TimeZone(identifier: "America/New_York")!

    func date(_ text: String) throws -> Date {
        let seconds = try #require(WallClock.parseRFC3339(text), "bad test time \(text)")
        return Date(timeIntervalSince1970: seconds)
    }

    /// The next `count` runs after `from`, as RFC 3339 in `zone`.
    func runs(_ expression: String, from: String, count: Int, in zone: TimeZone = utc) throws -> [String] {
        let cron = try CronExpression(expression)
        return cron.next(count, after: try date(from), in: zone).map { ScheduleTimeZone.rfc3339($0, in: zone) }
    }

    @Test func dailyRunIsStrictlyAfterTheGivenInstant() throws {
        #expect(try runs("0 2 * * *", from: "2026-01-07T02:00:00Z", count: 2) == ["2026-01-08T02:00:00Z", "2026-01-09T02:00:00Z"])
        #expect(try runs("0 2 * * *", from: "2026-01-07T01:59:59.5Z", count: 1) == ["2026-01-07T02:00:00Z"])
        #expect(try runs("0 2 * * *", from: "2026-01-07T02:00:00.5Z", count: 1) == ["2026-01-08T02:00:00Z"])
    }

    @Test func stepsListsAndRanges() throws {
        #expect(try runs("0 */6 * * *", from: "2026-01-01T00:00:00Z", count: 4)
            == ["2026-01-01T06:00:00Z", "2026-01-01T12:00:00Z", "2026-01-01T18:00:00Z", "2026-01-02T00:00:00Z"])
        #expect(try runs("1-10/2 3 * * *", from: "2026-01-01T00:00:00Z", count: 6)
            == ["2026-01-01T03:01:00Z", "2026-01-01T03:03:00Z", "2026-01-01T03:05:00Z", "2026-01-01T03:07:00Z",
                "2026-01-01T03:09:00Z", "2026-01-02T03:01:00Z"])
        // cronie reads "5/15" as "5-59/15".
        #expect(try runs("5/15 0 * * *", from: "2026-01-01T00:00:00Z", count: 5)
            == ["2026-01-01T00:05:00Z", "2026-01-01T00:20:00Z", "2026-01-01T00:35:00Z", "2026-01-01T00:50:00Z",
                "2026-01-02T00:05:00Z"])
        #expect(try runs("0,30 8-9 * * *", from: "2026-01-01T08:10:00Z", count: 4)
            == ["2026-01-01T08:30:00Z", "2026-01-01T09:00:00Z", "2026-01-01T09:30:00Z", "2026-01-02T08:00:00Z"])
        // A step larger than the range keeps only its start.
        #expect(try runs("*/90 5 * * *", from: "2026-01-01T00:00:00Z", count: 2) == ["2026-01-01T05:00:00Z", "2026-01-02T05:00:00Z"])
    }

    @Test func monthAndWeekdayNamesInAnyCase() throws {
        // January 2026: Thursday the 1st; the first weekday runs are Fri 2, Mon 5.
        #expect(try runs("0 9 * JAN,jul Mon-FRI", from: "2026-01-01T10:00:00Z", count: 3)
            == ["2026-01-02T09:00:00Z", "2026-01-05T09:00:00Z", "2026-01-06T09:00:00Z"])
        #expect(try runs("0 9 1 jul *", from: "2026-01-01T10:00:00Z", count: 1) == ["2026-07-01T09:00:00Z"])
        #expect(try runs("0 9 1 feb-Apr/2 *", from: "2026-01-01T10:00:00Z", count: 3)
            == ["2026-02-01T09:00:00Z", "2026-04-01T09:00:00Z", "2027-02-01T09:00:00Z"])
    }

    @Test func zeroAndSevenAreBothSunday() throws {
        let sundays = ["2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"]
        #expect(try runs("0 0 * * 0", from: "2026-01-01T00:00:00Z", count: 2) == sundays)
        #expect(try runs("0 0 * * 7", from: "2026-01-01T00:00:00Z", count: 2) == sundays)
        #expect(try runs("0 0 * * sun", from: "2026-01-01T00:00:00Z", count: 2) == sundays)
        // Friday through "7" includes Sunday.
        #expect(try runs("0 0 * * 5-7", from: "2026-01-01T00:00:00Z", count: 4)
            == ["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z", "2026-01-09T00:00:00Z"])
    }

    @Test func dayOfMonthOrDayOfWeekWhenBothAreRestricted() throws {
        // February 2026: Fridays are 6, 13, 20, 27. "15th OR Friday".
        #expect(try runs("0 0 15 * fri", from: "2026-02-01T00:00:00Z", count: 5)
            == ["2026-02-06T00:00:00Z", "2026-02-13T00:00:00Z", "2026-02-15T00:00:00Z", "2026-02-20T00:00:00Z",
                "2026-02-27T00:00:00Z"])
        #expect(try runs("0 0 1-5 * mon", from: "2026-01-01T05:00:00Z", count: 5)
            == ["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z", "2026-01-05T00:00:00Z",
                "2026-01-12T00:00:00Z"])
    }

    @Test func aDayFieldStartingWithStarMakesItAnAnd() throws {
        // cronie: "*/2" in day-of-month sets DOM_STAR, so the day rule is AND: odd days that
        // are Mondays. January 2026 Mondays: 5, 12, 19, 26; February: 2, 9, 16, 23.
        #expect(try runs("0 0 */2 * mon", from: "2026-01-01T00:00:00Z", count: 4)
            == ["2026-01-05T00:00:00Z", "2026-01-19T00:00:00Z", "2026-02-09T00:00:00Z", "2026-02-23T00:00:00Z"])
        // The same in day-of-week: the 1st to 7th that are Sun/Tue/Thu/Sat.
        #expect(try runs("0 0 1-7 * */2", from: "2026-01-01T00:00:00Z", count: 4)
            == ["2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z", "2026-01-06T00:00:00Z", "2026-02-01T00:00:00Z"])
    }

    @Test func leapDays() throws {
        #expect(try runs("0 0 29 2 *", from: "2026-03-01T00:00:00Z", count: 2) == ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"])
        // 2100 is not a leap year.
        #expect(try runs("0 0 29 2 *", from: "2097-01-01T00:00:00Z", count: 1) == ["2104-02-29T00:00:00Z"])
        #expect(try runs("0 0 31 * *", from: "2026-01-31T12:00:00Z", count: 3)
            == ["2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z", "2026-07-31T00:00:00Z"])
        #expect(try runs("0 12 28-31 * *", from: "2026-02-27T00:00:00Z", count: 2)
            == ["2026-02-28T12:00:00Z", "2026-03-28T12:00:00Z"])
    }

    @Test func shortcutsMatchTheirFiveFieldForms() throws {
        let from = try date("2026-05-17T13:14:15Z")
        let pairs = [("@yearly", "0 0 1 1 *"), ("@annually", "0 0 1 1 *"), ("@monthly", "0 0 1 * *"),
                     ("@weekly", "0 0 * * 0"), ("@daily", "0 0 * * *"), ("@midnight", "0 0 * * *"),
                     ("@hourly", "0 * * * *"), ("@DAILY", "0 0 * * *")]
        for (short, long) in pairs {
            let a = try CronExpression(short).next(5, after: from, in: Self.utc)
            let b = try CronExpression(long).next(5, after: from, in: Self.utc)
            #expect(a == b, "\(short)")
            #expect(a.count == 5)
        }
        #expect(try runs("@weekly", from: "2026-01-01T00:00:00Z", count: 1) == ["2026-01-04T00:00:00Z"])
    }

    // MARK: Daylight-saving time

    @Test func berlinSpringForwardRunsOnceRightAfterTheGap() throws {
        // 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
        #expect(try runs("30 2 * * *", from: "2026-03-28T12:00:00+01:00", count: 2, in: Self.berlin)
            == ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"])
        // Four skipped times of one fixed-time job: still one run.
        #expect(try runs("0,15,30,45 2 * * *", from: "2026-03-28T23:00:00+01:00", count: 2, in: Self.berlin)
            == ["2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00"])
        // A job that runs at 02:30 and 03:00 anyway: one run at 03:00, not two.
        #expect(try runs("0,30 2,3 * * *", from: "2026-03-29T01:50:00+01:00", count: 2, in: Self.berlin)
            == ["2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00"])
        // A wildcard job keeps its rhythm and has no run in the missing hour (as cronie).
        #expect(try runs("*/30 * * * *", from: "2026-03-29T01:00:00+01:00", count: 3, in: Self.berlin)
            == ["2026-03-29T01:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00"])
        // The default incremental schedule does not touch the gap.
        #expect(try runs("0 */6 * * *", from: "2026-03-28T19:00:00+01:00", count: 3, in: Self.berlin)
            == ["2026-03-29T00:00:00+01:00", "2026-03-29T06:00:00+02:00", "2026-03-29T12:00:00+02:00"])
    }

    @Test func berlinFallBackRunsAFixedTimeOnce() throws {
        // 2026-10-25: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
        #expect(try runs("30 2 * * *", from: "2026-10-24T12:00:00+02:00", count: 3, in: Self.berlin)
            == ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00", "2026-10-27T02:30:00+01:00"])
        // Asked from inside the second pass, the repeated 02:30 is already done.
        #expect(try runs("30 2 * * *", from: "2026-10-25T02:10:00+01:00", count: 1, in: Self.berlin) == ["2026-10-26T02:30:00+01:00"])
        // An hourly job runs in both passes: it is hourly.
        #expect(try runs("30 * * * *", from: "2026-10-25T01:00:00+02:00", count: 4, in: Self.berlin)
            == ["2026-10-25T01:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00", "2026-10-25T03:30:00+01:00"])
        // … also when asked from the first pass after its run there.
        #expect(try runs("30 * * * *", from: "2026-10-25T02:45:00+02:00", count: 2, in: Self.berlin)
            == ["2026-10-25T02:30:00+01:00", "2026-10-25T03:30:00+01:00"])
        #expect(try runs("*/20 2 * * *", from: "2026-10-25T01:59:00+02:00", count: 7, in: Self.berlin)
            == ["2026-10-25T02:00:00+02:00", "2026-10-25T02:20:00+02:00", "2026-10-25T02:40:00+02:00",
                "2026-10-25T02:00:00+01:00", "2026-10-25T02:20:00+01:00", "2026-10-25T02:40:00+01:00",
                "2026-10-26T02:00:00+01:00"])
    }

    @Test func newYorkTransitions() throws {
        // 2026-03-08: 02:00 EST jumps to 03:00 EDT. 2026-11-01: 02:00 EDT goes back to 01:00 EST.
        #expect(try runs("30 2 * * *", from: "2026-03-07T12:00:00-05:00", count: 2, in: Self.newYork)
            == ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"])
        #expect(try runs("30 1 * * *", from: "2026-10-31T12:00:00-04:00", count: 2, in: Self.newYork)
            == ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"])
        #expect(try runs("0 2 * * *", from: "2026-10-31T12:00:00-04:00", count: 2, in: Self.newYork)
            == ["2026-11-01T02:00:00-05:00", "2026-11-02T02:00:00-05:00"])
        #expect(try runs("15 * * * *", from: "2026-11-01T00:30:00-04:00", count: 4, in: Self.newYork)
            == ["2026-11-01T01:15:00-04:00", "2026-11-01T01:15:00-05:00", "2026-11-01T02:15:00-05:00", "2026-11-01T03:15:00-05:00"])
    }

    @Test func runsAreStrictlyIncreasingAcrossAYearOfTransitions() throws {
        for zone in [Self.berlin, Self.newYork, TimeZone(identifier: "Australia/Lord_Howe")!] {
            for text in ["*/7 * * * *", "30 2 * * *", "0 */2 * * *", "15,45 1-3 * * *", "@hourly"] {
                let cron = try CronExpression(text)
                let times = cron.next(3000, after: try date("2026-03-01T00:00:00Z"), in: zone)
                #expect(times.count == 3000)
                #expect(zip(times, times.dropFirst()).allSatisfy { $0 < $1 }, "\(text) in \(zone.identifier)")
            }
        }
    }

    // MARK: Errors

    func error(_ text: String, variable: String? = nil) -> String {
        do {
            if let variable { _ = try CronExpression(text, variable: variable) } else { _ = try CronExpression(text) }
            return "no error"
        } catch {
            return error.description
        }
    }

    @Test func errorsNameTheVariableAndTheField() {
        #expect(error("0 25 * * *", variable: "BACKUP_SCHEDULE_FULL")
            == "invalid BACKUP_SCHEDULE_FULL=\"0 25 * * *\": field 2 (hour) value 25 is out of range 0-23")
        #expect(error("60 * * * *").hasPrefix("invalid cron expression \"60 * * * *\": field 1 (minute) value 60 is out of range 0-59"))
        #expect(error("0 0 32 * *").contains("field 3 (day-of-month) value 32 is out of range 1-31"))
        #expect(error("0 0 0 * *").contains("field 3 (day-of-month) value 0 is out of range 1-31"))
        #expect(error("0 0 * 13 *").contains("field 4 (month) value 13 is out of range 1-12"))
        #expect(error("0 0 * * 8").contains("field 5 (day-of-week) value 8 is out of range 0-7"))
        #expect(error("0 0 * * monday").contains("field 5 (day-of-week) name \"monday\" is not known; expected 0-7 or a name sun, mon"))
        #expect(error("0 0 * foo *").contains("field 4 (month) name \"foo\" is not known"))
        #expect(error("*/0 * * * *").contains("field 1 (minute) step \"0\""))
        #expect(error("5-1 * * * *").contains("field 1 (minute) range 5-1 runs backwards"))
        #expect(error("0 2 * *").contains("has 4 fields; expected five"))
        #expect(error("0 0 2 * * *").contains("seconds and year fields"))
        #expect(error("1,,2 * * * *").contains("field 1 (minute)"))
        #expect(error("0 x * * *").contains("field 2 (hour) \"x\" is not a value"))
        #expect(error("0 0 * jan *x").contains("field 5 (day-of-week)"))
        #expect(error("0 0 31 2 *").contains("field 3 (day-of-month) 31 never occurs"))
        #expect(error("0 0 30 feb *").contains("never occurs"))
        #expect(error("@reboot").contains("@reboot is not a schedule"))
        #expect(error("@sometimes").contains("unknown shortcut"))
        #expect(error("   ").contains("empty"))
        // Under the OR rule the weekday side still runs, so this one is fine.
        #expect(error("0 0 31 2 mon") == "no error")
    }

    // MARK: Interval

    @Test func intervals() throws {
        #expect(try CronExpression("0 */6 * * *").interval == .seconds(6 * 3600))
        #expect(try CronExpression("0 */4 * * *").interval == .seconds(4 * 3600))
        #expect(try CronExpression("0 2 * * *").interval == .seconds(86_400))
        #expect(try CronExpression("* * * * *").interval == .seconds(60))
        let weekdays = try CronExpression("0 2 * * 1-5")
        #expect(weekdays.interval == .seconds(86_400))
        #expect(weekdays.longestInterval == .seconds(3 * 86_400))
        #expect(try CronExpression("@weekly").interval == .seconds(7 * 86_400))
        let monthly = try CronExpression("@monthly").interval
        #expect(monthly >= .seconds(28 * 86_400) && monthly <= .seconds(31 * 86_400))
        #expect(try CronExpression("@yearly").interval >= .seconds(365 * 86_400))
        #expect(try CronExpression("0 0 29 2 *").longestInterval >= .seconds(4 * 365 * 86_400))
    }

    // MARK: Time zones

    @Test func timeZoneFromTheEnvironment() throws {
        #expect(try ScheduleTimeZone.fromEnvironment([:]).secondsFromGMT(for: Date()) == 0)
        #expect(try ScheduleTimeZone.fromEnvironment(["TZ": ""]).secondsFromGMT(for: Date()) == 0)
        #expect(try ScheduleTimeZone.fromEnvironment(["TZ": ":Europe/Berlin"]).identifier == "Europe/Berlin")
        #expect(try ScheduleTimeZone.fromEnvironment(["TZ": "America/New_York"]).identifier == "America/New_York")
        do {
            _ = try ScheduleTimeZone.fromEnvironment(["TZ": "Mars/Olympus"])
            Issue.record("an unknown zone was accepted")
        } catch {
            #expect("\(error)".hasPrefix("invalid TZ=\"Mars/Olympus\": expected an IANA time zone name"))
        }
        let d = try date("2026-07-01T00:00:00Z")
        #expect(ScheduleTimeZone.rfc3339(d, in: Self.berlin) == "2026-07-01T02:00:00+02:00")
        #expect(ScheduleTimeZone.rfc3339(d, in: Self.newYork) == "2026-06-30T20:00:00-04:00")
        #expect(ScheduleTimeZone.rfc3339(d, in: Self.utc) == "2026-07-01T00:00:00Z")
        #expect(ScheduleTimeZone.rfc3339(d, in: TimeZone(identifier: "Asia/Kolkata")!) == "2026-07-01T05:30:00+05:30")
    }
}
