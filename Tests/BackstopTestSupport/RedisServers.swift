import BackstopCore
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A real Redis master, one replica and (optionally) three Sentinels watching the master as
/// `mymaster`, each on a free loopback port in its own folder under one temporary directory.
///
/// Why real servers: the code under test speaks RESP, the replication protocol and Sentinel's
/// commands to whatever Redis is deployed; a fake would only prove it agrees with itself.
///
/// `master` and `replica` name the servers as they were started. After `failover()` the
/// roles swap: ask `currentMaster()` (what the Sentinels say) when a test needs the live one.
/// Every process is killed when the test process exits (TestProcesses' exit hook), and
/// `shutdown()` stops them earlier.
///
/// Thread safety: the mutable state (pids of the running servers) sits in a `Mutex`; the
/// rest is immutable, so the class is `Sendable`.
public final class RedisCluster: Sendable {
    /// One redis-server of the cluster: its port, folder and config file.
    public struct Node: Sendable, Hashable {
        public let name: String
        public let port: Int
        public let directory: String
        public var configFile: String { directory + "/redis.conf" }
        public var logFile: String { directory + "/redis.log" }
        public var endpoint: Endpoint { Endpoint(host: "127.0.0.1", port: port) }
    }

    /// An extra ACL user (besides `default`) allowed everything, replication included.
    public struct ACLUser: Sendable, Hashable {
        public let name: String
        public let password: String
        public init(name: String, password: String) {
            self.name = name
            self.password = password
        }
    }

    /// The name the Sentinels monitor the master under.
    public let masterName = "mymaster"
    /// The `requirepass`/`masterauth` of both servers, or nil for none.
    public let password: String?
    /// An ACL user configured on both servers, if asked for.
    public let aclUser: ACLUser?
    /// The temporary folder holding every server's folder.
    public let directory: String
    /// The server started as master (a replica after a failover).
    public let masterNode: Node
    /// The server started as replica (the master after a failover).
    public let replicaNode: Node
    /// The Sentinels' ports (empty when started without Sentinels).
    public let sentinelPorts: [Int]

    public var master: Endpoint { masterNode.endpoint }
    public var replica: Endpoint { replicaNode.endpoint }
    public var sentinels: [Endpoint] { sentinelPorts.map { Endpoint(host: "127.0.0.1", port: $0) } }

    private let redisServer: String
    private let redisSentinel: String
    private let redisCLIPath: String
    /// pid per port of every running server (Redis and Sentinel).
    private let pids = Mutex<[Int: Int32]>([:])

    /// A cluster shared by the non-destructive tests of one run (never stopped, failed over
    /// or reconfigured by them): password `backstop-shared-pw`, ACL user `backstop`.
    /// Started on first use; a start failure is reported to every caller.
    public static func shared() throws -> RedisCluster { try sharedResult.get() }
    private static let sharedResult = Result<RedisCluster, any Error> {
        try RedisCluster.start(password: "backstop-shared-pw",
                               aclUser: ACLUser(name: "backstop", password: "backstop-acl-pw"))
    }

    /// Starts master, replica and (if `withSentinels`) three Sentinels, and returns once the
    /// replica is in sync and every Sentinel knows the replica and the two other Sentinels,
    /// so `SENTINEL CKQUORUM` passes and `SENTINEL FAILOVER` can proceed.
    /// Throws when a binary is missing (naming its Debian package) or a server will not start.
    public static func start(password: String? = nil, aclUser: ACLUser? = nil,
                             withSentinels: Bool = true) throws -> RedisCluster {
        let cluster = try RedisCluster(password: password, aclUser: aclUser, withSentinels: withSentinels)
        do {
            try cluster.launch()
        } catch {
            cluster.shutdown()
            throw error
        }
        return cluster
    }

    private init(password: String?, aclUser: ACLUser?, withSentinels: Bool) throws {
        redisServer = try TestEnvironment.binary("redis-server", package: "redis-server")
        redisSentinel = withSentinels ? try TestEnvironment.binary("redis-sentinel", package: "redis-sentinel") : ""
        redisCLIPath = try TestEnvironment.binary("redis-cli", package: "redis-tools")
        self.password = password
        self.aclUser = aclUser
        directory = try TestEnvironment.makeTempDirectory("redis")
        masterNode = Node(name: "master", port: try TestEnvironment.freePort(), directory: directory + "/master")
        replicaNode = Node(name: "replica", port: try TestEnvironment.freePort(), directory: directory + "/replica")
        sentinelPorts = withSentinels ? try (0..<3).map { _ in try TestEnvironment.freePort() } : []
    }

    // MARK: Start-up

