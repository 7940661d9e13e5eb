import Alerting
import BackstopCore
import BackstopMetrics
import BackstopTestSupport
import Foundation
import HTTPClient
import Synchronization
import Testing

/// The pipeline with its real sinks: files in a temp BACKUP_DIR, webhooks to HTTP receivers
/// on loopback.
@Suite struct AlertPipelineTests {
    static func redisDown(_ time: Double, up: Bool) -> HealthSnapshot {
        HealthSnapshot(time: time, redis: [RedisFacts(address: "127.0.0.1:6379", role: "master", up: up, error: up ? nil : "connection refused")])
    }

    static func fastConfig(webhooks: [String] = [], alertmanagers: [String] = []) -> AlertingConfig {
        AlertingConfig(webhookURLs: webhooks, requestTimeout: .seconds(2), maxAttempts: 5,
                       retryBackoff: .milliseconds(50), maxBackoff: .milliseconds(200), alertmanagerURLs: alertmanagers)
    }

    static func waitIdle(_ pipeline: AlertPipeline, timeout: Double = 10) async throws {
        try await AsyncWait.until(timeout: timeout, "deliveries to finish") { pipeline.deliveriesIdle }
    }

    @Test func alertsFileAppearsAndGoesAndEveryChangeIsLogged() async throws {
        let dir = try TestEnvironment.makeTempDirectory("alerts-file")
        // A file left by an earlier run must not survive the first evaluation.
        try AtomicFile.write("[{\"stale\": true}]", to: dir + "/alerts.json")
        let registry = MetricsRegistry()
        let pipeline = AlertPipeline(rules: AlertRules(), config: Self.fastConfig(), backupDir: dir, evaluationInterval: .seconds(60), metrics: registry)
        let t0 = WallClock.now()
        await pipeline.evaluate(Self.redisDown(t0, up: true))
        #expect(!FileSystem.exists(dir + "/alerts.json"))

        let changes = await pipeline.evaluate(Self.redisDown(t0 + 60, up: false))
        #expect(changes.started.map(\.name) == ["RedisDown"])
        let data = try FileSystem.read(dir + "/alerts.json")
        let array = try #require(try JSONSerialization.jsonObject(with: Data(data)) as? [[String: Any]])
        #expect(array.count == 1)
        #expect((array[0]["labels"] as? [String: String])?["alertname"] == "RedisDown")
        #expect(array[0]["status"] as? String == "firing")
        #expect(WallClock.parseRFC3339(array[0]["startsAt"] as! String).map { abs($0 - (t0 + 60)) < 0.01 } == true)
        #expect(registry.value(Family.alertsFiring, ["alertname": "RedisDown", "severity": "critical"]) == 1)

        // Still firing: startsAt unchanged in the file.
        await pipeline.evaluate(Self.redisDown(t0 + 120, up: false))
        let again = try JSONSerialization.jsonObject(with: Data(try FileSystem.read(dir + "/alerts.json"))) as? [[String: Any]]
        #expect(again?.first?["startsAt"] as? String == array[0]["startsAt"] as? String)

        await pipeline.evaluate(Self.redisDown(t0 + 180, up: true))
        #expect(!FileSystem.exists(dir + "/alerts.json"))
        #expect(registry.value(Family.alertsFiring, ["alertname": "RedisDown", "severity": "critical"]) == 0)
        #expect(try FileSystem.list(dir).filter { $0.contains(".tmp") }.isEmpty)

        let log = String(decoding: try FileSystem.read(dir + "/logs/health.log"), as: UTF8.self).split(separator: "\n")
        #expect(log.count == 2)
        #expect(log[0].contains(" FIRING RedisDown ") && log[0].contains("address=127.0.0.1:6379"))
        #expect(log[1].contains(" RESOLVED RedisDown ") && log[1].contains("fired_for=2m"))
    }

