#if canImport(Glibc)
import Glibc
#endif
import BackstopCore
import Foundation

/// The proof that one archived file is in the bucket: `postgres/wal/.s3/<name>.json`, written
/// (atomically) only after both the `.gz` and its `.meta` were confirmed by S3, with the
/// SHA-256 of the `.gz` that went. A restart uploads exactly the files without a marker (or
/// whose marker names other bytes), and local retention — with S3 on — never removes a file
/// that has none, so a segment is never lost between the disk and the bucket.
///
/// The folder is hidden: listings, `contents()` and verify of the archive never take it for WAL.
public struct WalUploadMarker: Codable, Sendable, Equatable {
    public var name: String
    /// The object key of the `.gz` (with BACKUP_S3_PREFIX).
    public var key: String
    /// SHA-256 of the `.gz` uploaded (the `.meta`'s `sha256`).
    public var sha256: String
    public var sizeBytes: UInt64
    /// RFC 3339.
    public var uploadedAt: String
    /// The `.meta`'s `archived_at` (the newest commit the file holds is not later).
    public var archivedAt: String

    enum CodingKeys: String, CodingKey {
        case name, key, sha256
        case sizeBytes = "size_bytes"
        case uploadedAt = "uploaded_at"
        case archivedAt = "archived_at"
    }

    public init(meta: WalArchiveMeta, key: String, uploadedAt: Double) {
        name = meta.name
        self.key = key
        sha256 = meta.sha256
        sizeBytes = meta.sizeBytes
        self.uploadedAt = WallClock.rfc3339(uploadedAt)
        archivedAt = meta.archivedAt
    }

    /// `postgres/wal/.s3`.
    public static func directory(of archive: WalArchive) -> String { archive.directory + "/.s3" }

    public static func path(_ name: String, in archive: WalArchive) -> String { directory(of: archive) + "/" + name + ".json" }

    /// The marker of `name`, nil when there is none (or it does not decode: then it is uploaded again).
    public static func read(_ name: String, in archive: WalArchive) -> WalUploadMarker? {
        guard let bytes = try? FileSystem.read(path(name, in: archive)) else { return nil }
        return try? JSONDecoder().decode(WalUploadMarker.self, from: Data(bytes))
    }

    /// Every marker in the folder, by file name.
    public static func all(in archive: WalArchive) -> [String: WalUploadMarker] {
        var out: [String: WalUploadMarker] = [:]
        for file in (try? FileSystem.list(directory(of: archive))) ?? [] where file.hasSuffix(".json") && !file.hasPrefix(".") {
            let name = String(file.dropLast(5))
            if let marker = read(name, in: archive) { out[name] = marker }
        }
        return out
    }

    /// Written after S3 confirmed the objects (temporary file, fsync, rename).
    public func write(in archive: WalArchive) throws {
        try FileSystem.createDirectory(Self.directory(of: archive), mode: 0o750)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write(Array(try encoder.encode(self)) + [10], to: Self.path(name, in: archive), mode: 0o640)
    }

    /// Removed with the local file it vouches for (retention).
    public static func remove(_ name: String, in archive: WalArchive) {
        unlink(path(name, in: archive))
    }
}
