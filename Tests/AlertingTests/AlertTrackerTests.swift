import Alerting
import Testing

@Suite struct AlertTrackerTests {
    let a = Alert(name: "RedisDown", severity: .critical, labels: ["address": "m:6379", "role": "master"], summary: "down", description: "d")
    let b = Alert(name: "PostgresDown", severity: .critical, labels: ["target": "psscript"], summary: "down", description: "d")

    @Test func startsAtStaysWhileFiringAndResolvedCarriesEndsAt() {
        var tracker = AlertTracker()
        let c1 = tracker.update([a], now: 100)
        #expect(c1.started.map(\.fingerprint) == [a.fingerprint])
        #expect(c1.resolved.isEmpty && c1.hasChanges)
        #expect(c1.firing.first?.startsAt == 100)

        var newer = a
        newer.annotations["summary"] = "still down"
        let c2 = tracker.update([newer, b], now: 200)
        #expect(c2.started.map(\.name) == ["PostgresDown"])
        #expect(c2.resolved.isEmpty)
        let redis = c2.firing.first { $0.name == "RedisDown" }
        #expect(redis?.startsAt == 100)
        #expect(redis?.alert.summary == "still down")

        let c3 = tracker.update([b], now: 300)
        #expect(c3.started.isEmpty)
        #expect(c3.resolved.count == 1)
        #expect(c3.resolved[0].status == .resolved && c3.resolved[0].endsAt == 300 && c3.resolved[0].startsAt == 100)
        #expect(c3.firing.map(\.name) == ["PostgresDown"])

        let c4 = tracker.update([b], now: 400)
        #expect(!c4.hasChanges)
        #expect(c4.firing.first?.startsAt == 200)

        // Firing again later is a new episode with a new startsAt.
        let c5 = tracker.update([a, b], now: 500)
        #expect(c5.started.first?.startsAt == 500)
    }

    @Test func duplicateLabelSetsCountOnce() {
        var tracker = AlertTracker()
        let c = tracker.update([a, a], now: 1)
        #expect(c.firing.count == 1 && c.started.count == 1)
    }

    @Test func plannerSendsOnChangeAndRepeatsAfterTheInterval() {
        var tracker = AlertTracker()
        var planner = NotificationPlanner(repeatInterval: .seconds(1000))
        let g1 = planner.plan(tracker.update([a], now: 0))
        #expect(g1.map(\.alertname) == ["RedisDown"])
        #expect(g1[0].status == .firing)
        #expect(g1[0].groupKey == "{}:{alertname=\"RedisDown\"}")
        #expect(planner.plan(tracker.update([a], now: 500)).isEmpty)
        // A second RedisDown alert changes the group: the notification carries both.
        var replica = a
        replica.labels["address"] = "r:6379"
        let g2 = planner.plan(tracker.update([a, replica], now: 600))
        #expect(g2.count == 1 && g2[0].alerts.count == 2)
        #expect(planner.plan(tracker.update([a, replica], now: 1500)).isEmpty) // 900 s after the last send
        let repeated = planner.plan(tracker.update([a, replica], now: 1600))
        #expect(repeated.map(\.alertname) == ["RedisDown"])
        let resolved = planner.plan(tracker.update([], now: 1700))
        #expect(resolved.count == 1 && resolved[0].status == .resolved && resolved[0].alerts.count == 2)
        #expect(resolved[0].alerts.allSatisfy { $0.status == .resolved && $0.endsAt == 1700 })
        #expect(planner.plan(tracker.update([], now: 5000)).isEmpty)
    }

    @Test func fingerprintMatchesAlertmanagersAlgorithm() {
        // FNV-1a 64 offset basis for the empty label set, as Prometheus' model defines it.
        #expect(Fingerprint.of([:]) == "cbf29ce484222325")
        #expect(Fingerprint.of(["b": "2", "a": "1"]) == Fingerprint.of(["a": "1", "b": "2"]))
        #expect(Fingerprint.of(["a": "1"]) != Fingerprint.of(["a": "2"]))
        #expect(Fingerprint.of(["a": "1"]).count == 16)
    }
}
