/// Scheduled job names and the backup kind each one makes, in one place (the scheduler's
/// catch-up, BackupStale's default thresholds and the CLI all use it).
public enum JobKinds {
    /// `full` → `postgres_full`, `incremental` → `postgres_base`, `redis` → `redis`.
    public static let backupJobs: [(job: String, kind: String)] = [
        ("full", "postgres_full"), ("incremental", "postgres_base"), ("redis", "redis"),
    ]

    /// The `kind` label of the backups `job` makes; nil for cleanup and drill.
    public static func backupKind(job: String) -> String? {
        backupJobs.first { $0.job == job }?.kind
    }
}
