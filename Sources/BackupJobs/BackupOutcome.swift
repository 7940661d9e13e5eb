import BackupCatalog

/// The result of one backup (one database, the globals, or one base backup).
public struct BackupOutcome: Sendable, Equatable {
    public var kind: BackupKind
    public var target: String
    public var path: String?
    public var success: Bool
    public var startedAt: Double
    public var finishedAt: Double
    public var sizeBytes: UInt64
    public var sha256: String?
    /// What failed (nil on success).
    public var message: String?
    /// The run was stopped by a shutdown (SIGTERM/SIGINT, the grace period over), not by a
    /// fault: it kept nothing, and it says nothing about whether the job works, so it neither
    /// fires nor clears BackupFailed (`success` is false, the previous result stands).
    public var interrupted: Bool
    /// Whether the backup is age-encrypted: a `.age` file, or a base-backup folder whose
    /// tar is (`backstop_backup_encrypted{kind}` and BackupNotEncrypted read it).
    public var encrypted: Bool

    public var durationSeconds: Double { max(0, finishedAt - startedAt) }

    /// The `result` label of `backstop_backup_runs_total`.
    public var result: String { success ? "success" : interrupted ? "interrupted" : "failure" }

    public init(kind: BackupKind, target: String, path: String?, success: Bool, startedAt: Double, finishedAt: Double,
                sizeBytes: UInt64, sha256: String?, message: String?, interrupted: Bool = false) {
        self.kind = kind
        self.target = target
        self.path = path
        self.success = success
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.sizeBytes = sizeBytes
        self.sha256 = sha256
        self.message = message
        self.interrupted = interrupted && !success
        encrypted = success && (path?.hasSuffix(".age") ?? false)
    }
}

/// A job that failed before or instead of producing outcomes (lock held, bad settings).
public struct BackupJobError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
