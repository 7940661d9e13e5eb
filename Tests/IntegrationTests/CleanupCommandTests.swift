import BackstopCore
import BackstopTestSupport
import Foundation
import Testing

/// `backstop cleanup` as an operator runs it, and the scheduled `cleanup` job under serve.
@Suite("backstop cleanup", .serialized)
struct CleanupCommandTests {
    /// A backup file with a completed `.meta` (as the jobs write it) started `daysAgo` days ago.
    static func backup(_ dir: String, _ folder: String, _ prefix: String, daysAgo: Double, complete: Bool = true) throws -> String {
        let t = WallClock.now() - daysAgo * 86_400
        let path = "\(dir)/\(folder)/\(prefix)\(WallClock.fileStamp(t)).\(folder == "redis" ? "rdb" : "sql").gz"
        try FileSystem.createDirectory(dir + "/" + folder)
        try AtomicFile.write(Array(repeating: 7, count: 1000), to: path)
        if complete {
            let meta = """
                {"timestamp": "\(WallClock.fileStamp(t))", "type": "redis", "status": "completed", "size_bytes": 1000,
                 "sha256": "\(String(repeating: "b", count: 64))", "started_at": "\(WallClock.rfc3339(t))", "finished_at": "\(WallClock.rfc3339(t + 5))"}
                """
            try AtomicFile.write(meta, to: path + ".meta")
        }
        return path
    }

    static let strict = ["BACKUP_RETENTION_DAYS": "2", "BACKUP_KEEP_DAILY": "0", "BACKUP_KEEP_WEEKLY": "0", "BACKUP_KEEP_MONTHLY": "0"]

    @Test("dry run deletes nothing and says why; the real run deletes exactly that and writes the inventory")
    func dryRunThenRun() throws {
        let dir = try TestEnvironment.makeTempDirectory("cleanup-cli")
        let recent = try Self.backup(dir, "redis", "redis_", daysAgo: 1)
        let old = try Self.backup(dir, "redis", "redis_", daysAgo: 3)
        let ancient = try Self.backup(dir, "redis", "redis_", daysAgo: 400)
        let partial = try Self.backup(dir, "redis", "redis_", daysAgo: 5, complete: false)
        let lonely = try Self.backup(dir, "postgres", "app_full_", daysAgo: 500)
        var env = Self.strict
        env["BACKUP_DIR"] = dir

        let dry = try BackstopBinary.run(["cleanup", "--dry-run", "--json"], environment: env, check: true)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(dry.stdout.utf8)) as? [String: Any])
        let backups = try #require(object["backups"] as? [[String: Any]])
        var actions: [String: String] = [:]
        var reasons: [String: [String]] = [:]
        for b in backups {
            actions[b["path"] as? String ?? ""] = b["action"] as? String
            reasons[b["path"] as? String ?? ""] = b["reasons"] as? [String]
        }
        #expect(actions == [recent: "keep", old: "delete", ancient: "delete", partial: "delete", lonely: "keep"])
        #expect(reasons[lonely] == ["newest good backup"])
        #expect(reasons[partial] == ["incomplete (no completed .meta) and older than a day"])
        for path in [recent, old, ancient, partial, lonely] { #expect(FileSystem.exists(path)) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("backup_inventory_") }.isEmpty)

        let table = try BackstopBinary.run(["cleanup", "--dry-run"], environment: env, check: true)
        #expect(table.stdout.contains("would delete") && table.stdout.contains("older than 2 days"))

        _ = try BackstopBinary.run(["cleanup"], environment: env, check: true)
        for path in [recent, lonely] { #expect(FileSystem.exists(path) && FileSystem.exists(path + ".meta")) }
        for path in [old, ancient, partial] { #expect(!FileSystem.exists(path) && !FileSystem.exists(path + ".meta")) }
        let day = WallClock.dayStamp(WallClock.now())
        let inventory = try JSONSerialization.jsonObject(with: Data(try FileSystem.read("\(dir)/backup_inventory_\(day).json"))) as? [String: Any]
        let groups = inventory?["groups"] as? [[String: Any]] ?? []
        #expect(groups.count == 2)
        #expect(FileSystem.exists("\(dir)/backup_inventory_\(day).txt"))
    }

    @Test("serve: retention metrics at start, and the scheduled cleanup deletes and refreshes them")
    func scheduledCleanup() throws {
        let dir = try TestEnvironment.makeTempDirectory("cleanup-serve")
        let backupDir = dir + "/backups"
        let recent = try Self.backup(backupDir, "redis", "redis_", daysAgo: 1)
        let old = try Self.backup(backupDir, "redis", "redis_", daysAgo: 30)
        var extra = Self.strict
        extra["BACKUP_DIR"] = backupDir
        extra["BACKUP_SCHEDULE_CLEANUP"] = "* * * * *"
        let service = try ServeTests.Service(postgres: nil, redis: nil, interval: "5m", extra: extra)
        defer { _ = service.stop() }
        let label = "kind=\"redis\",location=\"local\""
        let start = try service.metrics()
        #expect(metricValue(start, "backstop_backups_retained", label) == 2)
        #expect(metricValue(start, "backstop_backup_storage_bytes", label) == 2000)
        #expect(metricValue(start, "backstop_backups_retained", "kind=\"postgres_full\",location=\"local\"") == 0)
        // The next minute boundary runs the cleanup.
        try TestHTTP.waitFor(service.metricsURL, timeout: 75, "the scheduled cleanup") {
            metricValue($0, "backstop_backups_retained", label) == 1
        }
        #expect(FileSystem.exists(recent))
        #expect(!FileSystem.exists(old) && !FileSystem.exists(old + ".meta"))
        let oldest = metricValue(try service.metrics(), "backstop_backup_oldest_timestamp_seconds", label) ?? 0
        #expect(abs(oldest - (WallClock.now() - 86_400)) < 120)
    }
}
