import BackstopCore
import Foundation

/// The record beside each archived file: `postgres/wal/<name>.meta` (JSON) for
/// `postgres/wal/<name>.gz` (or `<name>.gz.age`, which `file` names). Written (atomically) only after the `.gz` is fsynced and renamed
/// into place, so a `.meta` always describes a complete file; a `.gz` without one is the
/// leftover of an interrupted store and is replaced by the next store of that name.
///
/// Two checksums: `sha256` of the stored `.gz` (what `sha256sum` prints, for verify and S3)
/// and `wal_sha256` of the WAL bytes themselves, so a second push of the same segment is
/// recognised as identical whatever the compression level was.
public struct WalArchiveMeta: Codable, Sendable, Equatable {
    /// The WAL file name (`000000010000000000000003`, `00000002.history`, …).
    public var name: String
    /// The stored file (`<name>.gz`).
    public var file: String
    public var sizeBytes: UInt64
    public var sha256: String
    public var walBytes: UInt64
    public var walSHA256: String
    /// RFC 3339: when the file reached the archive (the newest commit it holds is not later).
    public var archivedAt: String
    /// `pg_receivewal` or `archive_command`.
    public var source: String
    public var toolVersion: String
    /// `age` when the stored file is `<name>.gz.age`; absent for plain gzip.
    public var encryption: String?
    /// Fingerprints of the recipients (comma-separated), as in a backup's `.meta`.
    public var recipients: String?

    enum CodingKeys: String, CodingKey {
        case name, file, sha256, source, encryption, recipients
        case sizeBytes = "size_bytes"
        case walBytes = "wal_bytes"
        case walSHA256 = "wal_sha256"
        case archivedAt = "archived_at"
        case toolVersion = "tool_version"
    }

    public init(name: String, file: String, sizeBytes: UInt64, sha256: String, walBytes: UInt64, walSHA256: String,
                archivedAt: Double, source: String) {
        self.name = name
        self.file = file
        self.sizeBytes = sizeBytes
        self.sha256 = sha256
        self.walBytes = walBytes
        self.walSHA256 = walSHA256
        self.archivedAt = WallClock.rfc3339(archivedAt)
        self.source = source
        toolVersion = "backstop \(BuildInfo.version)"
    }

    /// Seconds since the epoch of `archivedAt` (0 when unreadable).
    public var archivedAtSeconds: Double { WallClock.parseRFC3339(archivedAt) ?? 0 }

    public func encoded() throws -> [UInt8] {
        try JSONCoding.encode(self, escapingSlashes: true, newline: true)
    }

    public static func decode(_ bytes: [UInt8]) throws -> WalArchiveMeta {
        try JSONCoding.decode(WalArchiveMeta.self, from: bytes)
    }
}
