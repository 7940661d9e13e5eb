import BackstopCore
import BackstopTestSupport
import Foundation
import Testing
import RedisClient

/// Sentinel queries and the one-round view the health loop uses, against real Sentinels.
@Suite("Sentinel view against real Sentinels", .timeLimit(.minutes(3)))
struct SentinelViewTests {
    @Test("typed Sentinel queries on the shared cluster")
    func queries() throws {
        let cluster = try RedisCluster.shared()
        let sentinel = try RedisConnection(to: cluster.sentinels[0], timeout: 5)
        #expect(try sentinel.sentinelGetMasterAddr(cluster.masterName) == cluster.master)
        #expect(try sentinel.sentinelGetMasterAddr("no-such-master") == nil)
        let quorum = try sentinel.sentinelCKQuorum(cluster.masterName)
        #expect(quorum.ok)
        #expect(quorum.message.contains("3 usable"))
        #expect(throws: RedisError.self) { _ = try sentinel.sentinelCKQuorum("no-such-master") }
        let state = try sentinel.sentinelMaster(cluster.masterName)
        #expect(state.numOtherSentinels == 2)
        // Sentinel may also list 127.0.0.1:0: an RDB-only client (an earlier test's
        // replication snapshot of this shared master) seen in INFO during its transfer.
        let replicas = try sentinel.sentinelReplicas(cluster.masterName)
        let listening = replicas.filter { $0["port"] != "0" }
        #expect(state.numReplicas == replicas.count)
        #expect(state.quorum == 2)
        #expect(state.flags == ["master"])
        #expect(state.address == cluster.master)
        let others = try sentinel.sentinelSentinels(cluster.masterName)
        #expect(Set(others.compactMap { $0["port"].flatMap { Int($0) } }) == Set(cluster.sentinelPorts.dropFirst()))
        #expect(listening.map { $0["port"] } == ["\(cluster.replica.port)"])
        guard case .sentinel(let masters) = try sentinel.role() else {
            Issue.record("sentinel does not report role sentinel")
            return
        }
        #expect(masters == [cluster.masterName])
    }

    @Test("all Sentinels up: agreement, quorum, counts; a dead Sentinel is reported down")
    func view() async throws {
        let cluster = try RedisCluster.shared()
        let view = await SentinelView.resolve(sentinels: cluster.sentinels, masterName: cluster.masterName, timeout: 2)
        #expect(view.reports.allSatisfy { $0.up })
        #expect(view.master == cluster.master)
        #expect(view.agreed)
        #expect(view.quorumOK)
        #expect(view.masterOK)
        #expect(view.knownSentinels == 3)
        // The one real replica; a port-0 entry left by an RDB-only client is not counted.
        #expect(view.knownReplicas == 1,
                "Sentinel's replicas: \((try? cluster.redisCLI(port: cluster.sentinelPorts[0], ["SENTINEL", "REPLICAS", cluster.masterName])) ?? "?")")
        #expect(try view.requireMaster() == cluster.master)

        let dead = Endpoint(host: "127.0.0.1", port: try TestEnvironment.freePort())
        let partial = await SentinelView.resolve(sentinels: [dead] + cluster.sentinels, masterName: cluster.masterName, timeout: 1)
        #expect(partial.reports.map(\.up) == [false, true, true, true])
        #expect(partial.reports[0].error?.contains("\(dead)") == true)
        #expect(partial.master == cluster.master)
        #expect(partial.agreed)

        let unknown = await SentinelView.resolve(sentinels: cluster.sentinels, masterName: "other", timeout: 2)
        #expect(unknown.master == nil)
        #expect(!unknown.agreed)
        #expect(!unknown.quorumOK)
        #expect(throws: SentinelUnavailable.self) { try unknown.requireMaster() }
    }

    @Test("disagreement is seen: the majority's master wins, agreement is false")
    func disagreement() {
        let a = Endpoint(host: "10.0.0.1", port: 6379), b = Endpoint(host: "10.0.0.2", port: 6379)
        func report(_ port: Int, _ master: Endpoint?) -> SentinelView.Report {
            SentinelView.Report(sentinel: Endpoint(host: "s", port: port), up: true, master: master,
                                quorum: QuorumCheck(ok: true, message: "OK"), state: nil, error: nil)
        }
        let view = SentinelView(masterName: "m", reports: [report(1, b), report(2, a), report(3, a)])
        #expect(view.master == a)
        #expect(!view.agreed)
        #expect(!view.masterOK)
        let tie = SentinelView(masterName: "m", reports: [report(1, b), report(2, a)])
        #expect(tie.master == b)
    }

    @Test("after SENTINEL FAILOVER the view names the new master")
    func failover() async throws {
        let cluster = try RedisCluster.start(password: "failover-pw")
        defer { cluster.shutdown() }
        let before = await SentinelView.resolve(sentinels: cluster.sentinels, masterName: cluster.masterName, timeout: 2)
        #expect(before.master == cluster.master)
        #expect(before.agreed)
        try cluster.failover()
        let (named, after) = try await SentinelView.resolveMaster(sentinels: cluster.sentinels, masterName: cluster.masterName, timeout: 2)
        #expect(named == cluster.replica)
        #expect(after.master == cluster.replica)
        #expect(after.agreed)
        #expect(after.quorumOK)
        let role = try await Redis.withConnection(to: try after.requireMaster(), password: Secret("failover-pw"), timeout: 5) {
            try $0.role().name
        }
        #expect(role == "master")
    }

    @Test("a stopped master that cannot be failed over: the Sentinels flag it down")
    func masterDown() async throws {
        let cluster = try RedisCluster.start()
        defer { cluster.shutdown() }
        try cluster.setReplicaPromotable(false)
        try cluster.stopMaster()
        var view = await SentinelView.resolve(sentinels: cluster.sentinels, masterName: cluster.masterName, timeout: 2)
        let deadline = Date().addingTimeInterval(20)
        while view.masterOK && Date() < deadline {
            try await Task.sleep(for: .milliseconds(200))
            view = await SentinelView.resolve(sentinels: cluster.sentinels, masterName: cluster.masterName, timeout: 2)
        }
        #expect(!view.masterOK)
        #expect(view.master == cluster.master)
        #expect(view.upReports.contains { $0.state?.isDown == true })
        try cluster.startMaster()
        while !view.masterOK && Date() < deadline.addingTimeInterval(20) {
            try await Task.sleep(for: .milliseconds(200))
            view = await SentinelView.resolve(sentinels: cluster.sentinels, masterName: cluster.masterName, timeout: 2)
        }
        #expect(view.masterOK)
    }
}
