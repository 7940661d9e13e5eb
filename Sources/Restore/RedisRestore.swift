#if canImport(Glibc)
import Glibc
#endif
import BackstopCore
import BackupCatalog
import BackupJobs
import Foundation
import RedisClient

/// What `backstop restore redis` was asked to do.
public struct RedisRestoreOptions: Sendable {
    /// The address the target connects back to (default: this host's address toward it).
    public var advertiseAddress: String?
    /// The address to listen on (default: the advertised one, or 0.0.0.0 when it was given).
    public var listenAddress: String?
    /// The port to listen on (0: any free port).
    public var port = 0
    /// How long the target may take to load the snapshot.
    public var timeout: Double = 3600
    /// At most this many bytes a second of the snapshot go to the target (method
    /// replication) or into its data folder (method file); nil: no limit.
    public var maxRate: UInt64?

    public init() {}
}

/// What the target is, read before anything changes.
public struct RedisTargetFacts: Sendable {
    public var endpoint: Endpoint
    public var redisVersion: String
    public var processID: String
    public var role: String
    /// The newest RDB version the target reads (from its version); nil when unknown.
    public var maximumRDBVersion: Int?
    public var keyspace: [Int: KeyspaceCounts]
}

/// What a finished Redis restore found.
public struct RedisRestoreResult: Sendable {
    public var processIDBefore: String
    public var processIDAfter: String
    public var keyspace: [Int: KeyspaceCounts]
    /// Keys per database the `.meta` recorded (nil when it has none).
    public var expected: [Int: Int]?
    /// Differences between `keyspace` and `expected`, one line each.
    public var mismatches: [String]
    /// The snapshot of the data replaced (restore it to undo).
    public var safetySnapshot: String?
    public var seconds: Double
}

/// A guarded Redis restore into a running server without restarting it (method
/// `replication`): Backstop serves the snapshot as a master (`RDBMaster`), tells the target
/// `REPLICAOF <advertise> <port>`, waits until the target reports the link up and the sync
/// finished, then `REPLICAOF NO ONE`. The target's own replicas resync from it (new
/// replication ID). With Sentinel, `down-after-milliseconds` of the master is raised on
/// every Sentinel for the load (a master that reports itself as a replica is otherwise taken
/// for down and failed over) and set back once every Sentinel sees a master again.
///
/// Blocking: run on a thread that may block.
public struct RedisRestore: Sendable {
    public let redis: RedisSettings
    /// The master to restore into (resolved through Sentinel by the caller when configured).
    public let target: Endpoint
    public let source: RestoreSource.Checked
    public let backupDir: String
    public let options: RedisRestoreOptions
    /// The Redis backup job's settings: a safety snapshot of the current data is taken with
    /// them first (a normal, listed backup). Nil skips it (tests of the mechanism only).
    public let safetySnapshot: RedisJobSettings?
    public let say: @Sendable (String) -> Void
    /// SIGTERM/SIGINT of the command: the restore stops at its next check, and before the
    /// point of no return (the target has the whole snapshot) it leaves the target as it was.
    public let cancellation: JobCancellation?

    public init(redis: RedisSettings, target: Endpoint, source: RestoreSource.Checked, backupDir: String,
                options: RedisRestoreOptions, safetySnapshot: RedisJobSettings?, cancellation: JobCancellation? = nil,
                say: @escaping @Sendable (String) -> Void) {
        self.safetySnapshot = safetySnapshot
        self.cancellation = cancellation
        self.redis = redis
        self.target = target
        self.source = source
        self.backupDir = backupDir
        self.options = options
        self.say = say
    }

    private func connect(timeout: Double = 10) throws -> RedisConnection {
        try RedisConnection(to: target, username: redis.username, password: redis.password, timeout: timeout)
    }

    /// The RDB version in the snapshot's header.
    public func snapshotRDBVersion() throws -> Int {
        let header = try GunzipStream().prefix(path: source.entry.path, count: 9)
        guard let version = RDBVersions.version(ofHeader: header) else {
            throw RestoreError("\(source.entry.path) does not start with an RDB header (REDIS00NN); refusing it. Nothing was changed", nothingChanged: true)
        }
        return version
    }

