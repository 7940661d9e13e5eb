import BackstopCore
import Foundation
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
}
