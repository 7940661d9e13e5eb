import BackstopCore

/// The JSON shapes Backstop sends and writes, all in Alertmanager's vocabulary so tools built
/// for Alertmanager read them unchanged.
public enum AlertPayloads {
    /// Alertmanager writes this for "no end yet" in webhook payloads.
    public static let zeroTime = "0001-01-01T00:00:00Z"

    static func time(_ t: Double) -> String { WallClock.rfc3339(t, fractional: true) }

    /// One alert in the webhook shape (also the element of `alerts.json`): status, labels,
    /// annotations, startsAt, endsAt, generatorURL, fingerprint.
    public static func alert(_ a: TrackedAlert, generatorURL: String) -> JSONValue {
        .object([
            "status": .string(a.status.rawValue),
            "labels": strings(a.labels),
            "annotations": strings(a.annotations),
            "startsAt": .string(time(a.startsAt)),
            "endsAt": .string(a.endsAt.map(time) ?? zeroTime),
            "generatorURL": .string(generatorURL),
            "fingerprint": .string(a.fingerprint),
        ])
    }

    /// `alerts.json`: the alerts firing now, as an array.
    public static func alertsFile(_ firing: [TrackedAlert], generatorURL: String) -> JSONValue {
        .array(firing.map { alert($0, generatorURL: generatorURL) })
    }

    /// Alertmanager's webhook payload, version 4.
    public static func webhook(_ group: NotificationGroup, receiver: String, externalURL: String) -> JSONValue {
        let alerts = group.alerts
        return .object([
            "version": .string("4"),
            "groupKey": .string(group.groupKey),
            "truncatedAlerts": .number(0),
            "status": .string(group.status.rawValue),
            "receiver": .string(receiver),
            "groupLabels": strings(["alertname": group.alertname]),
            "commonLabels": strings(common(alerts.map(\.labels))),
            "commonAnnotations": strings(common(alerts.map(\.annotations))),
            "externalURL": .string(externalURL),
            "alerts": .array(alerts.map { alert($0, generatorURL: externalURL) }),
        ])
    }

    /// Slack's incoming-webhook shape: `{"text": …}`, one line per alert.
    public static func slack(_ group: NotificationGroup) -> JSONValue {
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
        return .object(["text": .string(lines.joined(separator: "\n"))])
    }

    /// The body of `POST /api/v2/alerts`: firing alerts with `endsAt` = `firingEndsAt` (so
    /// Alertmanager resolves them itself if Backstop stops talking, as Prometheus does), and
    /// resolved alerts with their real `endsAt`.
    public static func alertmanagerPost(_ alerts: [TrackedAlert], firingEndsAt: Double, generatorURL: String) -> JSONValue {
        .array(alerts.map { a in
            var members: [String: JSONValue] = [
                "labels": strings(a.labels),
                "annotations": strings(a.annotations),
                "startsAt": .string(time(a.startsAt)),
                "endsAt": .string(time(a.status == .firing ? firingEndsAt : (a.endsAt ?? firingEndsAt))),
            ]
            if !generatorURL.isEmpty { members["generatorURL"] = .string(generatorURL) }
            return .object(members)
        })
    }

    /// A label or annotation map as a JSON object.
    static func strings(_ map: [String: String]) -> JSONValue {
        .object(map.mapValues { .string($0) })
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
