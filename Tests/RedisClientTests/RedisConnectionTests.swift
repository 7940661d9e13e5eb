import BackstopCore
import BackstopTestSupport
import Foundation
import Testing
import RedisClient
#if canImport(Glibc)
import Glibc
#endif

/// Commands against the shared real cluster (master + replica + Sentinels with a password
/// and an ACL user). Only keys with a per-test prefix are written; nothing is stopped.
@Suite("RedisConnection against real servers", .timeLimit(.minutes(3)))
struct RedisConnectionTests {
    static let password = Secret("backstop-shared-pw")

    static func unique(_ name: String) -> String { "test:\(name):\(UUID().uuidString)" }

    @Test("PING, INFO, ROLE, CONFIG GET on master and replica")
    func basics() throws {
        let cluster = try RedisCluster.shared()
        let master = try RedisConnection(to: cluster.master, password: Self.password, timeout: 5)
        try master.ping()
        let info = try master.info("server")
        #expect(info["redis_version"]?.isEmpty == false)
        #expect(info["tcp_port"] == "\(cluster.master.port)")
        #expect(try master.configGet("dbfilename") == ["dbfilename": "dump.rdb"])
        guard case .master(_, let replicas) = try master.role() else {
            Issue.record("master does not report role master")
            return
        }
        #expect(replicas.map(\.port) == [cluster.replica.port])

        let replica = try RedisConnection(to: cluster.replica, password: Self.password, timeout: 5)
        guard case .replica(let upstream, let state, _) = try replica.role() else {
            Issue.record("replica does not report role replica")
            return
        }
        #expect(upstream.port == cluster.master.port)
        #expect(state == "connected")
        #expect(try replica.role().name == "replica")
    }

    @Test("binary-safe values, DBSIZE and INFO keyspace counts per database")
    func keysAndCounts() throws {
        let cluster = try RedisCluster.shared()
        let connection = try RedisConnection(to: cluster.master, password: Self.password, timeout: 5)
        // A database of its own so other tests' keys do not change the counts.
        let db = 7 + Int.random(in: 0..<8)
        _ = try connection.call(["SELECT", "\(db)"])
        _ = try connection.call(["FLUSHDB"])
        let key = Self.unique("binary")
        let value: [UInt8] = [0, 13, 10, 255, 36, 42, 0]
        #expect(try connection.command(bytes: [Array("SET".utf8), Array(key.utf8), value]) == .status("OK"))
        #expect(try connection.command(bytes: [Array("GET".utf8), Array(key.utf8)]) == .bulk(value))
        _ = try connection.call(["SET", Self.unique("ttl"), "x", "EX", "600"])
        _ = try connection.call(["HSET", Self.unique("hash"), "f", "v"])
        #expect(try connection.dbsize() == 3)
        let keyspace = try connection.keyspace()
        #expect(keyspace[db] == KeyspaceCounts(keys: 3, expires: 1))
        #expect(try connection.command(["GET", Self.unique("missing")]) == .null)
        _ = try connection.call(["FLUSHDB"])
    }

    @Test("an ACL user authenticates with its own password")
    func aclUser() throws {
        let cluster = try RedisCluster.shared()
        let connection = try RedisConnection(to: cluster.master, username: "backstop", password: Secret("backstop-acl-pw"), timeout: 5)
        #expect(try connection.call(["ACL", "WHOAMI"]).string == "backstop")
    }

    @Test("a wrong password fails as authentication, naming the server but never the password")
    func wrongPassword() throws {
        let cluster = try RedisCluster.shared()
        let wrong = "hunter2-not-the-password"
        do {
            _ = try RedisConnection(to: cluster.master, password: Secret(wrong), timeout: 5)
            Issue.record("a wrong password was accepted")
        } catch let error as RedisError {
            #expect(error.kind == .authentication)
            #expect(!error.description.contains(wrong))
            #expect(error.description.contains("\(cluster.master)"))
            #expect(error.description.contains("WRONGPASS") || error.description.contains("invalid"))
        }
        do {
            _ = try RedisConnection(to: cluster.master, username: "backstop", password: Secret(wrong), timeout: 5)
            Issue.record("a wrong ACL password was accepted")
        } catch let error as RedisError {
            #expect(error.kind == .authentication)
            #expect(!error.description.contains(wrong))
            #expect(error.description.contains("backstop"))
        }
    }

