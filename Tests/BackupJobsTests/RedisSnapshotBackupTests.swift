import BackstopCore
import BackstopMetrics
import BackstopTestSupport
import BackupCatalog
import BackupJobs
import BackupPipeline
import Foundation
import RedisClient
import Synchronization
import Testing

/// `backstop backup redis` against real servers: round trips through gunzip + a fresh
/// redis-server, Sentinel failovers, cut connections, both methods, replicas, the lock.
@Suite struct RedisSnapshotBackupTests {
    static let password = "r3dis-backup-secret-pw"
    static let acl = RedisCluster.ACLUser(name: "backup-user", password: "acl-user-secret-pw")

    static func environment(_ cluster: RedisCluster, backupDir: String, extra: [String: String] = [:]) -> [String: String] {
        var env = [
            "BACKUP_DIR": backupDir,
            "REDIS_SENTINELS": cluster.sentinels.map(\.description).joined(separator: ","),
            "REDIS_SENTINEL_MASTER": cluster.masterName,
            "REDIS_PASSWORD": password,
            "BACKUP_REDIS_RETRY_DELAY": "200ms",
        ]
        for (k, v) in extra { env[k] = v }
        return env
    }

    static func settings(_ env: [String: String]) throws -> RedisJobSettings {
        try RedisJobSettings(environment: env)
    }

    static func files(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
    }

    /// Loads a backup into a fresh redis-server and compares everything with the source.
    static func expectSameContents(backup path: String, as source: RedisDataset.Contents) throws {
        let restored = try RedisDataset.load(backup: path)
        defer { restored.stop() }
        let after = try RedisDataset.contents(of: restored.endpoint)
        let problems = RedisDataset.differences(source, after)
        #expect(problems.isEmpty, "\(problems.prefix(20))")
        #expect(Set(after.keys) == Set(RedisDataset.databases))
    }

