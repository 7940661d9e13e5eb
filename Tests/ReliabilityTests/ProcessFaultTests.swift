import BackstopCore
import BackstopTestSupport
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A `backstop serve` SIGKILLed in the middle of a pg_dump: no child outlives it, and the next
/// start removes what the killed run left, without touching the good backups beside it.
@Suite("process faults", .serialized)
struct ProcessFaultTests {
    /// A session that holds ACCESS EXCLUSIVE on `table` for two minutes, so a pg_dump of its
    /// database waits (running, with its partial file open) until the test is done.
    final class LockHolder {
        let pid: Int32
        let pg: PostgresServer
        let marker: String
        init(pg: PostgresServer, database: String, table: String) throws {
            self.pg = pg
            marker = "backstop_lock_\(UInt32.random(in: 0...UInt32.max))"
            let dir = try TestEnvironment.makeTempDirectory("lock-holder")
            pid = try TestProcesses.spawn(pg.program("psql"), [
                "-X", "-h", pg.host, "-p", String(pg.port), "-U", pg.superuser, "-d", database,
                "-c", "BEGIN; LOCK TABLE \(table) IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120) AS \(marker);",
            ], logFile: dir + "/psql.log")
            let pg = self.pg, marker = self.marker
            try TestEnvironment.waitUntil(timeout: 20, "the lock holder's session") {
                (try? pg.psql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%AS \(marker)%' AND pid <> pg_backend_pid()")) == "1"
            }
        }

        func release() {
            _ = try? pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%AS \(marker)%' AND pid <> pg_backend_pid()")
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            TestProcesses.unregister(pid: pid)
        }
    }

    /// Name → SHA-256 of every file in `folder` (good backups and .meta files).
    static func fingerprint(_ folder: String) throws -> [String: String] {
        var out: [String: String] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: folder) where !name.hasPrefix(".") {
            let digest = try TestProcesses.run("/usr/bin/sha256sum", [folder + "/" + name]).stdout
            out[name] = String(digest.prefix(64))
        }
        return out
    }

    @Test func sigkillDuringADumpLeavesNoChildAndTheNextStartCleansUp() throws {
        let pg = try PostgresServer.shared
        let good = PostgresServer.uniqueDatabaseName("good")
        let busy = PostgresServer.uniqueDatabaseName("busy")
        try pg.createDatabase(good)
        try pg.createDatabase(busy)
        try pg.psql("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 1000) g;", database: good)
        try pg.psql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g;", database: busy)
        let backupDir = try TestEnvironment.makeTempDirectory("sigkill") + "/backups"
        var env = pg.environment
        env["BACKUP_DIR"] = backupDir

        // Good backups first, by the CLI.
        var cli = env
        cli["BACKUP_POSTGRES_DATABASES"] = good
        let made = try BackstopBinary.run(["backup", "postgres", "full"], environment: cli)
        #expect(made.status == 0, "\(made.stderr)")
        let postgresDir = backupDir + "/postgres"
        let before = try Self.fingerprint(postgresDir)
        #expect(before.keys.contains { $0.hasPrefix(good) && $0.hasSuffix(".sql.gz") })
        #expect(before.keys.contains { $0.hasPrefix(good) && $0.hasSuffix(".sql.gz.meta") })

        let holder = try LockHolder(pg: pg, database: busy, table: "t")
        defer { holder.release() }
        var serveEnv = env
        serveEnv["BACKUP_POSTGRES_DATABASES"] = busy
        serveEnv["BACKUP_SCHEDULE_FULL"] = "0 0 1 1 *" // never due by the clock: catch-up runs it at start
        let serve = try ServeUnderTest(environment: serveEnv, backupDir: backupDir)
        var dumpPID: Int32 = 0
        try TestEnvironment.waitUntil(timeout: 30, "pg_dump running under serve with its partial file (log \(serve.log))") {
            let partial = ((try? FileManager.default.contentsOfDirectory(atPath: postgresDir)) ?? [])
                .contains { $0.hasPrefix("." + busy) && $0.hasSuffix(".partial") }
            if let dump = childProcesses(of: serve.pid).first(where: { $0.cmdline.first?.hasSuffix("pg_dump") == true }) {
                dumpPID = dump.pid
            }
            return partial && dumpPID != 0
        }
        // Leftovers of the same run elsewhere: an atomic write's temp file and a child's
        // stderr file, both of the serve pid that is about to die.
        let killedPID = serve.pid
        let tempFile = postgresDir + "/.\(good)_x.meta.tmp-\(killedPID)-42"
        let stderrFile = backupDir + "/.state/.stderr-\(killedPID)-7"
        let liveTemp = postgresDir + "/.other.meta.tmp-\(getpid())-9"
        for path in [tempFile, stderrFile, liveTemp] { try "half".write(toFile: path, atomically: false, encoding: .utf8) }

        serve.kill(SIGKILL)
        try serve.waitForExit()
        try TestEnvironment.waitUntil(timeout: 5, "pg_dump \(dumpPID) to die with its parent") { !processAlive(dumpPID) }
        let lockText = try String(contentsOfFile: backupDir + "/.locks/postgres_full.lock", encoding: .utf8)
        #expect(lockText.hasPrefix("pid \(killedPID) "), "lock text: \(lockText)")
        let partials = try FileManager.default.contentsOfDirectory(atPath: postgresDir).filter { $0.hasSuffix(".partial") }
        #expect(!partials.isEmpty, "the killed run left its partial file (what the restart must clean)")

        // Restart with the job off: only the start-up sweep can remove anything.
        serveEnv["BACKUP_SCHEDULE_FULL"] = ""
        let again = try ServeUnderTest(environment: serveEnv, backupDir: backupDir)
        defer { again.stop() }
        try TestEnvironment.waitUntil(timeout: 10, "the start-up sweep in the log") { again.logText().contains("start-up: removed the partial file") }
        let names = try FileManager.default.contentsOfDirectory(atPath: postgresDir)
        #expect(!names.contains { $0.hasSuffix(".partial") }, "\(names)")
        #expect(!FileManager.default.fileExists(atPath: tempFile))
        #expect(!FileManager.default.fileExists(atPath: stderrFile))
        #expect(FileManager.default.fileExists(atPath: liveTemp), "a live process's temporary file was removed")
        #expect(try Self.fingerprint(postgresDir) == before, "a good backup or .meta changed")
        #expect(try String(contentsOfFile: backupDir + "/.locks/postgres_full.lock", encoding: .utf8).isEmpty)
        let listed = try BackstopBinary.run(["list", "--json"], environment: ["BACKUP_DIR": backupDir])
        #expect(listed.stdout.contains(good) && !listed.stdout.contains(busy), "\(listed.stdout)")
        unlink(liveTemp)
        ReliabilityReport.record(
            fault: "`serve` SIGKILLed while `pg_dump` runs",
            did: "`pg_dump` died with it (PR_SET_PDEATHSIG, set between fork and exec by the `CChildSpawn` shim on every child: pg_dump, pg_dumpall, pg_basebackup, psql, the drill's redis-server); the next start removed the \(partials.count) partial dump(s), the temporary file and stderr file of the dead pid and the dead holder's lock text, and logged each; a live process's temporary file stayed",
            lost: "nothing: the \(before.count) good files (dumps and `.meta`) byte-identical, `list` shows only them")
    }

