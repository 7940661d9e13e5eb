import BackstopTestSupport
import BackstopCore
import BackupCatalog
import Foundation
import Testing

/// The pure policy, checked against an independent model built on Foundation's ISO 8601
/// calendar (a different implementation of days, ISO weeks and months than the policy's).
@Suite struct RetentionPolicyTests {
    static let utc: Calendar = {
        var c = Calendar(identifier: .iso8601)
        c.timeZone = TimeZone(identifier: "UTC")!
        return c
    }()

    /// The model: the set of kept indices of one group's good backups, per the documented rules.
    static func expectedKept(_ times: [Double], policy: RetentionPolicy, now: Double) -> Set<Int> {
        let newestFirst = times.indices.sorted { times[$0] > times[$1] }
        var kept = Set<Int>()
        if let first = newestFirst.first { kept.insert(first) }
        for i in times.indices where times[i] >= now - Double(policy.retentionDays) * 86_400 { kept.insert(i) }
        func keepNewestPerBucket(_ count: Int, _ bucket: (Date) -> String) {
            var seen: [String] = []
            for i in newestFirst {
                let b = bucket(Date(timeIntervalSince1970: times[i]))
                if seen.contains(b) { continue }
                if seen.count == count { break }
                seen.append(b)
                kept.insert(i)
            }
        }
        keepNewestPerBucket(policy.keepDaily) { d in
            let c = utc.dateComponents([.year, .month, .day], from: d)
            return "\(c.year!)-\(c.month!)-\(c.day!)"
        }
        keepNewestPerBucket(policy.keepWeekly) { d in
            let c = utc.dateComponents([.yearForWeekOfYear, .weekOfYear], from: d)
            return "\(c.yearForWeekOfYear!)-W\(c.weekOfYear!)"
        }
        keepNewestPerBucket(policy.keepMonthly) { d in
            let c = utc.dateComponents([.year, .month], from: d)
            return "\(c.year!)-\(c.month!)"
        }
        return kept
    }

    static func check(_ times: [Double], policy: RetentionPolicy, now: Double) -> (Set<Int>, Set<Int>) {
        let decisions = policy.decide(times.map { .init(group: "postgres_full/app", startedAt: $0, isGood: true) }, now: now)
        let actual = Set(decisions.indices.filter { decisions[$0].keep })
        return (actual, expectedKept(times, policy: policy, now: now))
    }

    @Test func dailyBackupsOverTwoYearsDefaultPolicy() {
        let now = WallClock.parseRFC3339("2026-11-25T12:00:00Z")!
        let times = (0..<730).map { now - Double($0) * 86_400 - 10 * 3600 }  // 02:00 each day
        let (actual, expected) = Self.check(times, policy: RetentionPolicy(), now: now)
        #expect(actual == expected)
        // 30 days by age, plus 12 months' newest minus the ones inside the 30 days.
        #expect(actual.count >= 30 + 10 && actual.count <= 30 + 12)
    }

    @Test(arguments: [
        RetentionPolicy(retentionDays: 1, keepDaily: 3, keepWeekly: 4, keepMonthly: 12),
        RetentionPolicy(retentionDays: 2, keepDaily: 0, keepWeekly: 10, keepMonthly: 0),
        RetentionPolicy(retentionDays: 1, keepDaily: 0, keepWeekly: 0, keepMonthly: 30),
        RetentionPolicy(retentionDays: 10, keepDaily: 14, keepWeekly: 8, keepMonthly: 6),
    ])
    func irregularBackupsMatchTheModel(policy: RetentionPolicy) {
        // Several backups on some days, gaps of days and weeks, across year ends (ISO week 53 of 2020 and 2026).
        var generator = SeededGenerator(seed: 42)
        let now = WallClock.parseRFC3339("2027-01-03T18:30:00Z")!
        var times: [Double] = []
        var t = now - 3600
        while t > now - 2 * 365 * 86_400 {
            times.append(t)
            t -= Double(generator.next() % (9 * 86_400)) + 600
        }
        let (actual, expected) = Self.check(times, policy: policy, now: now)
        #expect(actual == expected)
        #expect(actual.count < times.count)
    }

    @Test func newestGoodIsKeptWhenEveryRuleIsOff() {
        let now = 2_000_000_000.0
        let policy = RetentionPolicy(retentionDays: 1, keepDaily: 0, keepWeekly: 0, keepMonthly: 0)
        let items: [RetentionPolicy.Item] = [
            .init(group: "redis/redis", startedAt: now - 90 * 86_400, isGood: true),
            .init(group: "redis/redis", startedAt: now - 100 * 86_400, isGood: true),
            .init(group: "redis/redis", startedAt: now - 80 * 86_400, isGood: false),  // newer, but incomplete
            .init(group: "postgres_full/app", startedAt: now - 400 * 86_400, isGood: true),
        ]
        let d = policy.decide(items, now: now)
        #expect(d.map(\.keep) == [true, false, false, true])
        #expect(d[0].reasons == [.newest])
        #expect(d[1].reasons == [.expired(days: 1)])
        #expect(d[2].reasons == [.incompleteLeftover])
        #expect(d[3].reasons == [.newest])
    }

    @Test func incompleteYoungerThanADayStays() {
        let now = 2_000_000_000.0
        let d = RetentionPolicy().decide([.init(group: "g", startedAt: now - 3600, isGood: false)], now: now)
        #expect(d == [.init(keep: true, reasons: [.incompleteRecent])])
    }

    @Test func groupsAreIndependent() {
        let now = 2_000_000_000.0
        let policy = RetentionPolicy(retentionDays: 1, keepDaily: 1, keepWeekly: 0, keepMonthly: 0)
        // Same day, two targets: each keeps its own newest.
        let items: [RetentionPolicy.Item] = [
            .init(group: "postgres_full/a", startedAt: now - 5 * 86_400, isGood: true),
            .init(group: "postgres_full/b", startedAt: now - 5 * 86_400 + 60, isGood: true),
            .init(group: "postgres_full/a", startedAt: now - 6 * 86_400, isGood: true),
        ]
        #expect(policy.decide(items, now: now).map(\.keep) == [true, true, false])
    }

    @Test func calendarLabels() {
        for (text, week, month) in [("2021-01-03T10:00:00Z", "2020-W53", "2021-01"), ("2024-12-30T00:00:00Z", "2025-W01", "2024-12"),
                                    ("2026-12-31T23:59:59Z", "2026-W53", "2026-12"), ("1970-01-01T00:00:00Z", "1970-W01", "1970-01")] {
            let day = UTCCalendar.day(WallClock.parseRFC3339(text)!)
            #expect(UTCCalendar.isoWeekLabel(UTCCalendar.isoWeekMonday(day)) == week)
            #expect(UTCCalendar.monthLabel(UTCCalendar.month(day)) == month)
            #expect(UTCCalendar.dayLabel(day) == String(text.prefix(10)))
        }
    }

    @Test func environment() throws {
        let p = try RetentionPolicy(environment: ["BACKUP_RETENTION_DAYS": "10", "BACKUP_KEEP_WEEKLY": "0"])
        #expect(p == RetentionPolicy(retentionDays: 10, keepDaily: 7, keepWeekly: 0, keepMonthly: 12))
        #expect(throws: (any Error).self) { try RetentionPolicy(environment: ["BACKUP_KEEP_DAILY": "-1"]) }
        #expect(throws: (any Error).self) { try RetentionPolicy(environment: ["BACKUP_RETENTION_DAYS": "0"]) }
    }
}
