import Foundation
import Scheduling
import Synchronization

/// A clock that moves only when told to, so scheduler tests run in milliseconds and
/// deterministically: `advance(to:)` wakes exactly the sleepers whose deadline has come, and
/// `waitForSleepers(_:)` tells a test when the scheduler has gone back to sleep.
public final class ManualSchedulerClock: SchedulerClock {
    private struct Sleeper {
        var id: UInt64
        var deadline: Date
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now: Date
        var sleepers: [Sleeper] = []
        var nextID: UInt64 = 0
        /// Sleeps cancelled before they registered.
        var cancelled: Set<UInt64> = []
    }

    private let state: Mutex<State>

    public init(now: Date) {
        state = Mutex(State(now: now))
    }

    public func now() -> Date { state.withLock { $0.now } }

    /// How many sleeps are waiting right now.
    public var sleeperCount: Int { state.withLock { $0.sleepers.count } }

    /// The earliest deadline anyone sleeps until.
    public var nextDeadline: Date? { state.withLock { $0.sleepers.map(\.deadline).min() } }

    public func sleep(until deadline: Date) async throws {
        try Task.checkCancellation()
        let id = state.withLock { s -> UInt64 in
            s.nextID += 1
            return s.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                let immediate: Result<Void, any Error>? = state.withLock { s in
                    if s.cancelled.remove(id) != nil { return .failure(CancellationError()) }
                    if s.now >= deadline { return .success(()) }
                    s.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: c))
                    return nil
                }
                if let immediate { c.resume(with: immediate) }
            }
        } onCancel: {
            let waiting = state.withLock { s -> CheckedContinuation<Void, any Error>? in
                if let i = s.sleepers.firstIndex(where: { $0.id == id }) {
                    return s.sleepers.remove(at: i).continuation
                }
                s.cancelled.insert(id)
                return nil
            }
            waiting?.resume(throwing: CancellationError())
        }
    }

    /// Sets the time to `date` (never backwards) and wakes the sleepers that are due.
    public func advance(to date: Date) {
        let due = state.withLock { s -> [Sleeper] in
            if date > s.now { s.now = date }
            let now = s.now
            let ready = s.sleepers.filter { $0.deadline <= now }
            s.sleepers.removeAll { $0.deadline <= now }
            return ready
        }
        for sleeper in due.sorted(by: { $0.deadline < $1.deadline }) { sleeper.continuation.resume() }
    }

    public func advance(by duration: Duration) {
        advance(to: now().addingTimeInterval(duration.seconds))
    }

    /// Waits (in real time, polling) until exactly `count` sleeps are waiting.
    public func waitForSleepers(_ count: Int, timeout: Duration = .seconds(10)) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while sleeperCount != count {
            guard clock.now < deadline else {
                throw ManualClockTimeout(description: "expected \(count) sleepers, have \(sleeperCount) after \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(1))
        }
    }
}

/// `ManualSchedulerClock.waitForSleepers` gave up.
public struct ManualClockTimeout: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}
