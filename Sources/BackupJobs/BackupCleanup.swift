import BackstopCore
import BackstopMetrics
import BackupCatalog
import Foundation

/// `backstop cleanup` and the scheduled `cleanup` job: applies the `RetentionPolicy` to the
/// catalog, removes old rotated logs and orphaned `.meta` files, writes the inventory and
/// refreshes the retention metrics. Blocking (file I/O): call it through `Blocking.run`.
///
/// A backup goes as a whole: its `.meta` first (so an interrupted cleanup leaves at most an
/// incomplete data file, never a `.meta` that claims a backup that is gone), then the data
/// file or the whole `wal_*` folder.
public final class BackupCleanup: Sendable {
    /// One backup and what the policy says about it.
    public struct PlanEntry: Sendable {
        public var entry: CatalogEntry
        public var decision: RetentionPolicy.Decision
    }

    public struct Report: Sendable {
        public var dryRun: Bool
        public var plan: [PlanEntry]
        /// Removed (or, in a dry run, to be removed) rotated log files and orphaned `.meta` files.
        public var removedLogs: [String]
        public var removedOrphans: [String]
        /// Inventory reports (`backup_inventory_YYYYMMDD.txt`/`.json`) past the retention period.
        public var removedInventories: [String] = []
        public var freedBytes: UInt64
        /// Paths that could not be removed, with the reason.
        public var errors: [String]
        public var inventory: BackupInventory?
    }

    /// The live log files, never removed (they are appended to while serve runs).
    public static let liveLogs: Set<String> = ["backup.log", "health.log"]

    public let backupDir: String
    public let policy: RetentionPolicy
    let log: BackupLog?
    let metrics: MetricsRegistry?

    public init(backupDir: String, policy: RetentionPolicy, log: BackupLog? = nil, metrics: MetricsRegistry? = nil) {
        self.backupDir = backupDir
        self.policy = policy
        self.log = log
        self.metrics = metrics
    }

    public var lockPath: String { backupDir + "/.state/cleanup.lock" }

    /// What the policy says about every backup, newest first. Reads only.
    public func plan(now: Double) -> [PlanEntry] {
        plan(BackupCatalog(backupDir: backupDir).list(), now: now)
    }

    /// `listed` is consumed: a copy would be shared and copied again, entry by entry, by the
    /// moves below.
    private func plan(_ listed: consuming [CatalogEntry], now: Double) -> [PlanEntry] {
        var entries = listed
        let decisions = policy.decide(entries.map {
            RetentionPolicy.Item(group: $0.kind.rawValue + "/" + $0.target, startedAt: $0.startedAt, isGood: $0.isGood,
                                 metaUnreadable: $0.metaUnreadable)
        }, now: now)
        // Each entry is moved (not copied: a copy retains every string of it and its .meta) into
        // its plan entry; its slot is left holding an empty entry, which owns nothing.
        let count = min(entries.count, decisions.count)
        return entries.withUnsafeMutableBufferPointer { source in
            [PlanEntry](unsafeUninitializedCapacity: count) { plan, initialized in
                for i in 0..<count {
                    let slot = source.baseAddress! + i
                    (plan.baseAddress! + i).initialize(to: PlanEntry(entry: slot.move(), decision: decisions[i]))
                    slot.initialize(to: Self.emptyEntry)
                }
                initialized = count
            }
        }
    }

    private static let emptyEntry = CatalogEntry(path: "", name: "", kind: .redis, target: "", startedAt: 0, finishedAt: nil,
                                                 sizeBytes: 0, meta: nil, state: .incomplete, isDirectory: false)

