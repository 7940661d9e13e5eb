import BackstopCore
import Foundation

/// The last attempt of each backup job (kind + target), kept in
/// `$BACKUP_DIR/.state/attempts.json` so that "the last run failed" survives a restart: the
/// catalog only holds the backups that succeeded.
///
/// A run stopped by a shutdown goes into `interrupted`, beside the last finished attempt and
/// not over it: it proves nothing about the job, so the result BackupFailed reads stays the
/// one of the last run that finished; the next finished attempt of the key removes it.
public struct AttemptsRecord: Codable, Sendable, Equatable {
    public struct Attempt: Codable, Sendable, Equatable {
        public var kind: String
        public var target: String
        public var startedAt: Double
        public var finishedAt: Double
        public var success: Bool
        public var sizeBytes: UInt64?
        public var message: String?
        /// True for a run stopped by a shutdown (absent otherwise, as in older files).
        public var interrupted: Bool?

        public init(kind: String, target: String, startedAt: Double, finishedAt: Double, success: Bool, sizeBytes: UInt64?, message: String?,
                    interrupted: Bool = false) {
            self.kind = kind
            self.target = target
            self.startedAt = startedAt
            self.finishedAt = finishedAt
            self.success = success
            self.sizeBytes = sizeBytes
            self.message = message
            self.interrupted = interrupted ? true : nil
        }

        public var durationSeconds: Double { max(0, finishedAt - startedAt) }

        enum CodingKeys: String, CodingKey {
            case kind, target, success, message, interrupted
            case startedAt = "started_at"
            case finishedAt = "finished_at"
            case sizeBytes = "size_bytes"
        }
    }

    /// Keyed by `kind/target`: the last attempt that finished (succeeded or failed).
    public var attempts: [String: Attempt] = [:]
    /// Keyed by `kind/target`: a run stopped by a shutdown after the last finished attempt.
    public var interrupted: [String: Attempt] = [:]

    public init() {}

    enum CodingKeys: String, CodingKey { case attempts, interrupted }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        attempts = try container.decodeIfPresent([String: Attempt].self, forKey: .attempts) ?? [:]
        interrupted = try container.decodeIfPresent([String: Attempt].self, forKey: .interrupted) ?? [:]
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(attempts, forKey: .attempts)
        if !interrupted.isEmpty { try container.encode(interrupted, forKey: .interrupted) }
    }

    public static func path(backupDir: String) -> String { backupDir + "/.state/attempts.json" }

    /// Reads the record; a missing file is an empty record, a damaged one too (it is only a
    /// cache of facts, never the only copy of a backup).
    public static func load(backupDir: String) -> AttemptsRecord {
        guard let bytes = try? FileSystem.read(path(backupDir: backupDir)),
              let record = try? JSONCoding.decode(AttemptsRecord.self, from: bytes) else { return AttemptsRecord() }
        return record
    }

    /// Adds an attempt and rewrites the file atomically. Read-modify-write under the caller's
    /// job lock; different jobs touch different keys, and the file lock below serialises them.
    public static func record(_ attempt: Attempt, backupDir: String) throws {
        let lock = try FileLockWait.acquire(path: backupDir + "/.state/attempts.lock")
        defer { lock.release() }
        var record = load(backupDir: backupDir)
        let key = attempt.kind + "/" + attempt.target
        if attempt.interrupted == true {
            record.interrupted[key] = attempt
        } else {
            record.attempts[key] = attempt
            record.interrupted[key] = nil
        }
        try AtomicFile.write(try JSONCoding.encode(record, escapingSlashes: true), to: path(backupDir: backupDir), mode: 0o640)
    }
}

/// A short-wait exclusive lock for the attempts file (two jobs finishing at once).
enum FileLockWait {
    static func acquire(path: String) throws -> FileLock {
        var lastError: (any Error)?
        for _ in 0..<100 {
            do { return try FileLock(path: path, purpose: "updating attempts.json") } catch let error as FileLock.Held {
                lastError = error
                usleep(20_000)
            }
        }
        throw lastError ?? FileSystemError.errno(EAGAIN, "lock", path)
    }
}
