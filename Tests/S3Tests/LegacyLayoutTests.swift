import BackstopCore
import BackstopTestSupport
import BackupCatalog
import Foundation
@testable import S3
import Testing

/// A bucket written by the old scripts (`aws s3 cp` of each finished file, no `.meta`, the
/// base backup as `postgres/psscript_incremental_STAMP.tar.gz`) read by Backstop: listed as
/// legacy backups, retained by the same rules, restorable where Backstop can (a dump, with the
/// gzip stream as its only check) and explained where it cannot (the incremental tar).
@Suite(.serialized) struct LegacyLayoutTests {
    static func gzipFile(_ path: String, text: String) throws {
        try text.write(toFile: path + ".plain", atomically: true, encoding: .utf8)
        _ = try TestProcesses.run("/bin/sh", ["-c", "gzip -c \"$1.plain\" > \"$1\"", "sh", path])
    }

    @Test func oldScriptUploadsAreListedAsLegacyAndRetainedByTheSameRules() async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        try moto.createBucket("oldbucket")
        let dir = try TestEnvironment.makeTempDirectory("legacy-s3")
        try Self.gzipFile(dir + "/dump.sql.gz", text: "CREATE TABLE t (id int);\n")
        let oldKeys = [
            "postgres/psscript_full_20240107_020000.sql.gz", "postgres/psscript_full_20240108_020000.sql.gz",
            "postgres/psscript_incremental_20240107_080000.tar.gz", "postgres/psscript_incremental_20240108_080000.tar.gz",
            "redis/redis_20240108_040000.rdb.gz", "reports/backup_inventory_20240108.txt", "reports/backup_inventory_20240229.txt",
            "reports/notes.txt",
        ]
        for key in oldKeys {  // exactly what the old scripts ran
            try moto.aws(["s3", "cp", dir + "/dump.sql.gz", "s3://oldbucket/" + key, "--storage-class", "STANDARD_IA"])
        }
        let settings = try #require(try S3Settings(environment: moto.backstopEnvironment(bucket: "oldbucket")))
        // Backstop's own interrupted upload: data without .meta, but with Backstop's marker.
        try await S3Client(settings: settings).upload(file: dir + "/dump.sql.gz", key: "postgres/psscript_full_20240109_020000.sql.gz")

        let listing = try await RemoteCatalog(settings: settings, backupDir: dir).list()
        let byName = Dictionary(uniqueKeysWithValues: listing.backups.map { ($0.entry.name, $0) })
        #expect(byName.count == 6, "\(byName.keys.sorted())")
        let incremental = try #require(byName["psscript_incremental_20240108_080000.tar.gz"])
        #expect(incremental.entry.kind == .postgresBase && incremental.entry.target == "psscript" && incremental.entry.state == .legacy)
        #expect(incremental.isLegacyArchive && !incremental.entry.isDirectory)
        #expect(incremental.entry.startedAt == WallClock.parseFileStamp("20240108_080000"))
        #expect(byName["psscript_full_20240108_020000.sql.gz"]?.entry.state == .legacy)
        #expect(byName["redis_20240108_040000.rdb.gz"]?.entry.isGood == true)
        #expect(byName["psscript_full_20240109_020000.sql.gz"]?.entry.state == .incomplete, "Backstop's own metaless upload stays incomplete")
        #expect(byName["psscript_full_20240108_020000.sql.gz"]?.storageClass == "STANDARD_IA")

