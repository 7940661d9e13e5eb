import BackstopCore
import BackstopTestSupport
import BackupCatalog
import Foundation
@testable import S3
import Testing

/// BACKUP_KEEP_YEARLY with BACKUP_S3_ARCHIVE_STORAGE_CLASS against moto: the yearly keepers of
/// finished years are copied in place into GLACIER (the `.meta` is not), a restore of one says
/// to thaw it first, and `backstop s3 thaw` makes it readable.
@Suite(.serialized) struct ArchiveTierTests {
    @Test func yearlyKeepersOfFinishedYearsGoToGlacierAndThawMakesThemReadable() async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        try moto.createBucket("archive")
        var env = moto.backstopEnvironment(bucket: "archive")
        env["BACKUP_S3_ARCHIVE_STORAGE_CLASS"] = "GLACIER"
        let settings = try #require(try S3Settings(environment: env))
        #expect(settings.archiveStorageClass == "GLACIER")
        let dir = try TestEnvironment.makeTempDirectory("archive")
        let client = S3Client(settings: settings)
        let stamps = ["20240601_040000", "20241231_040000", "20250301_040000", "20261101_040000"]
        for stamp in stamps {
            let started = try #require(WallClock.parseFileStamp(stamp))
            let name = "redis_\(stamp).rdb.gz"
            try AtomicFile.write(Array(repeating: 7, count: 2000), to: dir + "/" + name)
            let meta = BackupMeta(kind: .redis, target: "mymaster", file: name, startedAt: started, finishedAt: started + 5,
                                  sizeBytes: 2000, sha256: String(repeating: "b", count: 64), compression: "gzip", serverVersion: nil)
            try AtomicFile.write(try meta.encoded(), to: dir + "/" + name + ".meta")
            try await client.upload(file: dir + "/" + name, key: "redis/" + name)
            try await client.upload(file: dir + "/" + name + ".meta", key: "redis/\(name).meta")
        }
        let policy = try RetentionPolicy(environment: ["BACKUP_RETENTION_DAYS": "1", "BACKUP_KEEP_DAILY": "0", "BACKUP_KEEP_WEEKLY": "0",
                                                       "BACKUP_KEEP_MONTHLY": "0", "BACKUP_KEEP_YEARLY": "3"])
        #expect(policy.keepYearly == 3)
        let now = try #require(WallClock.parseFileStamp("20261201_000000"))
        let cleanup = RemoteCleanup(settings: settings, policy: policy, backupDir: nil)

        let dry = await cleanup.run(dryRun: true, now: now)
        #expect(Set(dry.archived) == ["s3://archive/redis/redis_20241231_040000.rdb.gz", "s3://archive/redis/redis_20250301_040000.rdb.gz"])
        #expect(try moto.headObject(bucket: "archive", key: "redis/redis_20250301_040000.rdb.gz")["StorageClass"] as? String == "STANDARD_IA")

        let report = await cleanup.run(dryRun: false, now: now)
        #expect(report.errors.isEmpty, "\(report.errors)")
        let reasons = Dictionary(uniqueKeysWithValues: report.plan.map { ($0.backup.entry.name, $0.decision) })
        #expect(reasons["redis_20240601_040000.rdb.gz"]?.keep == false, "2024's keeper is the December one")
        #expect(reasons["redis_20241231_040000.rdb.gz"]?.reasons == [.yearly("2024")])
        func storageClass(_ key: String) throws -> String? { try moto.headObject(bucket: "archive", key: key)["StorageClass"] as? String }
        #expect(try storageClass("redis/redis_20241231_040000.rdb.gz") == "GLACIER")
        #expect(try storageClass("redis/redis_20250301_040000.rdb.gz") == "GLACIER")
        #expect(try storageClass("redis/redis_20261101_040000.rdb.gz") == "STANDARD_IA", "the current year's keeper is not archived")
        #expect(try storageClass("redis/redis_20241231_040000.rdb.gz.meta") == "STANDARD_IA", "the .meta stays readable")
        #expect(!(try moto.keys(bucket: "archive")).contains("redis/redis_20240601_040000.rdb.gz"))
        // The archived copy keeps Backstop's marker (metadata copied) and its bytes.
        let head = try moto.headObject(bucket: "archive", key: "redis/redis_20250301_040000.rdb.gz")
        #expect((head["Metadata"] as? [String: String])?["backstop"] == BuildInfo.version)

        // Listed as archived; a second run copies nothing again.
        let listing = try await RemoteCatalog(settings: settings, backupDir: nil).list()
        #expect(listing.backups.filter(\.isArchived).map(\.entry.name).sorted() == ["redis_20241231_040000.rdb.gz", "redis_20250301_040000.rdb.gz"])
        #expect(await cleanup.run(dryRun: false, now: now).archived.isEmpty)

        // A restore of an archived snapshot is refused with the way out; thaw; then it is readable.
        let key = "redis/redis_20250301_040000.rdb.gz"
        let archive = RemoteArchive(settings: settings)
        let refusal = try #require(try await archive.refusal(key: key))
        #expect(refusal.contains("GLACIER") && refusal.contains("backstop s3 thaw s3://archive/\(key)"))
        var cli = env
        cli["BACKUP_DIR"] = dir
        let restore = try BackstopBinary.run(["restore", "redis", "s3://archive/" + key, "--dry-run"], environment: cli)
        #expect(restore.status != 0 && restore.stderr.contains("backstop s3 thaw"), "\(restore.stdout)\n\(restore.stderr)")

        let listed = try BackstopBinary.run(["list", "--remote", "--json"], environment: cli)
        let objects = try #require(try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]])
        #expect(objects.first { $0["path"] as? String == "s3://archive/" + key }?["storage_class"] as? String == "GLACIER")

        let bad = try BackstopBinary.run(["s3", "thaw", "s3://archive/" + key, "--tier", "Fast"], environment: cli)
        #expect(bad.status == 64 && bad.stderr.contains("--tier Fast") && bad.stderr.contains("Standard, Bulk or Expedited"))
        let thaw = try BackstopBinary.run(["s3", "thaw", "s3://archive/" + key, "--days", "2", "--json"], environment: cli)
        #expect(thaw.status == 0, "\(thaw.stderr)")
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(thaw.stdout.utf8)) as? [[String: String]])
        #expect(rows.first?["result"] == "started" && rows.first?["key"] == "s3://archive/" + key)
        let after = try await archive.readiness(key: key)
        #expect(after != .archived(storageClass: "GLACIER"))
        if case .thawed = after { #expect(try await archive.refusal(key: key) == nil) }
        let notArchived = try BackstopBinary.run(["s3", "thaw", "s3://archive/redis/redis_20261101_040000.rdb.gz"], environment: cli)
        #expect(notArchived.status == 0 && notArchived.stdout.contains("not archived"))
    }
}
