import BackstopCore
import Foundation
import BackstopTestSupport
import Scheduling
import Synchronization
import Testing

/// Collects scheduler events and lets a test wait (briefly, in real time) for one.
final class EventLog: Sendable {
    private let events = Mutex<[SchedulerEvent]>([])

    func record(_ e: SchedulerEvent) { events.withLock { $0.append(e) } }

    var all: [SchedulerEvent] { events.withLock { $0 } }

    func started(_ job: String) -> [(at: Date, catchUp: Bool)] {
        all.compactMap { if case .started(job, let at, let c) = $0 { (at, c) } else { nil } }
    }

    func finished(_ job: String) -> [(any Error)?] {
        all.compactMap { if case .finished(job, _, _, let e) = $0 { .some(e) } else { nil } }
    }

    func skipped(_ job: String) -> [Date] {
        all.compactMap { if case .skipped(job, let due) = $0 { due } else { nil } }
    }

    func cancelled(_ job: String) -> Int {
        all.filter { if case .cancelledAtShutdown(job) = $0 { true } else { false } }.count
    }

    func wait(_ what: String, timeout: Duration = .seconds(10), until condition: () -> Bool) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while !condition() {
            guard clock.now < deadline else { throw ManualClockTimeout(description: "timed out waiting for \(what); events: \(all)") }
            try await Task.sleep(for: .milliseconds(1))
        }
    }
}

/// A latch a job waits on; ignores cancellation on purpose (a job that is slow to stop).
final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func wait() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { s -> Bool in
                if s.open { return true }
                s.waiters.append(c)
                return false
            }
            if resumeNow { c.resume() }
        }
    }

    func open() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.open = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume() }
    }
}

@Suite struct JobSchedulerTests {
    static let utc = TimeZone(identifier: "UTC")!

