#if canImport(Glibc)
import Glibc
#endif
import BackstopCore
import BackstopMetrics
import BackupCatalog
import BackupJobs
import Foundation
import RedisClient

/// The result of one drill.
public struct DrillResult: Sendable {
    /// `postgres_full` or `redis`.
    public var kind: String
    public var backup: String?
    public var success: Bool
    /// Wall time of the whole drill for this kind: check, load, verify (the recovery time).
    public var seconds: Double
    /// What was found (tables and rows, keys per database) or why it failed.
    public var details: String
    /// Stopped by a shutdown (SIGTERM): neither a pass nor a failure, and not recorded.
    public var interrupted = false
}

/// `backstop drill`: proves the newest backups restore. The newest good PostgreSQL dump of each
/// configured database is loaded into a scratch database on the same server (tables and row
/// counts checked, then dropped); the newest good Redis snapshot is loaded by a scratch
/// `redis-server` on a free loopback port (key counts compared with the `.meta`, then
/// stopped). Nothing outside the scratch copies is touched. Successes are recorded in
/// `.state/restores.json` and, when a registry is given, as
/// `backstop_restore_drill_last_success_timestamp_seconds{kind}` and
/// `backstop_restore_drill_duration_seconds{kind}`.
///
/// Blocking: run on a thread that may block.
public struct RestoreDrill: Sendable {
    public let settings: PostgresJobSettings
    /// The redis-server program for the scratch server (`BACKUP_REDIS_SERVER`, else PATH).
    public let redisServer: String
    public let log: BackupLog
    public let metrics: MetricsRegistry?
    /// A shutdown (SIGTERM to `backstop drill`, serve's grace period over): the running drill
    /// stops its scratch server, removes its scratch folder and reports `interrupted`.
    public let cancellation: JobCancellation?

    public init(settings: PostgresJobSettings, redisServer: String = "redis-server", log: BackupLog, metrics: MetricsRegistry? = nil,
                cancellation: JobCancellation? = nil) {
        self.settings = settings
        self.redisServer = redisServer
        self.log = log
        self.metrics = metrics
        self.cancellation = cancellation
    }

    /// The scratch server program: `BACKUP_REDIS_SERVER`, or `redis-server` on PATH.
    public static func redisServer(environment env: [String: String]) -> String {
        env["BACKUP_REDIS_SERVER"].flatMap { $0.isEmpty ? nil : $0 } ?? "redis-server"
    }

    /// Runs the drills asked for and records them.
    public func run(postgres: Bool = true, redis: Bool = true) -> [DrillResult] {
        var results: [DrillResult] = []
        let stopped = { cancellation?.isCancelled == true }
        if postgres { results += settings.databases.compactMap { stopped() ? nil : drillPostgres(database: $0) } }
        if redis && !stopped() { results.append(drillRedis()) }
        for result in results {
            log.info("drill \(result.kind): \(result.interrupted ? "INTERRUPTED" : result.success ? "OK" : "FAILED") in \(String(format: "%.1f", result.seconds)) s\(result.backup.map { " (\($0))" } ?? ""): \(result.details)")
        }
        record(results)
        return results
    }

    private func record(_ results: [DrillResult]) {
        let now = WallClock.now()
        var byKind: [String: [DrillResult]] = [:]
        // An interrupted drill proved nothing either way: the last result stands (no pass, no
        // failure that would fire RestoreDrillFailed).
        for r in results where !r.interrupted { byKind[r.kind, default: []].append(r) }
        for (kind, list) in byKind {
            let seconds = list.map(\.seconds).reduce(0, +)
            let failures = list.filter { !$0.success }.map(\.details)
            let error = failures.isEmpty ? nil : failures.joined(separator: "; ")
            do {
                try RestoreRecord.recordDrill(kind: kind, at: now, seconds: seconds, error: error, backupDir: settings.backupDir)
            } catch {
                log.error("drill \(kind): recording the result failed: \(error)")
            }
            if let metrics {
                Family.declareRestore(in: metrics)
                metrics.set(Family.restoreDrillLastAttempt, ["kind": kind], now)
                metrics.set(Family.restoreDrillLastRunSuccess, ["kind": kind], error == nil ? 1 : 0)
                if error == nil {
                    metrics.set(Family.restoreDrillLastSuccess, ["kind": kind], now)
                    metrics.set(Family.restoreDrillDuration, ["kind": kind], seconds)
                }
            }
        }
    }