    @Test("without a password the server's NOAUTH is a reply, and typed helpers throw it")
    func noPassword() throws {
        let cluster = try RedisCluster.shared()
        let connection = try RedisConnection(to: cluster.master, timeout: 5)
        #expect(try connection.command(["PING"]).errorMessage?.hasPrefix("NOAUTH") == true)
        #expect(throws: RedisError.self) { try connection.ping() }
    }

    @Test("a closed port is a connect error, quickly")
    func closedPort() throws {
        let port = try TestEnvironment.freePort()
        let start = Date()
        #expect {
            _ = try RedisConnection(to: Endpoint(host: "127.0.0.1", port: port), timeout: 2)
        } throws: { error in
            (error as? RedisError)?.kind == .connect && "\(error)".contains("127.0.0.1:\(port)")
        }
        #expect(Date().timeIntervalSince(start) < 2)
    }

    @Test("a frozen server times out instead of hanging")
    func frozenServer() throws {
        let server = try StandaloneRedis()
        defer { server.stop() }
        let connection = try RedisConnection(to: server.endpoint, timeout: 0.5)
        try connection.ping()
        server.signal(SIGSTOP)
        defer { server.signal(SIGCONT) }
        let start = Date()
        #expect {
            try connection.ping()
        } throws: { error in
            (error as? RedisError)?.kind == .io && "\(error)".contains("0.5 s")
        }
        let elapsed = Date().timeIntervalSince(start)
        #expect(elapsed >= 0.4 && elapsed < 3)
        // The broken connection fails fast from now on.
        #expect(throws: RedisError.self) { try connection.ping() }
    }

    @Test("the async facade runs a body on the blocking queue")
    func asyncFacade() async throws {
        let cluster = try RedisCluster.shared()
        let role = try await Redis.withConnection(to: cluster.replica, password: Self.password, timeout: 5) { connection in
            try connection.role().name
        }
        #expect(role == "replica")
    }
}

/// BGSAVE and the wait for it, on servers of their own.
@Suite("BGSAVE against a real server", .timeLimit(.minutes(2)))
struct BackgroundSaveTests {
    @Test("bgsave waits for the save it started, and the file holds the keys")
    func completes() throws {
        let server = try StandaloneRedis()
        defer { server.stop() }
        let connection = try RedisConnection(to: server.endpoint, timeout: 5)
        for index in 0..<500 { _ = try connection.call(["SET", "k\(index)", "v\(index)"]) }
        let first = try connection.bgsave(timeout: 30)
        #expect(first.saves == 1)
        let path = server.directory + "/dump.rdb"
        #expect(FileManager.default.fileExists(atPath: path))
        // A second call makes a second save, even within the same second.
        _ = try connection.call(["SET", "later", "x"])
        let second = try connection.bgsave(timeout: 30)
        #expect(second.saves == 2)
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        var validator = RDBValidator()
        try validator.update(bytes)
        #expect(try validator.finish().checksum != .disabled)
        let reloaded = try StandaloneRedis(directory: server.directory, dbfilename: "dump.rdb")
        defer { reloaded.stop() }
        #expect(try RedisConnection(to: reloaded.endpoint, timeout: 5).dbsize() == 501)
    }

    @Test("a save that fails on the server is an error")
    func fails() throws {
        // `dir` is a protected config in Redis 7, so take the folder away under the server:
        // the fork then cannot create its temporary file.
        let server = try StandaloneRedis()
        defer { server.stop() }
        let connection = try RedisConnection(to: server.endpoint, timeout: 5)
        _ = try connection.call(["SET", "k", "v"])
        try FileManager.default.removeItem(atPath: server.directory)
        #expect {
            _ = try connection.bgsave(timeout: 30)
        } throws: { error in
            (error as? RedisError)?.kind == .server && "\(error)".contains("failed")
        }
    }
}