    private func launch() throws {
        try writeServerConfig(masterNode, replicaOf: nil)
        try writeServerConfig(replicaNode, replicaOf: masterNode.port)
        try startNode(masterNode)
        try startNode(replicaNode)
        try waitForReplicaSync(replica: replicaNode.port, master: masterNode.port)
        try waitForNoFork(masterNode)
        for (index, port) in sentinelPorts.enumerated() {
            try startSentinel(index: index, port: port)
        }
        if !sentinelPorts.isEmpty { try waitForSentinelDiscovery() }
    }

    private func writeServerConfig(_ node: Node, replicaOf masterPort: Int?) throws {
        try FileManager.default.createDirectory(atPath: node.directory, withIntermediateDirectories: true)
        var lines = [
            "port \(node.port)",
            "bind 127.0.0.1",
            "daemonize no",
            "dir \(node.directory)",
            "dbfilename dump.rdb",
            "save \"\"",
            "appendonly no",
            // Tests must not wait five seconds for a diskless sync to start.
            "repl-diskless-sync-delay 0",
            "repl-ping-replica-period 1",
        ]
        if let password {
            lines.append("requirepass \(quoted(password))")
            lines.append("masterauth \(quoted(password))")
        }
        if let aclUser {
            lines.append("user \(aclUser.name) on >\(aclUser.password) ~* &* +@all")
        }
        if let masterPort { lines.append("replicaof 127.0.0.1 \(masterPort)") }
        try (lines.joined(separator: "\n") + "\n").write(toFile: node.configFile, atomically: true, encoding: .utf8)
    }

    private func startNode(_ node: Node) throws {
        let pid = try TestProcesses.spawnWithCleanSignals(redisServer, [node.configFile], logFile: node.logFile)
        pids.withLock { $0[node.port] = pid }
        try waitForPing(port: node.port, what: "redis-server \(node.name) on port \(node.port) (log \(node.logFile))")
    }