    func date(_ text: String) throws -> Date {
        Date(timeIntervalSince1970: try #require(WallClock.parseRFC3339(text)))
    }

    @Test func runsAtTheScheduledTimesAndSkipsARunThatWouldOverlap() async throws {
        let clock = ManualSchedulerClock(now: try date("2026-01-01T00:00:30Z"))
        let log = EventLog()
        let gate = Gate()
        let runs = Mutex(0)
        let job = ScheduledJob(name: "full", schedule: try CronExpression("* * * * *")) {
            let n = runs.withLock { $0 += 1; return $0 }
            if n == 1 { await gate.wait() }
        }
        let scheduler = JobScheduler(jobs: [job], timeZone: Self.utc, clock: clock, onEvent: log.record)
        let task = Task { await scheduler.run() }

        try await clock.waitForSleepers(1)
        #expect(clock.nextDeadline == (try date("2026-01-01T00:01:00Z")))
        #expect(log.started("full").isEmpty)

        clock.advance(to: try date("2026-01-01T00:01:00Z"))
        try await log.wait("first start") { log.started("full").count == 1 }
        #expect(log.started("full").first?.at == (try date("2026-01-01T00:01:00Z")))

        // Due again while the first run still waits on the gate: skipped and reported.
        try await clock.waitForSleepers(1)
        clock.advance(to: try date("2026-01-01T00:02:00Z"))
        try await log.wait("skip") { log.skipped("full").count == 1 }
        #expect(log.skipped("full") == [try date("2026-01-01T00:02:00Z")])
        #expect(log.started("full").count == 1)
        #expect(scheduler.isRunning("full"))

        gate.open()
        try await log.wait("first finish") { log.finished("full").count == 1 }
        try await clock.waitForSleepers(1)
        clock.advance(to: try date("2026-01-01T00:03:00Z"))
        try await log.wait("second start") { log.started("full").count == 2 }
        try await log.wait("second finish") { log.finished("full").count == 2 }
        #expect(log.finished("full").allSatisfy { $0 == nil })
        #expect(log.skipped("full").count == 1)

        scheduler.shutdown()
        await task.value
    }

    @Test func aLateWakeUpRunsOnceNotOncePerMissedSlot() async throws {
        let clock = ManualSchedulerClock(now: try date("2026-01-01T00:00:00Z"))
        let log = EventLog()
        let job = ScheduledJob(name: "redis", schedule: try CronExpression("0 */4 * * *")) {}
        let scheduler = JobScheduler(jobs: [job], timeZone: Self.utc, clock: clock, onEvent: log.record)
        let task = Task { await scheduler.run() }
        try await clock.waitForSleepers(1)
        #expect(clock.nextDeadline == (try date("2026-01-01T04:00:00Z")))
        // The machine was suspended for a day: three slots passed.
        clock.advance(to: try date("2026-01-02T01:30:00Z"))
        try await log.wait("one run") { log.finished("redis").count == 1 }
        try await clock.waitForSleepers(1)
        #expect(log.started("redis").count == 1)
        #expect(clock.nextDeadline == (try date("2026-01-02T04:00:00Z")))
        scheduler.shutdown()
        await task.value
    }

    @Test func catchUpAtStartUpRunsOnlyJobsOlderThanTheirInterval() async throws {
        let now = try date("2026-01-10T12:00:00Z")
        let clock = ManualSchedulerClock(now: now)
        let log = EventLog()
        let last: [String: LastSuccess] = [
            "full": .at(try date("2026-01-08T02:00:00Z")),         // 58 h old, interval 24 h: catch up
            "incremental": .at(try date("2026-01-10T11:00:00Z")),  // 1 h old, interval 6 h: no
            "redis": .never,                                       // nothing yet: catch up
            "cleanup": .unknown,                                   // no record: no
            "drill": .at(try date("2026-01-09T04:00:00Z")),        // 32 h old, interval 7 d: no
        ]
        let names = ["full", "incremental", "redis", "cleanup", "drill"]
        let schedules = ["0 2 * * *", "0 */6 * * *", "0 */4 * * *", "0 3 * * *", "0 4 * * 0"]
        var jobs = try zip(names, schedules).map { name, text in
            ScheduledJob(name: name, schedule: try CronExpression(text)) {}
        }
        jobs.append(ScheduledJob(name: "disabled", schedule: nil) { Issue.record("a disabled job ran") })
        let scheduler = JobScheduler(jobs: jobs, timeZone: Self.utc, clock: clock,
                                     lastSuccess: { last[$0] ?? .unknown }, onEvent: log.record)
        let task = Task { await scheduler.run() }

        try await clock.waitForSleepers(5)
        try await log.wait("catch-up runs") { log.finished("full").count == 1 && log.finished("redis").count == 1 }
        #expect(log.started("full").map(\.catchUp) == [true])
        #expect(log.started("full").map(\.at) == [now])
        #expect(log.started("redis").map(\.catchUp) == [true])
        for name in ["incremental", "cleanup", "drill", "disabled"] { #expect(log.started(name).isEmpty, "\(name)") }

        // The next regular slot (16:00 for redis) is an ordinary run.
        clock.advance(to: try date("2026-01-10T16:00:00Z"))
        try await log.wait("regular redis run") { log.finished("redis").count == 2 }
        #expect(log.started("redis").map(\.catchUp) == [true, false])
        #expect(log.started("full").count == 1)

        scheduler.shutdown()
        await task.value
        #expect(log.started("disabled").isEmpty)
    }

    @Test func shutdownLetsARunningJobFinishWithinTheGracePeriod() async throws {
        let clock = ManualSchedulerClock(now: try date("2026-01-01T00:00:00Z"))
        let log = EventLog()
        let gate = Gate()
        let job = ScheduledJob(name: "full", schedule: try CronExpression("0 * * * *")) { await gate.wait() }
        let scheduler = JobScheduler(jobs: [job], clock: clock, gracePeriod: .seconds(30), onEvent: log.record)
        let task = Task { await scheduler.run() }
        try await clock.waitForSleepers(1)
        clock.advance(to: try date("2026-01-01T01:00:00Z"))
        try await log.wait("start") { log.started("full").count == 1 }

        scheduler.shutdown()
        // Only the grace timer sleeps now; the loop is gone.
        let graceEnd = try date("2026-01-01T01:00:30Z")
        try await log.wait("grace timer") { clock.sleeperCount == 1 && clock.nextDeadline == graceEnd }
        clock.advance(by: .seconds(10))
        gate.open()
        await task.value
        #expect(log.finished("full").count == 1)
        #expect(log.finished("full").first.map { $0 == nil } == true)
        #expect(log.cancelled("full") == 0)
        // Nothing new starts after shutdown, whatever the clock does.
        clock.advance(to: try date("2026-01-01T05:00:00Z"))
        #expect(log.started("full").count == 1)
    }

    @Test func shutdownCancelsARunThatOutlastsTheGracePeriod() async throws {
        let clock = ManualSchedulerClock(now: try date("2026-01-01T00:00:00Z"))
        let log = EventLog()
        let job = ScheduledJob(name: "full", schedule: try CronExpression("0 * * * *")) {
            // A long dump; honours cancellation like a job that kills its child process.
            try await Task.sleep(for: .seconds(3600))
        }
        let scheduler = JobScheduler(jobs: [job], clock: clock, gracePeriod: .seconds(30), onEvent: log.record)
        let task = Task { await scheduler.run() }
        try await clock.waitForSleepers(1)
        clock.advance(to: try date("2026-01-01T01:00:00Z"))
        try await log.wait("start") { log.started("full").count == 1 }

        task.cancel()  // as on SIGTERM through ServiceLifecycle
        let graceEnd = try date("2026-01-01T01:00:30Z")
        try await log.wait("grace timer") { clock.sleeperCount == 1 && clock.nextDeadline == graceEnd }
        clock.advance(by: .seconds(29))
        try await Task.sleep(for: .milliseconds(50))
        #expect(log.finished("full").isEmpty, "cancelled before the grace period ended")
        #expect(scheduler.isRunning("full"))

        clock.advance(by: .seconds(1))
        await task.value
        #expect(log.cancelled("full") == 1)
        let errors = log.finished("full")
        #expect(errors.count == 1)
        #expect(errors.first.map { $0 is CancellationError } == true)
        #expect(!scheduler.isRunning("full"))
    }

    @Test func systemClockSleepsUntilTheDeadline() async throws {
        let clock = SystemSchedulerClock()
        let deadline = clock.now().addingTimeInterval(0.05)
        try await clock.sleep(until: deadline)
        #expect(clock.now() >= deadline)
        let task = Task { try await clock.sleep(until: clock.now().addingTimeInterval(3600)) }
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
    }

    @Test func jobsFromSettings() throws {
        let settings = try ScheduleSettings(environment: ["BACKUP_SCHEDULE_CLEANUP": "", "HEALTH_CHECK_INTERVAL": "30s"])
        let jobs = settings.jobs(["full": {}, "cleanup": {}, "health": {}])
        // "health" is no cron job (the health loop is its own service): left out.
        #expect(jobs.map(\.name) == ["full", "cleanup"])
        #expect(jobs[0].schedule == (try CronExpression("0 2 * * *")))
        #expect(jobs[1].schedule == nil)
    }

    @Test func settingsFromTheEnvironment() throws {
        let defaults = try ScheduleSettings(environment: [:])
        #expect(defaults.entries.map(\.job) == ["full", "incremental", "redis", "cleanup", "drill"])
        #expect(defaults.expression(for: "full")?.text == "0 2 * * *")
        #expect(defaults.expression(for: "incremental")?.text == "0 */6 * * *")
        #expect(defaults.expression(for: "redis")?.text == "0 */4 * * *")
        #expect(defaults.expression(for: "cleanup")?.text == "0 3 * * *")
        #expect(defaults.expression(for: "drill")?.text == "0 4 * * 0")
        #expect(defaults.healthInterval == .seconds(300))
        #expect(defaults.shutdownGracePeriod == .seconds(30))
        #expect(defaults.timeZone.secondsFromGMT(for: Date()) == 0)

        let custom = try ScheduleSettings(environment: [
            "BACKUP_SCHEDULE_FULL": "30 1 * * *", "BACKUP_SCHEDULE_REDIS": "", "SHUTDOWN_GRACE_PERIOD": "2m",
            "HEALTH_CHECK_INTERVAL": "1m", "TZ": "Europe/Berlin",
        ])
        #expect(custom.expression(for: "full")?.text == "30 1 * * *")
        #expect(custom.expression(for: "redis") == nil)
        #expect(custom.shutdownGracePeriod == .seconds(120))
        #expect(custom.healthInterval == .seconds(60))
        #expect(custom.timeZone.identifier == "Europe/Berlin")

        #expect(throws: CronError(variable: "BACKUP_SCHEDULE_FULL", expression: "0 25 * * *", field: 2, problem: "value 25 is out of range 0-23")) {
            try ScheduleSettings(environment: ["BACKUP_SCHEDULE_FULL": "0 25 * * *"])
        }
        #expect(throws: ConfigError.self) { try ScheduleSettings(environment: ["SHUTDOWN_GRACE_PERIOD": "soon"]) }
        #expect(throws: ConfigError.self) { try ScheduleSettings(environment: ["TZ": "Nowhere/Special"]) }
    }
}
