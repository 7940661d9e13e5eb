import BackstopCore
import BackstopTestSupport
import BackupCatalog
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// SIGTERM/SIGINT to `backstop restore redis` (both methods) mid-restore: the command stops
/// well within the grace period with 143/130, the target Redis keeps exactly the data it had
/// (and, for method file, its data folder byte for byte and its settings), no listening port,
/// scratch file or held lock is left, nothing is recorded in `.state/restores.json`, and the
/// next restore is normal. The snapshot goes out at `--max-rate`, so the signal lands in the
/// middle of the transfer every time.
@Suite("restore interruptions", .serialized)
struct RestoreInterruptionTests {
    /// How long a stopped restore may take (the default SHUTDOWN_GRACE_PERIOD is 30 s).
    static let prompt = 5.0

    /// DBSIZE and a SHA-1 over every key and its value, sorted (the keys are strings).
    static func contents(port: Int) throws -> String {
        let cli = try TestEnvironment.binary("redis-cli", package: "redis-tools")
        let script = "local ks = redis.call('KEYS', '*'); table.sort(ks); local out = {}; "
            + "for _, k in ipairs(ks) do out[#out + 1] = k .. '=' .. redis.call('GET', k) end; "
            + "return redis.call('DBSIZE') .. ':' .. redis.sha1hex(table.concat(out, ','))"
        return try TestProcesses.run(cli, ["-h", "127.0.0.1", "-p", String(port), "EVAL", script, "0"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Starts `backstop restore redis SNAPSHOT --yes --max-rate RATE` (method replication)
    /// and returns once the target is receiving the snapshot from Backstop's master (its
    /// `INFO replication`, read by `info`, says the sync is in progress), a second into the
    /// transfer: the CLI's pid and the port Backstop listens on.
    static func startReplicationRestore(_ snapshot: String, rate: String, environment: [String: String], logFile log: String,
                                        timeout: Double = 30, info: () -> String?) throws -> (cli: Int32, masterPort: Int) {
        let cli = try BackstopBinary.spawn(["restore", "redis", snapshot, "--yes", "--max-rate", rate], environment: environment, logFile: log)
        var masterPort = 0
        try TestEnvironment.waitUntil(timeout: timeout, "the target receiving the snapshot from backstop (log \(log))") {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            if let line = text.split(separator: "\n").first(where: { $0.contains("REPLICAOF 127.0.0.1 ") }),
               let port = line.split(separator: " ").drop(while: { $0 != "127.0.0.1" }).dropFirst().first.flatMap({ Int($0) }) {
                masterPort = port
            }
            return masterPort != 0 && (info() ?? "").contains("master_sync_in_progress:1")
        }
        usleep(1_000_000)
        return (cli, masterPort)
    }

    static func cli(port: Int, _ arguments: [String]) throws -> String {
        let cli = try TestEnvironment.binary("redis-cli", package: "redis-tools")
        return try TestProcesses.run(cli, ["-h", "127.0.0.1", "-p", String(port)] + arguments).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// 20,000 keys of 80 hexadecimal characters (an RDB of about 2 MB: 10 s at 200 KiB/s).
    static func fill(port: Int) throws {
        _ = try cli(port: port, ["EVAL", "for i = 1, 20000 do redis.call('SET', 'key:' .. i, redis.sha1hex(i) .. redis.sha1hex(i + 1)) end return 1", "0"])
    }

    /// What a restore would change: keys removed, changed, added.
    static func changeAfterTheBackup(port: Int) throws {
        _ = try cli(port: port, ["EVAL", "for i = 1, 1000 do redis.call('DEL', 'key:' .. i) end redis.call('SET', 'key:2000', 'changed') redis.call('SET', 'after:backup', 'kept') return 1", "0"])
    }

    /// Every file of `folder` (hidden ones too) → its SHA-256, but for the server's log.
    static func folderPrint(_ folder: String) throws -> [String: String] {
        var out: [String: String] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: folder) where !name.hasSuffix(".log") {
            out[name] = String(try TestProcesses.run("/usr/bin/sha256sum", [folder + "/" + name]).stdout.prefix(64))
        }
        return out
    }

    static func restoresRecord(_ backupDir: String) -> String {
        (try? String(contentsOfFile: backupDir + "/.state/restores.json", encoding: .utf8)) ?? ""
    }

    static func signalName(_ signal: Int32) -> String { signal == SIGTERM ? "SIGTERM" : "SIGINT" }

    /// `InterruptionTests.signalAndReap` with a bound: a command still running 30 s after the
    /// signal is SIGKILLed (an issue recorded), so a regression fails the test instead of
    /// hanging it for the restore's own timeout.
    static func signalAndReap(_ pid: Int32, _ signal: Int32, sourceLocation: SourceLocation = #_sourceLocation) -> (status: Int32, code: Int32, seconds: Double) {
        let t0 = Date()
        kill(pid, signal)
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) == 0 {
            if Date().timeIntervalSince(t0) > 30 {
                Issue.record("the command \(pid) still ran 30 s after the signal: killed", sourceLocation: sourceLocation)
                kill(pid, SIGKILL)
                waitpid(pid, &status, 0)
                break
            }
            usleep(10_000)
        }
        TestProcesses.unregister(pid: pid)
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (status, code, Date().timeIntervalSince(t0))
    }

    // MARK: - restore redis, method replication

    @Test(arguments: [SIGTERM, SIGINT])
    func signalDuringAReplicationRestoreLeavesTheTargetUnchanged(signal: Int32) throws {
        let redis = try StandaloneRedis()
        defer { redis.stop() }
        try Self.fill(port: redis.port)
        let dir = try TestEnvironment.makeTempDirectory("intr-restore-redis")
        let backupDir = dir + "/backups"
        let env = ["BACKUP_DIR": backupDir, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(redis.port)]
        let made = try BackstopBinary.run(["backup", "redis"], environment: env)
        #expect(made.status == 0, "\(made.stderr)")
        let snapshot = try #require(BackupCatalog(backupDir: backupDir).list(kinds: [.redis]).first)
        let snapshotContents = try Self.contents(port: redis.port)
        try Self.changeAfterTheBackup(port: redis.port)
        let before = try Self.contents(port: redis.port)
        #expect(before != snapshotContents)
        let pidBefore = try Self.cli(port: redis.port, ["INFO", "server"]).split(separator: "\r\n").first { $0.hasPrefix("process_id:") }

        let log = dir + "/restore.log"
        let (cli, masterPort) = try Self.startReplicationRestore(snapshot.path, rate: "200k", environment: env, logFile: log) {
            try? Self.cli(port: redis.port, ["INFO", "replication"])
        }
        #expect(TestEnvironment.isListening(port: masterPort), "backstop's restore master is not listening on \(masterPort)")
        let received = try Self.cli(port: redis.port, ["INFO", "replication"])
        let (status, code, seconds) = Self.signalAndReap(cli, signal)
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        print("interruptions: backstop restore redis (replication) exited \(code) \(String(format: "%.2f", seconds)) s after \(Self.signalName(signal))")
        #expect((status & 0x7f) == 0, "killed by the signal instead of stopping: \(status)")
        #expect(code == 128 + signal, "exit \(code); \(output)")
        #expect(seconds < Self.prompt, "took \(seconds) s to stop")
        #expect(output.contains("stopped by \(Self.signalName(signal))"), "\(output)")
        #expect(output.contains("the transfer was called off"), "\(output)")

        // The target: a master again, same process, exactly the data it had.
        let replication = try Self.cli(port: redis.port, ["INFO", "replication"])
        #expect(replication.contains("role:master"), "\(replication)")
        #expect(try Self.cli(port: redis.port, ["INFO", "server"]).split(separator: "\r\n").first { $0.hasPrefix("process_id:") } == pidBefore)
        #expect(try Self.contents(port: redis.port) == before, "the target's data changed")
        #expect(!TestEnvironment.isListening(port: masterPort), "the restore master still listens on \(masterPort)")
        try TestEnvironment.waitUntil(timeout: 5, "the target's partial transfer file to go") {
            ((try? FileManager.default.contentsOfDirectory(atPath: redis.directory)) ?? []).allSatisfy { !$0.hasPrefix("temp-") }
        }
        #expect(!Self.restoresRecord(backupDir).contains("\"redis\""), "the stopped restore was recorded: \(Self.restoresRecord(backupDir))")
        InterruptionTests.expectLockReleased(backupDir + "/.locks/redis.lock")
        let redisFiles = try FileManager.default.contentsOfDirectory(atPath: backupDir + "/redis")
        #expect(redisFiles.allSatisfy { !$0.hasPrefix(".") }, "scratch files left: \(redisFiles)")
        let stateNames = (try? FileManager.default.contentsOfDirectory(atPath: backupDir + "/.state")) ?? []
        #expect(!stateNames.contains { $0.hasPrefix(".stderr-\(cli)-") }, "\(stateNames)")
        // Two listed snapshots: the one restored from and the safety snapshot, both whole.
        let snapshots = BackupCatalog(backupDir: backupDir).list(kinds: [.redis])
        #expect(snapshots.count == 2 && snapshots.allSatisfy { $0.meta != nil }, "\(snapshots.map(\.path))")
        let verified = try BackstopBinary.run(["verify"], environment: ["BACKUP_DIR": backupDir])
        #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")

        // The next restore is normal: the snapshot's data, recorded.
        let next = try BackstopBinary.run(["restore", "redis", snapshot.path, "--yes"], environment: env)
        #expect(next.status == 0, "\(next.stderr)\(next.stdout)")
        #expect(try Self.contents(port: redis.port) == snapshotContents)
        #expect(Self.restoresRecord(backupDir).contains("\"redis\""))
        let keys = before.split(separator: ":").first ?? "?"
        func field(_ name: String) -> String {
            received.split(separator: "\r\n").first { $0.hasPrefix(name + ":") }.map { String($0.dropFirst(name.count + 1)) } ?? "?"
        }
        ReliabilityReport.record(
            fault: "`backstop restore redis` (method replication) sent \(signal == SIGTERM ? "SIGTERM" : "SIGINT (Ctrl-C)") while the target receives the snapshot (`--max-rate 200k`)",
            did: "exited \(code) \(String(format: "%.1f", seconds)) s after the signal: the transfer called off before its last byte (the target had read \(field("master_sync_read_bytes")) of \(field("master_sync_total_bytes")) bytes a second before), the target told REPLICAOF NO ONE (role master, same process), backstop's listening port closed, the target's partial transfer file gone, the lock released, no restore recorded; the next restore loaded the snapshot",
            lost: "nothing: the target kept its \(keys) keys (DBSIZE and a SHA-1 of every key and value equal); the safety snapshot taken first is a whole, listed backup")
    }

    // MARK: - restore redis, method file

    @Test func sigtermDuringAFileRestoreLeavesTheDataFolderUnchanged() throws {
        let redis = try RestartableRedis("intr-restore-file")
        defer { redis.kill() }
        let (dir, data, port, restart) = (redis.dir, redis.data, redis.port, redis.restart)
        try Self.fill(port: port)
        let backupDir = dir + "/backups"
        let env = ["BACKUP_DIR": backupDir, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(port),
                   "REDIS_DATA_DIR": data, "REDIS_RESTART_COMMAND": "sh '\(restart)'"]
        let made = try BackstopBinary.run(["backup", "redis"], environment: env)
        #expect(made.status == 0, "\(made.stderr)")
        let snapshot = try #require(BackupCatalog(backupDir: backupDir).list(kinds: [.redis]).first)
        let snapshotContents = try Self.contents(port: port)
        try Self.changeAfterTheBackup(port: port)
        _ = try Self.cli(port: port, ["SAVE"]) // dump.rdb holds the current data: it must stay so
        let before = try Self.contents(port: port)
        let folderBefore = try Self.folderPrint(data)
        #expect(folderBefore["dump.rdb"] != nil, "\(folderBefore.keys)")
        let pidBefore = try String(contentsOfFile: data + "/redis.pid", encoding: .utf8)

        let log = dir + "/restore.log"
        let cli = try BackstopBinary.spawn(["restore", "redis", snapshot.path, "--method", "file", "--yes", "--max-rate", "200k"],
                                           environment: env, logFile: log)
        let temporary = data + "/.backstop-restore-\(cli).rdb"
        try TestEnvironment.waitUntil(timeout: 30, "the snapshot being written into \(temporary) (log \(log))") {
            ((try? FileManager.default.attributesOfItem(atPath: temporary)[.size] as? Int) ?? 0) > 100_000
        }
        let written = (try? FileManager.default.attributesOfItem(atPath: temporary)[.size] as? Int) ?? 0
        // The safety snapshot (a replication-method backup) made Redis BGSAVE to disk: dump.rdb
        // now holds Redis's current data, newly written. That is the folder the restore must leave.
        var folderAtTheSignal = try Self.folderPrint(data)
        folderAtTheSignal[FileSystem.lastComponent(of: temporary)] = nil
        #expect(Set(folderAtTheSignal.keys) == Set(folderBefore.keys), "\(folderAtTheSignal.keys)")
        #expect(try Self.cli(port: port, ["CONFIG", "GET", "save"]) == "save", "saves not paused during the restore")
        let (status, code, seconds) = Self.signalAndReap(cli, SIGTERM)
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        print("interruptions: backstop restore redis (file) exited \(code) \(String(format: "%.2f", seconds)) s after SIGTERM (\(written) bytes written)")
        #expect((status & 0x7f) == 0, "killed by the signal instead of stopping: \(status)")
        #expect(code == 143, "exit \(code); \(output)")
        #expect(seconds < Self.prompt, "took \(seconds) s to stop")
        #expect(output.contains("stopped by SIGTERM") && output.contains("stopped before"), "\(output)")

        #expect(!FileSystem.exists(temporary), "\(temporary) was left")
        let folderAfter = try Self.folderPrint(data)
        #expect(folderAfter == folderAtTheSignal, "the data folder changed: \(folderAtTheSignal.sorted { $0.key < $1.key }) → \(folderAfter.sorted { $0.key < $1.key })")
        #expect(folderAfter["redis.conf"] == folderBefore["redis.conf"] && folderAfter["redis.pid"] == folderBefore["redis.pid"])
        #expect(try String(contentsOfFile: data + "/redis.pid", encoding: .utf8) == pidBefore, "Redis was restarted")
        #expect(try Self.contents(port: port) == before, "the target's data changed")
        #expect(try Self.cli(port: port, ["CONFIG", "GET", "save"]) == "save\n3600 1", "save was not set back")
        #expect(!Self.restoresRecord(backupDir).contains("\"redis\""), "the stopped restore was recorded: \(Self.restoresRecord(backupDir))")
        InterruptionTests.expectLockReleased(backupDir + "/.locks/redis.lock")
        let snapshots = BackupCatalog(backupDir: backupDir).list(kinds: [.redis])
        #expect(snapshots.count == 2 && snapshots.allSatisfy { $0.meta != nil }, "\(snapshots.map(\.path))")

        // The next restore is normal: Redis restarted on the snapshot, recorded.
        let next = try BackstopBinary.run(["restore", "redis", snapshot.path, "--method", "file", "--yes"], environment: env)
        #expect(next.status == 0, "\(next.stderr)\(next.stdout)")
        #expect(try Self.contents(port: port) == snapshotContents)
        #expect(Self.restoresRecord(backupDir).contains("\"redis\""))
        let keys = before.split(separator: ":").first ?? "?"
        ReliabilityReport.record(
            fault: "`backstop restore redis --method file` SIGTERMed while it writes the snapshot into Redis's data folder (`--max-rate 200k`, \(written / 1024) KiB written)",
            did: "exited \(code) \(String(format: "%.1f", seconds)) s after the signal: the temporary `.backstop-restore-PID.rdb` removed before it replaced dump.rdb, `save` set back (`3600 1`), Redis not restarted (same pid), the lock released, no restore recorded; the next restore restarted Redis on the snapshot",
            lost: "nothing: the data folder byte-identical to what it was at the signal (dump.rdb as the safety snapshot's BGSAVE wrote it from the current data, redis.conf, redis.pid; no `.backstop-restore-*`), the \(keys) keys unchanged")
    }

    @Test func sigtermWhileRedisRestartsLetsTheFileRestoreFinish() throws {
        let redis = try RestartableRedis("intr-restore-restart")
        defer { redis.kill() }
        try Self.fill(port: redis.port)
        let backupDir = redis.dir + "/backups"
        // A restart that takes 3 s before it stops Redis (a slow `docker restart`).
        let marker = redis.dir + "/restarting"
        let slowRestart = redis.dir + "/slow-restart.sh"
        try "touch '\(marker)'\nsleep 3\nexec sh '\(redis.restart)'\n".write(toFile: slowRestart, atomically: true, encoding: .utf8)
        let env = ["BACKUP_DIR": backupDir, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(redis.port),
                   "REDIS_DATA_DIR": redis.data, "REDIS_RESTART_COMMAND": "sh '\(slowRestart)'"]
        let made = try BackstopBinary.run(["backup", "redis"], environment: env)
        #expect(made.status == 0, "\(made.stderr)")
        let snapshot = try #require(BackupCatalog(backupDir: backupDir).list(kinds: [.redis]).first)
        let snapshotContents = try Self.contents(port: redis.port)
        try Self.changeAfterTheBackup(port: redis.port)
        let pidBefore = try String(contentsOfFile: redis.data + "/redis.pid", encoding: .utf8)

        let log = redis.dir + "/restore.log"
        let cli = try BackstopBinary.spawn(["restore", "redis", snapshot.path, "--method", "file", "--yes"], environment: env, logFile: log)
        try TestEnvironment.waitUntil(timeout: 30, "the restart command running (log \(log))") { FileSystem.exists(marker) }
        let (status, code, seconds) = Self.signalAndReap(cli, SIGTERM)
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        print("interruptions: backstop restore redis (file, during the restart) exited \(code) \(String(format: "%.2f", seconds)) s after SIGTERM")
        #expect((status & 0x7f) == 0, "killed by the signal: \(status)")
        #expect(code == 0, "exit \(code); \(output)")
        #expect(output.contains("the work had already finished") && output.contains("key counts per database match the .meta"), "\(output)")
        // Past the point of no return the restore went through: Redis restarted on the
        // snapshot, save set back, recorded.
        #expect(try String(contentsOfFile: redis.data + "/redis.pid", encoding: .utf8) != pidBefore, "Redis was not restarted")
        #expect(try Self.contents(port: redis.port) == snapshotContents)
        #expect(try Self.cli(port: redis.port, ["CONFIG", "GET", "save"]) == "save\n3600 1", "save was not set back")
        #expect(Self.restoresRecord(backupDir).contains("\"redis\""))
        InterruptionTests.expectLockReleased(backupDir + "/.locks/redis.lock")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: redis.data)) ?? []).allSatisfy { !$0.hasPrefix(".backstop-restore-") })
        let keys = snapshotContents.split(separator: ":").first ?? "?"
        ReliabilityReport.record(
            fault: "`backstop restore redis --method file` SIGTERMed while REDIS_RESTART_COMMAND runs (dump.rdb already replaced; a 3 s restart)",
            did: "let the restart finish (the point of no return: the command is kept out of the signal's stop-all, cut in half it could leave Redis down), then finished the restore: exited 0 \(String(format: "%.1f", seconds)) s after the signal saying the work had already finished; Redis restarted on the snapshot (\(keys) keys, key counts equal to the .meta), `save` set back, the restore recorded, the lock released",
            lost: "nothing: the replaced data is in the safety snapshot taken first")
    }

    // MARK: - restore postgres, point in time with --start

    /// The rows of `t` on the server listening on `port`.
    static func notes(_ server: PostgresServer, port: Int) throws -> String {
        try TestProcesses.run(server.program("psql"), ["-X", "-A", "-t", "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-d", "postgres",
                                                       "-c", "SELECT string_agg(note, ',' ORDER BY id) FROM t"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test(arguments: [SIGTERM, SIGINT])
    func signalDuringAPointInTimeRecoveryStopsTheServerAndRemovesTheDirectory(signal: Int32) throws {
        let server = try PostgresServer.start(name: "intr-pitr")
        defer { server.shutdown() }
        let backupDir = try TestEnvironment.archiveBackupDirectory("intr-pitr")
        let archiveDir = backupDir + "/postgres/wal"
        try server.psql("ALTER SYSTEM SET archive_mode = on;\nALTER SYSTEM SET archive_command = '\(try BackstopBinary.path()) wal push --backup-dir \(backupDir) %p';")
        try server.stop()
        try server.start()
        try server.psql("CREATE TABLE t(id serial, note text);")
        var env = server.environment
        env["BACKUP_DIR"] = backupDir
        let base = try BackstopBinary.run(["backup", "postgres", "incremental"], environment: env)
        #expect(base.status == 0, "\(base.stderr)")
        try server.psql("INSERT INTO t(note) VALUES ('before');")
        try server.psql("SELECT pg_switch_wal();")
        // T: a whole second after the 'before' commit and before the 'after' one.
        let target = ceil(WallClock.now()) + 1
        while WallClock.now() < target + 0.5 { usleep(50_000) }
        try server.psql("INSERT INTO t(note) VALUES ('after');")
        let last = try server.psql("SELECT pg_walfile_name(pg_current_wal_lsn());")
        try server.psql("SELECT pg_switch_wal();")
        try TestEnvironment.waitUntil(timeout: 60, "\(last) archived") { FileSystem.exists(archiveDir + "/" + last + ".meta") }
        let sourceBefore = try server.psql("SELECT string_agg(note, ',' ORDER BY id) FROM t")
        let sourcePID = server.postmasterPID
        let scratch = try TestEnvironment.makeTempDirectory("intr-pitr-restores")
        _ = chmod(scratch, 0o755)
        let dataDir = scratch + "/restored"
        // Whatever happens, no server is left on the restored directory.
        defer {
            _ = try? TestProcesses.run(server.program("pg_ctl"), ["-D", dataDir, "-m", "immediate", "-w", "stop"],
                                       asUser: TestEnvironment.isRoot ? "postgres" : nil, check: false)
        }

        // The restored server replays WAL with recovery_min_apply_delay = 1h: once consistent it
        // accepts connections and waits at the first commit, so the signal lands in recovery.
        let slow = try SlowPrograms(realDirectory: server.binDirectory, slow: ["pg_ctl": .arguments(["-o", "-c recovery_min_apply_delay=1h"])])
        var slowEnv = env
        slowEnv["BACKUP_POSTGRES_BIN"] = slow.directory
        let port = try TestEnvironment.freePort()
        let log = scratch + "/restore.log"
        let arguments = ["restore", "postgres", "--data-dir", dataDir, "--to-time", WallClock.rfc3339(target), "--yes", "--start", "--port", String(port)]
        let cli = try BackstopBinary.spawn(arguments, environment: slowEnv, logFile: log)
        try TestEnvironment.waitUntil(timeout: 60, "the restored server recovering on \(port) (log \(log))") {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            return text.contains("waiting for recovery to end") && TestEnvironment.isListening(port: port)
        }
        usleep(1_000_000)
        let recovering = try TestProcesses.run(server.program("psql"), ["-X", "-A", "-t", "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-d", "postgres",
                                                                        "-c", "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(recovering.hasPrefix("t|"), "\(recovering)")
        let replayed = recovering.split(separator: "|").last ?? "?"
        let pidText = try String(contentsOfFile: dataDir + "/postmaster.pid", encoding: .utf8)
        let restoredPID = try #require(Int32(pidText.split(separator: "\n").first ?? ""))
        #expect(processAlive(restoredPID))
        let (status, code, seconds) = Self.signalAndReap(cli, signal)
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        print("interruptions: backstop restore postgres --to-time --start exited \(code) \(String(format: "%.2f", seconds)) s after \(Self.signalName(signal))")
        #expect((status & 0x7f) == 0, "killed by the signal instead of stopping: \(status)")
        #expect(code == 128 + signal, "exit \(code); \(output)")
        #expect(seconds < Self.prompt, "took \(seconds) s to stop")
        #expect(output.contains("stopped by \(Self.signalName(signal))") && output.contains("removed"), "\(output)")

        #expect(!processAlive(restoredPID), "the restored server \(restoredPID) still runs")
        #expect(!TestEnvironment.isListening(port: port), "something still listens on \(port)")
        #expect(!FileSystem.exists(dataDir), "the half-recovered \(dataDir) was left: \((try? FileManager.default.contentsOfDirectory(atPath: dataDir)) ?? [])")
        // The running cluster it was restored from: untouched, same postmaster, same rows.
        #expect(server.postmasterPID == sourcePID && sourcePID != nil)
        #expect(try server.psql("SELECT string_agg(note, ',' ORDER BY id) FROM t") == sourceBefore)
        #expect(try server.psql("SELECT pg_is_in_recovery()") == "f")
        #expect(!Self.restoresRecord(backupDir).contains("postgres"), "the stopped restore was recorded: \(Self.restoresRecord(backupDir))")
        let stateNames = (try? FileManager.default.contentsOfDirectory(atPath: backupDir + "/.state")) ?? []
        #expect(!stateNames.contains { $0.hasPrefix(".stderr-\(cli)-") }, "\(stateNames)")

        // The next point-in-time restore, into the same path, is normal: 'before', not 'after'.
        let nextPort = try TestEnvironment.freePort()
        var nextArguments = arguments
        nextArguments[nextArguments.count - 1] = String(nextPort)
        let next = try BackstopBinary.run(nextArguments, environment: env)
        #expect(next.status == 0, "\(next.stderr)\(next.stdout)")
        #expect(try Self.notes(server, port: nextPort) == "before")
        ReliabilityReport.record(
            fault: "`backstop restore postgres --data-dir … --to-time … --start` sent \(signal == SIGTERM ? "SIGTERM" : "SIGINT (Ctrl-C)") while the restored server replays WAL (held at its first commit by `recovery_min_apply_delay`)",
            did: "exited \(code) \(String(format: "%.1f", seconds)) s after the signal: the recovering server it started (in recovery, replayed to \(replayed)) shut down (fast), the new data directory removed, nothing recorded; the next point-in-time restore into the same path recovered to the target",
            lost: "nothing: the running cluster it was restored from untouched (same postmaster, same rows, not in recovery)")
    }
}

/// A redis-server that daemonizes with a pid file, restarted by `restart` (the shell script a
/// deployment's REDIS_RESTART_COMMAND stands for), `save 3600 1`, AOF off.
struct RestartableRedis {
    let dir: String
    let data: String
    let port: Int
    let restart: String

    init(_ prefix: String) throws {
        let redisServer = try TestEnvironment.binary("redis-server", package: "redis-server")
        dir = try TestEnvironment.makeTempDirectory(prefix)
        data = dir + "/data"
        try FileSystem.createDirectory(data)
        port = try TestEnvironment.freePort()
        let conf = data + "/redis.conf"
        try """
        port \(port)
        bind 127.0.0.1
        dir \(data)
        dbfilename dump.rdb
        appendonly no
        save 3600 1
        repl-diskless-sync-delay 0
        daemonize yes
        pidfile \(data)/redis.pid
        logfile \(data)/redis.log

        """.write(toFile: conf, atomically: true, encoding: .utf8)
        restart = dir + "/restart.sh"
        try """
        pid=$(cat '\(data)/redis.pid' 2>/dev/null)
        if [ -n "$pid" ]; then kill "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done; fi
        exec '\(redisServer)' '\(conf)'

        """.write(toFile: restart, atomically: true, encoding: .utf8)
        let pidFile = data + "/redis.pid"
        TestProcesses.atExit { Self.kill(pidFile: pidFile) }
        try TestProcesses.run("/bin/sh", [restart])
        let port = self.port
        try TestEnvironment.waitUntil(timeout: 20, "redis-server on \(port)") { TestEnvironment.isListening(port: port) }
    }

    func kill() { Self.kill(pidFile: data + "/redis.pid") }

    static func kill(pidFile: String) {
        if let text = try? String(contentsOfFile: pidFile, encoding: .utf8), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
            Glibc.kill(pid, SIGKILL)
        }
    }
}