    /// Reads the target's facts and refuses a target that is not a master or cannot read the
    /// snapshot's RDB version. Changes nothing.
    public func inspect() throws -> RedisTargetFacts {
        let connection = try connect()
        let server = try connection.info("server")
        let replication = try connection.info("replication")
        let version = server["redis_version"] ?? "?"
        let facts = RedisTargetFacts(endpoint: target, redisVersion: version, processID: server["process_id"] ?? "?",
                                     role: replication["role"] ?? "?", maximumRDBVersion: RDBVersions.maximum(forRedisVersion: version),
                                     keyspace: try connection.keyspace())
        guard facts.role == "master" else {
            throw RestoreError("\(target) is a \(facts.role), not a master: restore into the master (its replicas follow)", nothingChanged: true)
        }
        let rdb = try snapshotRDBVersion()
        if let maximum = facts.maximumRDBVersion, rdb > maximum {
            throw RestoreError("\(source.entry.path) is RDB version \(rdb), newer than Redis \(version) on \(target) reads (up to \(maximum)); refusing it. Nothing was changed", nothingChanged: true)
        }
        return facts
    }

    public var advertiseAddress: String {
        options.advertiseAddress ?? RDBMaster.localAddress(toward: target.host, port: target.port) ?? "127.0.0.1"
    }

    /// Every step, in order, as the dry run prints it.
    public func plan(facts: RedisTargetFacts) -> [String] {
        let adv = advertiseAddress
        var steps = [String]()
        if safetySnapshot != nil {
            steps.append("safety snapshot of the current data (backstop backup redis: a normal, listed backup under \(backupDir)/redis)")
        }
        steps += [
            "checked \(source.entry.path): gzip stream whole, SHA-256 \(source.verification.sha256), RDB \(source.verification.uncompressedBytes) bytes",
            "target \(target): Redis \(facts.redisVersion), role master, process \(facts.processID), keys now: \(Self.describe(facts.keyspace))",
        ]
        if redis.usesSentinel {
            steps.append("on each Sentinel (\(redis.sentinels.map(\.description).joined(separator: ", "))): raise down-after-milliseconds of \(redis.sentinelMasterName) for the load, so the master reporting itself as a replica is not failed over")
        }
        steps += [
            "listen on \(options.listenAddress ?? (options.advertiseAddress == nil ? adv : "0.0.0.0")):\(options.port == 0 ? "<free port>" : String(options.port)) and serve the snapshot as a master (FULLRESYNC, new replication ID)",
            "REPLICAOF \(adv) <port> on \(target): the target flushes its data and loads the snapshot (no restart)",
            "wait until \(target) reports master_link_status:up and master_sync_in_progress:0 (at most \(Int(options.timeout)) s)",
            "REPLICAOF NO ONE on \(target); its replicas resync from it",
        ]
        if redis.usesSentinel { steps.append("wait until every Sentinel sees \(redis.sentinelMasterName) as a master again, then set down-after-milliseconds back") }
        steps.append("compare the key counts per database with the .meta")
        steps.append("record the restore in \(RestoreRecord.path(backupDir: backupDir))")
        return steps
    }

    var isCancelled: Bool { cancellation?.isCancelled == true }

    /// Throws when the command was stopped, before `what` (nothing was changed yet).
    func checkNotCancelled(before what: String) throws {
        guard isCancelled else { return }
        throw RestoreError("stopped before \(what); \(target) was not touched. Nothing was changed and nothing recorded", nothingChanged: true)
    }

    /// Takes the safety snapshot (a normal, listed backup); nil when none is configured.
    func takeSafetySnapshot() throws -> String? {
        guard let safetySnapshot else { return nil }
        try checkNotCancelled(before: "the safety snapshot")
        say("safety snapshot of \(target) …")
        let outcome = try RedisSnapshotBackup(settings: safetySnapshot, log: BackupLog(backupDir: backupDir, echo: false),
                                              cancellation: cancellation).run()
        try checkNotCancelled(before: outcome.success ? "the restore proper (the safety snapshot \(outcome.path ?? "") is a normal backup and stays)"
                                  : "the restore proper (the safety snapshot was stopped, no file of it kept)")
        guard outcome.success, let path = outcome.path else {
            throw RestoreError("the safety snapshot failed (\(outcome.message ?? "no reason given")); nothing was changed", nothingChanged: true)
        }
        say("safety snapshot written: \(path)")
        return path
    }