    // MARK: PostgreSQL

    public func drillPostgres(database: String) -> DrillResult {
        let started = MonotonicClock.seconds()
        let kind = BackupKind.postgresFull.rawValue
        let catalog = BackupCatalog(backupDir: settings.backupDir)
        guard let entry = catalog.list(kinds: [.postgresFull]).first(where: { $0.isGood && $0.target == database }) else {
            return DrillResult(kind: kind, backup: nil, success: false, seconds: 0, details: "no good dump of \(database) in \(catalog.postgresDir)")
        }
        let admin = PostgresAdmin(settings: settings)
        let scratch = "backstop_drill_\(WallClock.fileStamp(WallClock.now()))_\(getpid())"
        func fail(_ why: String) -> DrillResult {
            // After a shutdown, a step that failed was stopped by it (psql, the scratch server).
            DrillResult(kind: kind, backup: entry.path, success: false, seconds: MonotonicClock.seconds() - started, details: why,
                        interrupted: cancellation?.isCancelled == true)
        }
        do {
            _ = try RestoreSource.check(path: entry.path, backupDir: settings.backupDir, kind: .postgresFull, allowOutside: false)
        } catch {
            return fail("\(error)")
        }
        do {
            try admin.session { db in try db.execute("CREATE DATABASE \(try db.identifier(scratch)) TEMPLATE template0") }
        } catch {
            return fail("creating the scratch database failed: \(error)")
        }
        defer {
            _ = try? admin.session { db in
                try db.terminateSessions(scratch)
                try db.execute("DROP DATABASE IF EXISTS \(try db.identifier(scratch))")
            }
        }
        do {
            try PostgresLoader.load(path: entry.path, into: scratch, settings: settings)
            let counts = try admin.session(database: scratch) { db in try db.query("""
                SELECT n.nspname || '.' || c.relname || '=' ||
                       (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text
                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
                ORDER BY 1
                """) }
            let tables = counts.compactMap { $0.first ?? nil }
            guard !tables.isEmpty else { return fail("the dump loaded but holds no tables") }
            let rows = tables.compactMap { $0.split(separator: "=").last.flatMap { Int($0) } }.reduce(0, +)
            return DrillResult(kind: kind, backup: entry.path, success: true, seconds: MonotonicClock.seconds() - started,
                               details: "\(database): \(tables.count) tables, \(rows) rows (\(tables.prefix(8).joined(separator: ", "))\(tables.count > 8 ? ", …" : ""))")
        } catch {
            return fail("\(error)")
        }
    }

    // MARK: Redis

