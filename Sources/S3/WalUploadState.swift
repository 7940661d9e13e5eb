import BackstopCore
import Foundation

/// How the WAL archive's uploads to S3 went, in `$BACKUP_DIR/.state/s3_wal_uploads.json`
/// (atomic): which files are uploaded lives in the markers beside the archive
/// (`postgres/wal/.s3/`); this keeps the run outcomes, so S3UploadFailing fires for WAL uploads
/// as it does for backup uploads (the state store reads both), and the two S3 gauges of the
/// archive survive a restart.
public struct WalUploadState: Codable, Sendable, Equatable {
    public var consecutiveFailures = 0
    public var lastFailure: Double?
    public var lastSuccess: Double?
    public var lastError: String?
    /// `archived_at` (Unix time) of the newest segment in the bucket; 0 when none.
    public var lastSegment: Double = 0
    /// Archived files not in the bucket yet, after the last run.
    public var pending = 0

    enum CodingKeys: String, CodingKey {
        case consecutiveFailures = "consecutive_failures"
        case lastFailure = "last_failure"
        case lastSuccess = "last_success"
        case lastError = "last_error"
        case lastSegment = "last_segment"
        case pending
    }

    public init() {}

    public static func path(backupDir: String) -> String { backupDir + "/.state/s3_wal_uploads.json" }

    /// nil when no WAL upload has run yet.
    public static func load(backupDir: String) -> WalUploadState? {
        guard let bytes = try? FileSystem.read(path(backupDir: backupDir)) else { return nil }
        return try? JSONDecoder().decode(WalUploadState.self, from: Data(bytes))
    }

    public func save(backupDir: String) throws {
        try FileSystem.createDirectory(backupDir + "/.state")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write(Array(try encoder.encode(self)) + [10], to: Self.path(backupDir: backupDir), mode: 0o640)
    }
}