    /// Plans and, unless `dryRun`, deletes; then writes the inventory and updates the metrics.
    /// Holds `.state/cleanup.lock` (throws `FileLock.Held` when another cleanup runs).
    /// `cancellation` (a shutdown: SIGTERM to `backstop cleanup`, serve's grace period over) is
    /// checked before each backup is removed: the run stops between two backups, each either
    /// whole or gone with its `.meta`, and throws `BackupCancelled`; the next cleanup finishes.
    public func run(dryRun: Bool, now: Double = WallClock.now(), cancellation: JobCancellation? = nil) throws -> Report {
        try FileSystem.createDirectory(backupDir + "/.state")
        let lock = try FileLock(path: lockPath, purpose: dryRun ? "cleanup --dry-run" : "cleanup")
        defer { lock.release() }
        // One read of each folder gives the backups and the orphan candidates (checked below).
        let (listed, orphanMetas) = BackupCatalog(backupDir: backupDir).listWithOrphanMetas()
        // Consumed, not shared: with a second reference alive the plan's in-place moves would
        // first copy all 100,000 entries.
        let plan = plan(consume listed, now: now)
        var report = Report(dryRun: dryRun, plan: plan, removedLogs: [], removedOrphans: [], freedBytes: 0, errors: [], inventory: nil)
        var removed = 0
        // By index: a dry run reads one field in place (a `for item in plan` copy of each entry
        // retains all its strings, 100,000 times).
        for i in plan.indices where !plan[i].decision.keep {
            if let cancellation, cancellation.isCancelled {
                log?.info("cleanup: stopped by the shutdown after removing \(removed) backups; the next cleanup removes the rest")
                throw BackupCancelled()
            }
            if dryRun {
                report.freedBytes += plan[i].entry.sizeBytes
                continue
            }
            let item = plan[i]
            // The plan may come from the catalog index; what is deleted is decided on the real
            // files: the backup is read again and must be exactly what was planned.
            if let now = BackupCatalog(backupDir: backupDir, usesIndex: false).entry(at: item.entry.path), !Self.same(now, item.entry) {
                BackupCatalog(backupDir: backupDir).discardIndexes()
                report.errors.append("\(item.entry.path): changed since the plan was made; kept, the next cleanup decides again")
                log?.error("cleanup: kept \(item.entry.path): its .meta changed while cleanup ran; the next cleanup decides again")
                continue
            }
            do {
                try Self.remove(item.entry.path + ".meta", missingOK: true)
                try Self.remove(item.entry.path, missingOK: true)
                report.freedBytes += item.entry.sizeBytes
                removed += 1
                log?.info("cleanup: removed \(item.entry.path) (\(item.decision.summary))")
            } catch {
                report.errors.append("\(item.entry.path): \(error)")
                log?.error("cleanup: could not remove \(item.entry.path): \(error). Check its permissions; the next cleanup retries.")
            }
        }
        // Orphaned .meta files (their data is gone) older than the grace period. The candidates
        // come from the listing the plan was made from; each is checked again here.
        for path in orphanMetas {
            let data = String(path.dropLast(5))
            guard !FileSystem.exists(data), let mtime = Self.modificationTime(path),
                  now - mtime > policy.incompleteGraceSeconds else { continue }
            report.removedOrphans.append(path)
            if !dryRun { remove(path, into: &report) }
        }
        // Rotated logs older than the retention period (the live logs stay).
        let logs = backupDir + "/logs"
        let cutoff = now - Double(policy.retentionDays) * 86_400
        for name in (try? FileSystem.list(logs)) ?? [] where !Self.liveLogs.contains(name) && !name.hasPrefix(".") {
            let path = logs + "/" + name
            guard !FileSystem.isDirectory(path), let mtime = Self.modificationTime(path), mtime < cutoff else { continue }
            report.removedLogs.append(path)
            if !dryRun { remove(path, into: &report) }
        }
        // Inventory reports of days past the retention period (by the day in the name: a copy
        // or a touch does not make an old report young).
        for name in (try? FileSystem.list(backupDir)) ?? [] {
            guard let day = BackupInventory.day(ofFileName: name), day + 86_400 <= cutoff else { continue }
            report.removedInventories.append(backupDir + "/" + name)
            if !dryRun { remove(backupDir + "/" + name, into: &report) }
        }
        if !dryRun {
            let kept = BackupCatalog(backupDir: backupDir).list()
            let inventory = BackupInventory(entries: kept, backupDir: backupDir, now: now, backupDirBytes: Self.diskUsage(backupDir),
                                            filesystem: (try? FileSystem.diskUsage(of: backupDir)) ?? (0, 0))
            try Self.writeInventory(inventory, backupDir: backupDir, now: now)
            report.inventory = inventory
            if let metrics { RetentionMetrics.update(metrics, entries: kept) }
            log?.info("cleanup: kept \(plan.count(where: { $0.decision.keep })) backups, removed \(plan.count(where: { !$0.decision.keep })), "
                      + "\(report.removedLogs.count) old logs, \(report.removedInventories.count) old inventories; freed \(HumanBytes.format(report.freedBytes))")
        }
        return report
    }