    /// Runs the restore.
    public func run() throws -> RedisRestoreResult {
        let started = MonotonicClock.seconds()
        let before = try inspect()
        let safetyPath = try takeSafetySnapshot()
        let guardSentinels = try SentinelGuard(redis: redis, say: say, holdMilliseconds: Int((options.timeout + 120) * 1000))
        defer { guardSentinels.release() }
        let adv = advertiseAddress
        let master = try RDBMaster(rdbGzipPath: source.entry.path, rdbLength: source.verification.uncompressedBytes,
                                   bindHost: options.listenAddress ?? (options.advertiseAddress == nil ? adv : "0.0.0.0"),
                                   port: options.port, maxRate: options.maxRate)
        defer { master.stop() }
        try checkNotCancelled(before: "REPLICAOF (the safety snapshot \(safetyPath ?? "-") is kept, a normal backup)")
        let connection = try connect()
        say("REPLICAOF \(adv) \(master.port) on \(target) …")
        _ = try connection.call(["REPLICAOF", adv, String(master.port)])
        let deadline = MonotonicClock.seconds() + options.timeout
        var loaded = false
        var last: [String: String] = [:]
        var pastNoReturn = false
        var lastAnswer = MonotonicClock.seconds()
        while MonotonicClock.seconds() < deadline {
            if isCancelled, !pastNoReturn {
                if master.abortUnlessSent() {
                    try abandon(master, safetyPath: safetyPath)
                }
                // The whole snapshot is out: the target has dropped its data for it or is
                // about to. Going back is no longer possible; finishing is the safe way out.
                pastNoReturn = true
                say("stop requested after \(target) received the whole snapshot: finishing the restore (it is loading it)")
            }
            if let info = try? connect(timeout: 2).info("replication") {
                last = info
                lastAnswer = MonotonicClock.seconds()
                if info["master_host"] == adv, info["master_port"] == String(master.port),
                   info["master_link_status"] == "up", info["master_sync_in_progress"] == "0", master.progress.transfers > 0 {
                    loaded = true
                    break
                }
                if info["master_host"] != adv || info["master_port"] != String(master.port) {
                    // Restarted (a master again, with what it loaded from its own disk) or
                    // reconfigured by Sentinel after a failover: it no longer follows Backstop.
                    // It is not told anything: it may now be a replica of the new master.
                    try targetLost(master, safetyPath: safetyPath, why: "it no longer replicates from Backstop (role \(info["role"] ?? "?")\(info["master_host"].map { ", following \($0):\(info["master_port"] ?? "?")" } ?? ""); process \(targetProcessID() ?? "?"), before \(before.processID)): it was restarted or failed over")
                }
            } else {
                // Once the whole snapshot is out the target may be busy for a while (a replica
                // flushes its old data synchronously before it loads): more patience then.
                let limit = master.progress.transfers > 0 ? Self.unansweredLimitAfterTransfer : Self.unansweredLimit
                if MonotonicClock.seconds() - lastAnswer > limit {
                    try targetLost(master, safetyPath: safetyPath, why: "it has not answered for \(Int(limit)) s (killed, crashed or unreachable)")
                }
            }
            usleep(100_000)
        }
        _ = try? connect().call(["REPLICAOF", "NO", "ONE"])
        guard loaded else {
            throw RestoreError("\(target) did not finish loading the snapshot within \(Int(options.timeout)) s (link \(last["master_link_status"] ?? "?"), sync in progress \(last["master_sync_in_progress"] ?? "?"), master side: \(master.progress.lastError ?? "no error")). It was told REPLICAOF NO ONE; its data may be incomplete: restore again\(safetyPath.map { ", or the safety snapshot \($0)" } ?? "")", nothingChanged: false)
        }
        say("\(target) loaded the snapshot; REPLICAOF NO ONE sent")
        master.stop()
        guardSentinels.waitForMaster(timeout: 60)
        let after = try connect()
        let server = try after.info("server")
        let keyspace = try after.keyspace()
        let expected = Self.expectedKeys(metaPath: BackupMeta.path(for: source.entry.path))
        var mismatches: [String] = []
        if let expected {
            for db in Set(expected.keys).union(keyspace.keys).sorted() {
                let want = expected[db] ?? 0
                let have = keyspace[db]?.keys ?? 0
                if want != have { mismatches.append("db\(db): \(have) keys, the .meta says \(want)") }
            }
        }
        do {
            try RestoreRecord.recordSuccess(kind: BackupKind.redis.rawValue, at: WallClock.now(), backupDir: backupDir)
        } catch {
            say("warning: the restore succeeded but recording it failed: \(error)")
        }
        return RedisRestoreResult(processIDBefore: before.processID, processIDAfter: server["process_id"] ?? "?", keyspace: keyspace,
                                  expected: expected, mismatches: mismatches, safetySnapshot: safetyPath, seconds: MonotonicClock.seconds() - started)
    }

