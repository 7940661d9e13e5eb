import BackstopCore
import BackstopTestSupport
import Foundation
import Synchronization
import Testing
import RedisClient

/// Snapshots over the replication protocol from real servers, checked by loading them into
/// fresh redis-servers and by redis-check-rdb, and compared with `redis-cli --rdb`.
/// Serialized: a SYNC arriving while another one's BGSAVE runs shares it, and with it the
/// other one's framing, which would make the framing assertions depend on timing.
@Suite("Replication snapshot against real servers", .serialized, .timeLimit(.minutes(3)))
struct ReplicationSnapshotTests {
    static let password = Secret("snapshot-pw")

    /// A cluster of its own (no Sentinels) filled once; the tests here only read from it.
    static let source = Result<RedisCluster, any Error> {
        let cluster = try RedisCluster.start(password: password.value,
                                             aclUser: RedisCluster.ACLUser(name: "backup", password: "backup-pw"),
                                             withSentinels: false)
        let connection = try RedisConnection(to: cluster.master, password: password, timeout: 10)
        for db in 0..<3 {
            _ = try connection.call(["SELECT", "\(db)"])
            for index in 0..<(200 * (db + 1)) {
                _ = try connection.call(["SET", "key:\(db):\(index)", "value-\(index)"])
            }
            _ = try connection.call(["HSET", "hash:\(db)", "a", "1", "b", "2"])
            _ = try connection.call(["RPUSH", "list:\(db)", "x", "y", "z"])
            _ = try connection.call(["SADD", "set:\(db)", "m1", "m2"])
            _ = try connection.call(["ZADD", "zset:\(db)", "1", "one", "2", "two"])
            _ = try connection.call(["XADD", "stream:\(db)", "*", "field", "value"])
            _ = try connection.call(["SET", "ttl:\(db)", "expiring", "EX", "3600"])
        }
        _ = try connection.call(["SELECT", "0"])
        // Binary-safe, and large enough to span many reads.
        // Random bytes, so RDB's LZF compression cannot shrink the value.
        var generator = SeededGenerator(seed: 99)
        var big = [UInt8]()
        big.reserveCapacity(3 * 1024 * 1024)
        while big.count < 3 * 1024 * 1024 {
            withUnsafeBytes(of: generator.next()) { big.append(contentsOf: $0) }
        }
        _ = try connection.command(bytes: [Array("SET".utf8), Array("big".utf8), big])
        _ = try connection.command(bytes: [Array("SET".utf8), [0, 255, 13, 10], [0, 1, 2, 13, 10, 36, 69, 79, 70]])
        try TestEnvironment.waitUntil(timeout: 30, "replica to catch up") {
            let replica = try RedisConnection(to: cluster.replica, password: password, timeout: 5)
            return try replica.keyspace() == connection.keyspace()
        }
        return cluster
    }

    /// Fetches into memory (fine for a test; the library itself streams).
    static func fetch(_ endpoint: Endpoint, username: String? = nil, password: Secret? = Self.password,
                      options: SnapshotOptions = SnapshotOptions(startTimeout: 30)) throws -> (SnapshotInfo, [UInt8]) {
        var bytes: [UInt8] = []
        let info = try fetchSnapshot(from: endpoint, username: username, password: password, timeout: 10, options: options) {
            bytes.append(contentsOf: $0)
        }
        return (info, bytes)
    }

    /// Writes `bytes` as dump.rdb in a new folder, starts a fresh redis-server on it, and
    /// returns its keyspace and a connection's answers.
    static func load(_ bytes: [UInt8]) throws -> (keyspace: [Int: KeyspaceCounts], server: StandaloneRedis) {
        let dir = try TestEnvironment.makeTempDirectory("rdb-load")
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/dump.rdb"))
        let server = try StandaloneRedis(directory: dir)
        let connection = try RedisConnection(to: server.endpoint, timeout: 5)
        return (try connection.keyspace(), server)
    }

    static func redisCheckRDB(_ bytes: [UInt8]) throws -> CommandResult {
        let dir = try TestEnvironment.makeTempDirectory("rdb-check")
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/check.rdb"))
        let tool = try TestEnvironment.binary("redis-check-rdb", package: "redis-server")
        return try TestProcesses.run(tool, [dir + "/check.rdb"], check: false)
    }

