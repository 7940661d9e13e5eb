import BackstopCore
import BackstopTestSupport
import BackupCatalog
import Foundation
@testable import S3
import Testing

/// The bucket read back: listing parsed into backups, downloads, remote retention decisions.
@Suite(.serialized) struct RemoteCatalogTests {
    static func object(_ key: String, _ size: UInt64 = 10, _ modified: String = "2026-01-01T00:00:00.000Z") -> S3Object {
        S3Object(key: key, size: size, lastModified: modified, storageClass: "STANDARD_IA")
    }

    @Test func listingIsGroupedIntoBackupsWithTheirMeta() {
        let objects = [
            Self.object("prod/postgres/app_full_20250101_020000.sql.gz", 100),
            Self.object("prod/postgres/app_full_20250101_020000.sql.gz.meta", 5),
            Self.object("prod/postgres/globals_20250101_020000.sql.gz", 7),  // no .meta: incomplete
            Self.object("prod/postgres/wal_20250102_030000/base.tar.gz", 1000),
            Self.object("prod/postgres/wal_20250102_030000/pg_wal.tar.gz", 50, "2026-01-02T00:00:00.000Z"),
            Self.object("prod/postgres/wal_20250102_030000.meta", 5),
            Self.object("prod/postgres/wal/000000010000000000000001"),       // WAL archive: not a backup
            Self.object("prod/postgres/.app_full_20250101_020000.sql.gz.part"),
            Self.object("prod/redis/redis_20250103_040000.rdb.gz", 30),
            Self.object("prod/redis/redis_20250103_040000.rdb.gz.meta", 5),
            Self.object("prod/redis/redis_20240101_040000.rdb.gz.meta", 5),  // orphan
            Self.object("prod/reports/backup_inventory_20250101.txt"),
            Self.object("prod/postgres/notes.txt"),
            Self.object("other/postgres/app_full_20250101_020000.sql.gz"),   // outside the prefix
            Self.object("prod/redis/app_full_20250101_020000.sql.gz"),      // a dump in the wrong folder
        ]
        let (found, orphans) = RemoteCatalog.group(objects, prefix: "prod")
        #expect(found.map(\.relativePath) == ["postgres/app_full_20250101_020000.sql.gz", "postgres/globals_20250101_020000.sql.gz",
                                              "postgres/wal_20250102_030000", "redis/redis_20250103_040000.rdb.gz"])
        #expect(found[0].kind == .postgresFull && found[0].nameTarget == "app" && found[0].metaKey == "prod/postgres/app_full_20250101_020000.sql.gz.meta")
        #expect(found[1].kind == .postgresGlobals && found[1].metaKey == nil)
        #expect(found[2].isDirectory && found[2].dataKeys == ["prod/postgres/wal_20250102_030000/base.tar.gz", "prod/postgres/wal_20250102_030000/pg_wal.tar.gz"])
        #expect(found[2].dataBytes == 1050 && found[2].metaKey == "prod/postgres/wal_20250102_030000.meta")
        #expect(found[2].lastModified == WallClock.parseRFC3339("2026-01-02T00:00:00.000Z"))
        #expect(found[3].kind == .redis)
        #expect(orphans.map(\.key) == ["prod/redis/redis_20240101_040000.rdb.gz.meta"])

        // Without a prefix the same keys one level up parse the same way.
        let bare = RemoteCatalog.group(objects.map { Self.object(String($0.key.dropFirst(5)), $0.size) }, prefix: "")
        #expect(bare.found.count == 4)
    }

    static func meta(started: Double, target: String? = nil, sha: Bool = true) -> BackupMeta {
        var m = BackupMeta(kind: .redis, target: target ?? "redis", file: "x", startedAt: started, finishedAt: started + 1,
                           sizeBytes: 10, sha256: sha ? String(repeating: "a", count: 64) : nil, compression: "gzip", serverVersion: nil)
        m.target = target
        return m
    }

    @Test func remoteRetentionKeepsTheNewestGoodAndDropsOldLeftovers() throws {
        let env = ["BACKUP_S3_BUCKET": "b", "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "BACKUP_S3_ENDPOINT": "http://127.0.0.1:1"]
        let settings = try #require(try S3Settings(environment: env))
        let catalog = RemoteCatalog(settings: settings, backupDir: nil)
        let now = WallClock.now()
        func found(_ daysAgo: Double, meta: Bool, uploadedDaysAgo: Double = 0) -> RemoteCatalog.Found {
            let t = now - daysAgo * 86_400
            let name = "redis_\(WallClock.fileStamp(t)).rdb.gz"
            return RemoteCatalog.Found(relativePath: "redis/" + name, name: name, kind: .redis, nameTarget: "redis", stamp: WallClock.fileStamp(t),
                                       isDirectory: false, dataKeys: ["redis/" + name], metaKey: meta ? "redis/\(name).meta" : nil,
                                       dataBytes: 10, metaBytes: 1, lastModified: now - uploadedDaysAgo * 86_400)
        }
        let items: [(RemoteCatalog.Found, BackupMeta?)] = [
            (found(1, meta: false), nil),                       // newest, but incomplete and just uploaded: kept, not "good"
            (found(2, meta: false, uploadedDaysAgo: 2), nil),   // incomplete leftover: goes
            (found(100, meta: true), Self.meta(started: now - 100 * 86_400, target: "mymaster")),
            (found(200, meta: true), Self.meta(started: now - 200 * 86_400, target: "mymaster")),
        ]
        let backups = items.map { catalog.backup($0.0, meta: $0.1) }
        #expect(backups[2].entry.target == "mymaster" && backups[2].entry.state == .complete && backups[2].storedBytes == 11)
        #expect(backups[0].entry.state == .incomplete)
        var policy = RetentionPolicy(retentionDays: 2, keepDaily: 0, keepWeekly: 0, keepMonthly: 0)
        policy.incompleteGraceSeconds = 86_400
        let plan = RemoteCleanup(settings: settings, policy: policy, backupDir: nil).decide(backups, now: now)
        #expect(plan.map(\.decision.keep) == [true, false, true, false])
        #expect(plan[2].decision.reasons == [.newest])
        #expect(plan[1].decision.reasons == [.incompleteLeftover])
        #expect(plan[0].decision.reasons == [.incompleteRecent])
    }

    @Test func downloadStreamsToTheFileAtomicallyAndRefusesWhatIsMissing() async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        try moto.createBucket("dlbucket")
        let settings = try #require(try S3Settings(environment: moto.backstopEnvironment(bucket: "dlbucket")))
        let dir = try TestEnvironment.makeTempDirectory("s3dl")
        var bytes = [UInt8](repeating: 0, count: 3 << 20)
        for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: (i &* 2_654_435_761) >> 7) }
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/up"))
        let client = S3Client(settings: settings)
        try await client.upload(file: dir + "/up", key: "postgres/x.sql.gz")
        let count = try await client.download(key: "postgres/x.sql.gz", to: dir + "/down")
        #expect(count == UInt64(bytes.count))
        #expect(try FileSystem.read(dir + "/down") == bytes)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["down", "up"])  // no .part left

        await #expect(throws: S3Error.self) { try await client.download(key: "postgres/missing.sql.gz", to: dir + "/missing") }
        do {
            try await client.download(key: "postgres/missing.sql.gz", to: dir + "/missing")
        } catch {
            #expect("\(error)".contains("404"))
            #expect(!"\(error)".contains(MotoServer.secretKey))
        }
        #expect(!FileSystem.exists(dir + "/missing") && !FileSystem.exists(dir + "/.missing.part"))
        await #expect(throws: S3Error.self) { _ = try await client.get(key: "postgres/x.sql.gz", limit: 1000) }
    }

    @Test func listingReadsTheMetaFromTheBucket() async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        try moto.createBucket("lsbucket")
        let settings = try #require(try S3Settings(environment: moto.backstopEnvironment(bucket: "lsbucket", prefix: "site")))
        let dir = try TestEnvironment.makeTempDirectory("s3ls")
        let client = S3Client(settings: settings)
        let started = WallClock.now() - 3 * 86_400
        let name = "redis_\(WallClock.fileStamp(started)).rdb.gz"
        try AtomicFile.write(Array(repeating: 1, count: 500), to: dir + "/data")
        try AtomicFile.write(try Self.meta(started: started, target: "mymaster").encoded(), to: dir + "/meta")
        try await client.upload(file: dir + "/data", key: settings.key(for: "redis/" + name))
        try await client.upload(file: dir + "/meta", key: settings.key(for: "redis/\(name).meta"))
        try await client.upload(file: dir + "/data", key: settings.key(for: "postgres/app_full_20250101_020000.sql.gz"))
        let listing = try await RemoteCatalog(settings: settings, backupDir: dir).list()
        #expect(listing.backups.count == 2)
        let redis = try #require(listing.backups.first { $0.entry.kind == .redis })
        #expect(redis.entry.target == "mymaster" && redis.entry.isGood && redis.entry.path == "s3://lsbucket/site/redis/\(name)")
        #expect(abs(redis.entry.startedAt - started) < 1 && redis.entry.sizeBytes == 500)
        let dump = try #require(listing.backups.first { $0.entry.kind == .postgresFull })
        #expect(!dump.entry.isGood && dump.entry.target == "app")
        let only = try await RemoteCatalog(settings: settings, backupDir: nil).list(kinds: [.redis])
        #expect(only.backups.map(\.key) == ["site/redis/" + name])
    }
}