    /// How long the target may not answer INFO during the load before the restore gives up on
    /// it (a Redis loading a snapshot still answers INFO).
    static let unansweredLimit = 15.0
    /// The same once the whole snapshot was sent (flushing a large dataset blocks Redis).
    static let unansweredLimitAfterTransfer = 600.0

    /// The target's process id now (a restart changes it); nil when it does not answer.
    private func targetProcessID() -> String? {
        (try? connect(timeout: 2).info("server"))?["process_id"]
    }

    /// The target went away during the load: the transfer is stopped (the listening port
    /// closed), nothing is recorded, and the error says what is known of the target.
    private func targetLost(_ master: RDBMaster, safetyPath: String?, why: String) throws -> Never {
        let sent = master.progress
        master.stop()
        throw RestoreError("lost \(target) during the restore: \(why). The snapshot transfer was stopped (master side: \(sent.lastError ?? "no error")) and the listening port closed; nothing was recorded as restored. \(target)'s data may be its old data or incomplete: check it, then restore again\(safetyPath.map { " (the safety snapshot \($0) holds the data from before the restore)" } ?? "")", nothingChanged: false)
    }

    /// The restore was stopped before the target had the whole snapshot: the transfer is
    /// called off (the target drops the part it received and keeps its data), the target
    /// told REPLICAOF NO ONE until it reports itself a master again; then throws.
    private func abandon(_ master: RDBMaster, safetyPath: String?) throws -> Never {
        master.stop()
        let deadline = MonotonicClock.seconds() + 10
        var role = "?"
        while MonotonicClock.seconds() < deadline {
            _ = try? connect(timeout: 2).call(["REPLICAOF", "NO", "ONE"])
            role = (try? connect(timeout: 2).info("replication"))?["role"] ?? "?"
            if role == "master" { break }
            usleep(100_000)
        }
        guard role == "master" else {
            throw RestoreError("stopped during the transfer; the transfer was called off but \(target) still reports role \(role): send it REPLICAOF NO ONE by hand (its data was not replaced: it never got the whole snapshot)", nothingChanged: false)
        }
        say("stopped during the transfer: the transfer called off before its end, REPLICAOF NO ONE sent; \(target) is a master with its data as before")
        throw RestoreError("stopped before \(target) received the whole snapshot: the transfer was called off and \(target) told REPLICAOF NO ONE, so it kept its data; the listening port is closed. Nothing was recorded\(safetyPath.map { " (the safety snapshot \($0) is a normal backup and stays)" } ?? "")", nothingChanged: true)
    }

    static func describe(_ keyspace: [Int: KeyspaceCounts]) -> String {
        keyspace.isEmpty ? "none" : keyspace.keys.sorted().map { "db\($0)=\(keyspace[$0]?.keys ?? 0)" }.joined(separator: " ")
    }

