import BackstopCore
import BackstopTestSupport
import BackupCatalog
import BackupPipeline
import Foundation
import RedisClient
import Restore
import Testing

/// A Redis master + replica + three Sentinels of its own, data with TTLs in several
/// databases, a snapshot of it in BACKUP_DIR (redis-cli --rdb, gzip, a .meta with the key
/// counts), then the data changed.
struct RedisRestoreScene {
    let cluster: RedisCluster
    let backupDir: String
    let snapshot: String
    let snapshotState: [String: String]
    let password = "restore-pw"

    static func make() throws -> RedisRestoreScene {
        let password = "restore-pw"
        let cluster = try RedisCluster.start(password: password)
        let backupDir = try TestEnvironment.makeTempDirectory("restore-redis")
        let port = cluster.masterNode.port
        func cli(_ args: [String]) throws { _ = try cluster.redisCLI(port: port, args) }
        for i in 0..<500 { try cli(["SET", "s:\(i)", "value \(i) ünï"]) }
        try cli(["HSET", "h", "a", "1", "b", "two", "c", "3.5"])
        try cli(["RPUSH", "l", "x", "y", "z", "x"])
        try cli(["SADD", "set", "p", "q", "r"])
        try cli(["ZADD", "z", "1.5", "m", "-2", "n"])
        try cli(["SET", "ttl:long", "soon gone", "EX", "86400"])
        try cli(["HSET", "ttl:hash", "k", "v"])
        try cli(["PEXPIRE", "ttl:hash", "7200000"])
        try cli(["-n", "1", "SET", "one:a", "in db 1"])
        try cli(["-n", "1", "SET", "one:b", "in db 1 with ttl", "EX", "5000"])
        try cli(["-n", "3", "RPUSH", "three:list", "a", "b"])
        let snapshotState = try state(cluster.master, password: password)

        // The snapshot, as the Redis backup job stores it.
        let rdb = backupDir + "/snap.rdb"
        try cluster.redisCLIRaw(port: port, ["--rdb", rdb])
        let stamp = WallClock.fileStamp(WallClock.now() - 60)
        try FileSystem.createDirectory(backupDir + "/redis")
        let path = backupDir + "/redis/redis_\(stamp).rdb.gz"
        var counts: [String: Int] = [:]
        for key in snapshotState.keys { counts[String(key.dropFirst(2).prefix { $0 != "/" }), default: 0] += 1 }
        #expect(counts == ["0": 506, "1": 2, "3": 1])
        try writeSnapshot(rdb: try FileSystem.read(rdb), to: path, keys: counts)
        unlink(rdb)

        // Change everything after the snapshot: keys removed, changed, added, TTLs dropped.
        for i in 0..<100 { try cli(["DEL", "s:\(i)"]) }
        try cli(["SET", "s:200", "changed"])
        try cli(["PERSIST", "ttl:long"])
        try cli(["SET", "old:key", "must disappear"])
        try cli(["-n", "2", "SET", "old:db2", "must disappear"])
        try cli(["-n", "1", "DEL", "one:a"])
        #expect(try state(cluster.master, password: password) != snapshotState)
        return RedisRestoreScene(cluster: cluster, backupDir: backupDir, snapshot: path, snapshotState: snapshotState)
    }

    /// Writes an RDB as `redis_STAMP.rdb.gz` with its `.meta` (key counts included).
    static func writeSnapshot(rdb: [UInt8], to path: String, keys: [String: Int]) throws {
        let writer = try BackupFileWriter(destination: path, compressionLevel: 6)
        try writer.write(rdb)
        let written = try writer.finish()
        var meta = BackupMeta(kind: .redis, target: "redis", file: FileSystem.lastComponent(of: path), startedAt: WallClock.now() - 60,
                              finishedAt: WallClock.now() - 59, sizeBytes: written.sizeBytes, sha256: written.sha256,
                              compression: "gzip-6", serverVersion: nil)
        meta.uncompressedBytes = written.uncompressedBytes
        var dbKeys: [String: Int] = [:]
        for (db, n) in keys { dbKeys["db\(db)"] = n }
        meta.keys = dbKeys
        try meta.write(forData: path)
    }

