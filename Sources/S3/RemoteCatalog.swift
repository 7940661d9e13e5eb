import BackstopCore
import BackupCatalog
import Foundation

/// One backup in the bucket: its catalog entry (the `path` is the `s3://bucket/key` address,
/// kind/target/time read from the name and the `.meta` exactly as `BackupCatalog` reads them)
/// and the objects that make it up.
public struct RemoteBackup: Sendable {
    public var entry: CatalogEntry
    /// `postgres/app_full_20260107_020000.sql.gz`, `postgres/wal_20260107_030000` (no prefix).
    public var relativePath: String
    /// The data object (or, for a base backup, every object under `wal_STAMP/`).
    public var dataKeys: [String]
    /// The `.meta` object, nil when missing (then the backup is incomplete).
    public var metaKey: String?
    /// Bytes stored: data objects plus the `.meta`.
    public var storedBytes: UInt64
    /// Unix time of the newest data object's upload (the age of an incomplete leftover).
    public var lastModified: Double
    /// The object key of the data (single file) or of the folder (base backup).
    public var key: String
    /// The data object's storage class as the listing reports it (`STANDARD_IA`, `GLACIER`…).
    public var storageClass: String?
    /// An object the old scripts uploaded (`aws s3 cp`, no `.meta`, no Backstop marker).
    public var isLegacyUpload: Bool = false
    /// A `<db>_incremental_STAMP.tar.gz`: the old scripts' base backup, one tar of `wal_STAMP/`.
    public var isLegacyArchive: Bool = false

    /// A GLACIER / DEEP_ARCHIVE object: not readable until restored from the archive.
    public var isArchived: Bool { S3Settings.archiveClasses.contains(storageClass ?? "") }
}

/// What a listing of the bucket found.
public struct RemoteListing: Sendable {
    /// Newest first, like `BackupCatalog.list()`.
    public var backups: [RemoteBackup]
    /// `.meta` objects whose data is gone, with their upload time.
    public var orphanMetas: [(key: String, lastModified: Double)]
    /// `reports/backup_inventory_YYYYMMDD.txt`/`.json` keys with the day in their names.
    public var inventoryReports: [(key: String, day: Double)] = []
}

/// The backups in the bucket under `BACKUP_S3_PREFIX`: `postgres/` and `redis/` (`reports/`
/// and anything that is not a backup name are ignored). A data object is paired with its
/// `.meta`. One without it is either an interrupted Backstop upload (Backstop marks every
/// object it uploads with `x-amz-meta-backstop`), which is incomplete (never counted as good,
/// removed by retention once older than a day like a local leftover), or an upload of the old
/// scripts (`aws s3 cp` of the file alone, no marker), which is a good legacy backup dated by
/// its name — as is the old scripts' `postgres/<db>_incremental_STAMP.tar.gz` base backup.
public struct RemoteCatalog: Sendable {
    public let settings: S3Settings
    /// Where the local `.meta` copies are looked up first (they are the files uploaded).
    public let backupDir: String?

    public init(settings: S3Settings, backupDir: String?) {
        self.settings = settings
        self.backupDir = backupDir
    }

    /// The s3:// address of a key.
    public func address(_ key: String) -> String { "s3://\(settings.bucket)/\(key)" }

    /// One backup's objects, before its `.meta` is read.
    public struct Found: Sendable, Equatable {
        public var relativePath: String
        public var name: String
        public var kind: BackupKind
        public var nameTarget: String
        public var stamp: String
        public var isDirectory: Bool
        public var dataKeys: [String]
        public var metaKey: String?
        public var dataBytes: UInt64
        public var metaBytes: UInt64
        public var lastModified: Double
        public var storageClass: String? = nil
        /// The old scripts' `<db>_incremental_STAMP.tar.gz`.
        public var isLegacyArchive = false
        /// Set by `list()` for a data object without `.meta` and without Backstop's marker.
        public var isLegacyUpload = false

        public init(relativePath: String, name: String, kind: BackupKind, nameTarget: String, stamp: String, isDirectory: Bool,
                    dataKeys: [String], metaKey: String?, dataBytes: UInt64, metaBytes: UInt64, lastModified: Double) {
            self.relativePath = relativePath
            self.name = name
            self.kind = kind
            self.nameTarget = nameTarget
            self.stamp = stamp
            self.isDirectory = isDirectory
            self.dataKeys = dataKeys
            self.metaKey = metaKey
            self.dataBytes = dataBytes
            self.metaBytes = metaBytes
            self.lastModified = lastModified
        }
    }

