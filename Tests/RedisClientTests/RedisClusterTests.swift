import BackstopCore
import BackstopTestSupport
import Foundation
import Testing

/// The test servers themselves: the other Redis tests rely on these behaviours.
@Suite("Redis test cluster", .timeLimit(.minutes(3)))
struct RedisClusterTests {
    @Test("master, replica and sentinels start, and a failover swaps the roles")
    func startAndFailover() throws {
        let cluster = try RedisCluster.start(password: "cluster-pw")
        defer { cluster.shutdown() }
        #expect(try cluster.redisCLI(port: cluster.master.port, ["ROLE"]).hasPrefix("master"))
        #expect(try cluster.redisCLI(port: cluster.replica.port, ["ROLE"]).hasPrefix("slave"))
        #expect(try cluster.currentMaster() == cluster.master)
        let newMaster = try cluster.failover()
        #expect(newMaster == cluster.replica)
        #expect(try cluster.currentMaster() == cluster.replica)
        #expect(try cluster.redisCLI(port: cluster.master.port, ["ROLE"]).hasPrefix("slave"))
    }

    @Test("a stopped master comes back on the same port with its data")
    func stopAndStart() throws {
        let cluster = try RedisCluster.start(withSentinels: false)
        defer { cluster.shutdown() }
        try cluster.redisCLI(port: cluster.master.port, ["SET", "k", "v"])
        #expect(try cluster.redisCLI(port: cluster.master.port, ["SAVE"]) == "OK")
        try cluster.stopMaster()
        #expect(!TestEnvironment.isListening(port: cluster.master.port))
        try cluster.startMaster()
        #expect(try cluster.redisCLI(port: cluster.master.port, ["GET", "k"]) == "v")
    }
}
