import BackstopCore
import Foundation
import Synchronization

/// A job the scheduler runs: a name (used in metrics labels and logs), when to run it, and
/// what to run. The scheduler knows nothing about what a job does.
public struct ScheduledJob: Sendable {
    public var name: String
    /// The times it runs at, in the scheduler's time zone; nil disables the job (an empty
    /// `BACKUP_SCHEDULE_*`). The health loop is not a scheduled job: it is its own service.
    public var schedule: CronExpression?
    public var run: @Sendable () async throws -> Void

    public init(name: String, schedule: CronExpression?, run: @escaping @Sendable () async throws -> Void) {
        self.name = name
        self.schedule = schedule
        self.run = run
    }
}

/// What the scheduler knows about a job's last successful run at start-up, for catch-up.
public enum LastSuccess: Sendable, Equatable {
    /// Nothing to go by (a job without a record, such as cleanup): no catch-up run.
    case unknown
    /// The job has never succeeded (no backup of this kind exists): run it at start-up.
    case never
    /// The newest success.
    case at(Date)
}

/// What happened, for logs and metrics (`.skipped` → `backstop_job_skipped_total{job_name}`).
public enum SchedulerEvent: Sendable {
    /// A run started; `catchUp` is true for the start-up run of a job that missed its slot.
    case started(job: String, at: Date, catchUp: Bool)
    /// A run ended; `error` is nil on success (a `CancellationError` after a shutdown cut it short).
    case finished(job: String, startedAt: Date, finishedAt: Date, error: (any Error)?)
    /// A run was due while the previous run of the same job was still running; not started.
    case skipped(job: String, due: Date)
    /// Shutdown: the grace period ran out while this job was still running; it was cancelled.
    case cancelledAtShutdown(job: String)
}

/// Runs jobs at their times: each job on its own schedule, never overlapping itself,
/// with one catch-up run at start-up for a job whose last success is older than its
/// schedule's interval, and a graceful shutdown.
///
/// Shutdown (`shutdown()` or cancelling the task that called `run()`): no new run starts;
/// running jobs get `gracePeriod` to finish; then they are cancelled (Swift task
/// cancellation; a job must react to it, e.g. by killing its child process and removing
/// its temporary file) and `run()` returns once every run has ended.
public final class JobScheduler: Sendable {
    private let jobs: [ScheduledJob]
    private let timeZone: TimeZone
    private let clock: any SchedulerClock
    private let gracePeriod: Duration
    private let lastSuccess: @Sendable (String) async -> LastSuccess
    private let onEvent: @Sendable (SchedulerEvent) -> Void
    private let shutdownSignal: AsyncStream<Void>
    private let shutdownTrigger: AsyncStream<Void>.Continuation

    private struct Running {
        var token: UInt64
        var task: Task<Void, Never>
    }

    private struct State {
        var running: [String: Running] = [:]
        var nextToken: UInt64 = 0
        var shuttingDown = false
        var started = false
    }

    private let state = Mutex(State())

    /// - Parameters:
    ///   - lastSuccess: the newest successful run of a job (e.g. from the backup catalog),
    ///     asked once per cron job at start-up.
    ///   - onEvent: called from the scheduler's tasks; must not block.
    public init(
        jobs: [ScheduledJob],
        timeZone: TimeZone = TimeZone(identifier: "UTC")!,
        clock: any SchedulerClock = SystemSchedulerClock(),
        gracePeriod: Duration = .seconds(30),
        lastSuccess: @escaping @Sendable (String) async -> LastSuccess = { _ in .unknown },
        onEvent: @escaping @Sendable (SchedulerEvent) -> Void = { _ in }
    ) {
        self.jobs = jobs
        self.timeZone = timeZone
        self.clock = clock
        self.gracePeriod = gracePeriod
        self.lastSuccess = lastSuccess
        self.onEvent = onEvent
        (shutdownSignal, shutdownTrigger) = AsyncStream<Void>.makeStream()
    }

    /// Whether `job` has a run in progress.
    public func isRunning(_ job: String) -> Bool {
        state.withLock { $0.running[job] != nil }
    }

