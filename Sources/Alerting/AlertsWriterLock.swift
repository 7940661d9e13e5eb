import BackstopCore

/// One writer of `alerts.json` at a time. `serve` holds this lock for its whole run; a
/// one-shot `backstop health` (or `/scripts/health-check.sh` from an old cron line) writes the
/// file only when it gets the lock, so the two never undo each other's file.
public enum AlertsWriterLock {
    public static func path(backupDir: String) -> String { backupDir + "/.state/alerts.lock" }

    /// Takes the lock at once or throws `FileLock.Held` naming the holder.
    public static func take(backupDir: String, purpose: String) throws -> FileLock {
        try FileSystem.createDirectory(backupDir + "/.state")
        return try FileLock(path: path(backupDir: backupDir), purpose: purpose)
    }

    /// For serve: waits up to `waiting` (a `backstop health` holds it for a moment; a serve
    /// being stopped until it has exited), then fails naming the holder.
    public static func acquire(backupDir: String, waiting: Duration) async throws -> FileLock {
        let clock = ContinuousClock()
        let deadline = clock.now + waiting
        while true {
            do {
                return try take(backupDir: backupDir, purpose: "backstop serve (writes alerts.json)")
            } catch let held as FileLock.Held {
                if clock.now >= deadline {
                    throw AlertsWriterBusy(description: "another process keeps \(backupDir)/alerts.json "
                        + "(\(held.holder.isEmpty ? held.path : held.holder)): run one `backstop serve` per BACKUP_DIR")
                }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }
}

/// Serve could not become the writer of alerts.json.
public struct AlertsWriterBusy: Error, CustomStringConvertible, Sendable {
    public var description: String
}
