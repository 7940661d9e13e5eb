import Alerting
import BackstopCore
import BackstopTestSupport
import Foundation
import Health
import HTTPClient
import Testing

/// The issue's scenario at library level: the real health probes against a real Redis, the
/// pipeline, a flaky webhook receiver and a real Alertmanager. Stopping the Redis master
/// makes RedisDown appear in alerts.json, in a firing webhook payload (delivered once despite
/// two 500s) and in Alertmanager; starting it again brings the resolved payload and removes
/// alerts.json.
@Suite struct EndToEndTests {
    @Test func stoppingAndStartingTheRedisMaster() async throws {
        let cluster = try await Blocking.run { try RedisCluster.start(withSentinels: false) }
        defer { cluster.shutdown() }
        let hook = try HTTPReceiver()
        defer { hook.stop() }
        let amHook = try HTTPReceiver()
        defer { amHook.stop() }
        let am = try await AlertmanagerServer.start(webhookURL: amHook.url)
        defer { am.stop() }
        let dir = try TestEnvironment.makeTempDirectory("alerts-e2e")
        let config = try BackstopConfig(environment: [
            "BACKUP_DIR": dir, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": "\(cluster.master.port)",
            "PGHOST": "127.0.0.1", "PGPORT": "\(try TestEnvironment.freePort())", "HEALTH_PROBE_TIMEOUT": "2s",
        ])
        let alerting = try AlertingConfig(environment: [
            "ALERT_WEBHOOK_URL": hook.url + "/alerts", "ALERTMANAGER_URL": am.url,
            "ALERT_WEBHOOK_RETRY_BACKOFF": "100ms", "ALERT_WEBHOOK_TIMEOUT": "3s",
        ])
        let pipeline = AlertPipeline(rules: AlertRules(), config: alerting, backupDir: dir, evaluationInterval: .seconds(5))
        let checker = HealthChecker(config: config)
        // PostgreSQL is not part of this scenario (nothing listens on PGPORT): leave it out.
        func round() async -> AlertChanges {
            var snapshot = HealthSnapshot(report: await checker.check())
            snapshot.postgres = []
            return await pipeline.evaluate(snapshot)
        }

        #expect(await round().firing.isEmpty)
        #expect(!FileSystem.exists(dir + "/alerts.json"))

        hook.failNext(2, status: 500)
        try await Blocking.run { try cluster.stopMaster() }
        let down = await round()
        #expect(down.started.map(\.name) == ["RedisDown"])
        let file = try #require(try JSONSerialization.jsonObject(with: Data(FileSystem.read(dir + "/alerts.json"))) as? [[String: Any]])
        #expect((file.first?["labels"] as? [String: String])?["address"] == cluster.master.description)

        let attempts = try await hook.waitForRequests(3)
        #expect(attempts.map(\.answered) == [500, 500, 200])
        let firing = try #require(try attempts[2].json() as? [String: Any])
        #expect(firing["status"] as? String == "firing")
        #expect(((firing["alerts"] as? [[String: Any]])?.first?["labels"] as? [String: String])?["alertname"] == "RedisDown")

        try await AsyncWait.until(timeout: 20, "RedisDown in Alertmanager") {
            let r = try await HTTP.send(HTTPRequest(method: "GET", url: am.url + "/api/v2/alerts"))
            let list = try JSONSerialization.jsonObject(with: Data(r.body)) as? [[String: Any]] ?? []
            return list.contains { ($0["labels"] as? [String: String])?["alertname"] == "RedisDown" }
        }

        try await Blocking.run { try cluster.startMaster() }
        try await AsyncWait.until(timeout: 20, "the Redis master to answer the probe again") {
            await round().firing.isEmpty
        }
        #expect(!FileSystem.exists(dir + "/alerts.json"))
        let all = try await hook.waitForRequests(4)
        let resolved = try #require(try all[3].json() as? [String: Any])
        #expect(resolved["status"] as? String == "resolved")
        try await AsyncWait.until(timeout: 20, "RedisDown to leave Alertmanager") {
            let r = try await HTTP.send(HTTPRequest(method: "GET", url: am.url + "/api/v2/alerts"))
            return (try JSONSerialization.jsonObject(with: Data(r.body)) as? [Any])?.isEmpty == true
        }
        #expect(hook.requests.filter { $0.answered == 200 }.count == 2) // one firing, one resolved
        await pipeline.shutdown()
    }
}

/// The Sentinel facts as the real probes report them (the shared cluster is not changed).
@Suite struct SentinelFactsTests {
    @Test func aDeadSentinelAndAMissingOneAreReported() async throws {
        let cluster = try await Blocking.run { try RedisCluster.shared() }
        let dead = Endpoint(host: "127.0.0.1", port: try TestEnvironment.freePort())
        func snapshot(_ sentinels: [Endpoint]) async throws -> HealthSnapshot {
            let config = try BackstopConfig(environment: [
                "BACKUP_DIR": try TestEnvironment.makeTempDirectory("alerts-sentinel"),
                "REDIS_PASSWORD": cluster.password ?? "", "REDIS_SENTINEL_MASTER": cluster.masterName,
                "REDIS_SENTINELS": sentinels.map(\.description).joined(separator: ","), "HEALTH_PROBE_TIMEOUT": "2s",
            ])
            var s = HealthSnapshot(report: await HealthChecker(config: config).check())
            s.postgres = []
            return s
        }
        let healthy = try await snapshot(cluster.sentinels)
        let facts = try #require(healthy.sentinel)
        #expect(facts.sentinels.allSatisfy(\.up) && facts.quorumOK == true && facts.mastersAgree && facts.knownSentinels == 3)
        #expect(facts.reportedMasters.allSatisfy { $0 == cluster.master.description })
        #expect(AlertRules().evaluate(healthy).isEmpty)

        let degraded = try await snapshot(cluster.sentinels + [dead])
        let alerts = AlertRules().evaluate(degraded)
        #expect(Set(alerts.map { "\($0.labels["reason"] ?? "")@\($0.labels["sentinel"] ?? "")" }) == ["sentinel_down@\(dead.description)", "sentinels_missing@"])
        #expect(alerts.allSatisfy { $0.name == "RedisSentinelDegraded" && $0.labels["master_name"] == cluster.masterName })
    }
}