    private func startSentinel(index: Int, port: Int) throws {
        let dir = directory + "/sentinel\(index)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var lines = [
            "port \(port)",
            "bind 127.0.0.1",
            "daemonize no",
            "dir \(dir)",
            "sentinel monitor \(masterName) 127.0.0.1 \(masterNode.port) 2",
            "sentinel down-after-milliseconds \(masterName) 1000",
            "sentinel failover-timeout \(masterName) 5000",
            "sentinel parallel-syncs \(masterName) 1",
        ]
        if let password { lines.append("sentinel auth-pass \(masterName) \(quoted(password))") }
        // Sentinel rewrites its config file (known replicas, epochs): it must stay writable.
        let config = dir + "/sentinel.conf"
        try (lines.joined(separator: "\n") + "\n").write(toFile: config, atomically: true, encoding: .utf8)
        let pid = try TestProcesses.spawnWithCleanSignals(redisSentinel, [config], logFile: dir + "/sentinel.log")
        pids.withLock { $0[port] = pid }
        try waitForPing(port: port, what: "redis-sentinel \(index) on port \(port) (log \(dir)/sentinel.log)")
    }

    private func waitForPing(port: Int, what: String) throws {
        try TestEnvironment.waitUntil(timeout: 20, what) {
            guard TestEnvironment.isListening(port: port) else { return false }
            return try redisCLI(port: port, ["PING"]) == "PONG"
        }
    }

    private func waitForReplicaSync(replica: Int, master: Int) throws {
        try TestEnvironment.waitUntil(timeout: 30, "replica on port \(replica) in sync with master on port \(master)") {
            let info = try redisCLI(port: replica, ["INFO", "replication"])
            return info.contains("master_port:\(master)") && info.contains("master_link_status:up")
        }
    }

    /// Waits until the server runs no background save (the replica's initial sync forks one,
    /// and a test's `SAVE` would fail with "Background save already in progress").
    public func waitForNoFork(_ node: Node) throws {
        try TestEnvironment.waitUntil(timeout: 30, "redis-server \(node.name) to finish its background save") {
            try redisCLI(port: node.port, ["INFO", "persistence"]).contains("rdb_bgsave_in_progress:0")
        }
    }

    private func waitForSentinelDiscovery() throws {
        for port in sentinelPorts {
            try TestEnvironment.waitUntil(timeout: 30, "sentinel on port \(port) to discover the replica and the other sentinels") {
                let fields = try sentinelMasterFields(sentinelPort: port)
                return fields["num-other-sentinels"] == "\(sentinelPorts.count - 1)" && fields["num-slaves"] == "1"
            }
        }
    }

    // MARK: Control

    /// Stops the server started as master (`SHUTDOWN NOSAVE`), keeping its folder and port.
    public func stopMaster() throws { try stop(masterNode) }
    /// Starts the server started as master again, on the same port with the same folder.
    public func startMaster() throws { try startNode(masterNode) }

    /// Stops one server with `SHUTDOWN NOSAVE` (SIGKILL if it does not go) and waits until
    /// its port is closed.
    public func stop(_ node: Node) throws {
        _ = try? redisCLI(port: node.port, ["SHUTDOWN", "NOSAVE"])
        do {
            try TestEnvironment.waitUntil(timeout: 10, "redis-server \(node.name) on port \(node.port) to stop") {
                !TestEnvironment.isListening(port: node.port)
            }
        } catch {
            if let pid = pids.withLock({ $0[node.port] }) { kill(pid, SIGKILL) }
            try TestEnvironment.waitUntil(timeout: 10, "redis-server \(node.name) on port \(node.port) to die") {
                !TestEnvironment.isListening(port: node.port)
            }
        }
        if let pid = pids.withLock({ $0.removeValue(forKey: node.port) }) { TestProcesses.unregister(pid: pid) }
    }

    /// Starts a stopped server again on its port and folder.
    public func start(_ node: Node) throws { try startNode(node) }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) a server, for tests of timeouts.
    public func signal(_ node: Node, _ signal: Int32) {
        if let pid = pids.withLock({ $0[node.port] }) { kill(pid, signal) }
    }

    /// The master address the first answering Sentinel reports (or the started master when
    /// there are no Sentinels).
    public func currentMaster() throws -> Endpoint {
        guard !sentinelPorts.isEmpty else { return master }
        var lastError: (any Error)?
        for port in sentinelPorts {
            do {
                let lines = try redisCLI(port: port, ["SENTINEL", "GET-MASTER-ADDR-BY-NAME", masterName])
                    .split(separator: "\n").map(String.init)
                if lines.count == 2, let p = Int(lines[1]) { return Endpoint(host: lines[0], port: p) }
                lastError = TestSupportError("sentinel \(port) answered \(lines)")
            } catch { lastError = error }
        }
        throw lastError ?? TestSupportError("no sentinel answered")
    }

    /// The node currently at `endpoint`.
    public func node(at endpoint: Endpoint) -> Node? {
        [masterNode, replicaNode].first { $0.port == endpoint.port }
    }

    /// Runs `SENTINEL FAILOVER mymaster` and waits until every Sentinel names the new master,
    /// the new master reports role master, and the old master (if running) has become its
    /// replica and is in sync. Returns the new master.
    @discardableResult
    public func failover(timeout: Double = 60) throws -> Endpoint {
        guard let first = sentinelPorts.first else { throw TestSupportError("failover() needs the Sentinels") }
        let old = try currentMaster()
        guard let oldNode = node(at: old), let newNode = [masterNode, replicaNode].first(where: { $0.port != old.port }) else {
            throw TestSupportError("sentinel names \(old), which is not a server of this cluster")
        }
        // A replica that has not been seen recently by Sentinel is "no good" for a short while.
        try TestEnvironment.waitUntil(timeout: timeout, "SENTINEL FAILOVER \(masterName) to be accepted") {
            let answer = try redisCLI(port: first, ["SENTINEL", "FAILOVER", masterName])
            return answer == "OK"
        }
        try TestEnvironment.waitUntil(timeout: timeout, "all sentinels to name \(newNode.endpoint) as master") {
            for port in sentinelPorts {
                let lines = try redisCLI(port: port, ["SENTINEL", "GET-MASTER-ADDR-BY-NAME", masterName]).split(separator: "\n")
                guard lines.count == 2, Int(lines[1]) == newNode.port else { return false }
            }
            return try redisCLI(port: newNode.port, ["ROLE"]).hasPrefix("master")
        }
        if isRunning(oldNode) {
            try waitForReplicaSync(replica: oldNode.port, master: newNode.port)
            try TestEnvironment.waitUntil(timeout: timeout, "sentinels to see \(oldNode.endpoint) as a replica of \(newNode.endpoint)") {
                for port in sentinelPorts {
                    let fields = try sentinelMasterFields(sentinelPort: port)
                    guard fields["num-slaves"] == "1", fields["flags"] == "master" else { return false }
                }
                return true
            }
            try waitForNoFork(newNode)
        }
        return newNode.endpoint
    }

    /// Makes the replica eligible (priority 100) or not (priority 0) for promotion. With a
    /// replica and `down-after-milliseconds 1000`, the Sentinels fail a stopped master over
    /// within seconds; a test that wants the master to stay down turns promotion off first.
    /// (`SENTINEL FAILOVER` then fails with NOGOODSLAVE.)
    public func setReplicaPromotable(_ promotable: Bool) throws {
        for node in [masterNode, replicaNode] where isRunning(node) {
            try redisCLI(port: node.port, ["CONFIG", "SET", "replica-priority", promotable ? "100" : "0"])
        }
    }

    /// Whether the server of `node` is running (started and not stopped by this cluster).
    public func isRunning(_ node: Node) -> Bool { pids.withLock { $0[node.port] != nil } }

    /// `SENTINEL MASTER mymaster` from one Sentinel, as field → value.
    public func sentinelMasterFields(sentinelPort: Int) throws -> [String: String] {
        let lines = try redisCLI(port: sentinelPort, ["SENTINEL", "MASTER", masterName]).split(separator: "\n", omittingEmptySubsequences: false)
        var fields: [String: String] = [:]
        var index = 0
        while index + 1 < lines.count {
            fields[String(lines[index])] = String(lines[index + 1])
            index += 2
        }
        return fields
    }

    /// Runs `redis-cli -p port args…` and returns its trimmed output. The password reaches
    /// redis-cli through `REDISCLI_AUTH` (never argv), and only for the Redis servers, not the
    /// Sentinels. An `(error) …` answer is returned as text, not thrown, so tests can inspect it.
    @discardableResult
    public func redisCLI(port: Int, _ arguments: [String]) throws -> String {
        var environment: [String: String] = [:]
        if let password, !sentinelPorts.contains(port) { environment["REDISCLI_AUTH"] = password }
        let result = try TestProcesses.run(redisCLIPath, ["-h", "127.0.0.1", "-p", "\(port)"] + arguments,
                                           environment: environment)
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs redis-cli with free-form arguments (for `--rdb FILE`, `--pipe` and the like)
    /// against `port`, authenticated like `redisCLI(port:_:)`; stdin optional.
    @discardableResult
    public func redisCLIRaw(port: Int, _ arguments: [String], stdin: Data? = nil, check: Bool = true) throws -> CommandResult {
        var environment: [String: String] = [:]
        if let password, !sentinelPorts.contains(port) { environment["REDISCLI_AUTH"] = password }
        return try TestProcesses.run(redisCLIPath, ["-h", "127.0.0.1", "-p", "\(port)"] + arguments,
                                     environment: environment, stdin: stdin, check: check)
    }

    /// The path of redis-server (to start extra throwaway servers, e.g. to load an RDB).
    public var redisServerPath: String { redisServer }
    /// The path of redis-cli.
    public var redisCLIExecutable: String { redisCLIPath }

    /// Kills every server of the cluster now (the exit hook would do it later).
    public func shutdown() {
        let all = pids.withLock { current -> [Int32] in
            let values = Array(current.values)
            current.removeAll()
            return values
        }
        for pid in all {
            kill(pid, SIGKILL)
            TestProcesses.unregister(pid: pid)
        }
    }

    private func quoted(_ value: String) -> String {
        "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}

/// A single throwaway redis-server (no replica, no Sentinel) on a free port, e.g. to load a
/// snapshot file and count its keys. Killed by `stop()` or at exit.
public final class StandaloneRedis: Sendable {
    public let port: Int
    public let directory: String
    private let pid: Int32
    private let cli: String

    public var endpoint: Endpoint { Endpoint(host: "127.0.0.1", port: port) }

    /// Starts redis-server in `directory` (a new temp folder when nil), loading `dbfilename`
    /// from it if present; `extraConfig` lines are appended to the config.
    public init(directory: String? = nil, dbfilename: String = "dump.rdb", extraConfig: [String] = []) throws {
        let server = try TestEnvironment.binary("redis-server", package: "redis-server")
        cli = try TestEnvironment.binary("redis-cli", package: "redis-tools")
        self.directory = try directory ?? TestEnvironment.makeTempDirectory("redis-standalone")
        port = try TestEnvironment.freePort()
        let config = self.directory + "/standalone.conf"
        let lines = ["port \(port)", "bind 127.0.0.1", "daemonize no", "dir \(self.directory)",
                     "dbfilename \(dbfilename)", "save \"\"", "appendonly no", "repl-diskless-sync-delay 0"] + extraConfig
        try (lines.joined(separator: "\n") + "\n").write(toFile: config, atomically: true, encoding: .utf8)
        pid = try TestProcesses.spawnWithCleanSignals(server, [config], logFile: self.directory + "/standalone.log")
        let port = self.port, cli = self.cli, log = self.directory + "/standalone.log"
        try TestEnvironment.waitUntil(timeout: 20, "standalone redis-server on port \(port) (log \(log))") {
            let out = try TestProcesses.run(cli, ["-p", "\(port)", "PING"]).stdout
            return out.hasPrefix("PONG")
        }
    }

    /// Runs redis-cli against this server (no password).
    @discardableResult
    public func cli(_ arguments: [String]) throws -> String {
        try TestProcesses.run(cli, ["-h", "127.0.0.1", "-p", "\(port)"] + arguments).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the server, for timeout tests.
    public func signal(_ signal: Int32) { kill(pid, signal) }

    public func stop() {
        kill(pid, SIGKILL)
        TestProcesses.unregister(pid: pid)
    }
}