    /// Whether a backup read again from disk is the one the plan decided on (the fields the
    /// retention rules and the freed size depend on, and the whole `.meta`).
    static func same(_ a: CatalogEntry, _ b: CatalogEntry) -> Bool {
        a.kind == b.kind && a.target == b.target && a.startedAt == b.startedAt && a.state == b.state && a.meta == b.meta
            && a.isDirectory == b.isDirectory
    }

    /// `backup_inventory_YYYYMMDD.txt` and `.json` (atomically); returns their paths.
    @discardableResult
    public static func writeInventory(_ inventory: BackupInventory, backupDir: String, now: Double) throws -> [String] {
        let base = backupDir + "/backup_inventory_\(WallClock.dayStamp(now))"
        try AtomicFile.write(inventory.text(), to: base + ".txt")
        try AtomicFile.write(try inventory.json(), to: base + ".json")
        return [base + ".txt", base + ".json"]
    }

    private func remove(_ path: String, into report: inout Report) {
        do { try Self.remove(path, missingOK: true) } catch { report.errors.append("\(path): \(error)") }
    }

    static func remove(_ path: String, missingOK: Bool) throws {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            if errno == ENOENT && missingOK { return }
            throw FileSystemError.errno(errno, "lstat", path)
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            try FileManager.default.removeItem(atPath: path)
        } else if unlink(path) != 0 {
            throw FileSystemError.errno(errno, "unlink", path)
        }
        FileSystem.syncDirectory(FileSystem.directory(of: path))
    }

    static func modificationTime(_ path: String) -> Double? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9
    }

    /// Bytes allocated under `path`, as `du` counts them (symbolic links not followed).
    public static func diskUsage(_ path: String) -> UInt64 {
        var st = stat()
        guard lstat(path, &st) == 0 else { return 0 }
        var total = UInt64(st.st_blocks) * 512
        if (st.st_mode & S_IFMT) == S_IFDIR {
            for name in (try? FileSystem.list(path)) ?? [] { total += diskUsage(path + "/" + name) }
        }
        return total
    }
}

/// `backstop_backups_retained`, `backstop_backup_storage_bytes` and
/// `backstop_backup_oldest_timestamp_seconds` {kind, location}: filled from the catalog at
/// serve start and after each cleanup.
public enum RetentionMetrics {
    public static func declare(in registry: MetricsRegistry) {
        for family in [Family.backupsRetained, .backupStorage, .backupOldest] { registry.declare(family) }
    }

    /// Sets the series of `location` from `entries` (every contract kind gets a series, 0 when empty).
    public static func update(_ registry: MetricsRegistry, entries: [CatalogEntry], location: String = "local") {
        declare(in: registry)
        var count: [String: Int] = [:], bytes: [String: UInt64] = [:], oldest: [String: Double] = [:]
        for kind in Family.backupKinds { count[kind] = 0 }
        for e in entries where e.isGood {
            let kind = e.kind.metricKind
            count[kind, default: 0] += 1
            bytes[kind, default: 0] += e.sizeBytes
            oldest[kind] = min(oldest[kind] ?? e.startedAt, e.startedAt)
        }
        for (kind, n) in count {
            set(registry, kind: kind, location: location, count: n, bytes: bytes[kind] ?? 0, oldest: oldest[kind] ?? 0)
        }
    }

    /// Sets the three series of one kind at one location.
    public static func set(_ registry: MetricsRegistry, kind: String, location: String, count: Int, bytes: UInt64, oldest: Double) {
        declare(in: registry)
        let labels = ["kind": kind, "location": location]
        registry.set(Family.backupsRetained, labels, Double(count))
        registry.set(Family.backupStorage, labels, Double(bytes))
        registry.set(Family.backupOldest, labels, oldest)
    }

    /// Fills the local series from the catalog (serve start).
    public static func load(into registry: MetricsRegistry, backupDir: String) {
        update(registry, entries: BackupCatalog(backupDir: backupDir).list())
    }
}