    /// Every key of every database: type, value and absolute expiry (PEXPIRETIME, ms).
    static func state(_ endpoint: Endpoint, password: String?) throws -> [String: String] {
        let c = try RedisConnection(to: endpoint, password: password.map { Secret($0) }, timeout: 5)
        var out: [String: String] = [:]
        for db in 0..<16 {
            _ = try c.call(["SELECT", String(db)])
            let keys = try c.call(["KEYS", "*"]).array?.compactMap(\.string) ?? []
            for key in keys {
                let type = try c.call(["TYPE", key]).string ?? "?"
                func list(_ args: [String]) throws -> [String] { try c.call(args).array?.compactMap(\.string) ?? [] }
                let value: [String]
                switch type {
                case "string": value = [try c.call(["GET", key]).string ?? "nil"]
                case "hash": value = try list(["HGETALL", key]).sorted()
                case "list": value = try list(["LRANGE", key, "0", "-1"])
                case "set": value = try list(["SMEMBERS", key]).sorted()
                case "zset": value = try list(["ZRANGE", key, "0", "-1", "WITHSCORES"])
                default: value = ["(\(type))"]
                }
                let expiry = try c.call(["PEXPIRETIME", key]).integer ?? -99
                out["db\(db)/\(key)"] = "\(type)|\(value.joined(separator: ","))|\(expiry)"
            }
        }
        return out
    }

    func processID(_ endpoint: Endpoint) throws -> String {
        try RedisConnection(to: endpoint, password: Secret(password), timeout: 5).info("server")["process_id"] ?? "?"
    }

    var environment: [String: String] {
        [
            "BACKUP_DIR": backupDir,
            "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(cluster.masterNode.port), "REDIS_PASSWORD": password,
            "REDIS_SENTINELS": cluster.sentinels.map { "127.0.0.1:\($0.port)" }.joined(separator: ","),
            "REDIS_SENTINEL_MASTER": cluster.masterName,
        ]
    }

    func restore(_ arguments: [String]) throws -> CommandResult {
        try BackstopBinary.run(["restore", "redis"] + arguments, environment: environment)
    }
}

@Suite(.serialized) struct RedisRestoreTests {
    @Test func restoreIntoARunningMasterKeepsTheProcessAndLoadsExactlyTheSnapshot() throws {
        let scene = try RedisRestoreScene.make()
        defer { scene.cluster.shutdown() }
        let master = scene.cluster.master
        let before = try scene.state(master)
        let pid = try scene.processID(master)

        // Listing, refusing without --yes, dry run: nothing changes.
        let list = try scene.restore([])
        #expect(list.status == 0)
        #expect(list.stdout.contains(scene.snapshot))
        let refused = try scene.restore([scene.snapshot])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("--yes"))
        let dry = try scene.restore([scene.snapshot, "--dry-run"])
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(dry.stdout.contains("REPLICAOF"))
        #expect(dry.stdout.contains("down-after-milliseconds"))
        #expect(try scene.state(master) == before)
        #expect(BackupCatalog(backupDir: scene.backupDir).list(kinds: [.redis]).count == 1, "no safety snapshot for a dry run or a refusal")
        var beforeCounts: [String: Int] = [:]
        for key in before.keys { beforeCounts[String(key.prefix { $0 != "/" }), default: 0] += 1 }

        let result = try scene.restore(["--latest", "--yes"])
        #expect(result.status == 0, "\(result.stderr)\n\(result.stdout)")
        #expect(result.stdout.contains("key counts per database match the .meta"))
        // The safety snapshot is a normal, listed backup of what was replaced.
        let snapshots = BackupCatalog(backupDir: scene.backupDir).list(kinds: [.redis])
        #expect(snapshots.count == 2)
        let safety = try #require(snapshots.first { $0.path != scene.snapshot })
        #expect(safety.state == .complete)
        #expect(safety.meta?.keys == beforeCounts)
        #expect(result.stdout.contains(safety.path))
        // Same process, exactly the snapshot's keys, values and expiry times; old keys gone.
        #expect(try scene.processID(master) == pid)
        let after = try scene.state(master)
        #expect(after == scene.snapshotState)
        #expect(after["db0/old:key"] == nil && after["db2/old:db2"] == nil)
        #expect(after["db0/ttl:long"]?.hasSuffix("|-1") == false)
        #expect(try RedisConnection(to: master, password: Secret(scene.password), timeout: 5).info("replication")["role"] == "master")
        // Its replica follows.
        try TestEnvironment.waitUntil(timeout: 30, "the replica to hold the restored data") {
            try scene.state(scene.cluster.replica) == scene.snapshotState
        }
        // Sentinel: no failover, down-after-milliseconds set back.
        #expect(try scene.cluster.currentMaster() == master)
        for port in scene.cluster.sentinelPorts {
            #expect(try scene.cluster.sentinelMasterFields(sentinelPort: port)["down-after-milliseconds"] == "1000")
        }
        #expect((RestoreRecord.load(backupDir: scene.backupDir).lastSuccess["redis"] ?? 0) > 0)
        // Still so a few Sentinel periods later (a Sentinel that saw the master as a replica
        // would take it for down after down-after-milliseconds).
        sleep(4)
        #expect(try scene.cluster.currentMaster() == master)
        #expect(try scene.processID(master) == pid)
    }

    @Test func damagedOrTooNewSnapshotsAreRefusedBeforeAnythingIsTouched() throws {
        let scene = try RedisRestoreScene.make()
        defer { scene.cluster.shutdown() }
        let master = scene.cluster.master
        let before = try scene.state(master)
        var bytes = try FileSystem.read(scene.snapshot)
        bytes[bytes.count / 2] ^= 0x10
        try Data(bytes).write(to: URL(fileURLWithPath: scene.snapshot))
        let flipped = try scene.restore([scene.snapshot, "--yes"])
        #expect(flipped.status != 0)
        #expect(flipped.stderr.contains("Nothing was changed"), "\(flipped.stderr)")
        #expect(try scene.state(master) == before)

        // An RDB from a newer Redis (header REDIS0099) is refused by version.
        let rdb = scene.backupDir + "/fresh.rdb"
        try scene.cluster.redisCLIRaw(port: master.port, ["--rdb", rdb])
        var raw = try FileSystem.read(rdb)
        raw.replaceSubrange(5..<9, with: Array("0099".utf8))
        let newer = scene.backupDir + "/redis/redis_20200101_000000.rdb.gz"
        try RedisRestoreScene.writeSnapshot(rdb: raw, to: newer, keys: [:])
        let tooNew = try scene.restore([newer, "--yes"])
        #expect(tooNew.status != 0)
        #expect(tooNew.stderr.contains("RDB version 99"), "\(tooNew.stderr)")
        #expect(try scene.state(master) == before)
        #expect(!FileSystem.exists(RestoreRecord.path(backupDir: scene.backupDir)))
    }
}

