/// How urgently an alert needs a person: `critical` pages, `warning` waits for office hours.
public enum Severity: String, Sendable, Comparable, CaseIterable {
    case warning, critical

    public static func < (a: Severity, b: Severity) -> Bool { a == .warning && b == .critical }
}

/// One alert as a rule produces it: labels identify it (and make its fingerprint), annotations
/// explain it. The same shape Prometheus rules give Alertmanager, so receivers built for
/// Alertmanager read it unchanged.
public struct Alert: Sendable, Equatable {
    public var labels: [String: String]
    public var annotations: [String: String]

    public init(labels: [String: String], annotations: [String: String]) {
        self.labels = labels
        self.annotations = annotations
    }

    /// An alert with `alertname` and `severity` set, plus the rule's own labels.
    public init(name: String, severity: Severity, labels extra: [String: String] = [:], summary: String, description: String) {
        var labels = extra
        labels["alertname"] = name
        labels["severity"] = severity.rawValue
        self.init(labels: labels, annotations: ["summary": summary, "description": description])
    }

    public var name: String { labels["alertname"] ?? "" }
    public var severity: Severity { Severity(rawValue: labels["severity"] ?? "") ?? .warning }
    public var summary: String { annotations["summary"] ?? "" }
    public var fingerprint: String { Fingerprint.of(labels) }
}

/// Whether an alert fires now or has stopped.
public enum AlertStatus: String, Sendable {
    case firing, resolved
}

/// An alert with its life cycle: when it started firing (kept stable while it keeps firing)
/// and, once resolved, when it ended.
public struct TrackedAlert: Sendable, Equatable {
    public var alert: Alert
    public var status: AlertStatus
    /// Unix seconds of the first evaluation that found it firing.
    public var startsAt: Double
    /// Unix seconds of the evaluation that found it gone; nil while firing.
    public var endsAt: Double?
    public var fingerprint: String

    public init(alert: Alert, status: AlertStatus, startsAt: Double, endsAt: Double? = nil) {
        self.alert = alert
        self.status = status
        self.startsAt = startsAt
        self.endsAt = endsAt
        self.fingerprint = alert.fingerprint
    }

    public var name: String { alert.name }
    public var severity: Severity { alert.severity }
    public var labels: [String: String] { alert.labels }
    public var annotations: [String: String] { alert.annotations }
}

/// Alertmanager's alert fingerprint: FNV-1a (64 bit) over the label names in byte order, each
/// name and value followed by the 0xff separator, printed as 16 hex digits. Same labels, same
/// fingerprint, in Backstop and in Alertmanager's UI and API.
public enum Fingerprint {
    public static func of(_ labels: [String: String]) -> String {
        var hash: UInt64 = 14_695_981_039_346_656_037
        func add(_ byte: UInt8) {
            hash ^= UInt64(byte)
            hash = hash &* 1_099_511_628_211
        }
        let names = labels.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        for name in names {
            for b in name.utf8 { add(b) }
            add(0xff)
            for b in labels[name]!.utf8 { add(b) }
            add(0xff)
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