    /// Groups a listing into backups (pure). Returns the backups (in key order) and the
    /// orphaned `.meta` objects.
    public static func group(_ objects: [S3Object], prefix: String) -> (found: [Found], orphanMetas: [(key: String, lastModified: Double)]) {
        let strip = prefix.isEmpty ? "" : prefix + "/"
        var byPath: [String: Found] = [:]
        var metas: [String: S3Object] = [:]
        for object in objects where object.key.hasPrefix(strip) {
            let rel = String(object.key.dropFirst(strip.count))
            let parts = rel.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count >= 2, parts[0] == "postgres" || parts[0] == "redis" else { continue }
            let folder = String(parts[0])
            let name = String(parts[1])
            guard !name.hasPrefix(".") else { continue }
            if parts.count == 2 && name.hasSuffix(".meta") {
                metas[folder + "/" + String(name.dropLast(5))] = object
                continue
            }
            let legacyArchive = Self.classifyLegacyArchive(name)
            guard let (kind, target, stamp) = BackupCatalog.classify(name) ?? legacyArchive, kind.folder == folder else { continue }
            let isDirectory = kind == .postgresBase && legacyArchive == nil
            // A base backup is a folder of objects; every other backup is one object.
            guard isDirectory ? parts.count == 3 && !parts[2].isEmpty : parts.count == 2 else { continue }
            let path = folder + "/" + name
            var f = byPath[path] ?? Found(relativePath: path, name: name, kind: kind, nameTarget: target, stamp: stamp,
                                          isDirectory: isDirectory, dataKeys: [], metaKey: nil, dataBytes: 0, metaBytes: 0, lastModified: 0)
            f.dataKeys.append(object.key)
            f.dataBytes += object.size
            f.isLegacyArchive = legacyArchive != nil
            f.storageClass = f.storageClass ?? object.storageClass
            f.lastModified = max(f.lastModified, WallClock.parseRFC3339(object.lastModified) ?? 0)
            byPath[path] = f
        }
        var orphans: [(key: String, lastModified: Double)] = []
        for (path, meta) in metas {
            if var f = byPath[path] {
                f.metaKey = meta.key
                f.metaBytes = meta.size
                byPath[path] = f
            } else {
                orphans.append((meta.key, WallClock.parseRFC3339(meta.lastModified) ?? 0))
            }
        }
        let found = byPath.keys.sorted().map { key in
            var f = byPath[key]!
            f.dataKeys.sort()
            return f
        }
        return (found, orphans.sorted { $0.key < $1.key })
    }

    /// `psscript_incremental_20260107_080000.tar.gz` → (postgres_base, `psscript`, stamp): the
    /// old scripts' upload of a base backup (the local `wal_STAMP/` folder in one tar).
    public static func classifyLegacyArchive(_ name: String) -> (BackupKind, String, String)? {
        guard name.hasSuffix(".tar.gz"), let range = BackupCatalog.lastRange(of: "_incremental_", in: name) else { return nil }
        let db = String(name[..<range.lowerBound])
        let stamp = String(name[range.upperBound...].dropLast(7))
        guard !db.isEmpty, stamp.count == 15, WallClock.parseFileStamp(stamp) != nil else { return nil }
        return (.postgresBase, db, stamp)
    }