    public func drillRedis() -> DrillResult {
        let started = MonotonicClock.seconds()
        let kind = BackupKind.redis.rawValue
        let catalog = BackupCatalog(backupDir: settings.backupDir)
        guard let entry = catalog.list(kinds: [.redis]).first(where: { $0.isGood }) else {
            return DrillResult(kind: kind, backup: nil, success: false, seconds: 0, details: "no good Redis snapshot in \(catalog.redisDir)")
        }
        func fail(_ why: String) -> DrillResult {
            // After a shutdown, a step that failed was stopped by it (psql, the scratch server).
            DrillResult(kind: kind, backup: entry.path, success: false, seconds: MonotonicClock.seconds() - started, details: why,
                        interrupted: cancellation?.isCancelled == true)
        }
        do {
            _ = try RestoreSource.check(path: entry.path, backupDir: settings.backupDir, kind: .redis, allowOutside: false)
        } catch {
            return fail("\(error)")
        }
        // The pid in the name lets the next serve remove it if this process is killed (LeftoverSweep).
        // NSTemporaryDirectory() ends with "/": one separator, so errors show a clean path.
        let temporary = String(NSTemporaryDirectory().reversed().drop { $0 == "/" }.reversed())
        var template = Array((temporary + "/backstop-drill-\(getpid())-XXXXXX").utf8CString)
        guard let dirPointer = mkdtemp(&template) else { return fail("mkdtemp failed: \(String(cString: strerror(errno)))") }
        let dir = String(cString: dirPointer)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let fd = open(dir + "/dump.rdb", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard fd >= 0 else { return fail("cannot write \(dir)/dump.rdb") }
            defer { close(fd) }
            try GunzipStream().copy(path: entry.path, to: fd, named: dir + "/dump.rdb")
        } catch {
            return fail("inflating the snapshot failed: \(error)")
        }
        guard let port = Self.freeLoopbackPort() else { return fail("no free loopback port") }
        let server: ChildProcess
        do {
            server = try ChildProcess(executable: redisServer,
                                      arguments: ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--dbfilename", "dump.rdb",
                                                  "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", dir + "/redis.log"],
                                      captureStdout: false, scratchDirectory: settings.stateDir)
        } catch {
            return fail("cannot start \(redisServer): \(error) (install redis-server or set BACKUP_REDIS_SERVER)")
        }
        defer {
            server.terminate()
            // A redis-server still loading ignores SIGTERM until the load is done: after a
            // shutdown the scratch copy (nothing in it to keep) is killed, not waited for.
            if cancellation?.isCancelled == true, server.tryWait() == nil { kill(server.pid, SIGKILL) }
            _ = try? server.wait()
        }
        let endpoint = Endpoint(host: "127.0.0.1", port: port)
        let deadline = MonotonicClock.seconds() + 600
        var keyspace: [Int: KeyspaceCounts]?
        var lastError = "not started"
        while MonotonicClock.seconds() < deadline {
            do {
                // 1 s: a loading server answers late; a short wait keeps the shutdown check frequent.
                let c = try RedisConnection(to: endpoint, timeout: 1)
                try c.ping()
                if try c.info("persistence")["loading"] == "0" {
                    keyspace = try c.keyspace()
                    break
                }
            } catch {
                lastError = "\(error)"
            }
            if cancellation?.isCancelled == true {
                return DrillResult(kind: kind, backup: entry.path, success: false, seconds: MonotonicClock.seconds() - started,
                                   details: "interrupted by the shutdown while the scratch redis-server loaded the snapshot; it was stopped and its folder removed",
                                   interrupted: true)
            }
            // tryWait, not kill(pid, 0): a server that died is a zombie until reaped, and a
            // zombie still answers kill(pid, 0).
            if server.tryWait() != nil { break }
            usleep(100_000)
        }
        guard let keyspace else {
            let logText = (try? FileSystem.read(dir + "/redis.log")).map { String(decoding: $0.suffix(1500), as: UTF8.self) } ?? ""
            return fail("the scratch redis-server did not load the snapshot (\(lastError)); its log: \(logText)")
        }
        let found = RedisRestore.describe(keyspace)
        guard let expected = RedisRestore.expectedKeys(metaPath: BackupMeta.path(for: entry.path)) else {
            return DrillResult(kind: kind, backup: entry.path, success: !keyspace.isEmpty, seconds: MonotonicClock.seconds() - started,
                               details: "keys \(found) (the .meta records no key counts)")
        }
        var mismatches: [String] = []
        for db in Set(expected.keys).union(keyspace.keys).sorted() where (expected[db] ?? 0) != (keyspace[db]?.keys ?? 0) {
            mismatches.append("db\(db): \(keyspace[db]?.keys ?? 0) keys, the .meta says \(expected[db] ?? 0)")
        }
        guard mismatches.isEmpty else { return fail("key counts differ from the .meta: \(mismatches.joined(separator: "; "))") }
        return DrillResult(kind: kind, backup: entry.path, success: true, seconds: MonotonicClock.seconds() - started,
                           details: "keys \(found), equal to the .meta")
    }

    static func freeLoopbackPort() -> Int? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        address.sin_port = 0
        let ok = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0 else { return nil }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
