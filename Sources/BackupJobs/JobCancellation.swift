import BackstopCore
import BackstopMetrics
import Foundation
import Synchronization

/// Lets a scheduler stop a running backup: `cancel()` sends SIGTERM to the child program
/// in hand (pg_dump, pg_basebackup), which makes the job fail the ordinary way — temporary
/// file removed, attempt recorded — and keeps later steps of the run from starting.
///
/// Thread-safe through its `Mutex`.
public final class JobCancellation: Sendable {
    private struct State {
        var cancelled = false
        var child: pid_t?
    }

    private let state = Mutex(State())

    public init() {}

    public var isCancelled: Bool { state.withLock { $0.cancelled } }

    /// Throws `BackupCancelled` when cancelled (for jobs without a child: the Redis snapshot
    /// checks between chunks, keepalives and polls).
    public func check() throws {
        if isCancelled { throw BackupCancelled() }
    }

    public func cancel() {
        let child = state.withLock { s -> pid_t? in
            s.cancelled = true
            return s.child
        }
        if let child { ChildProcess.stop(child) }
    }

    /// Called by a job right after it started a child; stops it at once if already cancelled.
    func attach(_ pid: pid_t) {
        let cancelled = state.withLock { s -> Bool in
            s.child = pid
            return s.cancelled
        }
        if cancelled { ChildProcess.stop(pid) }
    }

    func detach() { state.withLock { $0.child = nil } }
}

/// The job was cancelled (shutdown); nothing was kept.
public struct BackupCancelled: Error, CustomStringConvertible, Sendable {
    public init() {}
    public var description: String { "cancelled (shutdown) before the backup finished; no backup file was kept" }
}
