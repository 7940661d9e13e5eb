import BackstopCore
import BackstopTestSupport
import Foundation
import Testing

/// One state, one flow, as an operator sees it: a failed job alerts at once, `backstop health`
/// and serve agree, a backup taken beside serve shows in serve, and the old health-check
/// cron line keeps writing its files.
@Suite("serve and the state store", .serialized)
struct ServeStateTests {
    @Test("a failed scheduled dump reaches alerts.json and the webhook within 2 s, with a 5 min health interval")
    func failedJobAlertsAtOnce() throws {
        // The lock keeps the catch-up pg_dump waiting until the test ends it.
        let (pg, locker) = try PostgresServer.startWithLockedTable(name: "serve-fast-alert", seconds: 120)
        defer { try? pg.stop(mode: "immediate") }
        defer { kill(locker, SIGKILL) }
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }
        let service = try ServeTests.Service(postgres: pg, redis: nil, interval: "5m", extra: [
            "PGDATABASE": "psscript", "BACKUP_SCHEDULE_FULL": "0 2 * * *", "ALERT_WEBHOOK_URL": receiver.url + "/hook",
        ])
        defer { _ = service.stop() }
        // The first (and, for 5 minutes, only) health round is over and the dump is waiting.
        try TestHTTP.waitFor(service.metricsURL, timeout: 20, "the first health round") {
            $0.contains("backstop_health_check_last_timestamp_seconds ")
        }
        try TestEnvironment.waitUntil(timeout: 20, "pg_dump to run under serve") { !childProcesses(of: service.pid, named: "pg_dump").isEmpty }
        let alertsFile = service.backupDir + "/alerts.json"
        #expect(!((try? String(contentsOfFile: alertsFile, encoding: .utf8)) ?? "").contains("BackupFailed"))

