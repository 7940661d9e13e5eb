import BackstopCore
import BackstopTestSupport
import Foundation
import Testing

/// `backstop cleanup` / `list --remote` against a real S3-compatible server (moto), checked
/// from the outside with the AWS CLI, on a backdated catalog spanning two years.
@Suite("remote retention", .serialized)
struct RemoteRetentionTests {
    struct Item {
        var relative: String  // postgres/app_full_….sql.gz, postgres/wal_…
        var group: String
        var t: Double
        var isDirectory: Bool
        /// Every object key (without prefix) of the backup, its .meta included.
        var keys: [String] {
            (isDirectory ? ["\(relative)/base.tar.gz", "\(relative)/pg_wal.tar.gz"] : [relative]) + [relative + ".meta"]
        }
    }

    /// Writes a backup (data + completed, checksummed .meta) started at `t`.
    static func write(_ dir: String, _ item: Item) throws {
        let path = dir + "/" + item.relative
        try FileSystem.createDirectory(FileSystem.directory(of: path))
        if item.isDirectory {
            try FileSystem.createDirectory(path)
            try AtomicFile.write(Array(repeating: 3, count: 600), to: path + "/base.tar.gz")
            try AtomicFile.write(Array(repeating: 4, count: 400), to: path + "/pg_wal.tar.gz")
        } else {
            try AtomicFile.write(Array(repeating: 7, count: 1000), to: path)
        }
        let meta = """
            {"timestamp": "\(WallClock.fileStamp(item.t))", "type": "full", "status": "completed", "size_bytes": 1000,
             "sha256": "\(String(repeating: "b", count: 64))", "started_at": "\(WallClock.rfc3339(item.t))", "finished_at": "\(WallClock.rfc3339(item.t + 5))"}
            """
        try AtomicFile.write(meta, to: path + ".meta")
    }

    /// Two years of backups: dumps of `app` every 3 days, globals every 6, Redis every 4, base
    /// backups every 45 days; all at odd hours so no age lies near a rule's edge.
    static func twoYears(now: Double) -> [Item] {
        var items: [Item] = []
        func at(_ days: Double) -> Double { now - days * 86_400 }
        for k in 0..<244 {
            let t = at(Double(k) * 3 + 0.3)
            items.append(Item(relative: "postgres/app_full_\(WallClock.fileStamp(t)).sql.gz", group: "postgres_full/app", t: t, isDirectory: false))
        }
        for k in 0..<122 {
            let t = at(Double(k) * 6 + 0.4)
            items.append(Item(relative: "postgres/globals_\(WallClock.fileStamp(t)).sql.gz", group: "postgres_globals/globals", t: t, isDirectory: false))
        }
        for k in 0..<183 {
            let t = at(Double(k) * 4 + 0.45)
            items.append(Item(relative: "redis/redis_\(WallClock.fileStamp(t)).rdb.gz", group: "redis/redis", t: t, isDirectory: false))
        }
        for k in 0..<17 {
            let t = at(Double(k) * 45 + 0.6)
            items.append(Item(relative: "postgres/wal_\(WallClock.fileStamp(t))", group: "postgres_base/cluster", t: t, isDirectory: true))
        }
        return items
    }

    /// The rules of the README, computed here independently of RetentionPolicy (Foundation's
    /// calendars in UTC): newest of each group, age, daily/weekly/monthly slots.
    static func expectedKept(_ items: [Item], now: Double, days: Int, daily: Int, weekly: Int, monthly: Int) -> Set<String> {
        var gregorian = Calendar(identifier: .gregorian)
        gregorian.timeZone = TimeZone(identifier: "UTC")!
        var iso = Calendar(identifier: .iso8601)
        iso.timeZone = TimeZone(identifier: "UTC")!
        var kept = Set<String>()
        for group in Set(items.map(\.group)) {
            let members = items.filter { $0.group == group }.sorted { $0.t > $1.t }
            kept.insert(members[0].relative)
            var seenDays: [String] = [], seenWeeks: [String] = [], seenMonths: [String] = []
            for m in members {
                let date = Date(timeIntervalSince1970: m.t)
                if now - m.t <= Double(days) * 86_400 { kept.insert(m.relative) }
                let d = gregorian.dateComponents([.year, .month, .day], from: date)
                let dayKey = "\(d.year!)-\(d.month!)-\(d.day!)", monthKey = "\(d.year!)-\(d.month!)"
                let w = iso.dateComponents([.yearForWeekOfYear, .weekOfYear], from: date)
                let weekKey = "\(w.yearForWeekOfYear!)-W\(w.weekOfYear!)"
                if !seenDays.contains(dayKey) && seenDays.count < daily { seenDays.append(dayKey); kept.insert(m.relative) }
                if !seenWeeks.contains(weekKey) && seenWeeks.count < weekly { seenWeeks.append(weekKey); kept.insert(m.relative) }
                if !seenMonths.contains(monthKey) && seenMonths.count < monthly { seenMonths.append(monthKey); kept.insert(m.relative) }
            }
        }
        return kept
    }

