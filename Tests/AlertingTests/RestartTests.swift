import Alerting
import BackstopCore
import BackstopTestSupport
import Foundation
import Testing

@Suite struct RestartTests {
    @Test func aRestartKeepsStartsAtAndReportsWhatResolvedMeanwhile() async throws {
        let dir = try TestEnvironment.makeTempDirectory("alerts-restart")
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }
        let t0 = WallClock.now()
        let both = HealthSnapshot(time: t0, postgres: [PostgresFacts(target: "psscript", up: false)],
                                  redis: [RedisFacts(address: "m:6379", role: "master", up: false)])
        let first = AlertPipeline(rules: AlertRules(), config: AlertingConfig(), backupDir: dir, evaluationInterval: .seconds(60))
        await first.evaluate(both)
        #expect(first.firing.count == 2)

        // A new process: PostgreSQL is back, Redis still down.
        let config = AlertingConfig(webhookURLs: [receiver.url], retryBackoff: .milliseconds(50))
        let second = AlertPipeline(rules: AlertRules(), config: config, backupDir: dir, evaluationInterval: .seconds(60))
        #expect(second.firing.map(\.name) == ["PostgresDown", "RedisDown"])
        let changes = await second.evaluate(HealthSnapshot(time: t0 + 300, redis: both.redis))
        #expect(changes.started.isEmpty)
        #expect(changes.resolved.map(\.name) == ["PostgresDown"])
        #expect(abs(changes.firing[0].startsAt - t0) < 0.01)
        let requests = try await receiver.waitForRequests(2)
        let payloads = try requests.map { try #require(try $0.json() as? [String: Any]) }
        let byGroup = Dictionary(uniqueKeysWithValues: payloads.map { ($0["groupKey"] as! String, $0) })
        #expect(byGroup["{}:{alertname=\"PostgresDown\"}"]?["status"] as? String == "resolved")
        #expect(byGroup["{}:{alertname=\"RedisDown\"}"]?["status"] as? String == "firing")
        let file = try #require(try JSONSerialization.jsonObject(with: Data(FileSystem.read(dir + "/alerts.json"))) as? [[String: Any]])
        #expect(file.count == 1)
        #expect(WallClock.parseRFC3339(file[0]["startsAt"] as! String).map { abs($0 - t0) < 0.01 } == true)
        await second.shutdown()
    }

    @Test func aCorruptFileIsIgnored() async throws {
        let dir = try TestEnvironment.makeTempDirectory("alerts-corrupt")
        try AtomicFile.write("[{\"labels\": ", to: dir + "/alerts.json")
        #expect(throws: DecodingError.self) { try AlertsFile(backupDir: dir).readFiring() }
        let pipeline = AlertPipeline(rules: AlertRules(), config: AlertingConfig(), backupDir: dir, evaluationInterval: .seconds(60))
        #expect(pipeline.firing.isEmpty)
        await pipeline.evaluate(HealthSnapshot(time: WallClock.now()))
        #expect(!FileSystem.exists(dir + "/alerts.json"))
    }

    @Test func readsBackWhatItWroteAndSkipsWhatIsNoAlert() throws {
        let dir = try TestEnvironment.makeTempDirectory("alerts-readback")
        let file = AlertsFile(backupDir: dir)
        let alert = Alert(name: "RedisDown", severity: .critical, labels: ["address": "m:6379"], summary: "s \"q\" é/😀", description: "d\n")
        var tracker = AlertTracker()
        let changes = tracker.update([alert], now: 1_800_000_000.25)
        let firing = changes.firing
        try FileSystem.createDirectory(dir + "/logs")
        try file.apply(changes)
        let back = try file.readFiring()
        #expect(back.map(\.labels) == firing.map(\.labels))
        #expect(back.map(\.annotations) == firing.map(\.annotations))
        #expect(back.map(\.startsAt) == [1_800_000_000.25])
        // Elements that are no alert are skipped; a file that is no array is an error.
        try AtomicFile.write(#"[1, {"labels": {"role": "x"}, "startsAt": "2027-01-15T08:00:00Z"}, {"labels": {"alertname": "A", "n": 1}}]"#, to: file.path)
        #expect(try file.readFiring().isEmpty)
        try AtomicFile.write(#"{"labels": {"alertname": "A"}}"#, to: file.path)
        #expect(throws: DecodingError.self) { try file.readFiring() }
    }
}