    @Test("length-framed and diskless snapshots verify, load with the source's keys, and match redis-cli --rdb",
          arguments: [false, true])
    func roundTrip(allowDiskless: Bool) throws {
        let cluster = try Self.source.get()
        let sourceKeyspace = try RedisConnection(to: cluster.master, password: Self.password, timeout: 5).keyspace()
        #expect(sourceKeyspace[2]?.keys == 606)

        let (info, bytes) = try Self.fetch(cluster.master, options: SnapshotOptions(allowDiskless: allowDiskless, startTimeout: 30))
        #expect(info.framing == (allowDiskless ? .eofMark : .length(Int64(bytes.count))))
        #expect(info.checksumVerified)
        #expect(info.rdbVersion >= 9)
        #expect(info.bytes == Int64(bytes.count))
        #expect(info.rdbOnly)
        #expect(info.source == cluster.master)
        #expect(bytes.count > 3 * 1024 * 1024)
        // Independent checks: Redis's own checker, and a CRC recomputed over the file.
        let check = try Self.redisCheckRDB(bytes)
        #expect(check.status == 0, "redis-check-rdb: \(check.stdout)")
        let stored = bytes.suffix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        #expect(info.checksum == .verified(stored))
        #expect(CRC64.checksum(Array(bytes.dropLast(8))) == stored)

        let (loadedKeyspace, server) = try Self.load(bytes)
        defer { server.stop() }
        #expect(loadedKeyspace == sourceKeyspace)
        let loaded = try RedisConnection(to: server.endpoint, timeout: 5)
        #expect(try loaded.command(bytes: [Array("GET".utf8), [0, 255, 13, 10]]) == .bulk([0, 1, 2, 13, 10, 36, 69, 79, 70]))
        #expect(try loaded.call(["STRLEN", "big"]) == .integer(3 * 1024 * 1024))
        _ = try loaded.call(["SELECT", "1"])
        #expect(try loaded.call(["TTL", "ttl:1"]).integer.map { $0 > 3000 } == true)
        #expect(try loaded.call(["XLEN", "stream:1"]) == .integer(1))

        // The same server's snapshot taken by redis-cli --rdb holds the same keys.
        let dir = try TestEnvironment.makeTempDirectory("redis-cli-rdb")
        try cluster.redisCLIRaw(port: cluster.master.port, ["--rdb", dir + "/cli.rdb"])
        let cliBytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir + "/cli.rdb")))
        let (cliKeyspace, cliServer) = try Self.load(cliBytes)
        defer { cliServer.stop() }
        #expect(cliKeyspace == loadedKeyspace)
        let cliLoaded = try RedisConnection(to: cliServer.endpoint, timeout: 5)
        let sourceConnection = try RedisConnection(to: cluster.master, password: Self.password, timeout: 5)
        for db in 0..<3 {
            for connection in [loaded, cliLoaded, sourceConnection] { _ = try connection.call(["SELECT", "\(db)"]) }
            let expected = try sourceConnection.dbsize()
            #expect(try loaded.dbsize() == expected)
            #expect(try cliLoaded.dbsize() == expected)
        }
    }

    @Test("from the replica as an ACL user")
    func replicaWithACLUser() throws {
        let cluster = try Self.source.get()
        let (info, bytes) = try Self.fetch(cluster.replica, username: "backup", password: Secret("backup-pw"))
        #expect(info.checksumVerified)
        #expect(info.source == cluster.replica)
        let (keyspace, server) = try Self.load(bytes)
        defer { server.stop() }
        #expect(keyspace == (try RedisConnection(to: cluster.master, password: Self.password, timeout: 5).keyspace()))
    }

    @Test("a wrong password or none fails as authentication, without the password in the error")
    func authentication() throws {
        let cluster = try Self.source.get()
        let wrong = "not-the-snapshot-password"
        var received = 0
        #expect {
            _ = try fetchSnapshot(from: cluster.master, password: Secret(wrong), timeout: 5) { received += $0.count }
        } throws: { error in
            guard let error = error as? RedisError else { return false }
            return error.kind == .authentication && !error.description.contains(wrong) && error.description.contains("\(cluster.master)")
        }
        #expect {
            _ = try fetchSnapshot(from: cluster.master, timeout: 5) { received += $0.count }
        } throws: { error in
            (error as? RedisError)?.kind == .authentication && "\(error)".contains("NOAUTH")
        }
        #expect(received == 0)
    }

    @Test("a server that refuses SYNC fails with its reason")
    func refusal() throws {
        let server = try StandaloneRedis(extraConfig: ["user limited on >limited-pw ~* &* +@all -sync -psync"])
        defer { server.stop() }
        var received = 0
        #expect {
            _ = try fetchSnapshot(from: server.endpoint, username: "limited", password: Secret("limited-pw"), timeout: 5) {
                received += $0.count
            }
        } throws: { error in
            guard let error = error as? RedisError else { return false }
            return error.kind == .snapshot && error.message.contains("NOPERM") && error.message.contains("refused")
        }
        #expect(received == 0)
    }

    @Test("a connection cut part-way fails the fetch in both framings", arguments: [false, true])
    func cutConnection(allowDiskless: Bool) throws {
        // A server of its own: a replica dropped mid-transfer must not disturb other tests.
        let server = try StandaloneRedis()
        defer { server.stop() }
        let connection = try RedisConnection(to: server.endpoint, timeout: 5)
        var generator = SeededGenerator(seed: 5)
        for index in 0..<40 {
            let value = (0..<4096).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            _ = try connection.command(bytes: [Array("SET".utf8), Array("k\(index)".utf8), value])
        }
        let proxy = try CuttingProxy(targetPort: server.port, cutAfter: 100_000)
        defer { proxy.stop() }
        var received = 0
        #expect {
            _ = try fetchSnapshot(from: Endpoint(host: "127.0.0.1", port: proxy.port), timeout: 10,
                                  options: SnapshotOptions(allowDiskless: allowDiskless, startTimeout: 30)) { received += $0.count }
        } throws: { error in
            guard let error = error as? RedisError else { return false }
            return error.kind == .snapshot && error.message.contains("closed")
        }
        #expect(received > 0 && received < 100_000)

        // Through the same kind of proxy without a cut, the fetch succeeds: the cut is what failed it.
        let open = try CuttingProxy(targetPort: server.port, cutAfter: nil)
        defer { open.stop() }
        let (info, bytes) = try Self.fetch(Endpoint(host: "127.0.0.1", port: open.port), password: nil,
                                           options: SnapshotOptions(allowDiskless: allowDiskless, startTimeout: 30))
        #expect(info.checksumVerified)
        #expect(bytes.count > 160_000)
    }

    @Test("a snapshot that never starts is bounded by startTimeout")
    func startTimeout() throws {
        // Diskless with a long delay: the master sends only keepalives for 30 s.
        let server = try StandaloneRedis(extraConfig: ["repl-diskless-sync yes", "repl-diskless-sync-delay 30"])
        defer { server.stop() }
        let start = MonotonicClock.seconds()
        #expect {
            _ = try fetchSnapshot(from: server.endpoint, timeout: 5,
                                  options: SnapshotOptions(allowDiskless: true, startTimeout: 2.5)) { _ in }
        } throws: { error in
            (error as? RedisError)?.kind == .snapshot && "\(error)".contains("did not start")
        }
        let elapsed = MonotonicClock.seconds() - start
        #expect(elapsed >= 2.5 && elapsed < 8)
    }

    @Test("rdbchecksum no is reported as unchecked, not verified")
    func checksumDisabled() throws {
        let server = try StandaloneRedis(extraConfig: ["rdbchecksum no"])
        defer { server.stop() }
        try server.cli(["SET", "k", "v"])
        let (info, bytes) = try Self.fetch(server.endpoint, password: nil)
        #expect(info.checksum == .disabled)
        #expect(!info.checksumVerified)
        #expect(bytes.suffix(8) == [0, 0, 0, 0, 0, 0, 0, 0])
    }

    @Test("keepalives while a diskless master waits its delay are skipped")
    func keepalives() async throws {
        let server = try StandaloneRedis(extraConfig: ["repl-diskless-sync yes", "repl-diskless-sync-delay 2"])
        defer { server.stop() }
        try server.cli(["SET", "k", "v"])
        let counter = ByteCounter()
        let info = try await Redis.fetchSnapshot(from: server.endpoint, timeout: 10, options: SnapshotOptions(allowDiskless: true, startTimeout: 30)) {
            counter.add($0.count)
        }
        #expect(info.framing == .eofMark)
        #expect(info.keepalives >= 1)
        #expect(info.checksumVerified)
        #expect(counter.total == Int(info.bytes))
    }
}

/// Counts bytes handed to an `@Sendable` sink.
final class ByteCounter: Sendable {
    private let count = Mutex(0)
    func add(_ bytes: Int) { count.withLock { $0 += bytes } }
    var total: Int { count.withLock { $0 } }
}
