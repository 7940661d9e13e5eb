import BackstopCore
import BackstopTestSupport
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `.meta` files, state files and alerts.json that are truncated, not JSON or from a newer
/// version: list, cleanup, serve and restore keep working, name each file, and never delete a
/// backup because its `.meta` could not be read.
@Suite("damaged files", .serialized)
struct CorruptFilesTests {
    @Test func damagedMetaStateAndAlertsFilesAreReportedAndNoBackupIsLost() throws {
        let pg = try PostgresServer.shared
        let database = PostgresServer.uniqueDatabaseName("damaged")
        try pg.createDatabase(database)
        try pg.psql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 100) g;", database: database)
        let backupDir = try TestEnvironment.makeTempDirectory("damaged") + "/backups"
        var env = pg.environment
        env["BACKUP_DIR"] = backupDir
        env["BACKUP_POSTGRES_DATABASES"] = database
        env["BACKUP_RETENTION_DAYS"] = "1"
        env["BACKUP_KEEP_DAILY"] = "0"; env["BACKUP_KEEP_WEEKLY"] = "0"; env["BACKUP_KEEP_MONTHLY"] = "0"
        #expect(try BackstopBinary.run(["backup", "postgres", "full"], environment: env).status == 0)
        let postgresDir = backupDir + "/postgres"
        let good = try #require(try FileManager.default.contentsOfDirectory(atPath: postgresDir)
            .first { $0.hasPrefix(database + "_full_") && $0.hasSuffix(".sql.gz") })

        // Three old dumps (six years: every retention rule would let them go) with damaged .meta.
        let damaged: [(db: String, meta: String)] = [
            ("truncated", "{\"timestamp\":\"20200101_000000\",\"type\":\"full\",\"datab"),
            ("notjson", "this is not JSON\n"),
            ("future", "{\"format_version\":9,\"timestamp\":\"20200101_000000\",\"type\":\"full\",\"kind\":\"postgres_full_v9\",\"status\":\"completed\",\"sha256\":\"00\",\"new\":{\"x\":[1]}}"),
        ]
        var dataBefore: [String: Data] = [:]
        for d in damaged {
            let data = postgresDir + "/\(d.db)_full_20200101_000000.sql.gz"
            try TestProcesses.run("/bin/sh", ["-c", "echo 'SELECT 1;' | gzip > '\(data)'"])
            try d.meta.write(toFile: data + ".meta", atomically: true, encoding: .utf8)
            dataBefore[data] = try Data(contentsOf: URL(fileURLWithPath: data))
        }
        try "{\"version\": 99, \"attempts\": [".write(toFile: backupDir + "/.state/attempts.json", atomically: true, encoding: .utf8)
        try "{\"alerts\": [ {\"labels\"".write(toFile: backupDir + "/alerts.json", atomically: true, encoding: .utf8)

        // list: works, the good backup is good, each damaged .meta is named.
        let list = try BackstopBinary.run(["list"], environment: env)
        #expect(list.status == 0)
        #expect(list.stdout.contains(good) && list.stdout.components(separatedBy: "META UNREADABLE").count - 1 == 3, "\(list.stdout)")
        for d in damaged { #expect(list.stderr.contains("\(postgresDir)/\(d.db)_full_20200101_000000.sql.gz.meta cannot be read"), "\(list.stderr)") }
        let json = try BackstopBinary.run(["list", "--json"], environment: env)
        let objects = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        #expect(objects.filter { $0["state"] as? String == "meta_unreadable" }.count == 3)

        // cleanup (for real): the damaged ones stay, byte for byte.
        let cleanup = try BackstopBinary.run(["cleanup"], environment: env)
        #expect(cleanup.status == 0, "\(cleanup.stderr)")
        #expect(cleanup.stdout.contains("its .meta cannot be read"), "\(cleanup.stdout)")
        for (path, bytes) in dataBefore {
            #expect((try? Data(contentsOf: URL(fileURLWithPath: path))) == bytes, "\(path) was changed or deleted")
            #expect(FileManager.default.fileExists(atPath: path + ".meta"))
        }

        // serve: starts, names every damaged file, and its metrics still know the good backup.
        let serve = try ServeUnderTest(environment: env, backupDir: backupDir)
        defer { serve.stop() }
        let metrics = timedScrape(port: serve.port, source: "127.0.0.1").body
        let line = metrics.split(separator: "\n").first { $0.hasPrefix("backstop_backup_last_success_timestamp_seconds{") && $0.contains("target=\"\(database)\"") }
        #expect(line.map { !$0.hasSuffix(" 0") } == true, "\(String(describing: line))")
        try TestEnvironment.waitUntil(timeout: 10, "the damaged files named in serve's log") {
            let log = serve.logText()
            return damaged.allSatisfy { log.contains("\($0.db)_full_20200101_000000.sql.gz.meta cannot be read") }
                && log.contains("\(backupDir)/.state/attempts.json is not valid JSON")
                && log.contains("\(backupDir)/alerts.json")
        }
        serve.stop()

        // restore: lists and dry-runs the good backup.
        let offered = try BackstopBinary.run(["restore", "postgres"], environment: env)
        #expect(offered.status == 0 && offered.stdout.contains(good), "\(offered.stdout)\(offered.stderr)")
        #expect(!offered.stdout.contains("truncated_full"))
        let dry = try BackstopBinary.run(["restore", "postgres", postgresDir + "/" + good, "--dry-run"], environment: env)
        #expect(dry.status == 0, "\(dry.stdout)\(dry.stderr)")
        for (path, bytes) in dataBefore { #expect((try? Data(contentsOf: URL(fileURLWithPath: path))) == bytes) }
        ReliabilityReport.record(
            fault: "a `.meta` truncated, not JSON, or of a newer format",
            did: "`list` shows `META UNREADABLE` and names each of the \(damaged.count) files; `cleanup` keeps those backups whatever their age; `restore` offers and dry-runs the good one; `serve` starts and names the files",
            lost: "nothing: the \(dataBefore.count) damaged backups stay byte-identical")
        ReliabilityReport.record(
            fault: "`.state/attempts.json` or `alerts.json` damaged",
            did: "`serve` starts, names the file, reads it as empty; its metrics still know the good backup",
            lost: "nothing (the firing set is rebuilt at the first evaluation)")
    }
}