    @Test func sigkillDuringARedisDrillLeavesNoRedisServer() throws {
        // A cluster of its own (keys are added), one Redis snapshot, then a drill whose real
        // redis-server loads it slowly (key-load-delay: 100 ms a key), killed while it loads.
        let redis = try SnapshottedRedis(folder: "drill-kill")
        defer { redis.cluster.shutdown() }
        let (dir, env) = (redis.dir, redis.environment)
        let (drill, serverPID) = try redis.startSlowDrill(logFile: dir + "/drill.log")
        kill(drill, SIGKILL)
        var status: Int32 = 0
        waitpid(drill, &status, 0)
        TestProcesses.unregister(pid: drill)
        try TestEnvironment.waitUntil(timeout: 5, "the drill's redis-server \(serverPID) to die with the drill") { !processAlive(serverPID) }

        // Its scratch folder (a copy of the snapshot) is removed by the next serve.
        let temporary = NSTemporaryDirectory()
        let scratch = try FileManager.default.contentsOfDirectory(atPath: temporary).filter { $0.hasPrefix("backstop-drill-\(drill)-") }
        #expect(scratch.count == 1, "\(scratch)")
        let serve = try ServeUnderTest(environment: env, backupDir: dir + "/backups")
        defer { serve.stop() }
        try TestEnvironment.waitUntil(timeout: 10, "the drill's scratch folder removed") {
            serve.logText().contains("removed the scratch folder of a restore drill of dead process \(drill)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: temporary).allSatisfy { !$0.hasPrefix("backstop-drill-\(drill)-") })
        ReliabilityReport.record(
            fault: "`backstop drill` SIGKILLed while its redis-server loads the snapshot",
            did: "the redis-server (pid \(serverPID)) died with it; the next `serve` removed the drill's scratch folder (`$TMPDIR/backstop-drill-PID-*`, a copy of the snapshot)",
            lost: "nothing; no stray server, no stray copy")
    }

    @Test func sigkillDuringABaseBackupLeavesNoChildAndTheNextStartCleansUp() throws {
        let pg = try PostgresServer.shared
        let backupDir = try TestEnvironment.makeTempDirectory("sigkill-base") + "/backups"
        let postgresDir = backupDir + "/postgres"
        // A good base backup first, by the CLI with the real pg_basebackup.
        var cli = pg.environment
        cli["BACKUP_DIR"] = backupDir
        let made = try BackstopBinary.run(["backup", "postgres", "incremental"], environment: cli)
        #expect(made.status == 0, "\(made.stderr)")
        let good = try FileManager.default.contentsOfDirectory(atPath: postgresDir).filter { !$0.hasPrefix(".") }.sorted()
        #expect(good.contains { $0.hasPrefix("wal_") && $0.hasSuffix(".meta") }, "\(good)")
        let goodFolder = try #require(good.first { $0.hasPrefix("wal_") && !$0.hasSuffix(".meta") })
        func snapshot() throws -> [String: String] {
            var out = try Self.fingerprint(postgresDir + "/" + goodFolder)
            out[".meta"] = String(try TestProcesses.run("/usr/bin/sha256sum", [postgresDir + "/" + goodFolder + ".meta"]).stdout.prefix(64))
            return out
        }
        let before = try snapshot()
        // Set aside while serve starts, so its catch-up run (the kind has no backup) starts at
        // once; put back beside the running job's partial folder before the kill.
        let aside = backupDir + "/../aside"
        try FileManager.default.createDirectory(atPath: aside, withIntermediateDirectories: true)
        for name in good { try FileManager.default.moveItem(atPath: postgresDir + "/" + name, toPath: aside + "/" + name) }

        // 32 kB/s: the next base backup takes minutes; serve is killed while it writes.
        let slow = try SlowPrograms(realDirectory: pg.binDirectory, slow: ["pg_basebackup": .arguments(["--max-rate=32k"])])
        let env = InterruptionTests.serveEnvironment(pg, backupDir: backupDir, job: "incremental", extra: ["BACKUP_POSTGRES_BIN": slow.directory])
        var serveEnv = env
        let serve = try ServeUnderTest(environment: serveEnv, backupDir: backupDir)
        var partial = ""
        try TestEnvironment.waitUntil(timeout: 30, "pg_basebackup filling its partial folder (log \(serve.log))") {
            guard let name = InterruptionTests.leftovers(postgresDir).first(where: { $0.hasPrefix(".wal_") }) else { return false }
            partial = name
            return !((try? FileManager.default.contentsOfDirectory(atPath: postgresDir + "/" + name)) ?? []).isEmpty
        }
        for name in good { try FileManager.default.moveItem(atPath: aside + "/" + name, toPath: postgresDir + "/" + name) }
        let below = SlowPrograms.descendants(of: serve.pid)
        #expect(!below.isEmpty, "no child under serve")
        let direct = childProcesses(of: serve.pid).map(\.pid)
        serve.kill(SIGKILL)
        try serve.waitForExit()
        // pg_basebackup itself (PR_SET_PDEATHSIG) dies with serve; the WAL streamer it forked
        // is only orphaned: the next start stops it (below).
        try TestEnvironment.waitUntil(timeout: 5, "serve's children \(direct) to die with it") { direct.allSatisfy { !processAlive($0) } }
        let orphans = below.filter(processAlive)
        print("process faults: \(below.count) processes under serve, \(orphans.count) left after its SIGKILL (pg_basebackup's WAL streamer)")
        #expect(FileManager.default.fileExists(atPath: postgresDir + "/" + partial), "the killed run left its partial folder")

        // Restart with the job off: only the start-up sweep can remove anything.
        serveEnv["BACKUP_SCHEDULE_INCREMENTAL"] = ""
        let again = try ServeUnderTest(environment: serveEnv, backupDir: backupDir)
        defer { again.stop() }
        try TestEnvironment.waitUntil(timeout: 10, "the start-up sweep in the log") { again.logText().contains("start-up: removed the partial file") }
        #expect(!FileManager.default.fileExists(atPath: postgresDir + "/" + partial))
        #expect(below.allSatisfy { !processAlive($0) }, "left running after the next start: \(below.filter(processAlive))")
        let strays = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init).filter { pid in
            let cmdline = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
            return processAlive(pid) && cmdline.contains("pg_basebackup") && cmdline.contains(backupDir)
        }
        #expect(strays.isEmpty, "pg_basebackup processes left: \(strays)")
        if !orphans.isEmpty {
            #expect(again.logText().contains("stopped process"), "\(again.logText())")
        }
        #expect(try snapshot() == before, "the good base backup changed")
        #expect(try FileManager.default.contentsOfDirectory(atPath: postgresDir).filter { !$0.hasPrefix(".") }.sorted() == good)
        try InterruptionTests.expectVerifyPasses(backupDir)
        ReliabilityReport.record(
            fault: "`serve` SIGKILLed while `pg_basebackup` runs",
            did: "`pg_basebackup` died with it (PR_SET_PDEATHSIG); its forked WAL streamer (\(orphans.count) of the \(below.count) processes under serve), orphaned, kept running until the next start, whose sweep stopped it (SIGKILL, found by its `--pgdata` in /proc) before removing the partial folder, and logged both; no pg_basebackup left in /proc",
            lost: "nothing: the good base backup byte-identical, `verify` passes")
    }
}
