import Alerting
import BackstopCore
import Foundation
import HTTPClient
import Testing

@Suite struct AlertPayloadTests {
    let alert = Alert(name: "RedisDown", severity: .critical, labels: ["address": "m:6379", "role": "master"],
                      summary: "Redis master m:6379 is unreachable", description: "Check \"it\"\nnow")

    /// The body as sent, read back by a reader that knows none of Backstop's types.
    func parse(_ v: some Encodable) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(AlertPayloads.body(v)), options: [.fragmentsAllowed])
    }

    @Test func webhookPayloadHasAlertmanagersVersion4Shape() throws {
        let firing = TrackedAlert(alert: alert, status: .firing, startsAt: 1_800_000_000.5)
        var other = alert
        other.labels["address"] = "r:6379"
        other.labels["role"] = "replica"
        let resolved = TrackedAlert(alert: other, status: .resolved, startsAt: 1_800_000_000, endsAt: 1_800_000_300)
        let group = NotificationGroup(alertname: "RedisDown", alerts: [firing, resolved], time: 1_800_000_300)
        let json = try #require(try parse(AlertPayloads.webhook(group, receiver: "backstop", externalURL: "http://backstop:9847")) as? [String: Any])
        #expect(json["version"] as? String == "4")
        #expect(json["status"] as? String == "firing")
        #expect(json["receiver"] as? String == "backstop")
        #expect(json["groupKey"] as? String == "{}:{alertname=\"RedisDown\"}")
        #expect(json["truncatedAlerts"] as? Int == 0)
        #expect(json["groupLabels"] as? [String: String] == ["alertname": "RedisDown"])
        #expect(json["commonLabels"] as? [String: String] == ["alertname": "RedisDown", "severity": "critical"])
        #expect(json["commonAnnotations"] as? [String: String] == ["description": "Check \"it\"\nnow", "summary": "Redis master m:6379 is unreachable"])
        #expect(json["externalURL"] as? String == "http://backstop:9847")
        let alerts = try #require(json["alerts"] as? [[String: Any]])
        #expect(alerts.count == 2)
        #expect(Set(alerts[0].keys) == ["status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"])
        #expect(alerts[0]["status"] as? String == "firing")
        #expect(alerts[0]["startsAt"] as? String == "2027-01-15T08:00:00.500Z")
        #expect(alerts[0]["endsAt"] as? String == "0001-01-01T00:00:00Z")
        #expect(alerts[0]["fingerprint"] as? String == alert.fingerprint)
        #expect(alerts[1]["status"] as? String == "resolved")
        #expect(alerts[1]["endsAt"] as? String == "2027-01-15T08:05:00.000Z")
        #expect((alerts[1]["labels"] as? [String: String])?["role"] == "replica")
        // Every timestamp parses back.
        for a in alerts { #expect(WallClock.parseRFC3339(a["startsAt"] as! String) != nil) }
    }

    @Test func resolvedGroupStatusAndSlackText() throws {
        let resolved = TrackedAlert(alert: alert, status: .resolved, startsAt: 0, endsAt: 60)
        let group = NotificationGroup(alertname: "RedisDown", alerts: [resolved], time: 60)
        let json = try #require(try parse(AlertPayloads.webhook(group, receiver: "r", externalURL: "")) as? [String: Any])
        #expect(json["status"] as? String == "resolved")
        let slack = try #require(try parse(AlertPayloads.slack(group)) as? [String: Any])
        #expect(Set(slack.keys) == ["text"])
        #expect((slack["text"] as? String)?.hasPrefix("[RESOLVED] RedisDown") == true)
        let firing = NotificationGroup(alertname: "RedisDown", alerts: [TrackedAlert(alert: alert, status: .firing, startsAt: 0)], time: 0)
        let text = try #require((try parse(AlertPayloads.slack(firing)) as? [String: Any])?["text"] as? String)
        #expect(text.hasPrefix("[FIRING:1] RedisDown"))
        #expect(text.contains("Redis master m:6379 is unreachable"))
    }

    @Test func alertmanagerPostCarriesEndsAt() throws {
        let firing = TrackedAlert(alert: alert, status: .firing, startsAt: 1000)
        let resolved = TrackedAlert(alert: Alert(name: "PostgresDown", severity: .critical, summary: "s", description: "d"), status: .resolved, startsAt: 900, endsAt: 1000)
        let body = try #require(try parse(AlertPayloads.alertmanagerPost([firing, resolved], firingEndsAt: 2200, generatorURL: "")) as? [[String: Any]])
        #expect(body.count == 2)
        #expect(Set(body[0].keys) == ["labels", "annotations", "startsAt", "endsAt"])
        #expect(body[0]["endsAt"] as? String == WallClock.rfc3339(2200, fractional: true))
        #expect(body[1]["endsAt"] as? String == WallClock.rfc3339(1000, fractional: true))
    }

    @Test func jsonEscapesAndRendersTable() throws {
        let v = ["k": "a\"b\\c\n\u{01}é"]
        let back = try #require(try parse(v) as? [String: String])
        #expect(back["k"] == "a\"b\\c\n\u{01}é")
        let table = AlertRendering.render([alert], at: 1_800_000_000)
        let lines = table.split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines[0].hasPrefix("SEVERITY"))
        #expect(lines[1].hasPrefix("CRITICAL  RedisDown"))
        #expect(lines[1].contains("address=m:6379,role=master"))
        #expect(AlertRendering.render([TrackedAlert]()) == "no alerts firing\n")
        let array = try #require(try JSONSerialization.jsonObject(with: Data(AlertRendering.json([alert], at: 0).utf8)) as? [[String: Any]])
        #expect(array.count == 1 && array[0]["status"] as? String == "firing")
    }
}
