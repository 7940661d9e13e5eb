import BackstopCore
import BackstopTestSupport
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// What Backstop writes is private to its owner (and group) whatever the umask, and the
/// secrets it is given (PostgreSQL and Redis passwords, the S3 secret key) never show in a
/// child's argv, a log, the metrics, alerts.json or an error.
@Suite("permissions and secrets", .serialized)
struct PermissionsAndSecretsTests {
    static let pgSecret = "pg-Secret-NeverInArgv-1"

    /// Every file and folder under `root` with its mode.
    static func walk(_ root: String) -> [(path: String, mode: mode_t, isDirectory: Bool)] {
        var out: [(String, mode_t, Bool)] = []
        let enumerator = FileManager.default.enumerator(atPath: root)
        while let relative = enumerator?.nextObject() as? String {
            var st = stat()
            let path = root + "/" + relative
            guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) != S_IFLNK else { continue }
            out.append((path, st.st_mode & 0o7777, (st.st_mode & S_IFMT) == S_IFDIR))
        }
        return out
    }

    /// A new database on the shared server with a table `t` of 100 rows.
    static func database(_ prefix: String) throws -> String {
        let pg = try PostgresServer.shared
        let database = PostgresServer.uniqueDatabaseName(prefix)
        try pg.createDatabase(database)
        try pg.psql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 100) g;", database: database)
        return database
    }

    /// `backstop ARGS` under umask 000.
    static func runUnderUmask000(_ arguments: [String], environment: [String: String]) throws -> CommandResult {
        try TestProcesses.run("/bin/sh", ["-c", "umask 000 && exec \"$0\" \"$@\"", try BackstopBinary.path()] + arguments,
                              environment: environment, check: false)
    }

    static func environment(backupDir: String, moto: MotoServer, redisPassword: String) throws -> [String: String] {
        let pg = try PostgresServer.shared
        let redis = try RedisCluster.shared()
        var env = pg.environment
        env.merge(moto.backstopEnvironment(bucket: "perm-\(UInt32.random(in: 0...UInt32.max))")) { _, new in new }
        env["BACKUP_DIR"] = backupDir
        env["PGPASSWORD"] = pgSecret  // trust auth ignores it; it still travels to the children
        env["REDIS_HOST"] = redis.master.host
        env["REDIS_PORT"] = String(redis.master.port)
        env["REDIS_PASSWORD"] = redisPassword
        return env
    }

    @Test func backupsMetaStateLogsAndFoldersArePrivateUnderUmask000() async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        let database = try Self.database("perm")
        let backupDir = try TestEnvironment.makeTempDirectory("umask") + "/backups"
        var env = try Self.environment(backupDir: backupDir, moto: moto, redisPassword: try RedisCluster.shared().password ?? "")
        env["BACKUP_POSTGRES_DATABASES"] = database
        for args in [["backup", "postgres", "full"], ["backup", "postgres", "incremental"], ["backup", "redis"]] {
            let result = try Self.runUnderUmask000(args, environment: env)
            #expect(result.status == 0, "\(args): \(result.stderr)")
        }
        // serve under umask 000 too: health.log, alerts.json (BackupStale for kinds never run
        // is not the point; whatever fires is written), metrics state.
        env["HEALTH_CHECK_INTERVAL"] = "1s"
        let serve = try ServeUnderTest(environment: env, backupDir: backupDir, umask000: true)
        try TestEnvironment.waitUntil(timeout: 20, "health.log written") {
            FileManager.default.fileExists(atPath: backupDir + "/logs/health.log")
        }
        serve.stop()

        let entries = Self.walk(backupDir)
        let files = entries.filter { !$0.isDirectory }
        print(entries.map { String(format: "%o ", $0.mode) + $0.path.dropFirst(backupDir.count) }.sorted().joined(separator: "\n"))
        #expect(files.contains { $0.path.hasSuffix(".sql.gz") } && files.contains { $0.path.hasSuffix(".rdb.gz") })
        #expect(files.contains { $0.path.hasSuffix("/base.tar.gz") })
        #expect(files.contains { $0.path.hasSuffix(".meta") } && files.contains { $0.path.hasSuffix("/logs/backup.log") })
        #expect(files.contains { $0.path.contains("/.state/") })
        for entry in entries {
            // Nothing for others, nothing writable by the group: 0600/0640 and 0700/0750.
            #expect(entry.mode & 0o027 == 0, "\(entry.path) is \(String(entry.mode, radix: 8))")
        }
        var root = stat()
        stat(backupDir, &root)
        #expect(root.st_mode & 0o027 == 0, "BACKUP_DIR itself is \(String(root.st_mode & 0o7777, radix: 8))")
        let fileModes = Set(files.map { String($0.mode, radix: 8) }).sorted().joined(separator: ", ")
        let folderModes = Set(entries.filter(\.isDirectory).map { String($0.mode, radix: 8) }).sorted().joined(separator: ", ")
        ReliabilityReport.record(
            fault: "umask 000",
            did: "\(files.count) files (backups, `.meta`, base-backup files, state, locks, logs, `alerts.json`) \(fileModes); \(entries.count - files.count) folders \(folderModes)",
            lost: "nothing exposed to other users")
    }

    @Test func secretsNeverInChildArgvLogsMetricsOrAlerts() async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        let database = try Self.database("secret")
        let backupDir = try TestEnvironment.makeTempDirectory("secrets") + "/backups"
        // A wrong Redis password: the Redis errors (health, backup, alert) are error text that
        // must not repeat it.
        let redisSecret = "redis-Wrong-Secret-77"
        var env = try Self.environment(backupDir: backupDir, moto: moto, redisPassword: redisSecret)
        env["BACKUP_POSTGRES_DATABASES"] = database
        env["BACKUP_SCHEDULE_FULL"] = "0 0 1 1 *"        // catch-up: runs at start
        env["BACKUP_SCHEDULE_INCREMENTAL"] = "0 0 1 1 *"
        env["BACKUP_SCHEDULE_REDIS"] = "0 0 1 1 *"
        let secrets = [Self.pgSecret, redisSecret, MotoServer.secretKey]

        // The dump waits on a lock, so its children are alive while /proc is read.
        let holder = try ProcessFaultTests.LockHolder(pg: try PostgresServer.shared, database: database, table: "t")
        let serve = try ServeUnderTest(environment: env, backupDir: backupDir)
        defer { serve.stop() }
        var seen: [String: [String]] = [:]
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            for child in childProcesses(of: serve.pid) { seen["\(child.pid)"] = child.cmdline }
            if seen.values.contains(where: { $0.first?.hasSuffix("pg_dump") == true }) && seen.count >= 2 { break }
            usleep(20_000)
        }
        holder.release()
        try TestEnvironment.waitUntil(timeout: 60, "the full backup to finish (log \(serve.log))") {
            for child in childProcesses(of: serve.pid) { seen["\(child.pid)"] = child.cmdline }
            return serve.logText().contains("backup postgres full: finished")
        }
        try TestEnvironment.waitUntil(timeout: 30, "the S3 upload after the job") {
            FileManager.default.fileExists(atPath: backupDir + "/.state/s3_uploads.json")
        }
        try TestEnvironment.waitUntil(timeout: 30, "RedisDown in alerts.json") {
            ((try? String(contentsOfFile: backupDir + "/alerts.json", encoding: .utf8)) ?? "").contains("RedisDown")
        }
        let metrics = timedScrape(port: serve.port).body
        print("children seen: \(seen.values.map { $0.joined(separator: " ") })")
        #expect(seen.values.contains { $0.first?.hasSuffix("pg_dump") == true }, "no pg_dump seen")

        let ownArgv = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(serve.pid)/cmdline"))) ?? Data()
        var texts: [(String, String)] = seen.map { ("argv of child \($0.key)", $0.value.joined(separator: " ")) }
        texts.append(("serve's argv", String(decoding: ownArgv, as: UTF8.self)))
        texts.append(("serve's output", serve.logText()))
        texts.append(("/metrics", metrics))
        for entry in Self.walk(backupDir) where !entry.isDirectory && !entry.path.hasSuffix(".gz") {
            texts.append((entry.path, (try? String(contentsOfFile: entry.path, encoding: .utf8)) ?? ""))
        }
        #expect(texts.contains { $0.0.hasSuffix("alerts.json") } && texts.contains { $0.0.hasSuffix("health.log") })
        #expect(serve.logText().contains("WRONGPASS") || serve.logText().lowercased().contains("auth"),
                "the wrong Redis password should show as an error")
        for (place, text) in texts {
            for secret in secrets {
                #expect(!text.contains(secret), "a secret in \(place)")
            }
        }
        ReliabilityReport.record(
            fault: "secrets given (PGPASSWORD, a wrong REDIS_PASSWORD, the S3 secret key) while full, base and Redis backups, the upload and the health loop run",
            did: "none in the argv of any of the \(seen.count) children read from /proc while they ran, serve's argv or output, `/metrics`, `logs/`, `alerts.json` or `.state/` (\(texts.count) texts searched)",
            lost: "nothing")
    }
}
