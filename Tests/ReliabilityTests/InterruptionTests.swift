import BackstopCore
import BackstopTestSupport
import BackupCatalog
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// SIGTERM in the middle of each job kind, to `serve` (the scheduler gives the job
/// SHUTDOWN_GRACE_PERIOD, then cancels it) and to the one-shot CLI: a graceful stop within the
/// grace period, nothing partial that looks complete, the lock released, the run recorded as
/// interrupted (neither firing nor clearing BackupFailed), no child left, and the next run
/// normal. The jobs run real programs against real servers, slowed (`SlowPrograms`,
/// `rdb-key-save-delay`) so the signal lands inside the job every time.
@Suite("interruptions", .serialized)
struct InterruptionTests {
    static let grace = 2.0

    /// Files of `folder` whose names say "partial" or "tmp" (what an interrupted run must not leave).
    static func leftovers(_ folder: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.contains(".partial") || $0.contains(".tmp") }
    }

    /// The lock is free (we can take it) and its text is empty (nobody claims it).
    static func expectLockReleased(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? "missing"
        #expect(text.isEmpty, "lock text of \(path): \(text)", sourceLocation: sourceLocation)
        do {
            let lock = try FileLock(path: path, purpose: "test")
            lock.release()
        } catch {
            Issue.record("\(path) is still held: \(error)", sourceLocation: sourceLocation)
        }
    }

    /// The interrupted attempt of `key` in `.state/attempts.json`, and the finished one.
    static func attempts(_ backupDir: String, _ key: String) -> (interrupted: AttemptsRecord.Attempt?, finished: AttemptsRecord.Attempt?) {
        let record = AttemptsRecord.load(backupDir: backupDir)
        return (record.interrupted[key], record.attempts[key])
    }

    /// The targets BackupFailed fires for in alerts.json (empty when the file is absent).
    static func backupFailedTargets(_ backupDir: String) -> Set<String> {
        guard let data = FileManager.default.contents(atPath: backupDir + "/alerts.json"),
              let json = try? JSONSerialization.jsonObject(with: data) else { return [] }
        var out: Set<String> = []
        func walk(_ value: Any) {
            if let dict = value as? [String: Any] {
                if dict["alertname"] as? String == "BackupFailed", let target = dict["target"] as? String { out.insert(target) }
                dict.values.forEach(walk)
            } else if let array = value as? [Any] {
                array.forEach(walk)
            }
        }
        walk(json)
        return out
    }

    /// SIGTERM to serve; returns the seconds until it exited, after checking every process
    /// below it at that moment died too.
    static func terminate(_ serve: ServeUnderTest, sourceLocation: SourceLocation = #_sourceLocation) throws -> Double {
        let below = SlowPrograms.descendants(of: serve.pid)
        #expect(!below.isEmpty, "no child was running under serve", sourceLocation: sourceLocation)
        let t0 = Date()
        serve.kill(SIGTERM)
        try serve.waitForExit(timeout: 60)
        let seconds = Date().timeIntervalSince(t0)
        try TestEnvironment.waitUntil(timeout: 5, "the children \(below) of serve to end") { below.allSatisfy { !processAlive($0) } }
        #expect(seconds < grace + 10, "serve took \(seconds) s to stop (grace period \(grace) s)", sourceLocation: sourceLocation)
        print("interruptions: serve stopped \(String(format: "%.2f", seconds)) s after SIGTERM (grace period \(grace) s)")
        return seconds
    }

    /// The environment of a serve that runs only `job` (a catch-up run at start: its kind has
    /// no backup yet), against the shared PostgreSQL.
    static func serveEnvironment(_ pg: PostgresServer, backupDir: String, job: String, extra: [String: String]) -> [String: String] {
        var env = pg.environment
        env["BACKUP_DIR"] = backupDir
        env["SHUTDOWN_GRACE_PERIOD"] = "\(Int(grace))s"
        env["BACKUP_SCHEDULE_\(job.uppercased())"] = "0 0 1 1 *" // never due by the clock: only the catch-up runs
        env["REDIS_HOST"] = "127.0.0.1"
        env["REDIS_PORT"] = "1"
        env.merge(extra) { _, new in new }
        return env
    }

    /// Sends `signal` to the CLI process `pid` and reaps it: its wait status, exit code (128 +
    /// the signal when it died of one) and the seconds it took.
    static func signalAndReap(_ pid: Int32, _ signal: Int32) -> (status: Int32, code: Int32, seconds: Double) {
        let t0 = Date()
        kill(pid, signal)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        TestProcesses.unregister(pid: pid)
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (status, code, Date().timeIntervalSince(t0))
    }

    /// SIGTERM to a one-shot CLI run logging to `log` (`what` names it: "cleanup"): it must exit
    /// 143 within 5 s, having logged that SIGTERM stopped it. Returns the seconds and the log.
    @discardableResult
    static func expectStopsOnSIGTERM(_ pid: Int32, log: String, what: String) -> (seconds: Double, output: String) {
        let (_, code, seconds) = signalAndReap(pid, SIGTERM)
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(code == 143, "exit \(code); \(output)")
        #expect(output.contains("stopped by SIGTERM"), "\(output)")
        #expect(seconds < 5, "\(what) took \(seconds) s to stop")
        print("interruptions: backstop \(what) exited \(code) \(String(format: "%.2f", seconds)) s after SIGTERM")
        return (seconds, output)
    }

    /// `backstop verify` of every backup in `backupDir` passes (exit 0).
    static func expectVerifyPasses(_ backupDir: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let verified = try BackstopBinary.run(["verify"], environment: ["BACKUP_DIR": backupDir])
        #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)", sourceLocation: sourceLocation)
    }

    /// Name → SHA-256 of every visible file of `folder`.
    static func fingerprint(_ folder: String) throws -> [String: String] {
        try ProcessFaultTests.fingerprint(folder)
    }

    // MARK: - serve

    @Test func sigtermToServeDuringADump() throws {
        let pg = try PostgresServer.shared
        let busy = PostgresServer.uniqueDatabaseName("intr")
        let backupDir = try TestEnvironment.makeTempDirectory("intr-dump") + "/backups"
        var cli = pg.environment
        cli["BACKUP_DIR"] = backupDir
        cli["BACKUP_POSTGRES_DATABASES"] = busy
        // An earlier run failed (the database did not exist yet), the globals succeeded: a
        // BackupFailed the interruption must not clear, and one (globals) it must not fire.
        let failed = try BackstopBinary.run(["backup", "postgres", "full"], environment: cli)
        #expect(failed.status == 1, "\(failed.stderr)")
        try pg.createDatabase(busy)
        try pg.psql("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g;", database: busy)
        let postgresDir = backupDir + "/postgres"
        let good = try Self.fingerprint(postgresDir)
        #expect(good.keys.contains { $0.hasPrefix("globals_") && $0.hasSuffix(".meta") }, "\(good.keys)")

        let slow = try SlowPrograms(realDirectory: pg.binDirectory, slow: ["pg_dump": .output(bytesPerSecond: 20_000)])
        let env = Self.serveEnvironment(pg, backupDir: backupDir, job: "full", extra: [
            "BACKUP_POSTGRES_DATABASES": busy, "BACKUP_POSTGRES_BIN": slow.directory,
        ])
        let serve = try ServeUnderTest(environment: env, backupDir: backupDir)
        defer { serve.stop() }
        try TestEnvironment.waitUntil(timeout: 20, "BackupFailed for \(busy) in alerts.json") { Self.backupFailedTargets(backupDir).contains(busy) }
        try TestEnvironment.waitUntil(timeout: 30, "the slow pg_dump writing its partial file (log \(serve.log))") {
            Self.leftovers(postgresDir).contains { $0.hasPrefix("." + busy) } && serve.logText().contains("postgres_full \(busy): started")
        }
        usleep(500_000)
        let seconds = try Self.terminate(serve)

        #expect(Self.leftovers(postgresDir).isEmpty, "\(Self.leftovers(postgresDir))")
        #expect(try Self.fingerprint(postgresDir) == good, "a backup appeared or changed")
        Self.expectLockReleased(backupDir + "/.locks/postgres_full.lock")
        let dump = Self.attempts(backupDir, "postgres_full/\(busy)")
        #expect(dump.interrupted?.interrupted == true, "\(String(describing: dump.interrupted))")
        #expect(dump.finished?.success == false, "the failed run before it stands")
        let globals = Self.attempts(backupDir, "postgres_globals/globals")
        #expect(globals.interrupted?.interrupted == true)
        #expect(globals.finished?.success == true)
        #expect(Self.backupFailedTargets(backupDir) == [busy], "BackupFailed after the interruption: \(Self.backupFailedTargets(backupDir))")
        let log = serve.logText()
        #expect(log.contains("postgres_full \(busy): INTERRUPTED"), "\(log)")
        #expect(log.contains("job full interrupted by the shutdown"), "\(log)")

        // The next run is normal, with the real pg_dump: a complete backup, BackupFailed resolved.
        var again = env
        again["BACKUP_POSTGRES_BIN"] = pg.binDirectory
        let next = try ServeUnderTest(environment: again, backupDir: backupDir)
        defer { next.stop() }
        try TestEnvironment.waitUntil(timeout: 60, "the next run's backup of \(busy)") {
            BackupCatalog(backupDir: backupDir).list().contains { $0.target == busy && $0.meta != nil }
        }
        try TestEnvironment.waitUntil(timeout: 20, "BackupFailed resolved") { Self.backupFailedTargets(backupDir).isEmpty }
        next.stop()
        #expect(Self.attempts(backupDir, "postgres_full/\(busy)").interrupted == nil)
        #expect(Self.attempts(backupDir, "postgres_full/\(busy)").finished?.success == true)
        try Self.expectVerifyPasses(backupDir)
        ReliabilityReport.record(
            fault: "`serve` SIGTERMed while `pg_dump` runs (grace period \(Int(Self.grace)) s)",
            did: "stopped \(String(format: "%.1f", seconds)) s after the signal: pg_dump stopped at the end of the grace period, its partial file removed, the lock released, the run recorded as `interrupted` (attempts.json, `backstop_backup_runs_total{result=\"interrupted\"}`); BackupFailed of the run before stayed firing, none fired for the globals the shutdown never reached; the next start made a complete dump and BackupFailed resolved",
            lost: "nothing: the \(good.count) files already there byte-identical, `verify` passes")
    }

    @Test func sigtermToServeDuringTheGlobals() throws {
        let pg = try PostgresServer.shared
        let db = try pg.createDatabase(PostgresServer.uniqueDatabaseName("intrg"))
        try pg.psql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g;", database: db)
        let backupDir = try TestEnvironment.makeTempDirectory("intr-globals") + "/backups"
        let postgresDir = backupDir + "/postgres"
        let slow = try SlowPrograms(realDirectory: pg.binDirectory, slow: ["pg_dumpall": .output(bytesPerSecond: 50)])
        let env = Self.serveEnvironment(pg, backupDir: backupDir, job: "full", extra: [
            "BACKUP_POSTGRES_DATABASES": db, "BACKUP_POSTGRES_BIN": slow.directory,
        ])
        let serve = try ServeUnderTest(environment: env, backupDir: backupDir)
        defer { serve.stop() }
        try TestEnvironment.waitUntil(timeout: 30, "the slow pg_dumpall (log \(serve.log))") {
            Self.leftovers(postgresDir).contains { $0.hasPrefix(".globals_") }
        }
        let seconds = try Self.terminate(serve)
        let names = try FileManager.default.contentsOfDirectory(atPath: postgresDir)
        #expect(Self.leftovers(postgresDir).isEmpty, "\(names)")
        #expect(!names.contains { $0.hasPrefix("globals_") }, "\(names)")
        // The database's dump finished before the signal: it is a whole, verified backup.
        let entries = BackupCatalog(backupDir: backupDir).list()
        #expect(entries.count == 1 && entries.first?.target == db && entries.first?.meta != nil, "\(entries.map(\.path))")
        try Self.expectVerifyPasses(backupDir)
        Self.expectLockReleased(backupDir + "/.locks/postgres_full.lock")
        #expect(Self.attempts(backupDir, "postgres_globals/globals").interrupted?.interrupted == true)
        #expect(Self.attempts(backupDir, "postgres_globals/globals").finished == nil)
        #expect(Self.attempts(backupDir, "postgres_full/\(db)").finished?.success == true)
        #expect(Self.backupFailedTargets(backupDir).isEmpty)

        let next = try BackstopBinary.run(["backup", "postgres", "full"], environment: env.merging(["BACKUP_POSTGRES_BIN": pg.binDirectory]) { $1 })
        #expect(next.status == 0, "\(next.stderr)")
        #expect(Self.attempts(backupDir, "postgres_globals/globals").finished?.success == true)
        #expect(Self.attempts(backupDir, "postgres_globals/globals").interrupted == nil)
        ReliabilityReport.record(
            fault: "`serve` SIGTERMed while `pg_dumpall --globals-only` runs",
            did: "stopped \(String(format: "%.1f", seconds)) s after the signal; the globals' partial file removed, the globals run `interrupted`, the lock released; the database dump finished before it is kept; the next run wrote the globals",
            lost: "nothing: the finished dump passes `verify`")
    }

    @Test func sigtermToServeDuringABaseBackup() throws {
        let pg = try PostgresServer.shared
        let backupDir = try TestEnvironment.makeTempDirectory("intr-base") + "/backups"
        let postgresDir = backupDir + "/postgres"
        // 32 kB/s (pg_basebackup's lowest rate): the cluster takes minutes.
        let slow = try SlowPrograms(realDirectory: pg.binDirectory, slow: ["pg_basebackup": .arguments(["--max-rate=32k"])])
        let env = Self.serveEnvironment(pg, backupDir: backupDir, job: "incremental", extra: ["BACKUP_POSTGRES_BIN": slow.directory])
        let serve = try ServeUnderTest(environment: env, backupDir: backupDir)
        defer { serve.stop() }
        try TestEnvironment.waitUntil(timeout: 30, "pg_basebackup filling its partial folder (log \(serve.log))") {
            guard let partial = Self.leftovers(postgresDir).first(where: { $0.hasPrefix(".wal_") }) else { return false }
            return !((try? FileManager.default.contentsOfDirectory(atPath: postgresDir + "/" + partial)) ?? []).isEmpty
        }
        let seconds = try Self.terminate(serve)
        let names = try FileManager.default.contentsOfDirectory(atPath: postgresDir)
        #expect(names.isEmpty, "\(names)")
        Self.expectLockReleased(backupDir + "/.locks/postgres_base.lock")
        let key = "postgres_base/postgres"
        #expect(Self.attempts(backupDir, key).interrupted?.interrupted == true)
        #expect(Self.attempts(backupDir, key).finished == nil)
        #expect(Self.backupFailedTargets(backupDir).isEmpty)
        #expect(serve.logText().contains("postgres_base postgres: INTERRUPTED"), "\(serve.logText())")

        let next = try BackstopBinary.run(["backup", "postgres", "incremental"], environment: env.merging(["BACKUP_POSTGRES_BIN": pg.binDirectory]) { $1 })
        #expect(next.status == 0, "\(next.stderr)")
        #expect(Self.attempts(backupDir, key).finished?.success == true)
        try Self.expectVerifyPasses(backupDir)
        ReliabilityReport.record(
            fault: "`serve` SIGTERMed while `pg_basebackup` runs",
            did: "stopped \(String(format: "%.1f", seconds)) s after the signal; pg_basebackup stopped, its partial folder removed, the lock released, the run `interrupted`; the next base backup complete",
            lost: "nothing: no half base backup in `postgres/`, the next one passes `verify`")
    }

    @Test(arguments: ["replication", "bgsave"])
    func sigtermToServeDuringARedisSnapshot(method: String) throws {
        // 20,000 keys at 1 ms each: the server's fork takes 20 s to write the snapshot.
        let redis = try StandaloneRedis(extraConfig: ["rdb-key-save-delay 1000"])
        defer { redis.stop() }
        _ = try redis.cli(["EVAL", "for i=1,20000 do redis.call('SET','key:'..i, i) end return 1", "0"])
        let pg = try PostgresServer.shared
        let backupDir = try TestEnvironment.makeTempDirectory("intr-redis") + "/backups"
        let env = Self.serveEnvironment(pg, backupDir: backupDir, job: "redis", extra: [
            "REDIS_PORT": String(redis.port), "BACKUP_REDIS_METHOD": method, "REDIS_DATA_DIR": redis.directory,
            "BACKUP_REDIS_TIMEOUT": "120s",
        ])
        let serve = try ServeUnderTest(environment: env, backupDir: backupDir)
        defer { serve.stop() }
        try TestEnvironment.waitUntil(timeout: 30, "the server's snapshot fork (log \(serve.log))") {
            serve.logText().contains("redis 127.0.0.1:\(redis.port): started")
                && ((try? redis.cli(["INFO", "persistence"])) ?? "").contains("rdb_bgsave_in_progress:1")
        }
        usleep(500_000)
        // No child (the snapshot is read in-process): the stop is the job's own check.
        let t0 = Date()
        serve.kill(SIGTERM)
        try serve.waitForExit(timeout: 60)
        let seconds = Date().timeIntervalSince(t0)
        print("interruptions: serve (redis \(method)) stopped \(String(format: "%.2f", seconds)) s after SIGTERM (grace period \(Self.grace) s)")
        #expect(seconds < Self.grace + 10, "took \(seconds) s")
        let redisDir = backupDir + "/redis"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: redisDir)) ?? []
        #expect(names.isEmpty, "\(names)")
        Self.expectLockReleased(backupDir + "/.locks/redis.lock")
        let key = "redis/127.0.0.1:\(redis.port)"
        #expect(Self.attempts(backupDir, key).interrupted?.interrupted == true, "\(AttemptsRecord.load(backupDir: backupDir))")
        #expect(Self.attempts(backupDir, key).finished == nil)
        #expect(Self.backupFailedTargets(backupDir).isEmpty)

        // The next run, without the delay, is a whole snapshot.
        _ = try redis.cli(["CONFIG", "SET", "rdb-key-save-delay", "0"])
        try TestEnvironment.waitUntil(timeout: 60, "the server's earlier fork to end") {
            ((try? redis.cli(["INFO", "persistence"])) ?? "").contains("rdb_bgsave_in_progress:0")
        }
        let next = try BackstopBinary.run(["backup", "redis"], environment: env)
        #expect(next.status == 0, "\(next.stderr)")
        #expect(Self.attempts(backupDir, key).finished?.success == true)
        #expect(Self.attempts(backupDir, key).interrupted == nil)
        ReliabilityReport.record(
            fault: "`serve` SIGTERMed while Redis writes a snapshot (`BACKUP_REDIS_METHOD=\(method)`)",
            did: "stopped \(String(format: "%.1f", seconds)) s after the signal: the transfer abandoned, no file in `redis/`, the lock released, the run `interrupted`; the next snapshot whole",
            lost: "nothing")
    }

    // MARK: - the CLI

    /// The table the CLI tests dump: 20,000 rows, enough for a slowed pg_dump to be caught mid-way.
    static let dumpedTable = "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g;"

    @Test(arguments: [SIGTERM, SIGINT])
    func signalToTheCLIDuringADump(signal: Int32) throws {
        let pg = try PostgresServer.shared
        let dumped = try DumpedDatabase(pg, prefix: "intrc", table: Self.dumpedTable, folder: "intr-cli")
        let (db, dir, backupDir, postgresDir) = (dumped.db, dumped.dir, dumped.backupDir, dumped.postgresDir)
        var env = dumped.environment
        let good = try Self.fingerprint(postgresDir)
        let slow = try SlowPrograms(realDirectory: pg.binDirectory, slow: ["pg_dump": .output(bytesPerSecond: 20_000)])
        env["BACKUP_POSTGRES_BIN"] = slow.directory
        let log = dir + "/cli.log"
        let cli = try BackstopBinary.spawn(["backup", "postgres", "full"], environment: env, logFile: log)
        try TestEnvironment.waitUntil(timeout: 30, "the slow pg_dump's partial file (log \(log))") {
            Self.leftovers(postgresDir).contains { $0.hasPrefix("." + db) } && !SlowPrograms.descendants(of: cli).isEmpty
        }
        let below = SlowPrograms.descendants(of: cli)
        let (status, code, seconds) = Self.signalAndReap(cli, signal)
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect((status & 0x7f) == 0, "killed by the signal instead of stopping: \(status)")
        #expect(code == 128 + signal, "exit \(code); \(output)")
        #expect(output.contains("stopped by \(signal == SIGTERM ? "SIGTERM" : "SIGINT")"), "\(output)")
        print("interruptions: backstop backup postgres full exited \(code) \(String(format: "%.2f", seconds)) s after signal \(signal)")
        try TestEnvironment.waitUntil(timeout: 5, "the CLI's children \(below) to end") { below.allSatisfy { !processAlive($0) } }
        #expect(Self.leftovers(postgresDir).isEmpty, "\(Self.leftovers(postgresDir))")
        #expect(try Self.fingerprint(postgresDir) == good)
        Self.expectLockReleased(backupDir + "/.locks/postgres_full.lock")
        #expect(Self.attempts(backupDir, "postgres_full/\(db)").interrupted?.interrupted == true)
        #expect(Self.attempts(backupDir, "postgres_full/\(db)").finished?.success == true, "the good run before it stands")
        let stateNames = (try? FileManager.default.contentsOfDirectory(atPath: backupDir + "/.state")) ?? []
        #expect(!stateNames.contains { $0.hasPrefix(".stderr-\(cli)-") }, "\(stateNames)")

        env["BACKUP_POSTGRES_BIN"] = pg.binDirectory
        let next = try BackstopBinary.run(["backup", "postgres", "full"], environment: env)
        #expect(next.status == 0, "\(next.stderr)")
        #expect(Self.attempts(backupDir, "postgres_full/\(db)").interrupted == nil)
        let name = signal == SIGTERM ? "SIGTERM" : "SIGINT (Ctrl-C)"
        ReliabilityReport.record(
            fault: "`backstop backup postgres full` sent \(name) while `pg_dump` runs",
            did: "exited \(code) \(String(format: "%.1f", seconds)) s after the signal: pg_dump stopped, the partial file and the child's stderr file removed, the lock released, the run `interrupted` in attempts.json (the good run before it still the last result); the next run normal",
            lost: "nothing: the \(good.count) files already there byte-identical")
    }

    @Test func sigtermToTheCLIDuringARestoreLeavesTheTargetUnchanged() throws {
        let pg = try PostgresServer.shared
        let dumped = try DumpedDatabase(pg, prefix: "intrr", table: Self.dumpedTable, folder: "intr-restore")
        let (db, dir, backupDir) = (dumped.db, dumped.dir, dumped.backupDir)
        var env = dumped.environment
        let dump = try #require(BackupCatalog(backupDir: backupDir).list().first { $0.target == db })
        // The database moves on after the backup: a restore would change it.
        try pg.psql("INSERT INTO t VALUES (0, 'after the backup');", database: db)
        let contents = "SELECT count(*) || ':' || md5(string_agg(id || v, ',' ORDER BY id)) FROM t"
        let before = try pg.psql(contents, database: db)
        let databasesBefore = try pg.psql("SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database")

        let slow = try SlowPrograms(realDirectory: pg.binDirectory, slow: ["psql": .input(bytesPerSecond: 40_000)])
        env["BACKUP_POSTGRES_BIN"] = slow.directory
        let log = dir + "/restore.log"
        let cli = try BackstopBinary.spawn(["restore", "postgres", dump.path, "--yes"], environment: env, logFile: log)
        try TestEnvironment.waitUntil(timeout: 60, "the restore loading into its scratch database (log \(log))") {
            let scratch = (try? pg.psql("SELECT count(*) FROM pg_database WHERE datname LIKE '\(db)_restore_%'")) ?? "0"
            return scratch == "1" && SlowPrograms.descendants(of: cli).count >= 2
        }
        usleep(1_000_000)
        let below = SlowPrograms.descendants(of: cli)
        let (_, code, seconds) = Self.signalAndReap(cli, SIGTERM)
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(code == 143, "exit \(code); \(output)")
        #expect(output.contains("was dropped"), "\(output)")
        print("interruptions: backstop restore postgres exited \(code) \(String(format: "%.2f", seconds)) s after SIGTERM")
        try TestEnvironment.waitUntil(timeout: 5, "the restore's children \(below) to end") { below.allSatisfy { !processAlive($0) } }
        #expect(try pg.psql(contents, database: db) == before, "the target changed")
        #expect(try pg.psql("SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database") == databasesBefore,
                "a scratch or pre-restore database was left")
        let record = (try? String(contentsOfFile: backupDir + "/.state/restores.json", encoding: .utf8)) ?? ""
        #expect(!record.contains("postgres_full"), "the interrupted restore was recorded as done: \(record)")
        ReliabilityReport.record(
            fault: "`backstop restore postgres` SIGTERMed while psql loads the dump",
            did: "exited 143 \(String(format: "%.1f", seconds)) s after the signal: psql stopped (its single transaction rolled back), the scratch database `<db>_restore_<stamp>` dropped, no restore recorded",
            lost: "nothing: the target database unchanged (row count and checksum of its table equal), no database added")
    }
}