    @Test func readersNeverSeeAPartialAlertsFile() async throws {
        let dir = try TestEnvironment.makeTempDirectory("alerts-atomic")
        let pipeline = AlertPipeline(rules: AlertRules(), config: Self.fastConfig(), backupDir: dir, evaluationInterval: .seconds(60))
        let stop = Flag()
        let counts = Mutex((reads: 0, bad: 0))
        let finished = Flag()
        // A plain thread, not a task: a busy reader must not occupy the cooperative pool.
        let reader = Thread {
            while !stop.isSet {
                if let bytes = try? FileSystem.read(dir + "/alerts.json") {
                    let ok = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [Any] != nil
                    counts.withLock { $0.reads += 1; if !ok { $0.bad += 1 } }
                }
            }
            finished.set()
        }
        reader.start()
        let t0 = WallClock.now()
        for i in 0..<200 {
            // Many alerts make the file big enough that a torn write would show.
            let disks = (0..<(i % 2 == 0 ? 40 : 20)).map { DiskFacts(path: "/d\($0)", totalBytes: 100, freeBytes: 1) }
            await pipeline.evaluate(HealthSnapshot(time: t0 + Double(i), disks: disks))
        }
        stop.set()
        try await AsyncWait.until(timeout: 10, "the reader thread") { finished.isSet }
        let (reads, bad) = counts.withLock { $0 }
        #expect(reads > 0)
        #expect(bad == 0)
    }

    @Test func receiverFailingTwiceGetsTheAlertOnceDelivered() async throws {
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }
        receiver.failNext(2, status: 500)
        let dir = try TestEnvironment.makeTempDirectory("alerts-retry")
        let registry = MetricsRegistry()
        let pipeline = AlertPipeline(rules: AlertRules(), config: Self.fastConfig(webhooks: [receiver.url + "/hook"]),
                                     backupDir: dir, evaluationInterval: .seconds(60), metrics: registry)
        #expect(registry.value(Family.webhookDeliveries, ["result": "success"]) == 0)
        let t0 = WallClock.now()
        await pipeline.evaluate(Self.redisDown(t0, up: false))
        try await receiver.waitForRequests(3)
        try await Self.waitIdle(pipeline)
        let requests = receiver.requests
        #expect(requests.map(\.answered) == [500, 500, 200])
        #expect(requests.filter { $0.answered == 200 }.count == 1)
        #expect(Set(requests.map(\.bodyText)).count == 1) // the same payload each time
        let payload = try #require(try requests[2].json() as? [String: Any])
        #expect(payload["version"] as? String == "4")
        #expect(payload["status"] as? String == "firing")
        #expect((payload["alerts"] as? [[String: Any]])?.count == 1)
        #expect(registry.value(Family.webhookDeliveries, ["result": "success"]) == 1)
        #expect(registry.value(Family.webhookDeliveries, ["result": "failure"]) == 0)

