import BackstopCore
import BackstopTestSupport
import BackupCatalog
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The servers failing under a running restore, through the built binary against real
/// servers: PostgreSQL restarting while the dump loads into the scratch database, the target
/// Redis killed while it receives the snapshot. Each must end in a clear error that names what
/// failed, nothing recorded as restored, nothing half-restored that looks like the target, no
/// listening port or process left, and a normal next restore.
@Suite("faults in the middle of a restore", .serialized)
struct RestoreFaultTests {
    /// Waits (at most `timeout` s) for `pid` to exit; its exit code (128 + n for a signal) and
    /// the seconds it took.
    static func reap(_ pid: Int32, timeout: Double, what: String) throws -> (code: Int32, seconds: Double) {
        let t0 = Date()
        var status: Int32 = 0
        try TestEnvironment.waitUntil(timeout: timeout, what) { waitpid(pid, &status, WNOHANG) == pid }
        TestProcesses.unregister(pid: pid)
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (code, Date().timeIntervalSince(t0))
    }

    /// Processes whose command line mentions `needle` (e.g. a backup file being restored).
    static func processes(mentioning needle: String) -> [Int32] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return names.compactMap { Int32($0) }.filter { pid in
            guard pid != getpid(), let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            return String(decoding: data, as: UTF8.self).contains(needle)
        }
    }

    @Test func postgresRestartsWhileTheDumpLoadsIntoTheScratchDatabase() throws {
        let pg = try PostgresServer.start(name: "pg-restore-restart")
        defer { pg.shutdown() }
        let dumped = try DumpedDatabase(pg, prefix: "rrest", table: MidJobFaultTests.bulkTable, folder: "restorefault-pgrestart")
        let (db, dir, backupDir) = (dumped.db, dumped.dir, dumped.backupDir)
        var env = dumped.environment
        let dump = try #require(BackupCatalog(backupDir: backupDir).list(kinds: [.postgresFull]).first { $0.target == db })
        let contents = "SELECT count(*) || ':' || md5(string_agg(id || v, ',' ORDER BY id)) FROM t"
        let atBackup = try pg.psql(contents, database: db)
        // The database moves on after the backup: a restore would change it.
        try pg.psql("INSERT INTO t VALUES (0, 'after the backup'); DELETE FROM t WHERE id BETWEEN 10 AND 20;", database: db)
        let before = try pg.psql(contents, database: db)
        #expect(before != atBackup)
        let databases = "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database"
        let databasesBefore = try pg.psql(databases)

        let slow = try SlowPrograms(realDirectory: pg.binDirectory, slow: ["psql": .input(bytesPerSecond: 100_000)])
        env["BACKUP_POSTGRES_BIN"] = slow.directory
        let log = dir + "/restore.log"
        let cli = try BackstopBinary.spawn(["restore", "postgres", dump.path, "--yes"], environment: env, logFile: log)
        try TestEnvironment.waitUntil(timeout: 60, "the restore loading into its scratch database (log \(log))") {
            let scratch = (try? pg.psql("SELECT count(*) FROM pg_database WHERE datname LIKE '\(db)_restore_%'")) ?? "0"
            return scratch == "1" && SlowPrograms.descendants(of: cli).count >= 2
        }
        usleep(1_000_000)
        let below = SlowPrograms.descendants(of: cli)
        let t0 = Date()
        // A restart with the server down until the failed load has tried to drop the scratch
        // database (as a slow start after a crash would be): the drop must wait for the server.
        try pg.stop(mode: "fast")
        try TestEnvironment.waitUntil(timeout: 30, "the restore to try to drop its scratch database (log \(log))") {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("trying again for up to")
        }
        let down = Date().timeIntervalSince(t0)
        try pg.start()
        let (code, seconds) = try Self.reap(cli, timeout: 120, what: "the restore to exit after the restart (log \(log))")
        let elapsed = Date().timeIntervalSince(t0)
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        try TestEnvironment.waitUntil(timeout: 5, "the restore's children \(below) to end") { below.allSatisfy { !processAlive($0) } }
        #expect(code != 0, "a restore cut by a server restart exited 0: \(output)")
        #expect(code < 126, "exit \(code): a failure, not a crash or a signal")
        #expect(output.contains("psql lost its connection to PostgreSQL"), "the error does not say the connection was lost: \(output)")
        #expect(output.contains("\(db) was not touched"), "\(output)")
        #expect(output.contains("was dropped"), "the scratch database is not said to be dropped: \(output)")
        #expect(!output.contains("restored from"), "\(output)")
        #expect(try pg.psql(contents, database: db) == before, "the target changed")
        #expect(try pg.psql(databases) == databasesBefore, "a scratch or pre-restore database was left")
        let record = (try? String(contentsOfFile: backupDir + "/.state/restores.json", encoding: .utf8)) ?? ""
        #expect(!record.contains("postgres_full"), "the failed restore was recorded as done: \(record)")
        let message = output.split(separator: "\n").first { $0.contains("lost its connection") }.map(String.init) ?? "(no line)"
        print("restore faults: restart during the load: server down \(String(format: "%.1f", down)) s, exit \(code) \(String(format: "%.1f", elapsed)) s after the stop (\(String(format: "%.1f", seconds)) s after the server was back): \(message)")

        // The next restore, against the restarted server, is normal.
        env["BACKUP_POSTGRES_BIN"] = pg.binDirectory
        let next = try BackstopBinary.run(["restore", "postgres", dump.path, "--yes", "--drop-previous"], environment: env)
        #expect(next.status == 0, "\(next.stdout)\(next.stderr)")
        #expect(try pg.psql(contents, database: db) == atBackup, "the next restore did not load the dump")
        let rows = before.split(separator: ":").first ?? "?"
        ReliabilityReport.record(
            fault: "PostgreSQL restarted (`pg_ctl restart -m fast`) while `backstop restore postgres` loads the dump into its scratch database (psql fed at 100 KB/s)",
            did: "exited \(code) \(String(format: "%.1f", elapsed)) s after the stop (the server kept down \(String(format: "%.1f", down)) s, until the restore had failed to drop its scratch database once) naming the cause (`psql lost its connection to PostgreSQL (exit status 2)` and psql's error) and saying the target was not touched; the half-loaded `<db>_restore_<stamp>` dropped \(String(format: "%.1f", seconds)) s after the server was back (the drop is retried for up to 60 s; before, it was tried once and left for the operator), no restore recorded; the next restore loaded the dump",
            lost: "nothing: the target unchanged (\(rows) rows, count and MD5 of its table equal), the list of databases equal")
    }

    @Test func theTargetRedisIsKilledWhileItReceivesTheSnapshot() throws {
        let redis = try StandaloneRedis()
        var stopped = false
        defer { if !stopped { redis.stop() } }
        try RestoreInterruptionTests.fill(port: redis.port)
        let dir = try TestEnvironment.makeTempDirectory("restorefault-redis")
        let backupDir = dir + "/backups"
        var env = ["BACKUP_DIR": backupDir, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(redis.port)]
        let made = try BackstopBinary.run(["backup", "redis"], environment: env)
        #expect(made.status == 0, "\(made.stderr)")
        let snapshot = try #require(BackupCatalog(backupDir: backupDir).list(kinds: [.redis]).first)
        let snapshotContents = try RestoreInterruptionTests.contents(port: redis.port)
        try RestoreInterruptionTests.changeAfterTheBackup(port: redis.port)
        _ = try redis.cli(["SAVE"]) // its dump.rdb: what it comes back with after a crash
        let before = try RestoreInterruptionTests.contents(port: redis.port)
        #expect(before != snapshotContents)

        let log = dir + "/restore.log"
        let (cli, masterPort) = try RestoreInterruptionTests.startReplicationRestore(snapshot.path, rate: "200k", environment: env, logFile: log) {
            try? RestoreInterruptionTests.cli(port: redis.port, ["INFO", "replication"])
        }
        #expect(TestEnvironment.isListening(port: masterPort), "backstop's restore master is not listening on \(masterPort)")
        let below = SlowPrograms.descendants(of: cli)
        redis.stop() // SIGKILL
        stopped = true
        let (code, seconds) = try Self.reap(cli, timeout: 60, what: "the restore to exit after the target was killed (log \(log))")
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        print("restore faults: target killed: exit \(code) \(String(format: "%.1f", seconds)) s")
        #expect(code != 0, "a restore whose target was killed exited 0: \(output)")
        #expect(code < 126, "exit \(code): a failure, not a crash or a signal")
        #expect(seconds < 30, "took \(seconds) s to give up on a dead target")
        #expect(output.contains("lost 127.0.0.1:\(redis.port) during the restore") && output.contains("has not answered"),
                "the error does not say the target was lost: \(output)")
        #expect(output.contains("nothing was recorded as restored"), "\(output)")
        #expect(!output.contains("loaded the snapshot"), "\(output)")
        #expect(!TestEnvironment.isListening(port: masterPort), "the restore master still listens on \(masterPort)")
        #expect(below.allSatisfy { !processAlive($0) }, "children left: \(below)")
        #expect(Self.processes(mentioning: snapshot.path).isEmpty, "a process still works on \(snapshot.path): \(Self.processes(mentioning: snapshot.path))")
        #expect(!RestoreInterruptionTests.restoresRecord(backupDir).contains("\"redis\""),
                "the failed restore was recorded: \(RestoreInterruptionTests.restoresRecord(backupDir))")
        InterruptionTests.expectLockReleased(backupDir + "/.locks/redis.lock")
        let redisFiles = try FileManager.default.contentsOfDirectory(atPath: backupDir + "/redis")
        #expect(redisFiles.allSatisfy { !$0.hasPrefix(".") }, "scratch files left: \(redisFiles)")
        let message = output.split(separator: "\n").first { $0.contains("lost 127.0.0.1") }.map(String.init) ?? "(no line)"
        print("restore faults: \(message)")

        // The target comes back (same data folder): it has what its dump.rdb held, the data
        // from before the restore; the next restore into it is normal.
        let back = try StandaloneRedis(directory: redis.directory)
        defer { back.stop() }
        let after = try RestoreInterruptionTests.contents(port: back.port)
        #expect(after == before, "the restarted target does not hold its data from before the restore")
        env["REDIS_PORT"] = String(back.port)
        let next = try BackstopBinary.run(["restore", "redis", snapshot.path, "--yes"], environment: env)
        #expect(next.status == 0, "\(next.stderr)\(next.stdout)")
        #expect(try RestoreInterruptionTests.contents(port: back.port) == snapshotContents)
        #expect(RestoreInterruptionTests.restoresRecord(backupDir).contains("\"redis\""))
        let keys = before.split(separator: ":").first ?? "?"
        ReliabilityReport.record(
            fault: "the target Redis killed (SIGKILL) while `backstop restore redis` (method replication, `--max-rate 200k`) sends it the snapshot",
            did: "exited \(code) \(String(format: "%.1f", seconds)) s after the kill naming the target and the cause (`lost 127.0.0.1:<port> during the restore: it has not answered for 15 s`), that nothing was recorded and where the safety snapshot is; backstop's listening port closed, no process left, the lock released, no restore recorded; the next restore into the restarted target loaded the snapshot",
            lost: "nothing: restarted on its data folder the target had its \(keys) keys from before the restore (DBSIZE and a SHA-1 of every key and value equal: its dump.rdb was never replaced); the safety snapshot is a whole, listed backup")
    }
    @Test func theBackupVolumeIsFullDuringARestore() throws {
        // `restore postgres` streams the dump through in-process gunzip into psql: it stages
        // nothing on disk. What it writes under BACKUP_DIR is its log, psql's stderr file in
        // `.state/` and, at the end, `.state/restores.json`: that volume is the one filled.
        let pg = try PostgresServer.shared
        let db = try pg.createDatabase(PostgresServer.uniqueDatabaseName("rdisk"))
        try pg.psql("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 5000) g;", database: db)
        let (_, volume) = try Tmpfs.inNewFolder("restorefault-disk", size: "8m")
        defer { volume.unmount() }
        let backupDir = volume.path
        let env = pg.environment.merging(["BACKUP_DIR": backupDir, "BACKUP_POSTGRES_DATABASES": db]) { $1 }
        let made = try BackstopBinary.run(["backup", "postgres", "full"], environment: env)
        #expect(made.status == 0, "\(made.stderr)")
        let dump = try #require(BackupCatalog(backupDir: backupDir).list(kinds: [.postgresFull]).first { $0.target == db })
        let contents = "SELECT count(*) || ':' || md5(string_agg(id || v, ',' ORDER BY id)) FROM t"
        let atBackup = try pg.psql(contents, database: db)
        // A first restore, recorded: the record that must survive the full disk whole.
        let first = try BackstopBinary.run(["restore", "postgres", dump.path, "--yes", "--drop-previous"], environment: env)
        #expect(first.status == 0, "\(first.stdout)\(first.stderr)")
        let recordPath = backupDir + "/.state/restores.json"
        let recordBefore = try String(contentsOfFile: recordPath, encoding: .utf8)
        #expect(recordBefore.contains("postgres_full"), "\(recordBefore)")
        try pg.psql("DELETE FROM t WHERE id > 4000;", database: db)
        #expect(try pg.psql(contents, database: db) != atBackup)
        let backupsBefore = try InterruptionTests.fingerprint(backupDir + "/postgres")

        _ = try TestProcesses.run("/bin/dd", ["if=/dev/zero", "of=\(backupDir)/filler", "bs=65536"], check: false)
        let t0 = Date()
        let run = try BackstopBinary.run(["restore", "postgres", dump.path, "--yes", "--drop-previous"], environment: env)
        let seconds = Date().timeIntervalSince(t0)
        let shown = run.stdout + run.stderr
        print("restore faults: full backup volume: exit \(run.status) in \(String(format: "%.1f", seconds)) s: \(shown)")
        // The restore itself needs no room there: it is done, and says the record is not.
        #expect(run.status == 0, "\(shown)")
        #expect(try pg.psql(contents, database: db) == atBackup, "the target does not hold the dump")
        #expect(try pg.psql("SELECT count(*) FROM pg_database WHERE starts_with(datname, '\(db)_')") == "0", "a scratch or previous database was left")
        #expect(shown.contains("warning: the restore succeeded but recording it in \(recordPath) failed") && shown.contains("No space left on device"),
                "the missing record is not reported: \(shown)")
        #expect(try String(contentsOfFile: recordPath, encoding: .utf8) == recordBefore, "restores.json changed or was cut")
        #expect(try InterruptionTests.fingerprint(backupDir + "/postgres") == backupsBefore, "the backups changed")
        let stateNames = (try? FileManager.default.contentsOfDirectory(atPath: backupDir + "/.state")) ?? []
        #expect(!stateNames.contains { $0.hasPrefix(".") }, "scratch files left in .state: \(stateNames)")
        let health = try BackstopBinary.run(["health"], environment: env.merging(["REDIS_HOST": "127.0.0.1", "REDIS_PORT": "1"]) { $1 })
        let healthText = health.stdout + health.stderr
        #expect(healthText.split(separator: "\n").contains { $0.contains("DiskSpaceLow") && $0.contains(backupDir) }, "\(healthText)")
        let warning = shown.split(separator: "\n").first { $0.contains("recording it in") }.map(String.init) ?? "(no line)"
        print("restore faults: \(warning)")
        ReliabilityReport.record(
            fault: "the backup volume (an 8 MB tmpfs, where the log, `.state/` and restores.json live) full (filled just before it starts, so every write it makes meets the full disk) during `backstop restore postgres` (it streams the dump into psql and stages nothing on disk)",
            did: "the restore needs no room there: it finished in \(String(format: "%.1f", seconds)) s, exit \(run.status), the target holding the dump and no scratch database left, and said `warning: the restore succeeded but recording it in …/restores.json failed: … No space left on device`; `backstop health` shows DiskSpaceLow for the volume",
            lost: "nothing: restores.json byte-identical (the earlier restore still recorded, the file whole), the backups byte-identical, no scratch file left in `.state/`")
    }
    @Test func sentinelFailsTheTargetOverWhileItReceivesTheSnapshot() throws {
        let password = "failover-pw"
        let cluster = try RedisCluster.start(password: password)
        defer { cluster.shutdown() }
        let target = cluster.master
        func cli(_ port: Int, _ arguments: [String]) throws -> String { try cluster.redisCLI(port: port, arguments) }
        let script = "local ks = redis.call('KEYS', '*'); table.sort(ks); local out = {}; "
            + "for _, k in ipairs(ks) do out[#out + 1] = k .. '=' .. redis.call('GET', k) end; "
            + "return redis.call('DBSIZE') .. ':' .. redis.sha1hex(table.concat(out, ','))"
        func contents(_ port: Int) throws -> String { try cli(port, ["EVAL", script, "0"]) }
        _ = try cli(target.port, ["EVAL", "for i = 1, 20000 do redis.call('SET', 'key:' .. i, redis.sha1hex(i) .. redis.sha1hex(i + 1)) end return 1", "0"])
        let dir = try TestEnvironment.makeTempDirectory("restorefault-failover")
        let backupDir = dir + "/backups"
        let env = ["BACKUP_DIR": backupDir, "REDIS_SENTINELS": cluster.sentinels.map(\.description).joined(separator: ","),
                   "REDIS_SENTINEL_MASTER": cluster.masterName, "REDIS_PASSWORD": password]
        let made = try BackstopBinary.run(["backup", "redis"], environment: env)
        #expect(made.status == 0, "\(made.stderr)")
        let snapshot = try #require(BackupCatalog(backupDir: backupDir).list(kinds: [.redis]).first)
        let snapshotContents = try contents(target.port)
        _ = try cli(target.port, ["EVAL", "for i = 1, 1000 do redis.call('DEL', 'key:' .. i) end redis.call('SET', 'after:backup', 'kept') return 1", "0"])
        let before = try contents(target.port)
        #expect(before != snapshotContents)
        try TestEnvironment.waitUntil(timeout: 20, "the replica to hold the current data") { (try? contents(cluster.replicaNode.port)) == before }

        let log = dir + "/restore.log"
        let (restore, masterPort) = try RestoreInterruptionTests.startReplicationRestore(snapshot.path, rate: "100k", environment: env, logFile: log,
                                                                                         timeout: 60) { try? cli(target.port, ["INFO", "replication"]) }
        let t0 = Date()
        let newMaster = try cluster.failover()
        let failoverSeconds = Date().timeIntervalSince(t0)
        var status: Int32 = 0
        try TestEnvironment.waitUntil(timeout: 60, "the restore to exit after the failover (log \(log))") { waitpid(restore, &status, WNOHANG) == restore }
        TestProcesses.unregister(pid: restore)
        let seconds = Date().timeIntervalSince(t0)
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        print("restore faults: failover: exit \(code) \(String(format: "%.1f", seconds)) s after SENTINEL FAILOVER (failover done in \(String(format: "%.1f", failoverSeconds)) s)")
        #expect(newMaster != target)
        #expect(code != 0, "a restore whose target was failed over exited 0: \(output)")
        #expect(code < 126, "exit \(code): a failure, not a crash or a signal")
        #expect(output.contains("lost \(target) during the restore") && output.contains("no longer replicates from Backstop"),
                "the error does not say the target was failed over: \(output)")
        #expect(!output.contains("loaded the snapshot"), "\(output)")
        #expect(!TestEnvironment.isListening(port: masterPort), "the restore master still listens on \(masterPort)")
        #expect(Self.processes(mentioning: snapshot.path).isEmpty, "\(Self.processes(mentioning: snapshot.path))")
        #expect(!RestoreInterruptionTests.restoresRecord(backupDir).contains("\"redis\""),
                "the failed restore was recorded: \(RestoreInterruptionTests.restoresRecord(backupDir))")
        InterruptionTests.expectLockReleased(backupDir + "/.locks/redis.lock")
        let message = output.split(separator: "\n").first { $0.contains("no longer replicates") }.map(String.init) ?? "(no line)"
        print("restore faults: \(message)")
        // The end: the promoted replica is the master with the data from before the restore,
        // the old target its replica (Sentinel's REPLICAOF was left alone), holding the same.
        #expect(try contents(newMaster.port) == before, "the new master does not hold the data from before the restore")
        let role = try cli(target.port, ["INFO", "replication"])
        #expect(role.contains("role:slave") && role.contains("master_port:\(newMaster.port)"), "\(role)")
        try TestEnvironment.waitUntil(timeout: 30, "the old target to resync from \(newMaster)") { (try? contents(target.port)) == before }
        let downAfter = try cluster.sentinelMasterFields(sentinelPort: cluster.sentinelPorts[0])["down-after-milliseconds"]
        #expect(downAfter == "1000", "down-after-milliseconds not set back: \(downAfter ?? "nil")")

        // The next restore goes to the new master (through Sentinel) and is normal.
        let next = try BackstopBinary.run(["restore", "redis", snapshot.path, "--yes"], environment: env)
        #expect(next.status == 0, "\(next.stderr)\(next.stdout)")
        #expect(try contents(newMaster.port) == snapshotContents)
        let keys = before.split(separator: ":").first ?? "?"
        ReliabilityReport.record(
            fault: "Sentinel failed the target over (`SENTINEL FAILOVER`) while `backstop restore redis` (method replication, `--max-rate 100k`) sends it the snapshot",
            did: "exited \(code) \(String(format: "%.1f", seconds)) s after the failover began naming the target and the cause (`lost <target> during the restore: it no longer replicates from Backstop (role slave, following <new master>) … it was restarted or failed over`), without sending the old target REPLICAOF NO ONE (Sentinel's configuration left alone); backstop's listening port closed, no process left, the lock released, Sentinel's down-after-milliseconds set back, no restore recorded; the next restore, through Sentinel, went to the new master and loaded the snapshot",
            lost: "nothing: the promoted replica and the old target (its replica now) both held the \(keys) keys from before the restore (DBSIZE and a SHA-1 of every key and value equal)")
    }
}
