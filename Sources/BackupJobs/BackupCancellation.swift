import Synchronization

/// A flag a service sets (SIGTERM, shutdown) to stop a running backup job. The job checks it
/// between chunks of data and between attempts; when set, the chunk loop throws, the
/// pipeline's temporary file is removed, and no backup file or `.meta` appears.
///
/// Waits for data are bounded by the job's own timeout (`BACKUP_REDIS_TIMEOUT`), so a job
/// blocked in a read notices the flag at the latest after that many seconds.
///
/// `Sendable` through `Mutex`.
public final class BackupCancellation: Sendable {
    private let flag = Mutex(false)

    public init() {}

    /// Asks the job to stop as soon as it can.
    public func cancel() { flag.withLock { $0 = true } }

    public var isCancelled: Bool { flag.withLock { $0 } }

    /// Throws `BackupCancelled` when cancelled.
    public func check() throws {
        if isCancelled { throw BackupCancelled() }
    }
}

/// The job was cancelled (shutdown); nothing was kept.
public struct BackupCancelled: Error, CustomStringConvertible, Sendable {
    public init() {}
    public var description: String { "cancelled (shutdown) before the backup finished; no backup file was kept" }
}