        // Resolution sends a resolved payload; a quiet evaluation sends nothing.
        await pipeline.evaluate(Self.redisDown(t0 + 60, up: true))
        try await receiver.waitForRequests(4)
        try await Self.waitIdle(pipeline)
        let resolved = try #require(try receiver.requests[3].json() as? [String: Any])
        #expect(resolved["status"] as? String == "resolved")
        let alert = try #require((resolved["alerts"] as? [[String: Any]])?.first)
        #expect(alert["status"] as? String == "resolved")
        #expect(WallClock.parseRFC3339(alert["endsAt"] as! String).map { abs($0 - (t0 + 60)) < 0.01 } == true)
        await pipeline.evaluate(Self.redisDown(t0 + 120, up: true))
        try await Task.sleep(for: .milliseconds(300))
        #expect(receiver.requests.count == 4)
        #expect(registry.value(Family.webhookDeliveries, ["result": "success"]) == 2)
    }

    @Test func givingUpCountsOneFailure() async throws {
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }
        receiver.failNext(100, status: 503)
        let registry = MetricsRegistry()
        var config = Self.fastConfig(webhooks: [receiver.url])
        config.maxAttempts = 3
        let pipeline = AlertPipeline(rules: AlertRules(), config: config, backupDir: try TestEnvironment.makeTempDirectory("alerts-giveup"),
                                     evaluationInterval: .seconds(60), metrics: registry)
        await pipeline.evaluate(Self.redisDown(WallClock.now(), up: false))
        try await receiver.waitForRequests(3)
        try await Self.waitIdle(pipeline)
        #expect(receiver.requests.count == 3)
        #expect(registry.value(Family.webhookDeliveries, ["result": "failure"]) == 1)
        #expect(registry.value(Family.webhookDeliveries, ["result": "success"]) == 0)

        // A 4xx is not retried.
        let picky = try HTTPReceiver()
        defer { picky.stop() }
        picky.failNext(100, status: 401)
        let p2 = AlertPipeline(rules: AlertRules(), config: Self.fastConfig(webhooks: [picky.url]), backupDir: try TestEnvironment.makeTempDirectory("alerts-401"),
                               evaluationInterval: .seconds(60), metrics: registry)
        await p2.evaluate(Self.redisDown(WallClock.now(), up: false))
        try await picky.waitForRequests(1)
        try await Self.waitIdle(p2)
        #expect(picky.requests.count == 1)
        #expect(registry.value(Family.webhookDeliveries, ["result": "failure"]) == 2)
    }

    @Test func deadReceiverDelaysNeitherEvaluateNorOtherReceivers() async throws {
        let dead = try HTTPReceiver()
        dead.neverAnswer()
        let healthy = try HTTPReceiver()
        defer {
            dead.stop()
            healthy.stop()
        }
        var config = Self.fastConfig(webhooks: [dead.url, healthy.url])
        config.requestTimeout = .seconds(30)
        let pipeline = AlertPipeline(rules: AlertRules(), config: config, backupDir: try TestEnvironment.makeTempDirectory("alerts-dead"),
                                     evaluationInterval: .seconds(60))
        let t0 = WallClock.now()
        var start = MonotonicClock.seconds()
        await pipeline.evaluate(Self.redisDown(t0, up: false))
        // The receiver's timeout is 30 s; an evaluation that waited for it would take that long.
        // The bounds leave room for fsync on a busy machine.
        #expect(MonotonicClock.seconds() - start < 2)
        try await dead.waitForRequests(1)
        try await healthy.waitForRequests(1, timeout: 5)
        // The dead receiver holds its request; evaluations keep returning at once.
        start = MonotonicClock.seconds()
        for i in 1...5 {
            await pipeline.evaluate(Self.redisDown(t0 + Double(i), up: i % 2 == 0))
        }
        #expect(MonotonicClock.seconds() - start < 5)
        // The healthy receiver keeps up: its newest payload is the newest state (firing again
        // since t0+5; queued changes of one group may be merged, so count only the end state).
        let latest = WallClock.rfc3339(t0 + 5, fractional: true)
        try await AsyncWait.until(timeout: 5, "the newest state at the healthy receiver") {
            guard let last = healthy.requests.last, let json = try last.json() as? [String: Any],
                  let alerts = json["alerts"] as? [[String: Any]] else { return false }
            return json["status"] as? String == "firing" && alerts.contains { $0["startsAt"] as? String == latest && $0["status"] as? String == "firing" }
        }
        #expect(healthy.requests.count >= 2)
        #expect(dead.requests.count == 1) // still stuck on its first request
        #expect(!pipeline.deliveriesIdle)
        // Shutdown aborts the hanging request instead of waiting 30 s.
        start = MonotonicClock.seconds()
        await pipeline.shutdown(grace: .milliseconds(200))
        #expect(MonotonicClock.seconds() - start < 3)
    }

    @Test func slackFormatBearerTokenAndRepeatInterval() async throws {
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }
        var config = Self.fastConfig(webhooks: [receiver.url])
        config.webhookFormat = .slack
        config.webhookBearerToken = Secret("hook-token")
        config.repeatInterval = .seconds(600)
        let pipeline = AlertPipeline(rules: AlertRules(), config: config, backupDir: try TestEnvironment.makeTempDirectory("alerts-slack"),
                                     evaluationInterval: .seconds(60))
        let t0 = WallClock.now()
        await pipeline.evaluate(Self.redisDown(t0, up: false))
        try await receiver.waitForRequests(1)
        let first = receiver.requests[0]
        #expect(first.headers["authorization"] == "Bearer hook-token")
        let text = try #require((try first.json() as? [String: Any])?["text"] as? String)
        #expect(text.hasPrefix("[FIRING:1] RedisDown"))
        await pipeline.evaluate(Self.redisDown(t0 + 300, up: false)) // within the repeat interval
        await pipeline.evaluate(Self.redisDown(t0 + 601, up: false)) // repeat due
        try await receiver.waitForRequests(2)
        try await Self.waitIdle(pipeline)
        #expect(receiver.requests.count == 2)
        #expect((try receiver.requests[1].json() as? [String: Any])?["text"] as? String == text)
    }
}

/// A stop flag for a reader thread.
final class Flag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}
