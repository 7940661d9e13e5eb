import BackstopCore
import Foundation
import Synchronization

/// One backup found on disk.
public struct CatalogEntry: Sendable, Equatable {
    /// One `.meta`'s content, shared by the copies of an entry (never changed in place: a new
    /// value is a new box).
    private final class MetaBox: Sendable {
        static let none = MetaBox(nil)
        let value: BackupMeta?
        init(_ value: BackupMeta?) { self.value = value }
    }

    /// How far the catalog trusts the entry.
    public enum State: String, Sendable {
        /// `.meta` says completed and carries a SHA-256.
        case complete
        /// `.meta` from the old scripts (completed, no checksum): a good backup that `verify`
        /// can only check by decompressing.
        case legacy
        /// Data without a `.meta` (or a `.meta` that is not completed/readable): not a backup
        /// to rely on — an interrupted run or a foreign file.
        case incomplete
    }

    public var path: String
    public var name: String
    public var kind: BackupKind
    public var target: String
    /// Start time, from the `.meta` or else the file name's stamp.
    public var startedAt: Double
    public var finishedAt: Double?
    public var sizeBytes: UInt64
    /// The decoded `.meta` (nil: none, or unreadable). Kept in a shared, immutable box: the
    /// ~500 bytes of a `BackupMeta` inline made every entry of a 100,000-backup listing that
    /// large in each array it passes through (the listing, the sorted result, cleanup's plan),
    /// and every copy of an entry retained its two dozen strings one by one.
    public var meta: BackupMeta? {
        _read { yield metaBox.value }
        set { metaBox = newValue.map(MetaBox.init) ?? .none }
    }
    private var metaBox: MetaBox
    public var state: State
    public var isDirectory: Bool
    /// A `.meta` is there but could not be read (truncated, not JSON, a newer format). The
    /// backup is not trusted (`state` is `.incomplete`), but it is never deleted for that:
    /// the data may be fine, and only a person can tell.
    public var metaUnreadable: Bool = false

    public static func == (a: CatalogEntry, b: CatalogEntry) -> Bool {
        a.path == b.path && a.name == b.name && a.kind == b.kind && a.target == b.target && a.startedAt == b.startedAt
            && a.finishedAt == b.finishedAt && a.sizeBytes == b.sizeBytes && a.state == b.state && a.isDirectory == b.isDirectory
            && a.metaUnreadable == b.metaUnreadable && (a.metaBox === b.metaBox || a.meta == b.meta)
    }

    /// Counts as a good backup (for metrics, `--latest`, restore).
    public var isGood: Bool { state != .incomplete }

    /// An entry described from elsewhere (a remote listing: `path` is then an `s3://` address).
    public init(path: String, name: String, kind: BackupKind, target: String, startedAt: Double, finishedAt: Double?,
                sizeBytes: UInt64, meta: BackupMeta?, state: State, isDirectory: Bool) {
        self.path = path
        self.name = name
        self.kind = kind
        self.target = target
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.sizeBytes = sizeBytes
        self.metaBox = meta.map(MetaBox.init) ?? .none
        self.state = state
        self.isDirectory = isDirectory
    }
}

/// The backups under `$BACKUP_DIR`, read from the file names and `.meta` files. The disk is the
/// only source of truth: the folders are listed on every call, and the decoded `.meta` files
/// are cached in each folder's `CatalogIndex` only as long as each file's inode, size and times
/// are unchanged (`usesIndex: false` reads every file, as tests and checks compare against).
///
/// Layout (compatible with the old scripts):
/// `postgres/<db>_full_YYYYMMDD_HHMMSS.sql.gz`, `postgres/globals_YYYYMMDD_HHMMSS.sql.gz`,
/// `postgres/wal_YYYYMMDD_HHMMSS/` (base backups), `redis/redis_YYYYMMDD_HHMMSS.rdb.gz`, each
/// with `<path>.meta`. Hidden names (temporary files of runs in progress) are ignored.
public struct BackupCatalog: Sendable {
    public let backupDir: String
    /// Whether `list` may take a `.meta` from the folder's index (and refresh the index).
    public let usesIndex: Bool