    @Test func replicationRoundTripFromTheSentinelMasterWithTheLibraryJobAndTheBinary() throws {
        let cluster = try RedisCluster.start(password: Self.password, aclUser: Self.acl)
        defer { cluster.shutdown() }
        try RedisDataset.fill(try RedisConnection(to: cluster.master, password: Secret(Self.password), timeout: 10))
        let source = try RedisDataset.contents(of: cluster.master, password: Secret(Self.password))
        #expect(source[0]?.count == 17)

        // The library job.
        let backupDir = try TestEnvironment.makeTempDirectory("redis-backup")
        let env = Self.environment(cluster, backupDir: backupDir)
        let registry = MetricsRegistry()
        let outcome = try RedisSnapshotBackup(settings: try Self.settings(env), log: BackupLog(backupDir: backupDir, echo: false),
                                              metrics: registry).run()
        #expect(outcome.success, "\(outcome.message ?? "")")
        let path = try #require(outcome.path)
        #expect(FileSystem.lastComponent(of: path).hasPrefix("redis_") && path.hasSuffix(".rdb.gz"))
        try Self.expectSameContents(backup: path, as: source)

        // Its .meta.
        let meta = try #require(try BackupMeta.read(forData: path))
        #expect(meta.kind == .redis && meta.type == "redis" && meta.target == "mymaster" && meta.status == "completed")
        #expect(meta.master == cluster.master.description && meta.source == cluster.master.description && meta.sourceRole == "master")
        #expect(meta.method == "replication" && meta.rdbChecksum == "verified")
        #expect(meta.rdbVersion == 10)
        #expect(meta.redisVersion?.hasPrefix("7.") == true && meta.serverVersion == meta.redisVersion)
        #expect(meta.keys == ["db0": 17, "db1": 17, "db5": 17, "db15": 17])
        #expect(meta.expires == ["db0": 3, "db1": 3, "db5": 3, "db15": 3])
        let sha = try TestProcesses.run("/usr/bin/sha256sum", [path]).stdout.prefix(64)
        #expect(meta.sha256 == String(sha) && meta.sizeBytes == outcome.sizeBytes)

        // Catalog, verification and metrics see it under the Sentinel master name.
        let entry = try #require(BackupCatalog(backupDir: backupDir).list(kinds: [.redis]).first)
        #expect(entry.path == path && entry.state == .complete && entry.target == "mymaster")
        let pgSettings = try PostgresJobSettings(environment: ["BACKUP_DIR": backupDir])
        #expect(BackupVerification(settings: pgSettings).verify(entry).ok)
        #expect(registry.value(Family.backupRuns, ["kind": "redis", "target": "mymaster", "result": "success"]) == 1)
        #expect(registry.value(Family.backupLastSize, ["kind": "redis", "target": "mymaster"]) == Double(outcome.sizeBytes))
        let loaded = MetricsRegistry()
        BackupMetrics.load(into: loaded, backupDir: backupDir, expected: BackupMetrics.expected(redis: try Self.settings(env)))
        #expect(loaded.value(Family.backupLastRunSuccess, ["kind": "redis", "target": "mymaster"]) == 1)
        #expect(loaded.value(Family.backupLastSize, ["kind": "redis", "target": "mymaster"]) == Double(outcome.sizeBytes))

        // The built binary, as an ACL user; the password never shows.
        var binaryEnv = env
        binaryEnv["REDIS_USERNAME"] = Self.acl.name
        binaryEnv["REDIS_PASSWORD"] = Self.acl.password
        let result = try BackstopBinary.run(["backup", "redis"], environment: binaryEnv)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        let written = Self.files(backupDir + "/redis").filter { $0.hasSuffix(".rdb.gz") && $0 != FileSystem.lastComponent(of: path) }
        #expect(written.count == 1)
        if let second = written.first {
            try Self.expectSameContents(backup: backupDir + "/redis/" + second, as: source)
        }
        let logText = (try? String(contentsOfFile: backupDir + "/logs/backup.log", encoding: .utf8)) ?? ""
        #expect(logText.contains("redis mymaster: success"))
        for secret in [Self.password, Self.acl.password] {
            #expect(!result.stdout.contains(secret) && !result.stderr.contains(secret) && !logText.contains(secret))
        }
        #expect(!Self.files(backupDir + "/redis").contains { $0.hasPrefix(".") })

        // `backstop list` and `backstop verify --all` take both as good backups.
        let listed = try BackstopBinary.run(["list", "--backup-dir", backupDir])
        #expect(listed.status == 0 && listed.stdout.components(separatedBy: "redis_").count - 1 == 2, "\(listed.stdout)")
        let verified = try BackstopBinary.run(["verify", "--all", "--backup-dir", backupDir])
        #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
    }

