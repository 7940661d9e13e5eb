import BackstopCore
import BackstopTestSupport
import BackupCatalog
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The faults of `MidJobFaultTests` during the other backup jobs: the backup volume (a small
/// tmpfs) filling up while `pg_basebackup` writes a base backup and while a Redis snapshot
/// streams in, and PostgreSQL restarting under a base backup.
extension MidJobFaultTests {
    /// Relative path → SHA-256 of every visible file below `folder` (base backups are folders).
    static func treeFingerprint(_ folder: String) throws -> [String: String] {
        var out: [String: String] = [:]
        let paths = FileManager.default.subpaths(atPath: folder) ?? []
        for relative in paths where !relative.split(separator: "/").contains(where: { $0.hasPrefix(".") }) {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: folder + "/" + relative, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
            let digest = try TestProcesses.run("/usr/bin/sha256sum", [folder + "/" + relative]).stdout
            out[relative] = String(digest.prefix(64))
        }
        return out
    }

    /// Waits for the CLI `cli` to exit after a fault: its exit code and output, the seconds
    /// since `t0`, after checking the processes `below` it died too.
    static func reap(_ cli: Int32, below: [Int32], since t0: Date, logFile: String) throws -> (code: Int32, output: String, seconds: Double) {
        var status: Int32 = 0
        try TestEnvironment.waitUntil(timeout: 120, "the CLI to exit after the fault (log \(logFile))") {
            waitpid(cli, &status, WNOHANG) == cli
        }
        TestProcesses.unregister(pid: cli)
        let seconds = Date().timeIntervalSince(t0)
        try TestEnvironment.waitUntil(timeout: 10, "the CLI's children \(below) to end") { below.allSatisfy { !processAlive($0) } }
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (code, (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "", seconds)
    }

    /// Runs `backstop backup postgres incremental` with pg_basebackup held to 32 kB/s, calls
    /// `fault` once its partial folder holds a file, and waits for the CLI to exit.
    static func baseBackupWithFault(env: [String: String], pg: PostgresServer, postgresDir: String, logFile: String,
                                    fault: () throws -> Void) throws -> (code: Int32, output: String, seconds: Double) {
        let slow = try SlowPrograms(realDirectory: pg.binDirectory, slow: ["pg_basebackup": .arguments(["--max-rate=32k"])])
        var env = env
        env["BACKUP_POSTGRES_BIN"] = slow.directory
        let cli = try BackstopBinary.spawn(["backup", "postgres", "incremental"], environment: env, logFile: logFile)
        try TestEnvironment.waitUntil(timeout: 30, "pg_basebackup filling its partial folder (log \(logFile))") {
            guard let partial = InterruptionTests.leftovers(postgresDir).first(where: { $0.hasPrefix(".wal_") }) else { return false }
            return !((try? FileManager.default.contentsOfDirectory(atPath: postgresDir + "/" + partial)) ?? []).isEmpty
                && !SlowPrograms.descendants(of: cli).isEmpty
        }
        let below = SlowPrograms.descendants(of: cli)
        let t0 = Date()
        try fault()
        return try reap(cli, below: below, since: t0, logFile: logFile)
    }

    /// `backstop health` with the volume full: it must show DiskSpaceLow for it.
    static func expectDiskSpaceLow(_ env: [String: String], backupDir: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let health = try BackstopBinary.run(["health"], environment: env)
        let shown = health.stdout + health.stderr
        #expect(health.status != 0, sourceLocation: sourceLocation)
        #expect(shown.split(separator: "\n").contains { $0.contains("DiskSpaceLow") && $0.contains(backupDir) },
                "health shows no DiskSpaceLow for \(backupDir): \(shown)", sourceLocation: sourceLocation)
    }

    /// With the space back: the next `backstop ARGS` run makes a second backup of `kind`
    /// that passes `verify`, and `backstop health` writes alerts.json without DiskSpaceLow.
    static func expectWholeNextRun(_ arguments: [String], kind: BackupKind, env: [String: String], backupDir: String,
                                   sourceLocation: SourceLocation = #_sourceLocation) throws {
        let next = try BackstopBinary.run(arguments, environment: env)
        #expect(next.status == 0, "\(next.stderr)", sourceLocation: sourceLocation)
        let listed = BackupCatalog(backupDir: backupDir).list(kinds: [kind])
        #expect(listed.count == 2, sourceLocation: sourceLocation)
        let newest = try #require(listed.max { $0.path < $1.path }, sourceLocation: sourceLocation)
        let verify = try BackstopBinary.run(["verify", newest.path], environment: env)
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)", sourceLocation: sourceLocation)
        _ = try BackstopBinary.run(["health"], environment: env)
        let after = (try? String(contentsOfFile: backupDir + "/alerts.json", encoding: .utf8)) ?? ""
        #expect(!after.isEmpty && !after.contains("DiskSpaceLow"), "with the space back alerts.json is written without DiskSpaceLow: \(after)",
                sourceLocation: sourceLocation)
    }

    @Test func theBackupVolumeFillsUpDuringABaseBackup() throws {
        let pg = try PostgresServer.start(name: "pg-basefull")
        defer { pg.shutdown() }
        // 64 MB: `verify` unpacks a base backup (about 40 MB here) into `.state/` on this volume.
        let (dir, volume) = try Tmpfs.inNewFolder("midjob-basedisk", size: "64m")
        defer { volume.unmount() }
        let backupDir = volume.path
        let postgresDir = backupDir + "/postgres"
        var env = pg.environment
        env["BACKUP_DIR"] = backupDir
        env["REDIS_HOST"] = "127.0.0.1"
        env["REDIS_PORT"] = "1"
        // A good base backup first, which must survive the fault.
        let first = try BackstopBinary.run(["backup", "postgres", "incremental"], environment: env)
        #expect(first.status == 0, "\(first.stderr)")
        let good = try Self.treeFingerprint(postgresDir)
        #expect(good.keys.contains { $0.hasSuffix("/base.tar.gz") }, "\(good.keys)")

        let filler = backupDir + "/filler"
        let run = try Self.baseBackupWithFault(env: env, pg: pg, postgresDir: postgresDir, logFile: dir + "/cli.log") {
            _ = try TestProcesses.run("/bin/dd", ["if=/dev/zero", "of=\(filler)", "bs=65536"], check: false)
        }
        #expect(run.code != 0, "a base backup onto a full disk exited 0: \(run.output)")
        #expect(run.code < 126, "exit \(run.code): a failure, not a crash or a signal")
        let line = run.output.split(separator: "\n").first { $0.contains("No space left on device") }.map(String.init) ?? ""
        #expect(!line.isEmpty, "the error does not say the disk is full: \(run.output)")
        #expect(line.contains(postgresDir + "/.wal_"), "the error does not name the file or folder it could not write: \(run.output)")
        #expect(InterruptionTests.leftovers(postgresDir).isEmpty, "\(InterruptionTests.leftovers(postgresDir))")
        #expect(try Self.treeFingerprint(postgresDir) == good, "the base backup already there changed, or a file appeared")
        #expect(BackupCatalog(backupDir: backupDir).list(kinds: [.postgresBase]).count == 1, "a second base backup is listed")
        InterruptionTests.expectLockReleased(backupDir + "/.locks/postgres_base.lock")
        let remaining = SlowPrograms.descendants(of: getpid()).filter { pid in
            ((try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? "").contains(postgresDir)
        }
        #expect(remaining.isEmpty, "processes still writing under \(postgresDir): \(remaining)")
        try Self.expectDiskSpaceLow(env, backupDir: backupDir)
        print("mid-job faults: disk full during the base backup: \(line)")

        // The space comes back: `verify` passes the one base backup there, the next run is whole.
        try FileManager.default.removeItem(atPath: filler)
        let verifyAll = try BackstopBinary.run(["verify"], environment: ["BACKUP_DIR": backupDir])
        #expect(verifyAll.status == 0, "\(verifyAll.stdout)\(verifyAll.stderr)")
        #expect(verifyAll.stdout.components(separatedBy: "wal_").count - 1 == 1, "verify checked more than the good base backup: \(verifyAll.stdout)")
        try Self.expectWholeNextRun(["backup", "postgres", "incremental"], kind: .postgresBase, env: env, backupDir: backupDir)
        ReliabilityReport.record(
            fault: "the backup volume (a 64 MB tmpfs) filled while `pg_basebackup` writes a base backup into it",
            did: "`backup postgres incremental` exited \(run.code) \(String(format: "%.1f", run.seconds)) s later naming `No space left on device` and the file in the partial folder; the partial folder removed, no process left writing there, the lock released, `backstop health` shows DiskSpaceLow for the volume; with the space back the next base backup was complete, passed `verify` and the alert resolved",
            lost: "nothing: the \(good.count) files of the base backup already there byte-identical, `list` shows only it and `verify` passes it")
    }

    @Test func postgresRestartsDuringABaseBackup() throws {
        let pg = try PostgresServer.start(name: "pg-baserestart")
        defer { pg.shutdown() }
        let dir = try TestEnvironment.makeTempDirectory("midjob-baserestart")
        let backupDir = dir + "/backups"
        let postgresDir = backupDir + "/postgres"
        var env = pg.environment
        env["BACKUP_DIR"] = backupDir
        let first = try BackstopBinary.run(["backup", "postgres", "incremental"], environment: env)
        #expect(first.status == 0, "\(first.stderr)")
        let good = try Self.treeFingerprint(postgresDir)

        let run = try Self.baseBackupWithFault(env: env, pg: pg, postgresDir: postgresDir, logFile: dir + "/cli.log") {
            try pg.stop(mode: "fast")
            try pg.start()
        }
        #expect(run.code != 0, "a base backup cut by a server restart exited 0: \(run.output)")
        #expect(run.code < 126, "exit \(run.code): a failure, not a crash or a signal")
        let line = run.output.split(separator: "\n").first { $0.contains("pg_basebackup exited") }.map(String.init) ?? ""
        #expect(line.contains("pg_basebackup: error:"), "the error does not carry pg_basebackup's own message: \(run.output)")
        #expect(InterruptionTests.leftovers(postgresDir).isEmpty, "\(InterruptionTests.leftovers(postgresDir))")
        #expect(try Self.treeFingerprint(postgresDir) == good, "the base backup already there changed, or a file appeared")
        #expect(BackupCatalog(backupDir: backupDir).list(kinds: [.postgresBase]).count == 1)
        InterruptionTests.expectLockReleased(backupDir + "/.locks/postgres_base.lock")
        let firing = try Self.backupFailedAfterHealth(env, backupDir: backupDir)
        #expect(firing.contains("postgres"), "BackupFailed does not fire for the cluster: \(firing)")
        let said = (line.components(separatedBy: "pg_basebackup: error: ").last ?? "").replacingOccurrences(of: "  ", with: " ")
        print("mid-job faults: restart during the base backup: \(line)")

        let next = try BackstopBinary.run(["backup", "postgres", "incremental"], environment: env)
        #expect(next.status == 0, "\(next.stderr)")
        let bases = BackupCatalog(backupDir: backupDir).list(kinds: [.postgresBase])
        #expect(bases.count == 2)
        let newest = try #require(bases.max { $0.path < $1.path })
        let verify = try BackstopBinary.run(["verify", newest.path], environment: env)
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        let resolved = try Self.backupFailedAfterHealth(env, backupDir: backupDir)
        #expect(!resolved.contains("postgres"), "BackupFailed still fires after the good run: \(resolved)")
        ReliabilityReport.record(
            fault: "PostgreSQL restarted (`pg_ctl restart -m fast`) while `pg_basebackup` runs",
            did: "`backup postgres incremental` exited \(run.code) \(String(format: "%.1f", run.seconds)) s later with pg_basebackup's own error (`\(said)`); the partial folder removed, the lock released, BackupFailed fired (`backstop health`); the next run, against the restarted server, made a complete base backup that passes `verify` and BackupFailed resolved",
            lost: "nothing: the \(good.count) files of the base backup already there byte-identical")
    }

    @Test func theBackupVolumeFillsUpDuringARedisSnapshot() throws {
        // 5,000 keys at 1 ms each: the server's fork takes 5 s to write the snapshot, and the
        // job's temporary file is open the whole time.
        let redis = try StandaloneRedis.filled(keys: 5000)
        defer { redis.stop() }
        let (dir, volume) = try Tmpfs.inNewFolder("midjob-redisdisk", size: "8m")
        defer { volume.unmount() }
        let backupDir = volume.path
        let redisDir = backupDir + "/redis"
        let env = ["BACKUP_DIR": backupDir, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(redis.port),
                   "BACKUP_REDIS_RETRY_DELAY": "1s", "BACKUP_REDIS_TIMEOUT": "60s",
                   "PGHOST": "127.0.0.1", "PGPORT": "1"]
        let first = try BackstopBinary.run(["backup", "redis"], environment: env)
        #expect(first.status == 0, "\(first.stderr)")
        let good = try Self.treeFingerprint(redisDir)
        #expect(good.count == 2, "\(good.keys)")

        _ = try redis.cli(["CONFIG", "SET", "rdb-key-save-delay", "1000"])
        let logFile = dir + "/cli.log"
        let cli = try BackstopBinary.spawn(["backup", "redis"], environment: env, logFile: logFile)
        try TestEnvironment.waitUntil(timeout: 30, "the snapshot's fork with the job's temporary file open (log \(logFile))") {
            InterruptionTests.leftovers(redisDir).contains { $0.hasPrefix(".redis_") }
                && ((try? redis.cli(["INFO", "persistence"])) ?? "").contains("rdb_bgsave_in_progress:1")
        }
        let t0 = Date()
        let filler = backupDir + "/filler"
        _ = try TestProcesses.run("/bin/dd", ["if=/dev/zero", "of=\(filler)", "bs=65536"], check: false)
        let run = try Self.reap(cli, below: [], since: t0, logFile: logFile)
        #expect(run.code != 0, "a snapshot onto a full disk exited 0: \(run.output)")
        #expect(run.code < 126, "exit \(run.code): a failure, not a crash or a signal")
        let line = run.output.split(separator: "\n").first { $0.contains("FAILED") }.map(String.init) ?? ""
        #expect(line.contains("No space left on device"), "the error does not say the disk is full: \(run.output)")
        #expect(line.contains(redisDir + "/.redis_"), "the error does not name the file it could not write: \(run.output)")
        // Each retry (BACKUP_REDIS_RETRIES, default 2) fails the same way, and says so.
        let attempts = Int(line.components(separatedBy: "s (").last?.split(separator: " ").first ?? "") ?? 0
        let retried = run.output.split(separator: "\n").filter { $0.contains("failed: write \(redisDir)/.redis_") && $0.contains("No space left on device; retrying") }
        #expect(attempts == 3 && retried.count == 2, "\(attempts) attempts, \(retried.count) retries logged: \(run.output)")
        #expect(InterruptionTests.leftovers(redisDir).isEmpty, "\(InterruptionTests.leftovers(redisDir))")
        #expect(try Self.treeFingerprint(redisDir) == good, "the snapshot already there changed, or a file appeared")
        #expect(BackupCatalog(backupDir: backupDir).list(kinds: [.redis]).count == 1, "a second snapshot is listed")
        InterruptionTests.expectLockReleased(backupDir + "/.locks/redis.lock")
        try Self.expectDiskSpaceLow(env, backupDir: backupDir)
        print("mid-job faults: disk full during the Redis snapshot: \(line)")

        try FileManager.default.removeItem(atPath: filler)
        _ = try redis.cli(["CONFIG", "SET", "rdb-key-save-delay", "0"])
        try TestEnvironment.waitUntil(timeout: 60, "the server's earlier fork to end") {
            ((try? redis.cli(["INFO", "persistence"])) ?? "").contains("rdb_bgsave_in_progress:0")
        }
        try Self.expectWholeNextRun(["backup", "redis"], kind: .redis, env: env, backupDir: backupDir)
        ReliabilityReport.record(
            fault: "the backup volume (an 8 MB tmpfs) filled while Redis writes the snapshot a `backup redis` is waiting for (its temporary file open)",
            did: "`backup redis` exited \(run.code) \(String(format: "%.1f", run.seconds)) s later after \(attempts) attempts (2 retries), each failing with `No space left on device` naming the temporary file; the temporary file removed, the lock released, `backstop health` shows DiskSpaceLow for the volume; with the space back the next snapshot was whole, passed `verify` and the alert resolved",
            lost: "nothing: the snapshot and `.meta` already there byte-identical, `list` shows only it")
    }

    /// Every key and value of a small dataset, hashed (SHA-1 over the sorted `key=value;` pairs),
    /// with DBSIZE.
    static func redisContents(_ redis: StandaloneRedis) throws -> String {
        let script = "local ks = redis.call('KEYS', '*'); table.sort(ks); local s = ''; "
            + "for _, k in ipairs(ks) do s = s .. k .. '=' .. redis.call('GET', k) .. ';' end; return #ks .. ':' .. redis.sha1hex(s)"
        return try redis.cli(["EVAL", script, "0"])
    }

    @Test func theDataVolumeFillsUpDuringAFileRestoreOfRedis() throws {
        // The snapshot to restore: 20,000 keys (about 1.7 MB of RDB) from another server.
        let source = try StandaloneRedis.filled(keys: 20000)
        defer { source.stop() }
        let dir = try TestEnvironment.makeTempDirectory("midjob-redisrestore")
        let backupDir = dir + "/backups"
        let made = try BackstopBinary.run(["backup", "redis"], environment: ["BACKUP_DIR": backupDir, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(source.port)])
        #expect(made.status == 0, "\(made.stderr)")
        let snapshot = try #require(BackupCatalog(backupDir: backupDir).list(kinds: [.redis]).first).path

        // The target: 300 keys, its data folder a 1 MB tmpfs (room for its own snapshot, not
        // for the one restored into it), automatic saves on.
        let dataDir = dir + "/redis-data"
        let volume = try Tmpfs(dataDir, size: "1m")
        defer { volume.unmount() }
        let target = try StandaloneRedis(directory: dataDir, extraConfig: ["save 3600 1"])
        defer { target.stop() }
        _ = try target.cli(["EVAL", "for i=1,300 do redis.call('SET','live:'..i, 'value '..i) end return 1", "0"])
        _ = try target.cli(["SAVE"])
        let before = try Self.redisContents(target)
        let pidBefore = try target.cli(["INFO", "server"]).split(separator: "\r\n").first { $0.hasPrefix("process_id:") }
        let filesBefore = try FileManager.default.contentsOfDirectory(atPath: dataDir).sorted()
        let restart = dir + "/restart-was-run"
        let env = ["BACKUP_DIR": backupDir, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(target.port),
                   "REDIS_DATA_DIR": dataDir, "REDIS_RESTART_COMMAND": "touch '\(restart)'; exit 1"]
        let t0 = Date()
        let run = try BackstopBinary.run(["restore", "redis", snapshot, "--method", "file", "--yes"], environment: env)
        let seconds = Date().timeIntervalSince(t0)
        let output = run.stdout + run.stderr
        #expect(run.status != 0, "a restore onto a full data folder exited 0: \(output)")
        #expect(run.status < 126, "exit \(run.status): a failure, not a crash or a signal")
        let line = output.split(separator: "\n").first { $0.contains("No space left on device") }.map(String.init) ?? ""
        #expect(line.contains(dataDir + "/.backstop-restore-"), "the error does not name the file it could not write: \(output)")
        #expect(line.contains("was not restarted"), "the error does not say Redis was left alone: \(output)")
        #expect(!FileManager.default.fileExists(atPath: restart), "the restart command ran after the write failed")
        #expect(try Self.redisContents(target) == before, "the target's data changed")
        #expect(try target.cli(["INFO", "server"]).split(separator: "\r\n").first { $0.hasPrefix("process_id:") } == pidBefore,
                "the target was restarted")
        #expect(try target.cli(["CONFIG", "GET", "save"]).split(separator: "\n").last == "3600 1", "automatic saves were not set back")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dataDir).sorted() == filesBefore, "a temporary file was left in \(dataDir)")
        let record = (try? String(contentsOfFile: backupDir + "/.state/restores.json", encoding: .utf8)) ?? ""
        #expect(!record.contains("redis"), "the failed restore was recorded as done: \(record)")
        InterruptionTests.expectLockReleased(backupDir + "/.locks/redis.lock")
        // What is on the target's disk is its own data: a server started from it loads the same keys.
        target.stop()
        let reloaded = try StandaloneRedis(directory: dataDir)
        defer { reloaded.stop() }
        #expect(try Self.redisContents(reloaded) == before, "the target's dump.rdb no longer holds its data")
        print("mid-job faults: disk full during the file restore of Redis (\(String(format: "%.1f", seconds)) s): \(line)")
        ReliabilityReport.record(
            fault: "Redis's data folder (a 1 MB tmpfs) filled while `restore redis --method file` writes the 20,000-key snapshot into it",
            did: "exited \(run.status) \(String(format: "%.1f", seconds)) s after the start naming `No space left on device` and the temporary file, saying Redis was not restarted and its settings set back; the temporary file removed, the restart command never run, `save` back to `3600 1`, the lock released, no restore recorded",
            lost: "nothing: the target's \(before.split(separator: ":").first ?? "?") keys unchanged (SHA-1 of every key and value), same process, its dump.rdb loads the same keys in a new server")
    }

    @Test func theBackupVolumeFillsUpWhilePgReceivewalStreams() throws {
        let pg = try PostgresServer.start(name: "pg-walfull")
        defer { pg.shutdown() }
        // Room for the base backup and, once the space is back, the backlog: pg_receivewal
        // stages whole 16 MB segments (and zero-fills the next `.partial`) faster than they are
        // archived. With 48 MB the volume filled again and the archive never caught up: see the
        // README's Not yet.
        let (_, volume) = try Tmpfs.inNewFolder("midjob-waldisk", size: "128m")
        defer { volume.unmount() }
        let backupDir = volume.path
        let archiveDir = backupDir + "/postgres/wal"
        var env = pg.environment
        env["BACKUP_DIR"] = backupDir
        env["BACKUP_WAL_ARCHIVE"] = "receivewal"
        let wal = WalSegments(pg: pg, archiveDir: archiveDir)
        func switchWal() throws -> String { try wal.switchWal() }
        func archived(_ name: String) -> Bool { wal.archived(name) }
        let serve = try ServeUnderTest(environment: env, backupDir: backupDir)
        defer { serve.stop() }
        try TestEnvironment.waitUntil(timeout: 30, "pg_receivewal streaming (log \(serve.log))") {
            (try? pg.psql("SELECT count(*) FROM pg_stat_replication WHERE application_name = 'backstop'")) == "1"
        }
        try pg.psql("CREATE TABLE t(x int);")
        let base = try BackstopBinary.run(["backup", "postgres", "incremental"], environment: env)
        #expect(base.status == 0, "\(base.stderr)")
        var written = [try switchWal()]
        try TestEnvironment.waitUntil(timeout: 60, "segments \(written) archived") { written.allSatisfy(archived) }

        // The volume fills; the server goes on writing WAL (three segments).
        let filler = backupDir + "/filler"
        _ = try TestProcesses.run("/bin/dd", ["if=/dev/zero", "of=\(filler)", "bs=65536"], check: false)
        var duringFull: [String] = []
        for _ in 0..<3 { duringFull.append(try switchWal()) }
        written += duringFull
        try TestEnvironment.waitUntil(timeout: 30, "the receiver to report the full disk (log \(backupDir)/logs/backup.log)") {
            ((try? String(contentsOfFile: backupDir + "/logs/backup.log", encoding: .utf8)) ?? "").contains("No space left on device")
        }
        sleep(6)
        let walLog = ((try? String(contentsOfFile: backupDir + "/logs/backup.log", encoding: .utf8)) ?? "") + serve.logText()
        let lines = walLog.split(separator: "\n").filter { $0.contains("No space left on device") }.map(String.init)
        #expect(lines.contains { $0.contains("wal: pg_receivewal ended") && $0.contains("receiving into \(archiveDir)/.receiving") && $0.contains(".partial\": No space left on device") },
                "the errors do not name the file and folder: \(lines)")
        // Nothing half-archived: every stored segment has its .meta, none without.
        let names = (try? FileManager.default.contentsOfDirectory(atPath: archiveDir)) ?? []
        let stored = Set(names.filter { $0.hasSuffix(".gz") }.map { String($0.dropLast(3)) })
        let metas = Set(names.filter { $0.hasSuffix(".meta") }.map { String($0.dropLast(5)) })
        #expect(stored == metas, "segments without .meta or the other way: \(stored.symmetricDifference(metas))")
        #expect(!names.contains { $0.hasPrefix(".") && $0.contains(".partial") }, "\(names)")
        let health = try BackstopBinary.run(["health"], environment: env.merging(["REDIS_HOST": "127.0.0.1", "REDIS_PORT": "1"]) { $1 })
        let shown = health.stdout + health.stderr
        #expect(shown.split(separator: "\n").contains { $0.contains("DiskSpaceLow") && $0.contains(backupDir) }, "\(shown)")
        let missing = Set(written.filter { !archived($0) })
        #expect(!missing.isEmpty, "the segments written while the disk was full were archived anyway")

        // The space comes back: the slot kept the WAL, the receiver catches up, no gap.
        try FileManager.default.removeItem(atPath: filler)
        let freed = Date()
        written.append(try switchWal())
        do {
            try TestEnvironment.waitUntil(timeout: 90, "segments \(written) archived after the space came back (log \(serve.log))") { written.allSatisfy(archived) }
        } catch {
            let wal = ((try? String(contentsOfFile: backupDir + "/logs/backup.log", encoding: .utf8)) ?? "").split(separator: "\n").filter { $0.contains("wal:") }
            let usage = (try? TestProcesses.run("/bin/sh", ["-c", "df -k '\(backupDir)'; du -s -k '\(backupDir)'; ls -l /proc/[0-9]*/fd 2>/dev/null | grep -F '\(backupDir)'; for p in /proc/[0-9]*; do if ls -l $p/fd 2>/dev/null | grep -qF '\(backupDir)'; then echo \"$p $(tr '\\0' ' ' < $p/cmdline)\"; fi; done"], check: false).stdout) ?? ""
            Issue.record("\(error); the receiver's log:\n\(wal.suffix(12).joined(separator: "\n"))\nstaging: \((try? FileManager.default.contentsOfDirectory(atPath: archiveDir + "/.receiving")) ?? [])\ndu:\n\(usage)")
            throw error
        }
        let caughtUp = Date().timeIntervalSince(freed)
        let verify = try BackstopBinary.run(["verify", "--wal"], environment: ["BACKUP_DIR": backupDir])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        let first = lines.first ?? ""
        print("mid-job faults: disk full under pg_receivewal: \(lines.count) lines, first: \(first)")
        ReliabilityReport.record(
            fault: "the backup volume (a 128 MB tmpfs) filled while `serve`'s pg_receivewal streams into it, the server going on writing WAL (\(Set(duringFull).count) segments)",
            did: "the receiver logged pg_receivewal's `No space left on device` naming the `.partial` and the folder (\(lines.count) lines in 6 s: pg_receivewal restarted with its backoff), archived nothing half-written (every `.gz` with its `.meta`); `backstop health` shows DiskSpaceLow; \(String(format: "%.1f", caughtUp)) s after the space came back the \(missing.count) missing segments were archived and `verify --wal` passes",
            lost: "nothing: the slot kept the WAL, the chain from the base backup continuous (\(Set(written).count) segments)")
    }

    @Test func theScratchVolumeFillsUpDuringARedisDrill() throws {
        // A 20,000-key snapshot (about 1.7 MB of RDB) and a 1 MB tmpfs as the drill's TMPDIR.
        let redis = try StandaloneRedis.filled(keys: 20000)
        defer { redis.stop() }
        let dir = try TestEnvironment.makeTempDirectory("midjob-drilldisk")
        let backupDir = dir + "/backups"
        let env = ["BACKUP_DIR": backupDir, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(redis.port), "PGHOST": "127.0.0.1", "PGPORT": "1"]
        let made = try BackstopBinary.run(["backup", "redis"], environment: env)
        #expect(made.status == 0, "\(made.stderr)")
        let good = try Self.treeFingerprint(backupDir + "/redis")
        let scratchDir = dir + "/tmp"
        let volume = try Tmpfs(scratchDir, size: "1m")
        defer { volume.unmount() }

        let t0 = Date()
        let drill = try BackstopBinary.run(["drill", "--redis"], environment: env.merging(["TMPDIR": scratchDir]) { $1 })
        let seconds = Date().timeIntervalSince(t0)
        let output = drill.stdout + drill.stderr
        #expect(drill.status != 0, "a drill with a full scratch volume passed: \(output)")
        #expect(drill.status < 126, "exit \(drill.status): a failure, not a crash or a signal")
        let line = output.split(separator: "\n").first { $0.contains("No space left on device") }.map(String.init) ?? ""
        #expect(line.contains(scratchDir + "/backstop-drill-") && line.contains("/dump.rdb"), "the error does not name the file: \(output)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratchDir).isEmpty, "the drill's scratch folder was left")
        #expect(try Self.treeFingerprint(backupDir + "/redis") == good, "the snapshot changed")
        let health = try BackstopBinary.run(["health"], environment: env)
        let shown = health.stdout + health.stderr
        #expect(shown.split(separator: "\n").contains { $0.contains("RestoreDrillFailed") && $0.contains("redis") }, "\(shown)")
        print("mid-job faults: scratch volume full during the drill: \(line)")

        // With room for the copy, the next drill passes and the alert resolves.
        let next = try BackstopBinary.run(["drill", "--redis"], environment: env)
        #expect(next.status == 0, "\(next.stdout)\(next.stderr)")
        let after = try BackstopBinary.run(["health"], environment: env)
        let resolved = (after.stdout + after.stderr).split(separator: "\n")
        #expect(resolved.contains { $0.contains("alert resolved: RestoreDrillFailed") } && !resolved.contains { $0.contains("RestoreDrillFailed") && !$0.contains("resolved") },
                "\(after.stdout)\(after.stderr)")
        ReliabilityReport.record(
            fault: "the drill's scratch volume (TMPDIR, a 1 MB tmpfs) filled while `drill --redis` inflates the 20,000-key snapshot into it",
            did: "exited \(drill.status) \(String(format: "%.1f", seconds)) s after the start naming `No space left on device` and the scratch copy's path; the scratch folder removed, the failure recorded: `backstop health` shows RestoreDrillFailed for redis; with room the next drill passed and the alert resolved",
            lost: "nothing: the snapshot and its `.meta` byte-identical")
    }
}
