import BackstopCore
import BackstopTestSupport
import BackupCatalog
import BackupJobs
import BackupPipeline
import Foundation
import Restore
import Testing

@Suite(.serialized) struct DrillTests {
    /// A backup folder with a PostgreSQL dump of a fresh database and a Redis snapshot of a
    /// standalone server (`.meta` with `redisKeys` as the key counts).
    static func scene(_ prefix: String, redisKeys: [String: Int]? = nil) throws -> (PostgresServer, String, String, [String: String]) {
        let server = try PostgresServer.shared
        let database = try server.createDatabase(PostgresServer.uniqueDatabaseName(prefix))
        try server.psql("""
            CREATE TABLE a (id int); INSERT INTO a SELECT generate_series(1, 1234);
            CREATE TABLE b (t text); INSERT INTO b VALUES ('x'), ('y');
            """, database: database)
        let backupDir = try TestEnvironment.makeTempDirectory("drill")
        var env = server.environment(database: database)
        env["BACKUP_DIR"] = backupDir
        env["BACKUP_POSTGRES_BIN"] = server.binDirectory
        env["BACKUP_POSTGRES_DATABASES"] = database
        env["BACKUP_REDIS_SERVER"] = try TestEnvironment.binary("redis-server", package: "redis-server")
        let settings = try PostgresJobSettings(environment: env, childEnvironment: env)
        _ = try PostgresFullBackup(settings: settings, log: BackupLog(backupDir: backupDir, echo: false)).run()

        let redis = try StandaloneRedis()
        defer { redis.stop() }
        for i in 0..<300 { try redis.cli(["SET", "k\(i)", "v\(i)"]) }
        try redis.cli(["-n", "4", "SET", "four", "4", "EX", "9999"])
        let rdb = redis.directory + "/snap.rdb"
        try TestProcesses.run(try TestEnvironment.binary("redis-cli", package: "redis-tools"), ["-p", String(redis.port), "--rdb", rdb])
        try FileSystem.createDirectory(backupDir + "/redis")
        try RedisRestoreScene.writeSnapshot(rdb: try FileSystem.read(rdb), to: backupDir + "/redis/redis_\(WallClock.fileStamp(WallClock.now())).rdb.gz",
                                            keys: redisKeys ?? ["0": 300, "4": 1])
        return (server, database, backupDir, env)
    }

    @Test func drillRestoresBothIntoScratchCopiesChecksAndRecords() throws {
        let (server, database, backupDir, env) = try Self.scene("drill_ok")
        let result = try BackstopBinary.run(["drill"], environment: env)
        #expect(result.status == 0, "\(result.stderr)\n\(result.stdout)")
        #expect(result.stdout.contains("2 tables, 1236 rows"), "\(result.stdout)")
        #expect(result.stdout.contains("keys db0=300 db4=1, equal to the .meta"), "\(result.stdout)")
        let record = RestoreRecord.load(backupDir: backupDir)
        #expect((record.drillLastSuccess["postgres_full"] ?? 0) > WallClock.now() - 600)
        #expect((record.drillLastSuccess["redis"] ?? 0) > WallClock.now() - 600)
        #expect((record.drillDuration["redis"] ?? 0) > 0)
        // Scratch copies are gone; the real database is as it was.
        #expect(try server.psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'backstop_drill_%'") == "0")
        #expect(try server.psql("SELECT count(*) FROM a", database: database) == "1234")
        #expect(record.lastSuccess.isEmpty, "a drill is not a restore")
    }

    @Test func drillFailsWhenKeyCountsDifferOrTheDumpIsBroken() throws {
        let (server, _, backupDir, env) = try Self.scene("drill_bad", redisKeys: ["0": 299, "4": 1])
        // Break the dump in the middle of its SQL, with a matching .meta (only the load can tell).
        let dump = try #require(BackupCatalog(backupDir: backupDir).list(kinds: [.postgresFull]).first?.path)
        let text = try TestProcesses.run("/bin/sh", ["-c", "gunzip -c '\(dump)'"]).stdout
        let writer = try BackupFileWriter(destination: dump, compressionLevel: 6)
        try writer.write(Array((text + "\nSELECT * FROM missing_table;\n").utf8))
        let written = try writer.finish()
        var meta = try #require(try BackupMeta.read(forData: dump))
        meta.sha256 = written.sha256
        meta.sizeBytes = written.sizeBytes
        try meta.write(forData: dump)

        let result = try BackstopBinary.run(["drill"], environment: env)
        #expect(result.status == 1)
        #expect(result.stdout.contains("missing_table"), "\(result.stdout)")
        #expect(result.stdout.contains("db0: 300 keys, the .meta says 299"), "\(result.stdout)")
        let record = RestoreRecord.load(backupDir: backupDir)
        #expect(record.drillLastSuccess.isEmpty)
        #expect(try server.psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'backstop_drill_%'") == "0")
    }

    // MARK: The scheduled drill in serve