    static let policy = ["BACKUP_RETENTION_DAYS": "30", "BACKUP_KEEP_DAILY": "7", "BACKUP_KEEP_WEEKLY": "4", "BACKUP_KEEP_MONTHLY": "12"]

    @Test("cleanup keeps exactly what the rules say locally and in the bucket; list --remote, inventory upload, s3 metrics from the snapshot")
    func twoYearCatalog() async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        let bucket = "retention-bucket"
        try moto.createBucket(bucket)
        let dir = try TestEnvironment.makeTempDirectory("remote-retention")
        let now = WallClock.now()
        let local = Self.twoYears(now: now)
        for item in local { try Self.write(dir, item) }
        // Only in the bucket: an older dump (gone locally long ago) and a data object whose
        // .meta never arrived (an upload in progress: incomplete, not good, kept for now).
        let remoteOnly = Item(relative: "postgres/app_full_\(WallClock.fileStamp(now - 800.3 * 86_400)).sql.gz",
                              group: "postgres_full/app", t: now - 800.3 * 86_400, isDirectory: false)
        try Self.write(dir, remoteOnly)
        let partial = "redis/redis_\(WallClock.fileStamp(now - 5.2 * 86_400)).rdb.gz"
        try AtomicFile.write(Array(repeating: 9, count: 100), to: dir + "/" + partial)
        try FileSystem.createDirectory(dir + "/reports")
        try AtomicFile.write("not a backup\n", to: dir + "/reports/keep.txt")
        for folder in ["postgres", "redis", "reports"] {
            // Backstop's uploads carry its marker (x-amz-meta-backstop): the partial one is an
            // interrupted Backstop upload, not an old script's `aws s3 cp`.
            try moto.aws(["s3", "sync", "--only-show-errors", "--metadata", "backstop=test", dir + "/" + folder, "s3://\(bucket)/prod/\(folder)"])
        }
        try FileManager.default.removeItem(atPath: dir + "/" + partial)
        try FileManager.default.removeItem(atPath: dir + "/" + remoteOnly.relative)
        try FileManager.default.removeItem(atPath: dir + "/" + remoteOnly.relative + ".meta")
        try FileManager.default.removeItem(atPath: dir + "/reports")
        let before = try moto.keys(bucket: bucket)

        var env = moto.backstopEnvironment(bucket: bucket, prefix: "prod")
        env.merge(Self.policy) { _, new in new }
        env["BACKUP_DIR"] = dir
        let remote = local + [remoteOnly]
        let keptLocal = Self.expectedKept(local, now: now, days: 30, daily: 7, weekly: 4, monthly: 12)
        let keptRemote = Self.expectedKept(remote, now: now, days: 30, daily: 7, weekly: 4, monthly: 12)
        #expect(keptLocal.count < local.count / 3)  // the rules do delete most of two years
        #expect(!keptRemote.contains(remoteOnly.relative))
        var outputs = ""