    @Test func bgsaveMethodAndReplicaSourceGiveTheSameData() throws {
        let cluster = try RedisCluster.start(password: Self.password)
        defer { cluster.shutdown() }
        try RedisDataset.fill(try RedisConnection(to: cluster.master, password: Secret(Self.password), timeout: 10))
        let source = try RedisDataset.contents(of: cluster.master, password: Secret(Self.password))
        try TestEnvironment.waitUntil(timeout: 20, "replica caught up") {
            try RedisDataset.contents(of: cluster.replica, password: Secret(Self.password)).mapValues(\.count)
                == source.mapValues(\.count)
        }
        let backupDir = try TestEnvironment.makeTempDirectory("redis-bgsave")
        let log = BackupLog(backupDir: backupDir, echo: false)

        // BGSAVE on the master, read from its data directory.
        let bgsave = try RedisSnapshotBackup(settings: try Self.settings(Self.environment(cluster, backupDir: backupDir, extra: [
            "BACKUP_REDIS_METHOD": "bgsave", "REDIS_DATA_DIR": cluster.masterNode.directory,
        ])), log: log).run()
        #expect(bgsave.success, "\(bgsave.message ?? "")")
        let bgsavePath = try #require(bgsave.path)
        try Self.expectSameContents(backup: bgsavePath, as: source)
        let bgsaveMeta = try #require(try BackupMeta.read(forData: bgsavePath))
        #expect(bgsaveMeta.method == "bgsave" && bgsaveMeta.rdbChecksum == "verified" && bgsaveMeta.sourceRole == "master")

        // Replication from the replica Sentinel knows.
        let fromReplica = try RedisSnapshotBackup(settings: try Self.settings(Self.environment(cluster, backupDir: backupDir, extra: [
            "BACKUP_REDIS_SOURCE": "replica",
        ])), log: log).run()
        #expect(fromReplica.success, "\(fromReplica.message ?? "")")
        let replicaPath = try #require(fromReplica.path)
        try Self.expectSameContents(backup: replicaPath, as: source)
        let replicaMeta = try #require(try BackupMeta.read(forData: replicaPath))
        #expect(replicaMeta.source == cluster.replica.description && replicaMeta.sourceRole == "replica")
        #expect(replicaMeta.master == cluster.master.description)

        // BGSAVE on the replica through the binary's flags.
        var env = Self.environment(cluster, backupDir: backupDir, extra: ["REDIS_DATA_DIR": cluster.replicaNode.directory])
        env["BACKUP_REDIS_METHOD"] = nil
        let result = try BackstopBinary.run(["backup", "redis", "--from-replica", "--method", "bgsave"], environment: env)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        let entries = BackupCatalog(backupDir: backupDir).list(kinds: [.redis])
        #expect(entries.count == 3 && entries.allSatisfy { $0.state == .complete })
        let newest = try #require(entries.first?.meta)
        #expect(newest.method == "bgsave" && newest.sourceRole == "replica")

        // A data directory that is not the server's: a failure, nothing kept.
        let wrongDir = try TestEnvironment.makeTempDirectory("not-redis-dir")
        let before = Self.files(backupDir + "/redis")
        let wrong = try RedisSnapshotBackup(settings: try Self.settings(Self.environment(cluster, backupDir: backupDir, extra: [
            "BACKUP_REDIS_METHOD": "bgsave", "REDIS_DATA_DIR": wrongDir, "BACKUP_REDIS_RETRIES": "0",
        ])), log: log).run()
        #expect(!wrong.success)
        #expect(wrong.message?.contains("REDIS_DATA_DIR") == true)
        #expect(Self.files(backupDir + "/redis") == before)
    }

    @Test func afterSentinelFailoverTheNextBackupComesFromTheNewMaster() throws {
        let cluster = try RedisCluster.start(password: Self.password)
        defer { cluster.shutdown() }
        try RedisDataset.fill(try RedisConnection(to: cluster.master, password: Secret(Self.password), timeout: 10))
        let backupDir = try TestEnvironment.makeTempDirectory("redis-failover")
        let env = Self.environment(cluster, backupDir: backupDir)
        let first = try BackstopBinary.run(["backup", "redis"], environment: env)
        #expect(first.status == 0, "\(first.stdout)\(first.stderr)")
        let oldMeta = try #require(BackupCatalog(backupDir: backupDir).list(kinds: [.redis]).first?.meta)
        #expect(oldMeta.master == cluster.master.description)

        let newMaster = try cluster.failover()
        #expect(newMaster == cluster.replica)
        let source = try RedisDataset.contents(of: newMaster, password: Secret(Self.password))
        let second = try BackstopBinary.run(["backup", "redis"], environment: env)
        #expect(second.status == 0, "\(second.stdout)\(second.stderr)")
        let entries = BackupCatalog(backupDir: backupDir).list(kinds: [.redis])
        #expect(entries.count == 2)
        let newest = try #require(entries.first)
        #expect(newest.meta?.master == newMaster.description && newest.meta?.source == newMaster.description)
        #expect(newest.meta?.sourceRole == "master" && newest.target == "mymaster")
        try Self.expectSameContents(backup: newest.path, as: source)
    }