    public init(backupDir: String, usesIndex: Bool = true) {
        self.backupDir = backupDir
        self.usesIndex = usesIndex
    }

    public var postgresDir: String { backupDir + "/postgres" }
    public var redisDir: String { backupDir + "/redis" }

    /// Every backup of the given kinds (all when nil), newest first. The `.meta` files are
    /// read and decoded on all cores (100,000 backups list in well under 2 s).
    public func list(kinds: Set<BackupKind>? = nil) -> [CatalogEntry] {
        scan(kinds: kinds, collectsOrphanMetas: false).entries
    }

    /// Every backup (as `list()`) and the `.meta` files (full paths) whose data file or folder
    /// the same folder listing did not show, from one read of each folder (cleanup's orphan
    /// check read the 150,000 names of a 100,000-backup catalog a second time). A name is an
    /// orphan candidate only: the caller still checks that its data is really gone (a
    /// symbolic link or an entry of unknown type is not counted as present here).
    public func listWithOrphanMetas() -> (entries: [CatalogEntry], orphanMetas: [String]) {
        scan(kinds: nil, collectsOrphanMetas: true)
    }

    private func scan(kinds: Set<BackupKind>?, collectsOrphanMetas: Bool) -> (entries: [CatalogEntry], orphanMetas: [String]) {
        struct Candidate {
            var folder: Int  // index into `folders`
            var name: String
            var kind: BackupKind
            var target: String
            var stamp: String
            /// From the folder listing's file type; nil when it did not say (then stat decides).
            var isDirectory: Bool?
        }
        // The folders stay open while the .meta files are read: each is opened (and each data
        // file's type looked up) relative to its folder, not through its full path.
        var folders: [(path: String, dir: OpaquePointer)] = []
        defer { for f in folders { closedir(f.dir) } }
        var found: [Candidate] = []
        var orphanMetas: [String] = []
        for folder in [postgresDir, redisDir] {
            guard let dir = opendir(folder) else { continue }
            folders.append((folder, dir))
            let folderName = FileSystem.lastComponent(of: folder)
            var metaNames: [String] = []
            var present = Set<String>()
            while let item = readdir(dir) {
                let name = withUnsafePointer(to: item.pointee.d_name) {
                    $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
                }
                let type = Int32(item.pointee.d_type)
                if collectsOrphanMetas, !name.hasPrefix(".") {
                    if name.hasSuffix(".meta") {
                        metaNames.append(name)
                    } else if type == Int32(DT_REG) || type == Int32(DT_DIR) {
                        present.insert(name)
                    }
                }
                guard name != ".", name != "..", !name.hasPrefix("."), !name.hasSuffix(".meta"),
                      let (kind, target, stamp) = Self.classify(name) else { continue }
                if let kinds, !kinds.contains(kind) { continue }
                guard kind.folder == folderName else { continue }
                let isDirectory: Bool? = type == Int32(DT_DIR) ? true : (type == Int32(DT_REG) ? false : nil)
                found.append(Candidate(folder: folders.count - 1, name: name, kind: kind, target: target, stamp: stamp,
                                       isDirectory: isDirectory))
            }
            for name in metaNames where !present.contains(String(name.dropLast(5))) { orphanMetas.append(folder + "/" + name) }
        }
        let candidates = found
        let folderPaths = folders.map(\.path)
        let folderFDs = folders.map { dirfd($0.dir) }
        let usesIndex = usesIndex
        let indexes = folders.map { usesIndex ? CatalogIndex.load(folder: dirfd($0.dir)) : .empty }
        let now = WallClock.now()
        let chunk = 256
        let chunks = (candidates.count + chunk - 1) / chunk
        // Each chunk's results are built by one thread in its own array and handed over once
        // under the lock (one lock per 256 backups, nothing shared while they are read).
        let handedOver = Mutex<[[Listed]]>(Array(repeating: [], count: chunks))
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            var local: [Listed] = []
            local.reserveCapacity(chunk)
            for i in (c * chunk)..<min(candidates.count, (c + 1) * chunk) {
                let f = candidates[i]
                let fd = folderFDs[f.folder]
                let isDirectory = f.isDirectory ?? Self.isDirectory(f.name, in: fd)
                let path = folderPaths[f.folder] + "/" + f.name
                let metaName = f.name + ".meta"
                let meta: BackupMeta?
                var hit: Bool?
                var stamp: CatalogIndex.Stamp?
                if usesIndex {
                    var st = stat()
                    if fstatat(fd, metaName, &st, 0) != 0 {
                        meta = errno == ENOENT ? nil : try? BackupMeta.read(at: fd, name: metaName, path: path + ".meta")
                    } else {
                        let found = CatalogIndex.Stamp(st)
                        if let cached = indexes[f.folder].lookup(metaName, stamp: found) {
                            meta = cached
                            hit = true
                        } else {
                            meta = try? BackupMeta.read(at: fd, name: metaName, path: path + ".meta")
                            hit = false
                        }
                        if !found.isRacy(now: now) { stamp = found }
                    }
                } else {
                    meta = try? BackupMeta.read(at: fd, name: metaName, path: path + ".meta")
                }
                let e = entry(path: path, name: f.name, kind: f.kind, target: f.target, stamp: f.stamp, meta: meta,
                              folder: fd, fileName: f.name, isDirectory: isDirectory)
                local.append(Listed(entry: e, hit: hit, stamp: stamp))
            }
            handedOver.withLock { $0[c] = local }
        }
        // Candidate i is listed[i / chunk][i % chunk].
        var listed = handedOver.withLock { parts in
            let all = parts
            parts = []
            return all
        }
        if usesIndex {
            refreshIndexes(candidates.map(\.folder), folders: folderPaths, indexes: indexes, listed: listed, chunk: chunk, kinds: kinds)
        }
        // Newest first, ties by name: the (small) keys are sorted, then each entry is moved
        // once into place (sorting the entries themselves copies them over and over).
        var order = [(startedAt: Double, index: Int)]()
        order.reserveCapacity(candidates.count)
        for i in 0..<candidates.count {
            if let t = listed[i / chunk][i % chunk].entry?.startedAt { order.append((t, i)) }
        }
        order.sort { a, b in
            a.startedAt != b.startedAt ? a.startedAt > b.startedAt : candidates[a.index].name > candidates[b.index].name
        }
        var entries: [CatalogEntry] = []
        entries.reserveCapacity(order.count)
        for o in order {
            if let e = listed[o.index / chunk][o.index % chunk].entry.take() { entries.append(e) }
        }
        return (entries, orphanMetas)
    }

    /// What `list` learnt of one candidate: its entry (moved out once sorted), whether its
    /// `.meta` came from the index (true) or was read (false, nil when there was none to
    /// look up), and its stamp for the next index (none for a backup without a `.meta`, or
    /// a racy one).
    private struct Listed: Sendable {
        var entry: CatalogEntry?
        var hit: Bool?
        var stamp: CatalogIndex.Stamp?
    }

    /// Rewrites a folder's index when this listing found it out of date (a `.meta` it had to
    /// read, or a cached one that is gone). Only a listing that saw every kind kept in the
    /// folder does so: a filtered one would drop the other kinds' records.
    private func refreshIndexes(_ candidateFolders: [Int], folders: [String], indexes: [CatalogIndex], listed: [[Listed]], chunk: Int,
                                kinds: Set<BackupKind>?) {
        for (f, folderPath) in folders.enumerated() {
            let name = FileSystem.lastComponent(of: folderPath)
            if let kinds, !BackupKind.allCases.filter({ $0.folder == name }).allSatisfy(kinds.contains) { continue }
            var hitCount = 0, missCount = 0
            for (i, folder) in candidateFolders.enumerated() where folder == f {
                switch listed[i / chunk][i % chunk].hit {
                case true?: hitCount += 1
                case false?: missCount += 1
                case nil: break
                }
            }
            guard missCount > 0 || hitCount != indexes[f].count else { continue }
            var records: [CatalogIndex.Record] = []
            records.reserveCapacity(hitCount + missCount)
            for (i, folder) in candidateFolders.enumerated() where folder == f {
                guard let stamp = listed[i / chunk][i % chunk].stamp, let e = listed[i / chunk][i % chunk].entry else { continue }
                records.append(CatalogIndex.Record(name: e.name + ".meta", stamp: stamp, meta: e.meta))
            }
            if records.isEmpty {
                unlink(folderPath + "/" + CatalogIndex.fileName)  // nothing to cache: no index, not an empty one
            } else {
                CatalogIndex.write(records, folderPath: folderPath)
            }
        }
    }

    /// Removes the folders' indexes (the next listing reads every `.meta` and writes them
    /// anew): for when a check of the files found an index that disagreed with them.
    public func discardIndexes() {
        for folder in [postgresDir, redisDir] { unlink(folder + "/" + CatalogIndex.fileName) }
    }

    /// The newest good backup of each kind and target.
    public func latestGood() -> [CatalogEntry] {
        var seen = Set<String>()
        var result: [CatalogEntry] = []
        for entry in list() where entry.isGood {
            if seen.insert(entry.kind.rawValue + "/" + entry.target).inserted { result.append(entry) }
        }
        return result
    }

    /// The entry for a path given on the command line (data file, base-backup folder or `.meta`).
    public func entry(at path: String) -> CatalogEntry? {
        var p = path
        while p.hasSuffix("/") && p.count > 1 { p.removeLast() }
        if p.hasSuffix(".meta") { p.removeLast(5) }
        let name = FileSystem.lastComponent(of: p)
        guard FileSystem.exists(p), let (kind, target, stamp) = Self.classify(name) else { return nil }
        return entry(path: p, name: name, kind: kind, target: target, stamp: stamp)
    }

    /// Kind, target and time stamp from a backup's name; nil for names that are not backups.
    /// An age-encrypted backup is its plain name plus `.age` (base-backup folders are not).
    public static func classify(_ name: String) -> (BackupKind, String, String)? {
        if name.hasSuffix(".age") {
            let plain = String(name.dropLast(4))
            guard !plain.hasPrefix("wal_"), let found = classify(plain) else { return nil }
            return found
        }
        func stamp(_ s: Substring) -> String? {
            let t = String(s)
            return WallClock.parseFileStamp(t) != nil && t.count == 15 ? t : nil
        }
        if name.hasPrefix("redis_"), name.hasSuffix(".rdb.gz") {
            return stamp(name.dropFirst(6).dropLast(7)).map { (.redis, "redis", $0) }
        }
        if name.hasPrefix("globals_"), name.hasSuffix(".sql.gz") {
            return stamp(name.dropFirst(8).dropLast(7)).map { (.postgresGlobals, "globals", $0) }
        }
        if name.hasPrefix("wal_"), !name.contains(".") {
            return stamp(name.dropFirst(4)).map { (.postgresBase, "", $0) }
        }
        if name.hasSuffix(".sql.gz"), let range = lastRange(of: "_full_", in: name) {
            let db = String(name[..<range.lowerBound])
            guard !db.isEmpty else { return nil }
            return stamp(name[range.upperBound...].dropLast(7)).map { (.postgresFull, db, $0) }
        }
        return nil
    }

    /// The last occurrence of an ASCII `word` in `text` (Foundation's `range(of:options:
    /// .backwards)` without bridging to NSString, which cost ~2 µs a name).
    public static func lastRange(of word: StaticString, in text: String) -> Range<String.Index>? {
        let utf8 = text.utf8
        let n = word.utf8CodeUnitCount
        guard utf8.count >= n else { return nil }
        return word.withUTF8Buffer { w -> Range<String.Index>? in
            var start = utf8.index(utf8.endIndex, offsetBy: -n)
            while true {
                var i = start, k = 0
                while k < n, utf8[i] == w[k] {
                    i = utf8.index(after: i)
                    k += 1
                }
                if k == n { return start..<i }
                if start == utf8.startIndex { return nil }
                start = utf8.index(before: start)
            }
        }
    }

    private func entry(path: String, name: String, kind: BackupKind, target: String, stamp: String) -> CatalogEntry {
        entry(path: path, name: name, kind: kind, target: target, stamp: stamp,
              meta: try? BackupMeta.read(at: AT_FDCWD, name: path + ".meta", path: path + ".meta"),
              folder: AT_FDCWD, fileName: path, isDirectory: FileSystem.isDirectory(path))
    }

    /// The entry of the data file (or folder) `fileName` in the open folder `folder` (or
    /// `AT_FDCWD` with the full path) with its `.meta` content `meta`; `path` is its full path.
    private func entry(path: String, name: String, kind: BackupKind, target: String, stamp: String, meta: BackupMeta?,
                       folder: Int32, fileName: String, isDirectory: Bool) -> CatalogEntry {
        var size: UInt64 = 0
        if let bytes = meta?.sizeBytes {
            size = bytes
        } else if isDirectory {
            for child in (try? FileSystem.list(path)) ?? [] { size += Self.fileSize(path + "/" + child) }
        } else {
            size = Self.fileSize(fileName, in: folder)
        }
        let state = Self.state(of: meta)
        // Only when no .meta could be decoded: one existence check, on the rare bad entry.
        let metaUnreadable = meta == nil && faccessat(folder, fileName + ".meta", F_OK, 0) == 0
        let started = meta?.startedAt.flatMap(WallClock.parseRFC3339) ?? WallClock.parseFileStamp(stamp) ?? 0
        let finished = meta?.finishedAt.flatMap(WallClock.parseRFC3339)
        let resolvedTarget = Self.target(kind: kind, nameTarget: target, meta: meta)
        var entry = CatalogEntry(path: path, name: name, kind: kind, target: resolvedTarget, startedAt: started, finishedAt: finished,
                                 sizeBytes: size, meta: meta, state: state, isDirectory: isDirectory)
        entry.metaUnreadable = metaUnreadable
        return entry
    }

    /// How far a backup with this `.meta` (nil: none) can be trusted.
    public static func state(of meta: BackupMeta?) -> CatalogEntry.State {
        guard let meta, meta.isCompleted else { return .incomplete }
        return (meta.sha256 != nil || meta.files != nil) ? .complete : .legacy
    }

    /// The target of a backup: the name's (database, `globals`, `redis`) unless the `.meta`
    /// knows better.
    public static func target(kind: BackupKind, nameTarget: String, meta: BackupMeta?) -> String {
        switch kind {
        case .postgresBase: return meta?.target ?? meta?.database ?? "cluster"
        // Redis files are named redis_STAMP whatever the master; the .meta knows the target
        // (Sentinel master name or host:port), which is what the metrics are labelled with.
        case .redis: return meta?.target ?? nameTarget
        default: return nameTarget
        }
    }

    static func fileSize(_ path: String) -> UInt64 {
        var st = stat()
        return stat(path, &st) == 0 ? UInt64(st.st_size) : 0
    }

    /// `fileSize` of `name` in the open folder `folder` (symbolic links followed, as `stat`).
    static func fileSize(_ name: String, in folder: Int32) -> UInt64 {
        var st = stat()
        return fstatat(folder, name, &st, 0) == 0 ? UInt64(st.st_size) : 0
    }

    /// `FileSystem.isDirectory` of `name` in the open folder `folder`.
    static func isDirectory(_ name: String, in folder: Int32) -> Bool {
        var st = stat()
        return fstatat(folder, name, &st, 0) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }
}