extension RedisRestoreScene {
    func state(_ endpoint: Endpoint) throws -> [String: String] { try Self.state(endpoint, password: password) }
}

@Suite struct ReplicationHandshakeTests {
    @Test func answersTheReplicaHandshakeAndStartsTheTransferOnPSYNC() throws {
        var h = ReplicationHandshake(replicationID: String(repeating: "a", count: 40))
        func resp(_ args: String...) -> [UInt8] {
            Array(("*\(args.count)\r\n" + args.map { "$\($0.utf8.count)\r\n\($0)\r\n" }.joined()).utf8)
        }
        #expect(try h.feed(resp("PING")) == [.reply(Array("+PONG\r\n".utf8))])
        // Split across reads, two commands in one read.
        let auth = resp("AUTH", "secret")
        #expect(try h.feed(Array(auth[0..<5])) == [])
        #expect(try h.feed(Array(auth[5...]) + resp("REPLCONF", "listening-port", "6380")) == [.reply(Array("+OK\r\n".utf8)), .reply(Array("+OK\r\n".utf8))])
        #expect(try h.feed(resp("REPLCONF", "capa", "eof", "capa", "psync2")) == [.reply(Array("+OK\r\n".utf8))])
        #expect(try h.feed(resp("PSYNC", "?", "-1")) == [.reply(Array("+FULLRESYNC \(String(repeating: "a", count: 40)) 0\r\n".utf8)), .sendSnapshot])
        #expect(h.snapshotRequested)
        // After the transfer: ACKs need no answer.
        #expect(try h.feed(resp("REPLCONF", "ACK", "0")) == [])
        #expect(!h.commands.contains { $0.contains("secret") })
        // Inline commands and garbage.
        var inline = ReplicationHandshake(replicationID: ReplicationHandshake.newReplicationID())
        #expect(try inline.feed(Array("PING\r\nSYNC\r\n".utf8)) == [.reply(Array("+PONG\r\n".utf8)), .sendSnapshot])
        var bad = ReplicationHandshake(replicationID: inline.replicationID)
        #expect(throws: (any Error).self) { try bad.feed(Array("*x\r\n".utf8)) }
        #expect(inline.replicationID.count == 40 && inline.replicationID.allSatisfy(\.isHexDigit))
    }

    @Test func rdbVersionTable() {
        #expect(RDBVersions.maximum(forRedisVersion: "7.0.15") == 10)
        #expect(RDBVersions.maximum(forRedisVersion: "7.2.4") == 11)
        #expect(RDBVersions.maximum(forRedisVersion: "6.2.14") == 9)
        #expect(RDBVersions.maximum(forRedisVersion: "5.0.7") == 9)
        #expect(RDBVersions.maximum(forRedisVersion: "4.0.14") == 8)
        #expect(RDBVersions.maximum(forRedisVersion: "x") == nil)
        #expect(RDBVersions.version(ofHeader: Array("REDIS0011".utf8)) == 11)
        #expect(RDBVersions.version(ofHeader: Array("RDB".utf8)) == nil)
    }
}

