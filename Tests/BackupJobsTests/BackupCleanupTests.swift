import BackstopCore
import BackstopMetrics
import BackstopTestSupport
import BackupCatalog
import BackupJobs
import Foundation
import Testing

/// Cleanup on a real folder of backdated backups spanning two years.
@Suite struct BackupCleanupTests {
    static let now = WallClock.parseRFC3339("2026-11-25T12:00:00Z")!

    /// Writes a backup (data + completed `.meta`) started at `t`; returns its path.
    @discardableResult
    static func makeBackup(_ dir: String, kind: BackupKind, target: String, at t: Double, complete: Bool = true) throws -> String {
        let stamp = WallClock.fileStamp(t)
        let path: String
        switch kind {
        case .postgresFull: path = "\(dir)/postgres/\(target)_full_\(stamp).sql.gz"
        case .postgresGlobals: path = "\(dir)/postgres/globals_\(stamp).sql.gz"
        case .redis: path = "\(dir)/redis/redis_\(stamp).rdb.gz"
        case .postgresBase: path = "\(dir)/postgres/wal_\(stamp)"
        }
        try FileSystem.createDirectory(FileSystem.directory(of: path))
        if kind == .postgresBase {
            try FileSystem.createDirectory(path)
            try AtomicFile.write(Array(repeating: 1, count: 100), to: path + "/base.tar.gz")
            try AtomicFile.write(Array(repeating: 2, count: 50), to: path + "/pg_wal.tar.gz")
        } else {
            try AtomicFile.write(Array(repeating: 3, count: 64), to: path)
        }
        if complete {
            try BackupMeta(kind: kind, target: target, file: path, startedAt: t, finishedAt: t + 60,
                           sizeBytes: 64, sha256: String(repeating: "a", count: 64), compression: "gzip", serverVersion: nil)
                .write(forData: path)
        }
        return path
    }

    static func setMTime(_ path: String, _ t: Double) {
        var times = [timespec(tv_sec: Int(t), tv_nsec: 0), timespec(tv_sec: Int(t), tv_nsec: 0)]
        _ = utimensat(AT_FDCWD, path, &times, 0)
    }

    /// Every file and folder under `dir` (relative), excluding `.state` and inventories.
    static func tree(_ dir: String) -> Set<String> {
        var result = Set<String>()
        let e = FileManager.default.enumerator(atPath: dir)
        while let p = e?.nextObject() as? String {
            // The catalog index is a cache of the .meta files, rewritten by any listing.
            if p.hasPrefix(".state") || p.hasPrefix("backup_inventory_") || p.hasSuffix("/.catalog-index") { continue }
            result.insert(p)
        }
        return result
    }

    struct Made {
        var dir: String
        var expectedGone: Set<String> = []
        var expectedKept: Set<String> = []
    }

    /// Two years of daily full dumps of `app`, weekly base backups, 4-hourly Redis for the last
    /// 10 days and one Redis backup 500 days old; leftovers; logs.
    static func makeCatalog(policy: RetentionPolicy) throws -> Made {
        let dir = try TestEnvironment.makeTempDirectory("cleanup")
        var made = Made(dir: dir)
        func add(_ kind: BackupKind, _ target: String, _ times: [Double]) throws {
            let model = RetentionPolicyTests.expectedKept(times, policy: policy, now: now)
            for (i, t) in times.enumerated() {
                let path = try makeBackup(dir, kind: kind, target: target, at: t)
                let rel = String(path.dropFirst(dir.count + 1))
                if model.contains(i) {
                    made.expectedKept.formUnion([rel, rel + ".meta"])
                } else {
                    made.expectedGone.formUnion([rel, rel + ".meta"])
                    if kind == .postgresBase { made.expectedGone.formUnion([rel + "/base.tar.gz", rel + "/pg_wal.tar.gz"]) }
                }
                if kind == .postgresBase && model.contains(i) { made.expectedKept.formUnion([rel + "/base.tar.gz", rel + "/pg_wal.tar.gz"]) }
            }
        }
        try add(.postgresFull, "app", (0..<730).map { now - Double($0) * 86_400 - 10 * 3600 })
        try add(.postgresGlobals, "globals", (0..<730).map { now - Double($0) * 86_400 - 10 * 3600 + 5 })
        try add(.postgresBase, "cluster", (0..<104).map { now - Double($0) * 7 * 86_400 - 3 * 3600 })
        try add(.redis, "redis", (0..<60).map { now - Double($0) * 4 * 3600 - 1800 })
        // Leftovers: an incomplete dump 3 days old goes, one an hour old stays.
        let oldPartial = try makeBackup(dir, kind: .postgresFull, target: "app", at: now - 3 * 86_400 + 1800, complete: false)
        made.expectedGone.insert(String(oldPartial.dropFirst(dir.count + 1)))
        let freshPartial = try makeBackup(dir, kind: .postgresFull, target: "app", at: now - 3600, complete: false)
        made.expectedKept.insert(String(freshPartial.dropFirst(dir.count + 1)))
        // An interrupted base backup folder without .meta, 2 days old: goes whole.
        let partialBase = try makeBackup(dir, kind: .postgresBase, target: "cluster", at: now - 2 * 86_400 + 7, complete: false)
        let relBase = String(partialBase.dropFirst(dir.count + 1))
        made.expectedGone.formUnion([relBase, relBase + "/base.tar.gz", relBase + "/pg_wal.tar.gz"])
        // An orphaned .meta (data gone) two days old goes.
        try AtomicFile.write("{}", to: dir + "/redis/redis_20250101_000000.rdb.gz.meta")
        setMTime(dir + "/redis/redis_20250101_000000.rdb.gz.meta", now - 2 * 86_400)
        made.expectedGone.insert("redis/redis_20250101_000000.rdb.gz.meta")
        // Logs: the live ones stay whatever their age; rotated ones older than retention go.
        try FileSystem.createDirectory(dir + "/logs")
        for (name, age, stays) in [("backup.log", 400.0, true), ("health.log", 400, true), ("backup.log.1", Double(policy.retentionDays + 1), false),
                                   ("backup.log.2.gz", 200, false), ("health.log.1", Double(policy.retentionDays - 1), true)] {
            try AtomicFile.write("line\n", to: dir + "/logs/" + name)
            setMTime(dir + "/logs/" + name, now - age * 86_400)
            if stays {
                made.expectedKept.insert("logs/" + name)
            } else {
                made.expectedGone.insert("logs/" + name)
            }
        }
        made.expectedKept.formUnion(["postgres", "redis", "logs"])
        return made
    }

