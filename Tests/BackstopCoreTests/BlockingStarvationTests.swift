import BackstopCore
import Foundation
import Synchronization
import Testing

/// A few blocking calls that hang (a webhook receiver that never answers, a frozen server)
/// must not delay the next `Blocking.run` (the alerts file, a health probe). Dispatch's
/// shared concurrent queues start only about one thread per core and add more after ~1 s
/// of stall; the overcommit pool behind serial queues starts one at once.
@Suite struct BlockingStarvationTests {
    @Test func hangingCallsDoNotDelayTheNextOne() async throws {
        let release = DispatchSemaphore(value: 0)
        let hanging = 4 * ProcessInfo.processInfo.activeProcessorCount
        var tasks: [Task<Void, Never>] = []
        for _ in 0..<hanging {
            tasks.append(Task { await Blocking.run { release.wait() } })
        }
        try await Task.sleep(for: .milliseconds(200))
        let start = MonotonicClock.seconds()
        let value = await Blocking.run { 42 }
        let waited = MonotonicClock.seconds() - start
        for _ in 0..<hanging { release.signal() }
        for task in tasks { await task.value }
        #expect(value == 42)
        #expect(waited < 0.5, "a trivial Blocking.run waited \(waited) s behind \(hanging) hanging calls")
    }

    @Test func aStormOfHangingCallsStartsNoMoreThanTheCapOfThreads() async throws {
        func threads() -> Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? 0 }
        let before = threads()
        let release = DispatchSemaphore(value: 0)
        let calls = Blocking.maxThreads + 40
        let done = Counter()
        var tasks: [Task<Void, Never>] = []
        for _ in 0..<calls {
            tasks.append(Task { await Blocking.run { release.wait(); done.increment() } })
        }
        try await Task.sleep(for: .milliseconds(500))
        let during = threads()
        for _ in 0..<calls { release.signal() }
        for task in tasks { await task.value }
        #expect(done.value == calls, "every queued call ran once the threads freed up")
        #expect(during - before <= Blocking.maxThreads + 2, "\(during - before) new threads for \(calls) hanging calls (cap \(Blocking.maxThreads))")
        #expect(during - before >= Blocking.maxThreads / 2, "the pool did not grow while calls hung: \(during - before)")
    }
}

/// A thread-safe count (a `Mutex`).
final class Counter: Sendable {
    private let count = Mutex(0)
    func increment() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}