        // Retention: per kind and target, the newest legacy backup of each stays, the older goes.
        let policy = RetentionPolicy(retentionDays: 1, keepDaily: 0, keepWeekly: 0, keepMonthly: 0)
        let now = try #require(WallClock.parseFileStamp("20240301_000000"))
        let report = await RemoteCleanup(settings: settings, policy: policy, backupDir: dir).run(dryRun: false, now: now)
        #expect(report.errors.isEmpty, "\(report.errors)")
        let left = Set(try moto.keys(bucket: "oldbucket"))
        #expect(!left.contains("postgres/psscript_full_20240107_020000.sql.gz"))
        #expect(!left.contains("postgres/psscript_incremental_20240107_080000.tar.gz"))
        #expect(left.isSuperset(of: ["postgres/psscript_full_20240108_020000.sql.gz", "postgres/psscript_incremental_20240108_080000.tar.gz",
                                     "redis/redis_20240108_040000.rdb.gz", "reports/backup_inventory_20240229.txt", "reports/notes.txt"]))
        // The daily inventories the old scripts uploaded go once past retention, like the local ones.
        #expect(!left.contains("reports/backup_inventory_20240108.txt"))
        #expect(report.removedReports == ["s3://oldbucket/reports/backup_inventory_20240108.txt"])
        // The interrupted Backstop upload is incomplete, never a keeper; its upload time (the real
        // clock) is later than `now`, so it is not yet a day-old leftover and stays.
        #expect(left.contains("postgres/psscript_full_20240109_020000.sql.gz"))

        // What a restore of each would do.
        let catalog = RemoteCatalog(settings: settings, backupDir: nil)
        let meta = try BackupMeta.decode(try #require(try await catalog.legacyMeta(forKey: "postgres/psscript_full_20240108_020000.sql.gz")))
        #expect(meta.isCompleted && meta.sha256 == nil && meta.database == "psscript" && meta.type == "full")
        #expect(BackupCatalog.state(of: meta) == .legacy)
        #expect(try await catalog.legacyMeta(forKey: "postgres/psscript_full_20240109_020000.sql.gz") == nil)
        let advice = catalog.legacyArchiveAdvice(key: "postgres/psscript_incremental_20240108_080000.tar.gz")
        #expect(advice.contains("tar -xzf") && advice.contains("s3://oldbucket/postgres/psscript_incremental_20240108_080000.tar.gz"))

        // Through the command line, as an operator: list --remote shows them, restore explains the tar.
        var env = moto.backstopEnvironment(bucket: "oldbucket")
        env["BACKUP_DIR"] = dir
        let list = try BackstopBinary.run(["list", "--remote"], environment: env)
        #expect(list.status == 0, "\(list.stderr)")
        #expect(list.stdout.contains("s3://oldbucket/postgres/psscript_incremental_20240108_080000.tar.gz") && list.stdout.contains("legacy"))
        let restore = try BackstopBinary.run(["restore", "postgres", "s3://oldbucket/postgres/psscript_incremental_20240108_080000.tar.gz", "--dry-run"],
                                             environment: env)
        #expect(restore.status == 1)
        #expect(restore.stderr.contains("uploaded by the old scripts") && restore.stderr.contains("tar -xzf"), "\(restore.stderr)")
    }

    @Test func aLegacyDumpFromTheBucketRestoresWithItsGzipStreamChecked() async throws {
        let server = try PostgresServer.shared
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        try moto.createBucket("oldrestore")
        let dir = try TestEnvironment.makeTempDirectory("legacy-restore")
        let source = try server.createDatabase(PostgresServer.uniqueDatabaseName("legacysrc"))
        try server.psql("CREATE TABLE scripts (id int, body text); INSERT INTO scripts SELECT g, 'row ' || g FROM generate_series(1, 321) g;", database: source)
        let dump = try TestProcesses.run(server.program("pg_dump"), ["--no-password", "-d", source], environment: server.environment(database: source))
        try Self.gzipFile(dir + "/old.sql.gz", text: dump.stdout)
        let target = PostgresServer.uniqueDatabaseName("legacydst")
        let key = "postgres/\(target)_full_20240108_020000.sql.gz"
        try moto.aws(["s3", "cp", dir + "/old.sql.gz", "s3://oldrestore/" + key, "--storage-class", "STANDARD_IA"])

        var env = moto.backstopEnvironment(bucket: "oldrestore").merging(server.environment(database: "postgres")) { a, _ in a }
        env["BACKUP_DIR"] = dir
        env["BACKUP_POSTGRES_BIN"] = server.binDirectory
        let result = try BackstopBinary.run(["restore", "postgres", "s3://oldrestore/" + key, "--yes"], environment: env)
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("no SHA-256"), "the missing checksum is said: \(result.stdout)")
        #expect(try server.psql("SELECT count(*) FROM scripts", database: target) == "321")
    }
}