    @Test func aFailoverDuringTheSnapshotDiscardsItAndTheRetryBacksUpTheNewMaster() throws {
        let cluster = try RedisCluster.start(password: Self.password)
        defer { cluster.shutdown() }
        let master = try RedisConnection(to: cluster.master, password: Secret(Self.password), timeout: 10)
        try RedisDataset.fill(master)
        _ = try master.call(["EVAL", "for i=1,40000 do redis.call('SET','bulk:'..i, i) end return 1", "0"])
        // The old master's fork takes ~4 s (100 µs per key), long enough to fail over during it.
        _ = try master.call(["CONFIG", "SET", "rdb-key-save-delay", "100"])
        let backupDir = try TestEnvironment.makeTempDirectory("redis-mid-failover")
        let settings = try Self.settings(Self.environment(cluster, backupDir: backupDir, extra: [
            "BACKUP_REDIS_RETRIES": "5", "BACKUP_REDIS_RETRY_DELAY": "1s",
        ]))
        let result = Mutex<BackupOutcome?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let outcome = try? RedisSnapshotBackup(settings: settings, log: BackupLog(backupDir: backupDir, echo: false)).run()
            result.withLock { $0 = outcome }
            done.signal()
        }
        try TestEnvironment.waitUntil(timeout: 10, "the snapshot's fork on the old master") {
            try cluster.redisCLI(port: cluster.master.port, ["INFO", "persistence"]).contains("rdb_bgsave_in_progress:1")
        }
        let newMaster = try cluster.failover()
        #expect(done.wait(timeout: .now() + 90) == .success)
        let outcome = try #require(result.withLock { $0 })
        #expect(outcome.success, "\(outcome.message ?? "")")
        let path = try #require(outcome.path)
        let meta = try #require(try BackupMeta.read(forData: path))
        #expect(meta.master == newMaster.description && meta.source == newMaster.description)
        let logText = try String(contentsOfFile: backupDir + "/logs/backup.log", encoding: .utf8)
        #expect(logText.contains("attempt 1 of 6 failed"), "\(logText)")
        #expect(Self.files(backupDir + "/redis").filter { $0.hasSuffix(".rdb.gz") }.count == 1)
        let source = try RedisDataset.contents(of: newMaster, password: Secret(Self.password))
        try Self.expectSameContents(backup: path, as: source)
    }

    @Test func aMasterFrozenMidBackupFailsThatAttemptAndTheRetryGoesToThePromotedReplica() throws {
        let cluster = try RedisCluster.start(password: Self.password)
        defer { cluster.shutdown() }
        try RedisDataset.fill(try RedisConnection(to: cluster.master, password: Secret(Self.password), timeout: 10))
        let backupDir = try TestEnvironment.makeTempDirectory("redis-frozen")
        let settings = try Self.settings(Self.environment(cluster, backupDir: backupDir, extra: [
            "BACKUP_REDIS_TIMEOUT": "1s", "BACKUP_REDIS_RETRIES": "10", "BACKUP_REDIS_RETRY_DELAY": "2s",
        ]))
        // The master stops answering; the Sentinels (down-after 1 s) promote the replica.
        cluster.signal(cluster.masterNode, SIGSTOP)
        defer { cluster.signal(cluster.masterNode, SIGCONT) }
        let outcome = try RedisSnapshotBackup(settings: settings, log: BackupLog(backupDir: backupDir, echo: false)).run()
        #expect(outcome.success, "\(outcome.message ?? "")")
        let frozenPath = try #require(outcome.path)
        let meta = try #require(try BackupMeta.read(forData: frozenPath))
        #expect(meta.master == cluster.replica.description && meta.source == cluster.replica.description)
        let logText = try String(contentsOfFile: backupDir + "/logs/backup.log", encoding: .utf8)
        #expect(logText.contains("attempt 1 of 11 failed"))
        #expect(Self.files(backupDir + "/redis").filter { $0.hasSuffix(".rdb.gz") }.count == 1)
        #expect(!Self.files(backupDir + "/redis").contains { $0.hasPrefix(".") })
    }

    @Test func aConnectionCutPartWayLeavesNoBackupAndRecordsTheFailure() throws {
        let server = try StandaloneRedis()
        defer { server.stop() }
        // ~2.5 MB of poorly compressible strings, so the cut falls inside the RDB payload.
        _ = try server.cli(["EVAL", "for i=1,30000 do redis.call('SET','key:'..i, redis.sha1hex(i..'a')..redis.sha1hex(i..'b')) end return 1", "0"])
        let proxy = try CuttingProxy(targetPort: server.port, cutAfter: 600_000)
        defer { proxy.stop() }
        let backupDir = try TestEnvironment.makeTempDirectory("redis-cut")
        let env = ["BACKUP_DIR": backupDir, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": "\(proxy.port)",
                   "BACKUP_REDIS_RETRIES": "1", "BACKUP_REDIS_RETRY_DELAY": "100ms", "REDIS_PASSWORD": ""]
        let result = try BackstopBinary.run(["backup", "redis"], environment: env)
        #expect(result.status == 1, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("attempt 1 of 2 failed"))
        #expect(result.stdout.contains("FAILED"))
        // Nothing that looks like a backup, nothing hidden left either.
        #expect(Self.files(backupDir + "/redis").isEmpty)
        #expect(BackupCatalog(backupDir: backupDir).list().isEmpty)
        let listed = try BackstopBinary.run(["list", "--backup-dir", backupDir])
        #expect(!listed.stdout.contains("redis_"))
        let target = "127.0.0.1:\(proxy.port)"
        let attempt = try #require(AttemptsRecord.load(backupDir: backupDir).attempts.values.first { $0.kind == "redis" })
        #expect(attempt.target == target && !attempt.success)
        #expect(attempt.message?.contains("attempt 2") == true)
        let registry = MetricsRegistry()
        BackupMetrics.load(into: registry, backupDir: backupDir)
        #expect(registry.value(Family.backupLastRunSuccess, ["kind": "redis", "target": target]) == 0)
        #expect(registry.value(Family.backupLastSuccess, ["kind": "redis", "target": target]) == 0)

        // Straight to the server (no proxy) the same job succeeds: the cut was the cause.
        var direct = env
        direct["REDIS_PORT"] = "\(server.port)"
        let ok = try BackstopBinary.run(["backup", "redis"], environment: direct)
        #expect(ok.status == 0, "\(ok.stdout)\(ok.stderr)")
        #expect(BackupCatalog(backupDir: backupDir).list(kinds: [.redis]).count == 1)
    }

    @Test func aSecondRunWaitsForNoneAndExits75WhileTheLockIsHeld() throws {
        let backupDir = try TestEnvironment.makeTempDirectory("redis-lock")
        try FileSystem.createDirectory(backupDir + "/.locks")
        let lock = try FileLock(path: backupDir + "/.locks/redis.lock", purpose: "backup redis")
        defer { lock.release() }
        let result = try BackstopBinary.run(["backup", "redis"], environment: [
            "BACKUP_DIR": backupDir, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": "1",
        ])
        #expect(result.status == 75, "\(result.stdout)\(result.stderr)")
        #expect((result.stdout + result.stderr).contains("not started"))
        #expect(Self.files(backupDir + "/redis").isEmpty)
    }

    @Test func cancellationStopsWithoutRetryOrFile() throws {
        let server = try StandaloneRedis()
        defer { server.stop() }
        let backupDir = try TestEnvironment.makeTempDirectory("redis-cancel")
        let settings = try RedisJobSettings(environment: ["BACKUP_DIR": backupDir, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": "\(server.port)"])
        let cancellation = JobCancellation()
        cancellation.cancel()
        let outcome = try RedisSnapshotBackup(settings: settings, log: BackupLog(backupDir: backupDir, echo: false),
                                              cancellation: cancellation).run()
        #expect(!outcome.success)
        #expect(outcome.message?.contains("cancelled") == true)
        #expect(Self.files(backupDir + "/redis").isEmpty)
    }

    /// A shutdown while the server is still preparing the snapshot (a slow fork: 30 000 keys at
    /// 100 µs each is 3 s) stops the job within about a second, for either method.
    @Test(arguments: ["replication", "bgsave"])
    func cancellationDuringASlowSnapshotStopsPromptly(method: String) throws {
        let server = try StandaloneRedis(extraConfig: ["rdb-key-save-delay 100"])
        defer { server.stop() }
        _ = try server.cli(["EVAL", "for i=1,30000 do redis.call('SET','key:'..i, i) end return 1", "0"])
        let backupDir = try TestEnvironment.makeTempDirectory("redis-cancel-slow")
        let settings = try RedisJobSettings(environment: [
            "BACKUP_DIR": backupDir, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": "\(server.port)",
            "BACKUP_REDIS_METHOD": method, "REDIS_DATA_DIR": server.directory,
        ])
        let cancellation = JobCancellation()
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.5) { cancellation.cancel() }
        let t0 = Date()
        let outcome = try RedisSnapshotBackup(settings: settings, log: BackupLog(backupDir: backupDir, echo: false),
                                              cancellation: cancellation).run()
        let elapsed = Date().timeIntervalSince(t0)
        #expect(!outcome.success)
        #expect(outcome.message?.contains("cancelled") == true, "\(outcome.message ?? "")")
        #expect(elapsed < 2.5, "took \(elapsed) s")
        #expect(Self.files(backupDir + "/redis").isEmpty)
    }

    @Test(arguments: [
        ("BACKUP_REDIS_METHOD", "rsync", "replication or bgsave"),
        ("BACKUP_REDIS_SOURCE", "slave", "master or replica"),
        ("BACKUP_REDIS_RETRIES", "11", "0 to 10"),
        ("BACKUP_REDIS_TIMEOUT", "soon", "duration"),
        ("BACKUP_REDIS_REPLICA", "host:99999", "BACKUP_REDIS_REPLICA"),
    ])
    func badValuesNameTheVariableAndWhatIsAccepted(variable: String, value: String, accepted: String) {
        #expect {
            _ = try RedisJobSettings(environment: [variable: value])
        } throws: { error in
            let text = "\(error)"
            return text.contains(variable) && text.contains(value) && text.contains(accepted)
        }
    }

    @Test func bgsaveNeedsTheDataDirectoryAndReplicaNeedsAnAddressWithoutSentinel() throws {
        #expect(throws: ConfigError.self) { _ = try RedisJobSettings(environment: ["BACKUP_REDIS_METHOD": "bgsave"]) }
        #expect(throws: ConfigError.self) { _ = try RedisJobSettings(environment: ["BACKUP_REDIS_SOURCE": "replica"]) }
        let s = try RedisJobSettings(environment: ["BACKUP_REDIS_SOURCE": "replica", "BACKUP_REDIS_REPLICA": "10.0.0.2"])
        #expect(s.replica == Endpoint(host: "10.0.0.2", port: 6379))
        #expect(s.target == "redis-master:6379" && s.method == .replication && s.retries == 2)
        let withSentinel = try RedisJobSettings(environment: ["REDIS_SENTINELS": "a:26379,b", "REDIS_SENTINEL_MASTER": "cache"])
        #expect(withSentinel.target == "cache")
        #expect(BackupMetrics.expected(redis: withSentinel) == [BackupMetrics.Expected(kind: "redis", target: "cache")])
    }
}
