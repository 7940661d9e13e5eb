import BackstopCore

/// The JSON shapes Backstop sends and writes, all in Alertmanager's vocabulary so tools built
/// for Alertmanager read them unchanged.
public enum AlertPayloads {
    /// Alertmanager writes this for "no end yet" in webhook payloads.
    public static let zeroTime = "0001-01-01T00:00:00Z"

    static func time(_ t: Double) -> String { WallClock.rfc3339(t, fractional: true) }

    /// One alert in the webhook shape (also the element of `alerts.json`).
    public struct AlertBody: Codable, Sendable, Equatable {
        public var status: String
        public var labels: [String: String]
        public var annotations: [String: String]
        public var startsAt: String
        public var endsAt: String
        public var generatorURL: String
        public var fingerprint: String
    }

    /// Alertmanager's webhook payload, version 4.
    public struct Webhook: Encodable, Sendable {
        public var version = "4"
        public var groupKey: String
        public var truncatedAlerts = 0
        public var status: String
        public var receiver: String
        public var groupLabels: [String: String]
        public var commonLabels: [String: String]
        public var commonAnnotations: [String: String]
        public var externalURL: String
        public var alerts: [AlertBody]
    }

    /// Slack's incoming-webhook shape.
    public struct Slack: Encodable, Sendable {
        public var text: String
    }

    /// One element of `POST /api/v2/alerts` (`generatorURL` left out when empty).
    public struct PostedAlert: Encodable, Sendable {
        public var labels: [String: String]
        public var annotations: [String: String]
        public var startsAt: String
        public var endsAt: String
        public var generatorURL: String?
    }

    /// One alert in the webhook shape (also the element of `alerts.json`): status, labels,
    /// annotations, startsAt, endsAt, generatorURL, fingerprint.
    public static func alert(_ a: TrackedAlert, generatorURL: String) -> AlertBody {
        AlertBody(status: a.status.rawValue, labels: a.labels, annotations: a.annotations, startsAt: time(a.startsAt),
                  endsAt: a.endsAt.map(time) ?? zeroTime, generatorURL: generatorURL, fingerprint: a.fingerprint)
    }

    /// `alerts.json`: the alerts firing now, as an array.
    public static func alertsFile(_ firing: [TrackedAlert], generatorURL: String) -> [AlertBody] {
        firing.map { alert($0, generatorURL: generatorURL) }
    }

    /// Alertmanager's webhook payload, version 4.
    public static func webhook(_ group: NotificationGroup, receiver: String, externalURL: String) -> Webhook {
        let alerts = group.alerts
        return Webhook(groupKey: group.groupKey, status: group.status.rawValue, receiver: receiver,
                       groupLabels: ["alertname": group.alertname], commonLabels: common(alerts.map(\.labels)),
                       commonAnnotations: common(alerts.map(\.annotations)), externalURL: externalURL,
                       alerts: alerts.map { alert($0, generatorURL: externalURL) })
    }

    /// Slack's incoming-webhook shape: `{"text": …}`, one line per alert.
    public static func slack(_ group: NotificationGroup) -> Slack {
        let firing = group.alerts.filter { $0.status == .firing }
        let resolved = group.alerts.filter { $0.status == .resolved }
        var lines: [String] = []
        if group.status == .firing {
            lines.append("[FIRING:\(firing.count)] \(group.alertname)")
        } else {
            lines.append("[RESOLVED] \(group.alertname)")
        }
        for a in firing {
            lines.append("• \(a.severity.rawValue.uppercased()) \(a.alert.summary) (since \(WallClock.rfc3339(a.startsAt)))")
            if let d = a.annotations["description"] { lines.append("  \(d)") }
        }
        for a in resolved {
            lines.append("• RESOLVED \(a.alert.summary) (\(WallClock.rfc3339(a.startsAt)) – \(WallClock.rfc3339(a.endsAt ?? a.startsAt)))")
        }
        return Slack(text: lines.joined(separator: "\n"))
    }

    /// The body of `POST /api/v2/alerts`: firing alerts with `endsAt` = `firingEndsAt` (so
    /// Alertmanager resolves them itself if Backstop stops talking, as Prometheus does), and
    /// resolved alerts with their real `endsAt`.
    public static func alertmanagerPost(_ alerts: [TrackedAlert], firingEndsAt: Double, generatorURL: String) -> [PostedAlert] {
        alerts.map { a in
            PostedAlert(labels: a.labels, annotations: a.annotations, startsAt: time(a.startsAt),
                        endsAt: time(a.status == .firing ? firingEndsAt : (a.endsAt ?? firingEndsAt)),
                        generatorURL: generatorURL.isEmpty ? nil : generatorURL)
        }
    }

    /// A payload as a request body: one line, keys sorted. These types hold only strings,
    /// string maps and integers, which the encoder cannot fail on.
    public static func body(_ payload: some Encodable) -> [UInt8] {
        (try? JSONCoding.encode(payload, pretty: false)) ?? []
    }

    /// The pairs every map shares (commonLabels / commonAnnotations).
    static func common(_ maps: [[String: String]]) -> [String: String] {
        guard var result = maps.first else { return [:] }
        for map in maps.dropFirst() {
            result = result.filter { map[$0.key] == $0.value }
        }
        return result
    }
}