        // The dump fails: its server session is terminated.
        let failedAt = Date().timeIntervalSince1970
        _ = try pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pg_dump'", database: "psscript")
        try TestEnvironment.waitUntil(timeout: 10, "BackupFailed in alerts.json") {
            ((try? String(contentsOfFile: alertsFile, encoding: .utf8)) ?? "").contains("\"BackupFailed\"")
        }
        let inFile = Date().timeIntervalSince1970 - failedAt
        #expect(inFile < 2, "alerts.json had BackupFailed \(inFile) s after the dump failed")
        try TestEnvironment.waitUntil(timeout: 10, "BackupFailed at the webhook") {
            receiver.requests.contains { $0.bodyText.contains("\"BackupFailed\"") }
        }
        let delivered = try #require(receiver.requests.first { $0.bodyText.contains("\"BackupFailed\"") })
        #expect(delivered.receivedAt - failedAt < 2, "the webhook heard of BackupFailed \(delivered.receivedAt - failedAt) s after the dump failed")
        let body = try service.metrics()
        #expect(metricValue(body, "backstop_backup_last_run_success", "kind=\"postgres_full\",target=\"psscript\"") == 0)
        #expect(metricValue(body, "backstop_alerts_firing", "alertname=\"BackupFailed\",severity=\"warning\"") == 1)
    }

    @Test("backstop health and serve evaluate the same rules on the same facts")
    func healthAndServeAgree() throws {
        let dir = try TestEnvironment.makeTempDirectory("agree")
        let backupDir = dir + "/backups"
        let env = [
            "BACKUP_DIR": backupDir, "PGHOST": "127.0.0.1", "PGPORT": "1", "REDIS_HOST": "127.0.0.1", "REDIS_PORT": "1",
            "HEALTH_PROBE_TIMEOUT": "2s", "BACKUP_SCHEDULE_FULL": "", "BACKUP_SCHEDULE_INCREMENTAL": "", "BACKUP_SCHEDULE_REDIS": "",
            "BACKUP_SCHEDULE_CLEANUP": "", "BACKUP_SCHEDULE_DRILL": "",
        ]
        // A failed dump (no server) and a failed restore drill, as earlier runs left them.
        let dump = try BackstopBinary.run(["backup", "postgres", "full"], environment: env)
        #expect(dump.status == 1, "the dump cannot succeed without a server: \(dump.stdout)\(dump.stderr)")
        try FileManager.default.createDirectory(atPath: backupDir + "/.state", withIntermediateDirectories: true)
        let drillTime = Date().timeIntervalSince1970 - 3600
        try Data("""
            {"drill_last_attempt": {"redis": \(drillTime)}, "drill_last_error": {"redis": "key count 10 != 12 in .meta"}}
            """.utf8).write(to: URL(fileURLWithPath: backupDir + "/.state/restores.json"))

        let health = try BackstopBinary.run(["health", "--json", "--no-write"], environment: env)
        #expect(health.status == 1)
        let object = try JSONSerialization.jsonObject(with: Data(health.stdout.utf8)) as? [String: Any] ?? [:]
        let fromHealth = Set((object["alerts"] as? [[String: Any]] ?? []).map { Self.identity($0["labels"] as? [String: String] ?? [:]) })
        #expect(!FileManager.default.fileExists(atPath: backupDir + "/alerts.json"), "--no-write wrote alerts.json")

        let serve = try Self.serve(env, interval: "1s", logDir: dir)
        defer { Self.stop(serve) }
        var fromServe = Set<String>()
        try TestEnvironment.waitUntil(timeout: 20, "serve's alerts.json") {
            guard let data = FileManager.default.contents(atPath: backupDir + "/alerts.json"),
                  let items = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]] else { return false }
            fromServe = Set(items.map { Self.identity($0["labels"] as? [String: String] ?? [:]) })
            return !fromServe.isEmpty
        }
        #expect(fromHealth.contains { $0.hasPrefix("BackupFailed ") }, "health: \(fromHealth)")
        #expect(fromHealth.contains { $0.hasPrefix("RestoreDrillFailed ") }, "health: \(fromHealth)")
        #expect(fromHealth == fromServe, "health fired \(fromHealth.subtracting(fromServe)), serve \(fromServe.subtracting(fromHealth))")
    }

    @Test("a CLI backup beside serve shows in serve's metrics within a health interval, as a scheduled one would")
    func cliBackupReachesServe() throws {
        let redis = try StandaloneRedis()
        defer { redis.stop() }
        let target = "127.0.0.1:\(redis.port)"
        let labels = "kind=\"redis\",target=\"\(target)\""
        let env = ["REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(redis.port)]

        // Scheduled: serve's catch-up run.
        let scheduled = try ServeTests.Service(postgres: nil, redis: nil, interval: "1s", extra: env.merging(["BACKUP_SCHEDULE_REDIS": "0 */4 * * *"]) { _, n in n })
        let scheduledBody = try TestHTTP.waitFor(scheduled.metricsURL, timeout: 60, "the catch-up snapshot") {
            metricValue($0, "backstop_backup_last_run_success", labels) == 1
        }
        _ = scheduled.stop()

        // By hand, beside a serve that schedules nothing.
        let service = try ServeTests.Service(postgres: nil, redis: nil, interval: "1s", extra: env)
        defer { _ = service.stop() }
        try TestHTTP.waitFor(service.metricsURL, timeout: 20, "the first health round") {
            $0.contains("backstop_health_check_last_timestamp_seconds ")
        }
        #expect(metricValue(try service.metrics(), "backstop_backup_last_success_timestamp_seconds", labels) == 0)
        let run = try BackstopBinary.run(["backup", "redis"], environment: env.merging(["BACKUP_DIR": service.backupDir]) { _, n in n })
        #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
        let cliBody = try TestHTTP.waitFor(service.metricsURL, timeout: 5, "the CLI backup in serve's metrics") {
            metricValue($0, "backstop_backup_last_success_timestamp_seconds", labels) ?? 0 > 0
        }
        #expect(metricValue(cliBody, "backstop_backup_last_run_success", labels) == 1)
        // BackupStale for redis resolved in serve without a restart.
        try TestEnvironment.waitUntil(timeout: 5, "BackupStale for redis to resolve") {
            let text = (try? String(contentsOfFile: service.backupDir + "/alerts.json", encoding: .utf8)) ?? ""
            return !text.contains("\"target\" : \"\(target)\"") && !text.contains("\"target\": \"\(target)\"")
        }
        // The same series, the same kind of values.
        for family in ["backstop_backup_last_success_timestamp_seconds", "backstop_backup_last_attempt_timestamp_seconds",
                       "backstop_backup_last_size_bytes", "backstop_backup_last_duration_seconds"] {
            #expect(metricValue(scheduledBody, family, labels) ?? 0 > 0 && metricValue(cliBody, family, labels) ?? 0 > 0, "\(family)")
        }
        // The same log lines, but for the time, the file name and the figures.
        func shape(_ backupDir: String) throws -> [String] {
            try String(contentsOfFile: backupDir + "/logs/backup.log", encoding: .utf8)
                .replacingOccurrences(of: backupDir, with: "DIR")
                .replacingOccurrences(of: #"sha256 [0-9a-f]{64}"#, with: "sha256 H", options: .regularExpression)
                .split(separator: "\n").map(String.init)
                .filter { $0.contains("backstop.backup: ") && !$0.contains(": job ") && !$0.contains("s3:") }
                .map { line in
                    let message = line.split(separator: " ", maxSplits: 1).last.map(String.init) ?? ""
                    return message.replacingOccurrences(of: #"[0-9]+"#, with: "N", options: .regularExpression)
                }
        }
        let scheduledLines = try shape(scheduled.backupDir)
        let cliLines = try shape(service.backupDir)
        #expect(!cliLines.isEmpty && scheduledLines == cliLines, "scheduled:\n\(scheduledLines.joined(separator: "\n"))\nCLI:\n\(cliLines.joined(separator: "\n"))")
    }

    @Test("backstop health writes alerts.json and health.log like health-check.sh, and leaves alerts.json to a running serve")
    func oneShotHealthWrites() throws {
        let dir = try TestEnvironment.makeTempDirectory("health-writes")
        let backupDir = dir + "/backups"
        // No schedules, so no BackupStale: only the probes decide what fires.
        var env = ["BACKUP_DIR": backupDir, "PGHOST": "127.0.0.1", "PGPORT": "1", "REDIS_HOST": "127.0.0.1", "REDIS_PORT": "1",
                   "HEALTH_PROBE_TIMEOUT": "2s"]
        for job in ["FULL", "INCREMENTAL", "REDIS", "CLEANUP", "DRILL"] { env["BACKUP_SCHEDULE_\(job)"] = "" }
        let first = try BackstopBinary.run(["health"], environment: env)
        #expect(first.status == 1)
        let alerts = try String(contentsOfFile: backupDir + "/alerts.json", encoding: .utf8)
        #expect(alerts.contains("\"PostgresDown\"") && alerts.contains("\"RedisDown\""), "\(alerts)")
        let log = try String(contentsOfFile: backupDir + "/logs/health.log", encoding: .utf8)
        #expect(log.contains("postgres postgres down") || log.contains("postgres psscript down"), "\(log)")
        #expect(log.contains("FIRING PostgresDown"), "\(log)")

        // Everything answers again: the file goes, the log says what resolved.
        let pg = try PostgresServer.shared
        let redis = try StandaloneRedis()
        defer { redis.stop() }
        var up = env.merging(pg.environment) { _, n in n }
        up["REDIS_PORT"] = String(redis.port)
        _ = try BackstopBinary.run(["health"], environment: up)
        #expect(!FileManager.default.fileExists(atPath: backupDir + "/alerts.json"), "alerts.json stayed although PostgresDown and RedisDown resolved")
        let after = try String(contentsOfFile: backupDir + "/logs/health.log", encoding: .utf8)
        #expect(after.contains("RESOLVED PostgresDown") && after.contains("RESOLVED RedisDown"), "\(after)")

        // --no-write touches neither file.
        let size = (try FileManager.default.attributesOfItem(atPath: backupDir + "/logs/health.log")[.size] as? Int) ?? 0
        _ = try BackstopBinary.run(["health", "--no-write"], environment: env)
        #expect(!FileManager.default.fileExists(atPath: backupDir + "/alerts.json"))
        #expect((try FileManager.default.attributesOfItem(atPath: backupDir + "/logs/health.log")[.size] as? Int) == size)

        // With serve on the same folder, serve keeps alerts.json: health does not fight it.
        let serve = try Self.serve(up, interval: "5m", logDir: dir)
        defer { Self.stop(serve) }
        let beside = try BackstopBinary.run(["health"], environment: env)
        #expect(beside.status == 1)
        #expect(!FileManager.default.fileExists(atPath: backupDir + "/alerts.json"), "health wrote alerts.json while serve keeps it")
        #expect(beside.stderr.contains("alerts.json left to") || beside.stdout.contains("alerts.json left to"), "\(beside.stdout)\(beside.stderr)")
    }

    /// `backstop serve` on `env` (the caller's BACKUP_DIR and servers), listening on a free
    /// port; returns its pid once it listens.
    static func serve(_ env: [String: String], interval: String, logDir: String) throws -> Int32 {
        let port = try TestEnvironment.freePort()
        var serveEnv = env
        serveEnv["METRICS_LISTEN"] = "127.0.0.1:\(port)"
        serveEnv["HEALTH_CHECK_INTERVAL"] = interval
        let pid = try BackstopBinary.spawn(["serve"], environment: serveEnv, logFile: logDir + "/serve.log")
        try TestEnvironment.waitUntil(timeout: 20, "serve to listen") { TestEnvironment.isListening(port: port) }
        return pid
    }

    static func stop(_ pid: Int32) {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        TestProcesses.unregister(pid: pid)
    }

    /// An alert's identity: its name and labels.
    static func identity(_ labels: [String: String]) -> String {
        (labels["alertname"] ?? "?") + " " + labels.keys.sorted().filter { $0 != "alertname" }.map { "\($0)=\(labels[$0]!)" }.joined(separator: ",")
    }
}

/// BackupNotEncrypted, as serve and `backstop health` evaluate it, with real age keys.
@Suite("encryption configured, backup plain")
struct BackupNotEncryptedTests {
    @Test("a plain backup fires BackupNotEncrypted once recipients are set, and an encrypted one resolves it")
    func plainBackupAlerts() throws {
        let redis = try StandaloneRedis()
        defer { redis.stop() }
        let dir = try TestEnvironment.makeTempDirectory("not-encrypted")
        let keygen = try TestEnvironment.binary("age-keygen", package: "age")
        let key = try TestProcesses.run(keygen, [], check: true).stdout
        let recipient = try #require(key.split(separator: "\n").first { $0.hasPrefix("# public key: ") }).dropFirst("# public key: ".count)
        var env = ["BACKUP_DIR": dir, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(redis.port), "PGHOST": "127.0.0.1", "PGPORT": "1",
                   "HEALTH_PROBE_TIMEOUT": "2s"]
        for job in ["FULL", "INCREMENTAL", "REDIS", "CLEANUP", "DRILL"] { env["BACKUP_SCHEDULE_\(job)"] = "" }
        func alerts(_ env: [String: String]) throws -> [[String: String]] {
            let run = try BackstopBinary.run(["health", "--json", "--no-write"], environment: env)
            let object = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any] ?? [:]
            return (object["alerts"] as? [[String: Any]] ?? []).compactMap { $0["labels"] as? [String: String] }
                .filter { $0["alertname"] == "BackupNotEncrypted" }
        }
        let plain = try BackstopBinary.run(["backup", "redis"], environment: env)
        #expect(plain.status == 0, "\(plain.stdout)\(plain.stderr)")
        #expect(try alerts(env).isEmpty, "fired without BACKUP_ENCRYPTION_RECIPIENTS")
        var encrypted = env
        encrypted["BACKUP_ENCRYPTION_RECIPIENTS"] = String(recipient)
        #expect(try alerts(encrypted).map { $0["kind"] } == ["redis"])
        let sealed = try BackstopBinary.run(["backup", "redis"], environment: encrypted)
        #expect(sealed.status == 0, "\(sealed.stdout)\(sealed.stderr)")
        #expect(try alerts(encrypted).isEmpty, "an encrypted newest backup did not resolve it")
    }
}