    /// `backstop serve` on `backupDir` with only the drill scheduled (weekly), and a drill
    /// record whose last run is ten days old, so the overdue drill runs at start-up.
    static func serveWithOverdueDrill(env: [String: String], backupDir: String) throws -> (pid: Int32, port: Int, log: String) {
        let tenDaysAgo = WallClock.now() - 10 * 86400
        try FileSystem.createDirectory(backupDir + "/.state")
        try Data("{\"drill_last_success\": {\"postgres_full\": \(tenDaysAgo), \"redis\": \(tenDaysAgo)}, \"drill_last_attempt\": {\"postgres_full\": \(tenDaysAgo), \"redis\": \(tenDaysAgo)}}\n".utf8)
            .write(to: URL(fileURLWithPath: RestoreRecord.path(backupDir: backupDir)))
        let port = try TestEnvironment.freePort()
        var env = env
        env["METRICS_LISTEN"] = "127.0.0.1:\(port)"
        env["HEALTH_CHECK_INTERVAL"] = "1s"
        env["HEALTH_PROBE_TIMEOUT"] = "2s"
        env["REDIS_HOST"] = "127.0.0.1"
        env["REDIS_PORT"] = "1"
        for job in ["FULL", "INCREMENTAL", "REDIS", "CLEANUP"] { env["BACKUP_SCHEDULE_\(job)"] = "" }
        env["BACKUP_SCHEDULE_DRILL"] = "0 4 * * 0"
        let log = backupDir + "/../serve-\(port).log"
        let pid = try BackstopBinary.spawn(["serve"], environment: env, logFile: log)
        try TestEnvironment.waitUntil(timeout: 20, "backstop serve to listen on \(port)") { TestEnvironment.isListening(port: port) }
        return (pid, port, log)
    }

    static func stop(_ pid: Int32) {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        TestProcesses.unregister(pid: pid)
    }

    static func firing(_ backupDir: String) -> String {
        (try? String(contentsOfFile: backupDir + "/alerts.json", encoding: .utf8)) ?? ""
    }

    @Test func overdueScheduledDrillRunsInServeAndResolvesTheAlert() throws {
        let (_, _, backupDir, env) = try Self.scene("drill_serve_ok")
        let serve = try Self.serveWithOverdueDrill(env: env, backupDir: backupDir)
        defer { Self.stop(serve.pid) }
        let url = "http://127.0.0.1:\(serve.port)/metrics"
        let body = try TestHTTP.waitFor(url, timeout: 120, "both drills to succeed") { text in
            ["postgres_full", "redis"].allSatisfy {
                metricValue(text, "backstop_restore_drill_last_run_success", "kind=\"\($0)\"") == 1
                    && (metricValue(text, "backstop_restore_drill_last_success_timestamp_seconds", "kind=\"\($0)\"") ?? 0) > WallClock.now() - 600
            }
        }
        #expect((metricValue(body, "backstop_restore_drill_duration_seconds", "kind=\"postgres_full\"") ?? 0) > 0)
        // Ten days without a good drill fired RestoreDrillFailed at start-up; the good drill resolves it.
        try TestEnvironment.waitUntil(timeout: 15, "RestoreDrillFailed to resolve") { !Self.firing(backupDir).contains("RestoreDrillFailed") }
        let health = (try? String(contentsOfFile: backupDir + "/logs/health.log", encoding: .utf8)) ?? ""
        #expect(health.contains("RestoreDrillFailed"), "the overdue drill was reported before it ran: \(health)")
        let backupLog = (try? String(contentsOfFile: backupDir + "/logs/backup.log", encoding: .utf8)) ?? ""
        #expect(backupLog.contains("drill redis: OK"), "\(backupLog)")
    }

    @Test func failingScheduledDrillFiresRestoreDrillFailedWithTheReason() throws {
        let (_, _, backupDir, env) = try Self.scene("drill_serve_bad", redisKeys: ["0": 299, "4": 1])
        let serve = try Self.serveWithOverdueDrill(env: env, backupDir: backupDir)
        defer { Self.stop(serve.pid) }
        let url = "http://127.0.0.1:\(serve.port)/metrics"
        let body = try TestHTTP.waitFor(url, timeout: 120, "the drills to finish") { text in
            (metricValue(text, "backstop_restore_drill_last_attempt_timestamp_seconds", "kind=\"redis\"") ?? 0) > WallClock.now() - 600
        }
        #expect(metricValue(body, "backstop_restore_drill_last_run_success", "kind=\"redis\"") == 0)
        #expect(metricValue(body, "backstop_restore_drill_last_run_success", "kind=\"postgres_full\"") == 1)
        try TestEnvironment.waitUntil(timeout: 15, "RestoreDrillFailed for redis with the reason") {
            let text = Self.firing(backupDir)
            return text.contains("The last redis restore drill failed") && text.contains("the .meta says 299")
        }
        #expect(!Self.firing(backupDir).contains("postgres_full restore drill"), "the good PostgreSQL drill resolved its alert")
        let record = RestoreRecord.load(backupDir: backupDir)
        #expect(record.drillLastRunSucceeded("redis") == false && record.drillLastRunSucceeded("postgres_full") == true)
    }
}
