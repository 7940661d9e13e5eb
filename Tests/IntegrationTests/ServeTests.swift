import BackstopCore
import BackstopTestSupport
import Foundation
import Testing

/// `backstop serve` run as an operator runs it, against real PostgreSQL, Redis and Sentinels.
@Suite("backstop serve against real servers", .serialized)
struct ServeTests {
    /// A running `backstop serve` with its environment, stopped at the end of a test.
    final class Service {
        let pid: Int32
        let port: Int
        let backupDir: String
        let log: String
        var metricsURL: String { "http://127.0.0.1:\(port)/metrics" }

        init(postgres: PostgresServer?, redis: RedisCluster?, useSentinel: Bool = true, interval: String = "1s", extra: [String: String] = [:]) throws {
            port = try TestEnvironment.freePort()
            let dir = try TestEnvironment.makeTempDirectory("serve")
            backupDir = dir + "/backups"
            log = dir + "/serve.log"
            var env: [String: String] = [
                "BACKUP_DIR": backupDir,
                "METRICS_LISTEN": "127.0.0.1:\(port)",
                "HEALTH_CHECK_INTERVAL": interval,
                "HEALTH_PROBE_TIMEOUT": "2s",
                // No scheduled backups unless a test asks for them (catch-up would start them at once).
                "BACKUP_SCHEDULE_FULL": "", "BACKUP_SCHEDULE_INCREMENTAL": "", "BACKUP_SCHEDULE_REDIS": "",
                "BACKUP_SCHEDULE_CLEANUP": "", "BACKUP_SCHEDULE_DRILL": "",
            ]
            if let postgres {
                env.merge(postgres.environment) { _, new in new }
            } else {
                env["PGHOST"] = "127.0.0.1"
                env["PGPORT"] = "1"
            }
            if let redis {
                env["REDIS_HOST"] = redis.master.host
                env["REDIS_PORT"] = String(redis.master.port)
                if useSentinel {
                    env["REDIS_SENTINELS"] = redis.sentinels.map(\.description).joined(separator: ",")
                    env["REDIS_SENTINEL_MASTER"] = redis.masterName
                }
                if let password = redis.password { env["REDIS_PASSWORD"] = password }
            } else {
                env["REDIS_HOST"] = "127.0.0.1"
                env["REDIS_PORT"] = "1"
            }
            env.merge(extra) { _, new in new }
            pid = try BackstopBinary.spawn(["serve"], environment: env, logFile: log)
            let port = self.port
            try TestEnvironment.waitUntil(timeout: 20, "backstop serve to listen on \(port)") {
                TestEnvironment.isListening(port: port)
            }
        }

        func metrics() throws -> String {
            try TestHTTP.request(metricsURL).body
        }

        /// Set once `stop()` reaped the process: its pid may belong to someone else afterwards.
        private var reaped = false

        func stop() -> Int32 {
            kill(pid, SIGTERM)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            reaped = true
            TestProcesses.unregister(pid: pid)
            return status
        }

        deinit {
            if !reaped { kill(pid, SIGKILL) }
        }
    }

    @Test("/metrics passes promtool, carries every family, and the other routes answer as documented")
    func metricsContract() throws {
        let pg = try PostgresServer.shared
        let redis = try RedisCluster.shared()
        let service = try Service(postgres: pg, redis: redis)
        defer { _ = service.stop() }
        let body = try TestHTTP.waitFor(service.metricsURL, timeout: 20, "a first health check") {
            $0.contains("backstop_health_check_last_timestamp_seconds ")
                && $0.contains("backstop_redis_master_info{")
                && $0.contains("backstop_postgres_up{")
        }
        for family in [
            "backstop_build_info", "backstop_postgres_up", "backstop_redis_up", "backstop_redis_sentinel_up",
            "backstop_redis_sentinel_master_ok", "backstop_redis_sentinel_quorum_ok",
            "backstop_redis_sentinel_known_sentinels", "backstop_redis_sentinel_known_replicas",
            "backstop_redis_master_info", "backstop_disk_total_bytes", "backstop_disk_free_bytes",
            "backstop_health_check_last_timestamp_seconds", "process_resident_memory_bytes",
            "process_cpu_seconds_total", "process_start_time_seconds", "process_open_fds",
        ] {
            #expect(body.contains("\n\(family){") || body.contains("\n\(family) "), "family \(family) has no sample")
        }
        #expect(metricValue(body, "backstop_postgres_up", "target=\"\(pg.database)\"") == 1)
        #expect(metricValue(body, "backstop_redis_up", "address=\"\(redis.master)\",role=\"master\"") == 1)
        #expect(metricValue(body, "backstop_redis_sentinel_quorum_ok", "master_name=\"mymaster\"") == 1)
        #expect(metricValue(body, "backstop_redis_sentinel_known_sentinels", "master_name=\"mymaster\"") == 3)
        // The one real replica; a port-0 entry left by an RDB-only client is not counted.
        #expect(metricValue(body, "backstop_redis_sentinel_known_replicas", "master_name=\"mymaster\"") == 1,
                "Sentinel's replicas: \((try? redis.redisCLI(port: redis.sentinelPorts[0], ["SENTINEL", "REPLICAS", redis.masterName])) ?? "?")")
        for sentinel in redis.sentinels {
            #expect(metricValue(body, "backstop_redis_sentinel_up", "sentinel=\"\(sentinel)\"") == 1)
        }