        // Dry run: the remote decisions with reasons, nothing deleted anywhere.
        let dry = try BackstopBinary.run(["cleanup", "--dry-run", "--json"], environment: env, check: true)
        outputs += dry.stdout + dry.stderr
        let object = try #require(try JSONSerialization.jsonObject(with: Data(dry.stdout.utf8)) as? [String: Any])
        let remoteReport = try #require(object["remote"] as? [String: Any])
        #expect(remoteReport["location"] as? String == "s3://\(bucket)/prod")
        let remoteBackups = try #require(remoteReport["backups"] as? [[String: Any]])
        var remoteActions: [String: String] = [:]
        for b in remoteBackups { remoteActions[b["path"] as? String ?? ""] = b["action"] as? String }
        var expectedActions: [String: String] = [:]
        for item in remote { expectedActions["s3://\(bucket)/prod/\(item.relative)"] = keptRemote.contains(item.relative) ? "keep" : "delete" }
        expectedActions["s3://\(bucket)/prod/\(partial)"] = "keep"
        #expect(remoteActions == expectedActions)
        let newestRedis = try #require(remoteBackups.first { ($0["path"] as? String)?.contains("/redis/redis_") == true && $0["state"] as? String != "incomplete" })
        #expect((newestRedis["reasons"] as? [String])?.contains("newest good backup") == true)
        let partialEntry = remoteBackups.first { $0["path"] as? String == "s3://\(bucket)/prod/\(partial)" }
        #expect(partialEntry?["state"] as? String == "incomplete")
        let table = try BackstopBinary.run(["cleanup", "--dry-run"], environment: env, check: true)
        outputs += table.stdout + table.stderr
        #expect(table.stdout.contains("remote copies in s3://\(bucket)/prod") && table.stdout.contains("would delete"))
        #expect(try moto.keys(bucket: bucket) == before)
        for item in local { #expect(FileSystem.exists(dir + "/" + item.relative)) }

        // The real run.
        let run = try BackstopBinary.run(["cleanup"], environment: env, check: true)
        outputs += run.stdout + run.stderr
        for item in local {
            #expect(FileSystem.exists(dir + "/" + item.relative) == keptLocal.contains(item.relative), "local \(item.relative)")
            #expect(FileSystem.exists(dir + "/" + item.relative + ".meta") == keptLocal.contains(item.relative))
        }
        let day = WallClock.dayStamp(WallClock.now())
        var expectedKeys = Set(remote.filter { keptRemote.contains($0.relative) }.flatMap(\.keys).map { "prod/" + $0 })
        expectedKeys.formUnion(["prod/" + partial, "prod/reports/keep.txt",
                                "prod/reports/backup_inventory_\(day).txt", "prod/reports/backup_inventory_\(day).json"])
        let after = Set(try moto.keys(bucket: bucket))
        #expect(after.subtracting(expectedKeys).isEmpty, "left over: \(after.subtracting(expectedKeys).sorted().prefix(10))")
        #expect(expectedKeys.subtracting(after).isEmpty, "deleted too much: \(expectedKeys.subtracting(after).sorted().prefix(10))")
        // Same rules, same answer: the bucket keeps what the disk keeps (the remote-only dump goes).
        #expect(keptRemote == keptLocal)

        // The inventory names the remote copies and went up to reports/.
        let inventory = try #require(try JSONSerialization.jsonObject(with: Data(try FileSystem.read("\(dir)/backup_inventory_\(day).json"))) as? [String: Any])
        let remoteInventory = try #require(inventory["remote"] as? [String: Any])
        #expect(remoteInventory["location"] as? String == "s3://\(bucket)/prod")
        let groups = remoteInventory["groups"] as? [[String: Any]] ?? []
        let appGroup = groups.first { $0["kind"] as? String == "postgres_full" && $0["target"] as? String == "app" }
        #expect(appGroup?["count"] as? Int == local.filter { $0.group == "postgres_full/app" && keptRemote.contains($0.relative) }.count)
        #expect(appGroup?["total_bytes"] as? Int == 1000 * (appGroup?["count"] as? Int ?? -1))
        let uploaded = dir + "/uploaded-inventory.txt"
        try moto.download(bucket: bucket, key: "prod/reports/backup_inventory_\(day).txt", to: uploaded)
        let inventoryText = String(decoding: try FileSystem.read(uploaded), as: UTF8.self)
        #expect(inventoryText.contains("Remote copies in s3://\(bucket)/prod"))

        // list --remote shows exactly what is left, with the same columns as list.
        let listed = try BackstopBinary.run(["list", "--remote", "--json"], environment: env, check: true)
        outputs += listed.stdout + listed.stderr
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]])
        let good = Set(rows.filter { $0["state"] as? String != "incomplete" }.compactMap { $0["path"] as? String })
        #expect(good == Set(remote.filter { keptRemote.contains($0.relative) }.map { "s3://\(bucket)/prod/\($0.relative)" }))
        #expect(rows.filter { $0["state"] as? String == "incomplete" }.compactMap { $0["path"] as? String } == ["s3://\(bucket)/prod/\(partial)"])
        let text = try BackstopBinary.run(["list", "--remote", "redis"], environment: env, check: true)
        outputs += text.stdout + text.stderr
        #expect(text.stdout.hasPrefix("KIND") && text.stdout.contains("s3://\(bucket)/prod/redis/redis_") && !text.stdout.contains("postgres_full"))
        #expect(text.stdout.contains("INCOMPLETE"))

        // location="s3" comes from the snapshot saved by the cleanup: served with S3 gone.
        moto.stop()
        var serveEnv = env
        serveEnv["BACKUP_SCHEDULE_CLEANUP"] = ""
        let service = try ServeTests.Service(postgres: nil, redis: nil, interval: "5m", extra: serveEnv)
        defer { _ = service.stop() }
        let metrics = try service.metrics()
        let fullCount = remote.filter { ($0.group.hasPrefix("postgres_full") || $0.group.hasPrefix("postgres_globals")) && keptRemote.contains($0.relative) }.count
        #expect(metricValue(metrics, "backstop_backups_retained", "kind=\"postgres_full\",location=\"s3\"") == Double(fullCount))
        #expect(metricValue(metrics, "backstop_backup_storage_bytes", "kind=\"postgres_full\",location=\"s3\"") == Double(fullCount * 1000))
        let redisKept = remote.filter { $0.group == "redis/redis" && keptRemote.contains($0.relative) }
        #expect(metricValue(metrics, "backstop_backups_retained", "kind=\"redis\",location=\"s3\"") == Double(redisKept.count))
        let oldestRedis = redisKept.map(\.t).min() ?? 0
        #expect(abs((metricValue(metrics, "backstop_backup_oldest_timestamp_seconds", "kind=\"redis\",location=\"s3\"") ?? 0) - oldestRedis) < 1.5)
        #expect(metricValue(metrics, "backstop_backups_retained", "kind=\"postgres_base\",location=\"s3\"")
                == Double(remote.filter { $0.group == "postgres_base/cluster" && keptRemote.contains($0.relative) }.count))
        #expect(!metrics.contains(MotoServer.secretKey))
        #expect(!outputs.contains(MotoServer.secretKey))
    }

    @Test("the newest good remote backup survives rules that keep nothing; an unreachable bucket does not stop the local cleanup")
    func newestAndUnreachable() async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        let bucket = "strict-bucket"
        try moto.createBucket(bucket)
        let dir = try TestEnvironment.makeTempDirectory("remote-strict")
        let now = WallClock.now()
        let old = [400.3, 500.3, 600.3].map { days in
            Item(relative: "postgres/legacy_full_\(WallClock.fileStamp(now - days * 86_400)).sql.gz", group: "postgres_full/legacy",
                 t: now - days * 86_400, isDirectory: false)
        }
        for item in old { try Self.write(dir, item) }
        try moto.aws(["s3", "sync", "--only-show-errors", "--metadata", "backstop=test", dir + "/postgres", "s3://\(bucket)/postgres"])
        // A newer data object without .meta does not count as the newest good one.
        try AtomicFile.write(Array(repeating: 1, count: 10), to: dir + "/x")
        let newerPartial = "postgres/legacy_full_\(WallClock.fileStamp(now - 3.3 * 86_400)).sql.gz"
        try moto.aws(["s3", "cp", "--only-show-errors", "--metadata", "backstop=test", dir + "/x", "s3://\(bucket)/\(newerPartial)"])
        // Locally only the oldest is left, so the disk and the bucket disagree on "newest".
        for item in old.prefix(2) {
            try FileManager.default.removeItem(atPath: dir + "/" + item.relative)
            try FileManager.default.removeItem(atPath: dir + "/" + item.relative + ".meta")
        }
        var env = moto.backstopEnvironment(bucket: bucket)
        env.merge(["BACKUP_RETENTION_DAYS": "2", "BACKUP_KEEP_DAILY": "0", "BACKUP_KEEP_WEEKLY": "0", "BACKUP_KEEP_MONTHLY": "0"]) { _, new in new }
        env["BACKUP_DIR"] = dir
        _ = try BackstopBinary.run(["cleanup"], environment: env, check: true)
        #expect(try moto.keys(bucket: bucket).filter { !$0.hasPrefix("reports/") }.sorted()
                == [old[0].relative, old[0].relative + ".meta", newerPartial].sorted())
        #expect(FileSystem.exists(dir + "/" + old[2].relative))

        // S3 unreachable: the local cleanup still runs; the failure is reported and exits 1.
        let doomed = Item(relative: "redis/redis_\(WallClock.fileStamp(now - 10.3 * 86_400)).rdb.gz", group: "redis/redis", t: now - 10.3 * 86_400, isDirectory: false)
        let fresh = Item(relative: "redis/redis_\(WallClock.fileStamp(now - 0.3 * 86_400)).rdb.gz", group: "redis/redis", t: now - 0.3 * 86_400, isDirectory: false)
        for item in [doomed, fresh] { try Self.write(dir, item) }
        env["BACKUP_S3_ENDPOINT"] = "http://127.0.0.1:\(try TestEnvironment.freePort())"
        env["BACKUP_S3_MAX_ATTEMPTS"] = "1"
        let result = try BackstopBinary.run(["cleanup"], environment: env)
        #expect(result.status == 1)
        #expect(!FileSystem.exists(dir + "/" + doomed.relative) && FileSystem.exists(dir + "/" + fresh.relative))
        #expect((result.stdout + result.stderr).contains("ERROR listing s3://\(bucket)"))
        #expect(!(result.stdout + result.stderr).contains(MotoServer.secretKey))
        let day = WallClock.dayStamp(WallClock.now())
        let inventory = String(decoding: try FileSystem.read("\(dir)/backup_inventory_\(day).txt"), as: UTF8.self)
        #expect(inventory.contains("could not be listed"))

        // Not configured: a clear error naming BACKUP_S3_BUCKET.
        let unconfigured = try BackstopBinary.run(["list", "--remote"], environment: ["BACKUP_DIR": dir])
        #expect(unconfigured.status == 1 && unconfigured.stderr.contains("BACKUP_S3_BUCKET"))
    }
}