    /// Keys per database from a Redis backup's `.meta`: its `keys` (`"db0": n`, as the Redis
    /// backup job writes it), else `keys_per_database`/`keyspace` (`"0"`/`"db0"` → a count or
    /// `{"keys": n}`).
    public static func expectedKeys(metaPath: String) -> [Int: Int]? {
        if let data = FileManager.default.contents(atPath: metaPath),
           let meta = try? BackupMeta.decode(Array(data)), let keys = meta.keys {
            var result: [Int: Int] = [:]
            for (key, count) in keys {
                if let db = Int(key.hasPrefix("db") ? String(key.dropFirst(2)) : key) { result[db] = count }
            }
            return result
        }
        guard let data = FileManager.default.contents(atPath: metaPath),
              let other = try? JSONCoding.decode(OtherKeyCounts.self, from: Array(data)),
              let table = other.keysPerDatabase ?? other.keyspace ?? other.keysPerDB else { return nil }
        var result: [Int: Int] = [:]
        for (key, value) in table {
            guard let db = Int(key.hasPrefix("db") ? String(key.dropFirst(2)) : key), let n = value.keys else { continue }
            result[db] = n
        }
        return result
    }

    /// Key counts in a `.meta` some other tool wrote: per database, a count or `{"keys": n}`.
    private struct OtherKeyCounts: Decodable {
        struct Count: Decodable {
            enum Key: String, CodingKey { case keys }
            var keys: Int?
            init(from decoder: any Decoder) throws {
                keys = (try? decoder.singleValueContainer().decode(Int.self))
                    ?? (try? decoder.container(keyedBy: Key.self).decode(Int.self, forKey: .keys))
            }
        }
        enum CodingKeys: String, CodingKey {
            case keysPerDatabase = "keys_per_database", keyspace, keysPerDB = "keys_per_db"
        }
        var keysPerDatabase: [String: Count]?
        var keyspace: [String: Count]?
        var keysPerDB: [String: Count]?
    }
}

/// Keeps Sentinel from failing over a master that is loading a snapshot as a replica: raises
/// `down-after-milliseconds` on every reachable Sentinel, and sets the old value back once
/// each sees the master as a master again (or at `release`).
final class SentinelGuard: Sendable {
    private let redis: RedisSettings
    private let say: @Sendable (String) -> Void
    /// Sentinel → its original down-after-milliseconds.
    private let originals: [(Endpoint, String)]

    init(redis: RedisSettings, say: @escaping @Sendable (String) -> Void, holdMilliseconds: Int) throws {
        self.redis = redis
        self.say = say
        var originals: [(Endpoint, String)] = []
        for sentinel in redis.sentinels {
            do {
                let c = try RedisConnection(to: sentinel, password: redis.sentinelPassword, timeout: 5)
                let state = try c.sentinelMaster(redis.sentinelMasterName)
                guard let value = state.fields["down-after-milliseconds"] else { continue }
                _ = try c.call(["SENTINEL", "SET", redis.sentinelMasterName, "down-after-milliseconds", String(holdMilliseconds)])
                originals.append((sentinel, value))
                say("Sentinel \(sentinel): down-after-milliseconds \(value) → \(holdMilliseconds) for the load")
            } catch {
                say("warning: Sentinel \(sentinel) could not be paused (\(error)); it may start a failover during the load")
            }
        }
        self.originals = originals
    }

    /// Waits until every paused Sentinel reports the master's role as master again.
    func waitForMaster(timeout: Double) {
        let deadline = MonotonicClock.seconds() + timeout
        for (sentinel, _) in originals {
            while MonotonicClock.seconds() < deadline {
                if let c = try? RedisConnection(to: sentinel, password: redis.sentinelPassword, timeout: 5),
                   let state = try? c.sentinelMaster(redis.sentinelMasterName),
                   state.fields["role-reported"] == "master", !state.isDown {
                    break
                }
                usleep(250_000)
            }
        }
    }

    func release() {
        for (sentinel, value) in originals {
            do {
                let c = try RedisConnection(to: sentinel, password: redis.sentinelPassword, timeout: 5)
                _ = try c.call(["SENTINEL", "SET", redis.sentinelMasterName, "down-after-milliseconds", value])
                say("Sentinel \(sentinel): down-after-milliseconds back to \(value)")
            } catch {
                say("WARNING: Sentinel \(sentinel): setting down-after-milliseconds back to \(value) failed (\(error)); do it by hand: SENTINEL SET \(redis.sentinelMasterName) down-after-milliseconds \(value)")
            }
        }
    }
}
