import Alerting
import BackstopCore
import BackstopTestSupport
import Foundation
import HTTPClient
import Testing

/// Against a real prometheus-alertmanager: what Backstop posts shows up in its API with the
/// same fingerprint, goes away when resolved, and reaches Alertmanager's own webhook.
@Suite struct AlertmanagerIntegrationTests {
    func activeAlerts(_ am: AlertmanagerServer) async throws -> [[String: Any]] {
        let response = try await HTTP.send(HTTPRequest(method: "GET", url: am.url + "/api/v2/alerts"))
        #expect(response.status == 200)
        return try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [[String: Any]])
    }

    @Test func firingAndResolvedAlertsReachAlertmanager() async throws {
        let hook = try HTTPReceiver()
        defer { hook.stop() }
        let am = try await AlertmanagerServer.start(webhookURL: hook.url + "/am")
        defer { am.stop() }
        let config = AlertingConfig(requestTimeout: .seconds(5), retryBackoff: .milliseconds(200), alertmanagerURLs: [am.url + "/"])
        let pipeline = AlertPipeline(rules: AlertRules(), config: config, backupDir: try TestEnvironment.makeTempDirectory("alerts-am"),
                                     evaluationInterval: .seconds(5))
        let t0 = WallClock.now()
        let down = HealthSnapshot(time: t0, redis: [RedisFacts(address: "127.0.0.1:6390", role: "master", up: false)])
        let changes = await pipeline.evaluate(down)
        let fingerprint = try #require(changes.started.first?.fingerprint)

        var found: [String: Any]?
        try await AsyncWait.until(timeout: 20, "RedisDown in Alertmanager (log:\n\(am.log))") {
            found = try await activeAlerts(am).first { ($0["labels"] as? [String: String])?["alertname"] == "RedisDown" }
            return found != nil
        }
        let alert = try #require(found)
        #expect(alert["fingerprint"] as? String == fingerprint)
        #expect((alert["labels"] as? [String: String]) == changes.started[0].labels)
        #expect((alert["annotations"] as? [String: String])?["summary"] == changes.started[0].alert.summary)
        #expect((alert["status"] as? [String: Any])?["state"] as? String == "active")
        let endsAt = try #require(WallClock.parseRFC3339(alert["endsAt"] as? String ?? ""))
        #expect(endsAt > t0 + 200) // 4 × max(5 s, 60 s) ahead: stays active between evaluations

        // Alertmanager's own webhook delivers it (the chain an operator would build).
        try await hook.waitForRequests(1, timeout: 20)
        let notified = try #require(try hook.requests[0].json() as? [String: Any])
        #expect(notified["version"] as? String == "4")
        #expect((notified["alerts"] as? [[String: Any]])?.first?["fingerprint"] as? String == fingerprint)

        // Still firing on the next evaluation: re-posted, still one alert.
        await pipeline.evaluate(HealthSnapshot(time: t0 + 1, redis: down.redis))
        // Resolved: endsAt in the past makes it leave the active list.
        await pipeline.evaluate(HealthSnapshot(time: WallClock.now(), redis: [RedisFacts(address: "127.0.0.1:6390", role: "master", up: true)]))
        try await AsyncWait.until(timeout: 20, "RedisDown to leave Alertmanager") {
            try await activeAlerts(am).isEmpty
        }
        try await AsyncWait.until(timeout: 20, "the resolved notification") {
            try hook.requests.contains { (try $0.json() as? [String: Any])?["status"] as? String == "resolved" }
        }
        await pipeline.shutdown()
    }
}