        // promtool, the reference linter, finds nothing to say.
        let promtool = try TestEnvironment.binary("promtool", package: "prometheus")
        let check = try TestProcesses.run(promtool, ["check", "metrics"], stdin: Data(body.utf8), check: false)
        #expect(check.status == 0 && check.stdout.isEmpty && check.stderr.isEmpty, "promtool: \(check.stdout)\(check.stderr)")

        let headers = try TestHTTP.request(service.metricsURL).headers
        #expect(headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
        #expect(try TestHTTP.request("http://127.0.0.1:\(service.port)/healthz").status == 200)
        #expect(try TestHTTP.request("http://127.0.0.1:\(service.port)/nope").status == 404)
        let post = try TestHTTP.request(service.metricsURL, method: "POST", body: Data("x".utf8))
        #expect(post.status == 405)
        #expect(post.headers["allow"] == "GET, HEAD")
        let head = try TestHTTP.request(service.metricsURL, method: "HEAD")
        #expect(head.status == 200 && head.body.isEmpty)
    }

    @Test("a stopped PostgreSQL shows as down, and up again once it is back")
    func postgresDownAndUp() throws {
        let pg = try PostgresServer.start(name: "serve-pg-down")
        defer { try? pg.stop(mode: "immediate") }
        let service = try Service(postgres: pg, redis: nil)
        defer { _ = service.stop() }
        let up = "backstop_postgres_up{target=\"\(pg.database)\"} 1"
        let down = "backstop_postgres_up{target=\"\(pg.database)\"} 0"
        try TestHTTP.waitFor(service.metricsURL, timeout: 20, "postgres up") { $0.contains(up) }
        try pg.stop()
        try TestHTTP.waitFor(service.metricsURL, timeout: 20, "postgres down") { $0.contains(down) }
        try pg.start()
        try TestHTTP.waitFor(service.metricsURL, timeout: 20, "postgres up again") { $0.contains(up) }
        let log = try String(contentsOfFile: service.backupDir + "/logs/health.log", encoding: .utf8)
        #expect(log.contains("postgres \(pg.database) down"), "health.log records the change: \(log)")
    }

    @Test("a stopped Redis master shows as down")
    func redisMasterDown() throws {
        let redis = try RedisCluster.start(withSentinels: false)
        defer { redis.shutdown() }
        let service = try Service(postgres: nil, redis: redis, useSentinel: false)
        defer { _ = service.stop() }
        let label = "address=\"\(redis.master)\",role=\"master\""
        try TestHTTP.waitFor(service.metricsURL, timeout: 20, "redis up") { metricValue($0, "backstop_redis_up", label) == 1 }
        try redis.stopMaster()
        try TestHTTP.waitFor(service.metricsURL, timeout: 20, "redis down") { metricValue($0, "backstop_redis_up", label) == 0 }
    }

    @Test("after SENTINEL FAILOVER the master info names the new master")
    func failoverMovesMasterInfo() throws {
        let redis = try RedisCluster.start()
        defer { redis.shutdown() }
        let service = try Service(postgres: nil, redis: redis)
        defer { _ = service.stop() }
        let before = "backstop_redis_master_info{master_name=\"mymaster\",address=\"\(redis.master)\"} 1"
        try TestHTTP.waitFor(service.metricsURL, timeout: 20, "the first master") { $0.contains(before) }
        let newMaster = try redis.failover()
        #expect(newMaster != redis.master)
        let after = "backstop_redis_master_info{master_name=\"mymaster\",address=\"\(newMaster)\"} 1"
        let body = try TestHTTP.waitFor(service.metricsURL, timeout: 30, "the new master") { $0.contains(after) }
        #expect(!body.contains("address=\"\(redis.master)\"} 1\nbackstop") || !body.contains(before), "the old master's series is gone")
        #expect(!body.contains(before))
        #expect(metricValue(body, "backstop_redis_up", "address=\"\(newMaster)\",role=\"master\"") == 1)
    }

    @Test("/metrics keeps answering quickly while PostgreSQL is frozen (SIGSTOP)")
    func frozenPostgres() throws {
        let pg = try PostgresServer.start(name: "serve-pg-frozen")
        defer { try? pg.stop(mode: "immediate") }
        let service = try Service(postgres: pg, redis: nil)
        defer { _ = service.stop() }
        try TestHTTP.waitFor(service.metricsURL, timeout: 20, "postgres up") {
            $0.contains("backstop_postgres_up{target=\"\(pg.database)\"} 1")
        }
        let pid = try #require(pg.postmasterPID)
        kill(pid, SIGSTOP)
        defer { kill(pid, SIGCONT) }
        var slowest = 0.0
        let deadline = Date().addingTimeInterval(6)
        while Date() < deadline {
            let r = try TestHTTP.request(service.metricsURL, timeout: 2)
            #expect(r.status == 200)
            slowest = max(slowest, r.seconds)
            usleep(100_000)
        }
        #expect(slowest < 0.5, "slowest scrape took \(slowest) s while PostgreSQL was frozen")
        let body = try service.metrics()
        #expect(metricValue(body, "backstop_postgres_up", "target=\"\(pg.database)\"") == 0, "a frozen server counts as down")
    }

    @Test("at start-up serve catches up: a dump, a base backup and a Redis snapshot, once each, shown in the metrics")
    func catchUpBackups() throws {
        let pg = try PostgresServer.shared
        let redis = try RedisCluster.shared()
        let service = try Service(postgres: pg, redis: redis, interval: "1s", extra: [
            "BACKUP_SCHEDULE_FULL": "0 2 * * *", "BACKUP_SCHEDULE_INCREMENTAL": "0 */6 * * *", "BACKUP_SCHEDULE_REDIS": "0 */4 * * *",
        ])
        defer { _ = service.stop() }
        let body = try TestHTTP.waitFor(service.metricsURL, timeout: 120, "three catch-up backups") { text in
            ["postgres_full", "postgres_base", "redis"].allSatisfy { kind in
                text.split(separator: "\n").contains { $0.hasPrefix("backstop_backup_runs_total{kind=\"\(kind)\"") && $0.contains("result=\"success\"} 1") }
            }
        }
        for kind in ["postgres_full", "postgres_base", "redis"] {
            let line = body.split(separator: "\n").first { $0.hasPrefix("backstop_backup_last_success_timestamp_seconds{kind=\"\(kind)\"") }
            #expect((line?.split(separator: " ").last.flatMap { Double($0) } ?? 0) > 0, "\(kind) has no last success")
        }
        #expect(!body.contains("result=\"failure\"} 1"), "a catch-up run failed")
        let list = try BackstopBinary.run(["list", "--json"], environment: ["BACKUP_DIR": service.backupDir])
        let entries = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]] ?? []
        let kinds = Set(entries.compactMap { $0["kind"] as? String })
        #expect(kinds.isSuperset(of: ["postgres_full", "postgres_base", "redis"]), "listed kinds: \(kinds)")
        // Catch-up means once, not once per missed slot.
        #expect(entries.filter { ($0["kind"] as? String) == "redis" }.count == 1)
    }

    @Test("SIGTERM during a scheduled dump: nothing partial is left and no pg_dump outlives the service")
    func sigtermDuringDump() throws {
        // Another session holds an exclusive lock, so pg_dump blocks on it: the dump is "running".
        let (pg, locker) = try PostgresServer.startWithLockedTable(name: "serve-sigterm", seconds: 120)
        defer { try? pg.stop(mode: "immediate") }
        defer { kill(locker, SIGKILL) }
        let service = try Service(postgres: pg, redis: nil, interval: "5m", extra: [
            "PGDATABASE": "psscript", "BACKUP_SCHEDULE_FULL": "0 2 * * *", "SHUTDOWN_GRACE_PERIOD": "2s",
        ])
        // Catch-up starts the full backup at once (no backup exists yet); wait for pg_dump.
        var dumpPIDs: [Int32] = []
        try TestEnvironment.waitUntil(timeout: 20, "pg_dump to start under serve") {
            dumpPIDs = childProcesses(of: service.pid, named: "pg_dump")
            return !dumpPIDs.isEmpty
        }
        let started = Date()
        let status = service.stop()
        #expect(Date().timeIntervalSince(started) < 15, "serve took \(Date().timeIntervalSince(started)) s to stop")
        #expect(status == 0, "exit status \(status)")
        for pid in dumpPIDs {
            #expect(kill(pid, 0) != 0, "pg_dump \(pid) outlived the service")
        }
        let files = (try? FileManager.default.contentsOfDirectory(atPath: service.backupDir + "/postgres")) ?? []
        #expect(!files.contains { $0.hasSuffix(".sql.gz") || $0.hasSuffix(".meta") }, "left behind: \(files)")
        #expect(!files.contains { $0.contains("partial") || $0.hasPrefix(".") && $0.contains("sql.gz") }, "temporary file left: \(files)")
        let list = try BackstopBinary.run(["list", "--json"], environment: ["BACKUP_DIR": service.backupDir])
        let listed = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [Any]
        #expect(listed?.isEmpty == true, "list shows: \(list.stdout)")
    }

    @Test("a dump due while the previous one still runs is skipped and counted")
    func overlappingRunIsSkipped() throws {
        // The lock keeps the first pg_dump waiting past the next minute's slot.
        let (pg, locker) = try PostgresServer.startWithLockedTable(name: "serve-skip", seconds: 200)
        defer { try? pg.stop(mode: "immediate") }
        defer { kill(locker, SIGKILL) }
        let service = try Service(postgres: pg, redis: nil, interval: "5m", extra: [
            "PGDATABASE": "psscript", "BACKUP_SCHEDULE_FULL": "* * * * *", "SHUTDOWN_GRACE_PERIOD": "1s",
        ])
        defer { _ = service.stop() }
        let body = try TestHTTP.waitFor(service.metricsURL, timeout: 150, "a skipped run of the full dump") {
            metricValue($0, "backstop_job_skipped_total", "job_name=\"full\"") ?? 0 >= 1
        }
        #expect(metricValue(body, "backstop_job_skipped_total", "job_name=\"redis\"") ?? 0 == 0)
        #expect(childProcesses(of: service.pid, named: "pg_dump").count == 1, "exactly one pg_dump runs")
        let log = try String(contentsOfFile: service.backupDir + "/logs/backup.log", encoding: .utf8)
        #expect(log.contains("job full skipped"), "backup.log says why: \(log)")
    }

    @Test("SIGTERM stops the service within a few seconds, exit status 0")
    func gracefulShutdown() throws {
        let service = try Service(postgres: nil, redis: nil, interval: "5m")
        let started = Date()
        let status = service.stop()
        #expect(Date().timeIntervalSince(started) < 5)
        #expect(status == 0, "exit status \(status)")
        let log = try String(contentsOfFile: service.log, encoding: .utf8)
        #expect(log.contains("backstop stopped"))
    }
}

