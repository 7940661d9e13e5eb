import Synchronization

/// Runs blocking `work` on the blocking pool and answers `onTimeout()` if it has not
/// finished after `timeout`. A C call cannot be interrupted, so the work keeps its thread
/// until the library's own timeout fires; its late result is dropped. The caller — a health
/// probe, a scrape-adjacent task — is never held longer than `timeout`. The timer is a
/// sleeping task, not a thread: nothing here blocks the cooperative pool.
public func withTimeout<T: Sendable>(_ timeout: Duration, work: @escaping @Sendable () -> T, onTimeout: @escaping @Sendable () -> T) async -> T {
    let slot = ResumeOnce<T>()
    let timer = Mutex<Task<Void, Never>?>(nil)
    let value = await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
        slot.set(continuation)
        Blocking.start { slot.resume(work()) }
        timer.withLock {
            $0 = Task {
                do {
                    try await Task.sleep(for: timeout)
                    slot.resume(onTimeout())
                } catch {}
            }
        }
    }
    timer.withLock { $0?.cancel() }
    return value
}

/// A continuation resumed by whichever side comes first; later calls are ignored.
private final class ResumeOnce<T: Sendable>: Sendable {
    private let state = Mutex<CheckedContinuation<T, Never>?>(nil)

    func set(_ c: CheckedContinuation<T, Never>) { state.withLock { $0 = c } }

    func resume(_ value: T) {
        let c = state.withLock { s -> CheckedContinuation<T, Never>? in
            let c = s
            s = nil
            return c
        }
        c?.resume(returning: value)
    }
}