    @Test(arguments: [RetentionPolicy(), RetentionPolicy(retentionDays: 3, keepDaily: 5, keepWeekly: 6, keepMonthly: 18)])
    func twoYearsOfBackups(policy: RetentionPolicy) throws {
        let made = try Self.makeCatalog(policy: policy)
        let before = Self.tree(made.dir)
        #expect(before == made.expectedKept.union(made.expectedGone))

        // Dry run: the plan, nothing deleted, no inventory.
        let dry = try BackupCleanup(backupDir: made.dir, policy: policy).run(dryRun: true, now: Self.now)
        #expect(Self.tree(made.dir) == before)
        #expect(!FileSystem.exists(made.dir + "/backup_inventory_20261125.txt"))
        #expect(dry.removedLogs.count == 2)
        let prefixLength = made.dir.count + 1
        let deletions: [BackupCleanup.PlanEntry] = dry.plan.filter { !$0.decision.keep }
        let dryGone = Set(deletions.map { (p: BackupCleanup.PlanEntry) -> String in String(p.entry.path.dropFirst(prefixLength)) })
        let expectedBackupsGone: Set<String> = made.expectedGone.filter { (rel: String) -> Bool in
            !rel.hasSuffix(".meta") && !rel.hasPrefix("logs/") && !rel.hasSuffix(".tar.gz")
        }
        #expect(dryGone == expectedBackupsGone)

        // The real run removes exactly the expected set.
        let registry = MetricsRegistry()
        let report = try BackupCleanup(backupDir: made.dir, policy: policy, metrics: registry).run(dryRun: false, now: Self.now)
        #expect(report.errors.isEmpty)
        #expect(Self.tree(made.dir) == made.expectedKept)

        // The newest good backup of every kind and target is still there.
        let latest = BackupCatalog(backupDir: made.dir).latestGood()
        #expect(Set(latest.map { $0.kind.rawValue + "/" + $0.target })
            == ["postgres_full/app", "postgres_globals/globals", "postgres_base/cluster", "redis/redis"])
        #expect(latest.allSatisfy { $0.startedAt > Self.now - 7 * 86_400 })

        // Inventory files, atomic (no temp files left), matching the catalog.
        let json = try FileSystem.read(made.dir + "/backup_inventory_20261125.json")
        let inventory = try JSONDecoder().decode(BackupInventory.self, from: Data(json))
        let app = try #require(inventory.groups.first { (g: BackupInventory.Group) -> Bool in g.kind == "postgres_full" && g.target == "app" })
        let appKept = made.expectedKept.filter { $0.hasPrefix("postgres/app_full_") && $0.hasSuffix(".sql.gz") && !$0.contains("20261125_11") }
        #expect(app.count == appKept.count)
        #expect(app.newest == "2026-11-25T02:00:00Z")
        #expect(app.restoreWindowSeconds > 300 * 86_400)
        #expect(inventory.backupDirBytes > 0)
        let text = String(decoding: try FileSystem.read(made.dir + "/backup_inventory_20261125.txt"), as: UTF8.self)
        #expect(text.contains("postgres_full") && text.contains("RESTORE WINDOW"))

        // Metrics per kind at location local (globals count as postgres_full).
        let retained = registry.value(Family.backupsRetained, ["kind": "postgres_full", "location": "local"])
        #expect(retained == Double(made.expectedKept.filter { $0.hasPrefix("postgres/") && $0.hasSuffix(".sql.gz") }.count - 1))
        #expect(registry.value(Family.backupOldest, ["kind": "redis", "location": "local"]) ?? 0 > 0)

        // A second run finds nothing more to delete.
        let again = try BackupCleanup(backupDir: made.dir, policy: policy).run(dryRun: false, now: Self.now)
        #expect(again.plan.allSatisfy { $0.decision.keep })
        #expect(Self.tree(made.dir) == made.expectedKept)
    }

    @Test func aSecondCleanupIsRefusedWhileOneRuns() throws {
        let dir = try TestEnvironment.makeTempDirectory("cleanup-lock")
        try FileSystem.createDirectory(dir + "/.state")
        let held = try FileLock(path: dir + "/.state/cleanup.lock", purpose: "test")
        defer { held.release() }
        #expect(throws: FileLock.Held.self) { try BackupCleanup(backupDir: dir, policy: RetentionPolicy()).run(dryRun: true) }
    }
}