extension PostgresServer {
    /// The database `backstop` probes in these tests (PGDATABASE in `environment`).
    var database: String { environment["PGDATABASE"] ?? "postgres" }
}

/// Pids of the processes whose parent is `parent` and whose command name is `name`.
func childProcesses(of parent: Int32, named name: String) -> [Int32] {
    ProcessTable.children(of: parent).filter { $0.command == name }.map(\.pid)
}

extension PostgresServer {
    /// A new server with database `psscript` and its table `scripts` (one row), locked by
    /// `lockTable` for `seconds`: a dump of it blocks until the test ends it.
    static func startWithLockedTable(name: String, seconds: Int) throws -> (PostgresServer, Int32) {
        let pg = try PostgresServer.start(name: name)
        _ = try pg.createDatabase("psscript")
        try pg.psql("CREATE TABLE scripts (id int); INSERT INTO scripts VALUES (1)", database: "psscript")
        return (pg, try pg.lockTable("scripts", database: "psscript", seconds: seconds))
    }

    /// A psql session holding an ACCESS EXCLUSIVE lock on `table` for `seconds` (so a pg_dump
    /// of it blocks: the dump is "running"); returns once the lock is held. Kill the pid to end it.
    func lockTable(_ table: String, database: String, seconds: Int) throws -> Int32 {
        let dir = try TestEnvironment.makeTempDirectory("locker")
        let locker = try TestProcesses.spawn(program("psql"), [
            "-h", host, "-p", String(port), "-U", superuser, "-d", database, "-c",
            "BEGIN; LOCK TABLE \(table) IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(\(seconds));",
        ], logFile: dir + "/locker.log")
        try psqlWait(until: "SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND relation = '\(table)'::regclass",
                     equals: "1", database: database)
        return locker
    }

    /// Polls a query until it returns `expected` (10 s at most).
    func psqlWait(until sql: String, equals expected: String, database: String) throws {
        try TestEnvironment.waitUntil(timeout: 10, "\(sql) = \(expected)") {
            (try? psql(sql, database: database))?.trimmingCharacters(in: .whitespacesAndNewlines) == expected
        }
    }
}