    /// Asks `run()` to stop: no new runs; running ones get the grace period.
    public func shutdown() {
        state.withLock { $0.shuttingDown = true }
        shutdownTrigger.finish()
    }

    /// Runs the jobs until `shutdown()` or until the calling task is cancelled, then shuts
    /// down gracefully and returns when no run is left. Call it once.
    public func run() async {
        let first = state.withLock { s -> Bool in
            defer { s.started = true }
            return !s.started
        }
        precondition(first, "JobScheduler.run() called twice")
        await withTaskGroup(of: Void.self) { group in
            for job in jobs where job.schedule != nil {
                group.addTask { await self.tick(job) }
            }
            // Ends on shutdown() (the stream finishes) or when this task is cancelled (the
            // stream's iterator returns nil). A job loop that ends on its own (a schedule with
            // no further runs) does not stop the others.
            for await _ in shutdownSignal {}
            state.withLock { $0.shuttingDown = true }
            group.cancelAll()
        }
        await drain()
    }

    /// One job's loop: catch-up, then sleep until due, run or skip, repeat.
    private func tick(_ job: ScheduledJob) async {
        guard let cron = job.schedule else { return }
        var lastDue: Date?
        let last = await lastSuccess(job.name)
        let missed: Bool
        switch last {
        case .unknown: missed = false
        case .never: missed = true
        case .at(let date): missed = clock.now().timeIntervalSince(date) > cron.interval.seconds
        }
        if missed && !Task.isCancelled { start(job, catchUp: true) }
        while !Task.isCancelled {
            // From the later of now and the last slot handled: a late wake-up runs the slot it
            // woke for once, and never the slots it slept through.
            let now = clock.now()
            guard let due = cron.next(after: max(now, lastDue ?? now), in: timeZone) else { return }
            do {
                try await clock.sleep(until: due)
            } catch {
                return
            }
            lastDue = due
            if Task.isCancelled { return }
            if isRunning(job.name) {
                onEvent(.skipped(job: job.name, due: due))
                continue
            }
            start(job, catchUp: false)
        }
    }

    /// Starts one run as its own task (so shutdown can give it a grace period and cancel it
    /// independently of the loop), unless shutting down or already running.
    private func start(_ job: ScheduledJob, catchUp: Bool) {
        let clock = self.clock
        let onEvent = self.onEvent
        state.withLock { s in
            guard !s.shuttingDown, s.running[job.name] == nil else { return }
            s.nextToken += 1
            let token = s.nextToken
            // Registered under the lock before the task can finish and deregister itself.
            let task = Task {
                let started = clock.now()
                onEvent(.started(job: job.name, at: started, catchUp: catchUp))
                var failure: (any Error)?
                do {
                    try await job.run()
                } catch {
                    failure = error
                }
                self.state.withLock { s in
                    if s.running[job.name]?.token == token { s.running[job.name] = nil }
                }
                onEvent(.finished(job: job.name, startedAt: started, finishedAt: clock.now(), error: failure))
            }
            s.running[job.name] = Running(token: token, task: task)
        }
    }

    /// The end of shutdown: wait up to the grace period for running jobs, then cancel them
    /// and wait for them to end.
    private func drain() async {
        let running = state.withLock { s -> [(String, Running)] in
            s.shuttingDown = true
            return s.running.map { ($0.key, $0.value) }
        }
        guard !running.isEmpty else { return }
        let clock = self.clock
        let grace = gracePeriod
        let onEvent = self.onEvent
        // An unstructured task: the caller's task is usually cancelled already, which would
        // end the grace sleep at once.
        await Task {
            await withTaskGroup(of: Bool.self) { group in
                group.addTask {
                    for (_, run) in running { await run.task.value }
                    return true
                }
                group.addTask {
                    do {
                        try await clock.sleep(until: clock.now().addingTimeInterval(grace.seconds))
                        return false
                    } catch {
                        return true
                    }
                }
                let allFinished = await group.next() ?? true
                if !allFinished {
                    for (name, run) in running where self.isRunning(name) {
                        onEvent(.cancelledAtShutdown(job: name))
                        run.task.cancel()
                    }
                }
                group.cancelAll()
                await group.waitForAll()
            }
        }.value
    }
}
