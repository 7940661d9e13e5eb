import BackstopCore
import Foundation
import Synchronization

/// The clock `JobScheduler` reads and sleeps on. Schedules are wall-clock times, so this is
/// wall-clock time (not monotonic): after a suspend or an NTP step the scheduler sees the new
/// time and runs what is due once.
public protocol SchedulerClock: Sendable {
    /// The current wall-clock time.
    func now() -> Date
    /// Returns once `now() >= deadline`; throws `CancellationError` when the task is cancelled.
    func sleep(until deadline: Date) async throws
}

/// The real clock. It sleeps in slices of at most 30 s and re-reads the wall clock after
/// each, so a clock step or a suspended machine delays a run by 30 s at most.
public struct SystemSchedulerClock: SchedulerClock {
    public init() {}

    public func now() -> Date { Date() }

    public func sleep(until deadline: Date) async throws {
        while true {
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 { return }
            try await Task.sleep(for: .milliseconds(Int64(min(remaining, 30) * 1000) + 1))
        }
    }
}