@Suite struct RedisFileRestoreTests {
    @Test func methodFileWritesTheRDBRestartsAndSetsPersistenceBack() throws {
        let redisServer = try TestEnvironment.binary("redis-server", package: "redis-server")
        let redisCLI = try TestEnvironment.binary("redis-cli", package: "redis-tools")
        let dir = try TestEnvironment.makeTempDirectory("redis-file-restore")
        let port = try TestEnvironment.freePort()
        let conf = dir + "/redis.conf"
        try """
        port \(port)
        bind 127.0.0.1
        dir \(dir)
        dbfilename dump.rdb
        appendonly yes
        save 3600 1
        daemonize yes
        pidfile \(dir)/redis.pid
        logfile \(dir)/redis.log

        """.write(toFile: conf, atomically: true, encoding: .utf8)
        let restart = dir + "/restart.sh"
        try """
        pid=$(cat '\(dir)/redis.pid' 2>/dev/null)
        if [ -n "$pid" ]; then kill "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done; fi
        exec '\(redisServer)' '\(conf)'

        """.write(toFile: restart, atomically: true, encoding: .utf8)
        TestProcesses.atExit {
            if let text = try? String(contentsOfFile: dir + "/redis.pid", encoding: .utf8), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                kill(pid, SIGKILL)
            }
        }
        try TestProcesses.run("/bin/sh", [restart])
        let endpoint = Endpoint(host: "127.0.0.1", port: port)
        try TestEnvironment.waitUntil(timeout: 20, "redis-server on \(port)") { TestEnvironment.isListening(port: port) }
        func cli(_ args: [String]) throws { try TestProcesses.run(redisCLI, ["-p", String(port)] + args) }
        for i in 0..<200 { try cli(["SET", "f\(i)", "v\(i)"]) }
        try cli(["HSET", "fh", "a", "1"])
        try cli(["SET", "fttl", "x", "EX", "9000"])
        try cli(["-n", "2", "SET", "two", "2"])
        let snapshotState = try RedisRestoreScene.state(endpoint, password: nil)
        let backupDir = try TestEnvironment.makeTempDirectory("restore-redis-file")
        try FileSystem.createDirectory(backupDir + "/redis")
        let rdb = dir + "/snap.rdb"
        try TestProcesses.run(redisCLI, ["-p", String(port), "--rdb", rdb])
        let snapshot = backupDir + "/redis/redis_\(WallClock.fileStamp(WallClock.now() - 60)).rdb.gz"
        try RedisRestoreScene.writeSnapshot(rdb: try FileSystem.read(rdb), to: snapshot, keys: ["0": 202, "2": 1])
        unlink(rdb)
        for i in 0..<50 { try cli(["DEL", "f\(i)"]) }
        try cli(["SET", "newer", "gone after the restore"])
        try cli(["PERSIST", "fttl"])
        let pid = try RedisConnection(to: endpoint, timeout: 5).info("server")["process_id"]

        var env = ["BACKUP_DIR": backupDir, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(port),
                   "REDIS_DATA_DIR": dir, "REDIS_RESTART_COMMAND": "sh '\(restart)'"]
        let dry = try BackstopBinary.run(["restore", "redis", snapshot, "--method", "file", "--dry-run"], environment: env)
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(dry.stdout.contains("CONFIG SET save"))
        #expect(try RedisConnection(to: endpoint, timeout: 5).info("server")["process_id"] == pid)
        let result = try BackstopBinary.run(["restore", "redis", snapshot, "--method", "file", "--yes"], environment: env)
        #expect(result.status == 0, "\(result.stderr)\n\(result.stdout)")
        #expect(result.stdout.contains("key counts per database match the .meta"))
        let after = try RedisConnection(to: endpoint, timeout: 5)
        #expect(try after.info("server")["process_id"] != pid, "method file restarts Redis")
        #expect(try RedisRestoreScene.state(endpoint, password: nil) == snapshotState)
        #expect(try after.configGet("appendonly")["appendonly"] == "yes")
        #expect(try after.configGet("save")["save"] == "3600 1")
        let confText = try String(contentsOfFile: conf, encoding: .utf8)
        #expect(confText.contains("appendonly yes"))
        // The written snapshot is the whole dataset: never world-readable (Redis made the old one 0644).
        let dbfile = dir + "/" + (try after.configGet("dbfilename")["dbfilename"] ?? "dump.rdb")
        var st = stat()
        #expect(stat(dbfile, &st) == 0 && st.st_mode & 0o007 == 0, "\(dbfile) mode \(String(st.st_mode & 0o777, radix: 8))")
        // The safety snapshot is listed.
        #expect(BackupCatalog(backupDir: backupDir).list(kinds: [.redis]).count == 2)
        env["REDIS_RESTART_COMMAND"] = nil
        let missing = try BackstopBinary.run(["restore", "redis", snapshot, "--method", "file", "--yes"], environment: env)
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("REDIS_RESTART_COMMAND"))
    }
}