    /// For an object the old scripts uploaded without a `.meta`: the `.meta` they would have
    /// written beside it locally (`timestamp`, `type`, `database`, `size`, `file`,
    /// `status: completed`; no checksum, so a restore checks the gzip stream only). nil when the
    /// object is missing or carries Backstop's marker (then a missing `.meta` is an interrupted
    /// upload, not a backup).
    public func legacyMeta(forKey key: String) async throws -> [UInt8]? {
        let name = FileSystem.lastComponent(of: key)
        guard let (kind, target, stamp) = BackupCatalog.classify(name) ?? Self.classifyLegacyArchive(name),
              let head = try await S3Client(settings: settings).head(key: key), head.header(S3Client.markerHeader) == nil else { return nil }
        let size = head.header("Content-Length").flatMap { UInt64($0) } ?? 0
        func quoted(_ s: String) -> String { "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }
        let json = "{\"timestamp\": \(quoted(stamp)), \"type\": \(quoted(kind.legacyType)), \"database\": \(quoted(target)), "
            + "\"size\": \(quoted(HumanSize.format(size))), \"file\": \(quoted(name)), \"status\": \"completed\"}\n"
        return Array(json.utf8)
    }

    /// How to restore the old scripts' base-backup archive, which Backstop does not unpack itself.
    public func legacyArchiveAdvice(key: String) -> String {
        let address = "s3://\(settings.bucket)/\(key)"
        return "\(address) is a base backup uploaded by the old scripts (one tar.gz of their wal_STAMP/ folder, no .meta). "
            + "To use it: `aws s3 cp \(address) - | tar -xzf - -C /backups/postgres` (check the top folder first with `tar -tzf`), "
            + "then `backstop list` shows it as postgres/wal_STAMP/ and pg_basebackup's base.tar.gz inside restores as a physical base backup"
    }

    /// Lists the bucket and reads every backup's `.meta` (the local copy when BACKUP_DIR still
    /// has the same backup, else a small GET, eight at a time). Throws when S3 cannot be read:
    /// a partial picture must never drive retention.
    public func list(kinds: Set<BackupKind>? = nil) async throws -> RemoteListing {
        let client = S3Client(settings: settings)
        let objects = try await client.list()
        var (found, orphans) = Self.group(objects, prefix: settings.prefix)
        if let kinds { found = found.filter { kinds.contains($0.kind) } }
        let metas = try await readMetas(found, client: client)
        try await markLegacyUploads(&found, client: client)
        var backups: [RemoteBackup] = []
        backups.reserveCapacity(found.count)
        for (f, metaResult) in zip(found, metas) {
            backups.append(backup(f, meta: metaResult))
        }
        backups.sort { ($0.entry.startedAt, $0.entry.name) > ($1.entry.startedAt, $1.entry.name) }
        var listing = RemoteListing(backups: backups, orphanMetas: orphans)
        let reports = settings.key(for: "reports/")
        for object in objects where object.key.hasPrefix(reports) {
            let name = String(object.key.dropFirst(reports.count))
            if !name.contains("/"), let day = BackupInventory.day(ofFileName: name) { listing.inventoryReports.append((object.key, day)) }
        }
        return listing
    }

    /// A backup from its objects and its decoded `.meta` (nil: missing or unreadable).
    public func backup(_ f: Found, meta: BackupMeta?) -> RemoteBackup {
        let dataKey = f.isDirectory ? (settings.key(for: f.relativePath)) : f.dataKeys[0]
        let started = meta?.startedAt.flatMap(WallClock.parseRFC3339) ?? WallClock.parseFileStamp(f.stamp) ?? 0
        let entry = CatalogEntry(path: address(dataKey), name: f.name, kind: f.kind,
                                 // The old scripts' base-backup tar names its database, as Backstop's
                                 // base backups' `.meta` does (the cluster target is PGDATABASE).
                                 target: f.isLegacyArchive ? f.nameTarget : BackupCatalog.target(kind: f.kind, nameTarget: f.nameTarget, meta: meta),
                                 startedAt: started, finishedAt: meta?.finishedAt.flatMap(WallClock.parseRFC3339),
                                 sizeBytes: f.dataBytes, meta: meta,
                                 state: f.isLegacyUpload ? .legacy : BackupCatalog.state(of: f.metaKey == nil ? nil : meta),
                                 isDirectory: f.isDirectory)
        return RemoteBackup(entry: entry, relativePath: f.relativePath, dataKeys: f.dataKeys, metaKey: f.metaKey,
                            storedBytes: f.dataBytes + f.metaBytes, lastModified: f.lastModified, key: dataKey,
                            storageClass: f.storageClass, isLegacyUpload: f.isLegacyUpload, isLegacyArchive: f.isLegacyArchive)
    }

    /// Asks S3 (HEAD, eight at a time) about every single-object backup that has no `.meta`:
    /// without Backstop's marker it is an upload of the old scripts, a good legacy backup.
    func markLegacyUploads(_ found: inout [Found], client: S3Client) async throws {
        // Backstop never writes `_incremental_` tars: those need no question.
        var legacy = found.indices.filter { found[$0].metaKey == nil && found[$0].isLegacyArchive }
        let candidates = found.indices.filter { found[$0].metaKey == nil && !found[$0].isDirectory && !found[$0].isLegacyArchive }
        try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
            var next = 0
            func add() {
                let index = candidates[next]
                next += 1
                let key = found[index].dataKeys[0]
                group.addTask { (index, try await client.head(key: key)?.header(S3Client.markerHeader) == nil) }
            }
            for _ in 0..<min(8, candidates.count) { add() }
            while let (index, isLegacy) = try await group.next() {
                if isLegacy { legacy.append(index) }
                if next < candidates.count { add() }
            }
        }
        for index in legacy { found[index].isLegacyUpload = true }
    }

    /// The `.meta` of each found backup, in order; nil where there is none or it does not decode.
    func readMetas(_ found: [Found], client: S3Client) async throws -> [BackupMeta?] {
        var results = [BackupMeta?](repeating: nil, count: found.count)
        var remote: [Int] = []
        for (i, f) in found.enumerated() where f.metaKey != nil {
            if let backupDir, let local = try? BackupMeta.read(forData: backupDir + "/" + f.relativePath) {
                results[i] = local
            } else {
                remote.append(i)
            }
        }
        try await withThrowingTaskGroup(of: (Int, BackupMeta?).self) { group in
            var next = 0
            func add() {
                let index = remote[next]
                next += 1
                let key = found[index].metaKey ?? ""
                group.addTask {
                    let bytes = try await client.get(key: key)
                    return (index, try? BackupMeta.decode(bytes))
                }
            }
            for _ in 0..<min(8, remote.count) { add() }
            while let (index, meta) = try await group.next() {
                results[index] = meta
                if next < remote.count { add() }
            }
        }
        return results
    }
}
