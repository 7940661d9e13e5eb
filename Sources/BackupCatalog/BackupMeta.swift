import BackstopCore
import Foundation

/// The `.meta` JSON beside every backup. The first six fields are the ones the old scripts
/// wrote (so their tools keep working); the rest is what verification and restore need.
/// Written only after the data is in place, atomically, so a `.meta` with
/// `status: completed` always describes a complete, checksummed backup.
public struct BackupMeta: Codable, Sendable, Equatable {
    /// One file of a multi-file backup (a base backup's tars and manifest).
    public struct FileEntry: Codable, Sendable, Equatable {
        public var name: String
        public var sizeBytes: UInt64
        public var sha256: String
        public init(name: String, sizeBytes: UInt64, sha256: String) {
            self.name = name
            self.sizeBytes = sizeBytes
            self.sha256 = sha256
        }
        enum CodingKeys: String, CodingKey {
            case name, sha256
            case sizeBytes = "size_bytes"
        }
    }

    // The scripts' fields.
    public var timestamp: String
    public var type: String
    public var database: String?
    public var size: String?
    public var file: String?
    public var status: String?
    // Backstop's.
    public var kind: BackupKind?
    public var target: String?
    public var sizeBytes: UInt64?
    public var uncompressedBytes: UInt64?
    public var sha256: String?
    public var durationSeconds: Double?
    public var startedAt: String?
    public var finishedAt: String?
    public var compression: String?
    public var serverVersion: String?
    public var toolVersion: String?
    public var startLSN: String?
    public var endLSN: String?
    public var timeline: Int?
    public var files: [FileEntry]?
    // Redis snapshots.
    /// `redis_version` of the server the snapshot came from.
    public var redisVersion: String?
    /// The RDB format version from the snapshot's header.
    public var rdbVersion: Int?
    /// The master at the time of the snapshot (as Sentinel named it, or REDIS_HOST:PORT).
    public var master: String?
    /// The server that produced the snapshot, and its role (`master` or `replica`).
    public var source: String?
    public var sourceRole: String?
    /// Keys (and keys with a TTL) per logical database (`db0`…), from `INFO keyspace` taken
    /// right before the snapshot.
    public var keys: [String: Int]?
    public var expires: [String: Int]?
    /// `replication` or `bgsave`.
    public var method: String?
    /// `verified` (the RDB's CRC-64 matched while streaming) or `disabled` (`rdbchecksum no`).
    public var rdbChecksum: String?
    /// `age` when the file is age-encrypted (gzip inside age); nil for a plain gzip file.
    public var encryption: String?
    /// Fingerprints of the age recipients (SHA-256 of the `age1…` string, 16 hex digits),
    /// comma-separated: which key restores this backup. One string keeps the fast decoder flat.
    public var recipients: String?

    enum CodingKeys: String, CodingKey {
        case timestamp, type, database, size, file, status, kind, target, sha256, compression, timeline, files
        case sizeBytes = "size_bytes"
        case uncompressedBytes = "uncompressed_bytes"
        case durationSeconds = "duration_seconds"
        case startedAt = "started_at"
        case finishedAt = "finished_at"
        case serverVersion = "server_version"
        case toolVersion = "tool_version"
        case startLSN = "start_lsn"
        case endLSN = "end_lsn"
        case redisVersion = "redis_version"
        case rdbVersion = "rdb_version"
        case master, source, keys, expires, method
        case sourceRole = "source_role"
        case rdbChecksum = "rdb_checksum"
        case encryption, recipients
    }

    public init(kind: BackupKind, target: String, file: String, startedAt: Double, finishedAt: Double,
                sizeBytes: UInt64, sha256: String?, compression: String?, serverVersion: String?) {
        timestamp = WallClock.fileStamp(startedAt)
        type = kind.legacyType
        database = kind == .redis ? nil : target
        size = HumanSize.format(sizeBytes)
        self.file = file
        status = "completed"
        self.kind = kind
        self.target = target
        self.sizeBytes = sizeBytes
        self.sha256 = sha256
        durationSeconds = ((finishedAt - startedAt) * 1000).rounded() / 1000
        self.startedAt = WallClock.rfc3339(startedAt)
        self.finishedAt = WallClock.rfc3339(finishedAt)
        self.compression = compression
        self.serverVersion = serverVersion
        toolVersion = "backstop \(BuildInfo.version)"
    }

    /// A `.meta` with only the two required fields (the fast decoder fills in the rest).
    init(timestamp: String, type: String) {
        self.timestamp = timestamp
        self.type = type
    }

    /// Whether this `.meta` claims a finished backup.
    public var isCompleted: Bool { status == "completed" || status == "success" }

    /// The `.meta` path for a backup file or folder: the data path plus `.meta`.
    public static func path(for dataPath: String) -> String {
        var p = dataPath
        while p.hasSuffix("/") { p.removeLast() }
        return p + ".meta"
    }

    public func encoded() throws -> [UInt8] {
        try JSONCoding.encode(self, newline: true)
    }

    public static func decode(_ bytes: [UInt8]) throws -> BackupMeta {
        if let meta = MetaFastDecoder.decode(bytes) { return meta }
        return try JSONCoding.decode(BackupMeta.self, from: bytes)
    }

    /// Reads the `.meta` of a backup; nil when there is none.
    public static func read(forData dataPath: String) throws -> BackupMeta? {
        let metaPath = path(for: dataPath)
        return try read(at: AT_FDCWD, name: metaPath, path: metaPath)
    }

    /// Reads the `.meta` `name` in the open folder `directory` (`path` is its full path, for
    /// errors): one openat, fstat and read, no lookup of the whole path; nil when there is none.
    static func read(at directory: Int32, name: String, path metaPath: String) throws -> BackupMeta? {
        let fd = openat(directory, name, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw FileSystemError.errno(errno, "open", metaPath)
        }
        defer { close(fd) }
        // One read of the file's size (a .meta is a few hundred bytes): no 64 KiB buffer per
        // file, which matters when listing 100,000 backups.
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FileSystemError.errno(errno, "fstat", metaPath) }
        let size = max(Int(st.st_size), 0)
        let bytes = try [UInt8](unsafeUninitializedCapacity: size + 1) { buffer, count in
            var done = 0
            while done < size + 1 {
                let n = Glibc.read(fd, buffer.baseAddress! + done, size + 1 - done)
                if n < 0 && errno == EINTR { continue }
                if n < 0 { throw FileSystemError.errno(errno, "read", metaPath) }
                if n == 0 { break }
                done += n
            }
            count = done
        }
        if bytes.count > size { return try decode(try FileSystem.read(metaPath)) }  // grew while read: read it whole
        return try decode(bytes)
    }

    /// Writes the `.meta` atomically (temp file, fsync, rename, folder fsync).
    public func write(forData dataPath: String) throws {
        try AtomicFile.write(try encoded(), to: BackupMeta.path(for: dataPath), mode: 0o640)
    }
}

/// Sizes as `du -h`/`ls -h` print them ("150M"), for the scripts' `size` field.
public enum HumanSize {
    public static func format(_ bytes: UInt64) -> String {
        let units = ["", "K", "M", "G", "T", "P"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        if unit == 0 { return "\(bytes)" }
        return value < 10 ? String(format: "%.1f", value) + units[unit] : "\(Int(value.rounded()))\(units[unit])"
    }
}
