import Foundation
import Synchronization

/// The pids of the children not yet waited for, and whether `stopAll` was called. Sendable
/// through its `Mutex`; `kill` runs under the lock, so a pid is signalled only while it is
/// still ours (it leaves the set before it is reaped).
final class LiveChildren: Sendable {
    private struct State {
        var pids: Set<pid_t> = []
        var stopping = false
    }

    private let state = Mutex(State())

    /// A child just started; stopped at once if a stop was asked for meanwhile.
    func adopt(_ pid: pid_t) {
        state.withLock { s in
            s.pids.insert(pid)
            if s.stopping { ChildProcess.stop(pid) }
        }
    }

    /// The child ended (waited for, not yet reaped).
    func release(_ pid: pid_t) {
        _ = state.withLock { $0.pids.remove(pid) }
    }

    func stopAll() {
        state.withLock { s in
            s.stopping = true
            for pid in s.pids { ChildProcess.stop(pid) }
        }
    }
}
