import BackstopCore
import Foundation

/// What is on disk after a cleanup, per kind and target: the answer to "how far back can I
/// restore, and what does it cost?". Written as `backup_inventory_YYYYMMDD.txt` and `.json`.
public struct BackupInventory: Sendable, Equatable, Codable {
    public struct Group: Sendable, Equatable, Codable {
        public var kind: String
        public var target: String
        public var count: Int
        public var totalBytes: UInt64
        public var oldest: String
        public var newest: String
        /// Seconds between the oldest and the newest good backup: the span of points in time
        /// that can be restored from this kind and target.
        public var restoreWindowSeconds: Double

        enum CodingKeys: String, CodingKey {
            case kind, target, count, oldest, newest
            case totalBytes = "total_bytes"
            case restoreWindowSeconds = "restore_window_seconds"
        }
    }

    /// The copies in the object store, when S3 is on.
    public struct Remote: Sendable, Equatable, Codable {
        /// `s3://bucket/prefix`.
        public var location: String
        public var groups: [Group]
        /// Why the remote side could not be listed (then `groups` is empty).
        public var error: String?

        public init(location: String, entries: [CatalogEntry], error: String? = nil) {
            self.location = location
            groups = BackupInventory.groups(of: entries)
            self.error = error
        }
    }

    public var generatedAt: String
    public var backupDir: String
    public var groups: [Group]
    /// nil when S3 is off.
    public var remote: Remote?
    /// Bytes of every file under BACKUP_DIR (backups, metas, logs, state).
    public var backupDirBytes: UInt64
    public var filesystemTotalBytes: UInt64
    public var filesystemFreeBytes: UInt64

    enum CodingKeys: String, CodingKey {
        case groups, remote
        case generatedAt = "generated_at"
        case backupDir = "backup_dir"
        case backupDirBytes = "backup_dir_bytes"
        case filesystemTotalBytes = "filesystem_total_bytes"
        case filesystemFreeBytes = "filesystem_free_bytes"
    }

    /// Groups the good entries by kind and target (incomplete ones are not backups).
    /// The Unix start of the UTC day of an inventory file's name (`backup_inventory_20260107.txt`
    /// or `.json`, on disk or under `reports/` in the bucket); nil for any other name. Cleanup
    /// removes the ones whose day is past the retention period.
    public static func day(ofFileName name: String) -> Double? {
        guard name.hasPrefix("backup_inventory_"), name.hasSuffix(".txt") || name.hasSuffix(".json") else { return nil }
        let stamp = name.dropFirst(17).prefix { $0 != "." }
        guard stamp.count == 8, stamp.allSatisfy(\.isNumber) else { return nil }
        return WallClock.parseFileStamp(stamp + "_000000")
    }

    public init(entries: [CatalogEntry], backupDir: String, now: Double, backupDirBytes: UInt64,
                filesystem: (total: UInt64, free: UInt64)) {
        groups = Self.groups(of: entries)
        generatedAt = WallClock.rfc3339(now)
        self.backupDir = backupDir
        self.backupDirBytes = backupDirBytes
        filesystemTotalBytes = filesystem.total
        filesystemFreeBytes = filesystem.free
    }

    /// Per kind and target: count, bytes, oldest, newest of the good entries.
    static func groups(of entries: [CatalogEntry]) -> [Group] {
        var byKey: [String: (kind: String, target: String, count: Int, bytes: UInt64, oldest: Double, newest: Double)] = [:]
        for e in entries where e.isGood {
            let key = e.kind.rawValue + "/" + e.target
            var g = byKey[key] ?? (e.kind.rawValue, e.target, 0, 0, e.startedAt, e.startedAt)
            g.count += 1
            g.bytes += e.sizeBytes
            g.oldest = min(g.oldest, e.startedAt)
            g.newest = max(g.newest, e.startedAt)
            byKey[key] = g
        }
        return byKey.keys.sorted().map { key in
            let g = byKey[key]!
            return Group(kind: g.kind, target: g.target, count: g.count, totalBytes: g.bytes,
                         oldest: WallClock.rfc3339(g.oldest), newest: WallClock.rfc3339(g.newest),
                         restoreWindowSeconds: g.newest - g.oldest)
        }
    }

    public func json() throws -> [UInt8] {
        try JSONCoding.encode(self, newline: true)
    }

    public func text() -> String {
        var lines = ["Backup inventory of \(backupDir) at \(generatedAt)", ""]
        lines += Self.table(groups)
        lines.append("")
        lines.append("BACKUP_DIR uses \(backupDirBytes) bytes; file system \(filesystemFreeBytes) of \(filesystemTotalBytes) bytes free")
        if let remote {
            lines.append("")
            lines.append("Remote copies in \(remote.location)")
            lines.append("")
            if let error = remote.error {
                lines.append("could not be listed: \(error)")
            } else {
                lines += Self.table(remote.groups)
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func table(_ groups: [Group]) -> [String] {
        var rows = [["KIND", "TARGET", "COUNT", "BYTES", "OLDEST", "NEWEST", "RESTORE WINDOW"]]
        for g in groups {
            rows.append([g.kind, g.target, "\(g.count)", "\(g.totalBytes)", g.oldest, g.newest,
                         String(format: "%.1f days", g.restoreWindowSeconds / 86_400)])
        }
        let widths = (0..<rows[0].count).map { c in rows.map { $0[c].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
    }
}
