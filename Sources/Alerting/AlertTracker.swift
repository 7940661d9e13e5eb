/// What changed between two evaluations.
public struct AlertChanges: Sendable, Equatable {
    /// Unix seconds of the evaluation.
    public var time: Double
    /// Every alert firing now (sorted by name, then fingerprint), with stable `startsAt`.
    public var firing: [TrackedAlert]
    /// Alerts that were not firing at the previous evaluation.
    public var started: [TrackedAlert]
    /// Alerts that fired at the previous evaluation and no longer do (`endsAt` = `time`).
    public var resolved: [TrackedAlert]

    public var hasChanges: Bool { !started.isEmpty || !resolved.isEmpty }
}

/// The firing set across evaluations: a plain state machine, no I/O. An alert keeps its
/// `startsAt` while it keeps firing (its annotations follow the newest evaluation), and when
/// it stops it is reported once as resolved with `endsAt`.
public struct AlertTracker: Sendable {
    private var current: [String: TrackedAlert] = [:]

    /// Starts with the alerts that were firing before (for example read back after a restart).
    public init(firing: [TrackedAlert] = []) {
        for alert in firing where alert.status == .firing {
            current[alert.fingerprint] = alert
        }
    }

    public var firing: [TrackedAlert] { Self.ordered(Array(current.values)) }

    public mutating func update(_ alerts: [Alert], now: Double) -> AlertChanges {
        var next: [String: TrackedAlert] = [:]
        var started: [TrackedAlert] = []
        for alert in alerts {
            let fp = alert.fingerprint
            guard next[fp] == nil else { continue }
            if var existing = current[fp] {
                existing.alert = alert
                next[fp] = existing
            } else {
                let tracked = TrackedAlert(alert: alert, status: .firing, startsAt: now)
                next[fp] = tracked
                started.append(tracked)
            }
        }
        var resolved: [TrackedAlert] = []
        for (fp, old) in current where next[fp] == nil {
            var gone = old
            gone.status = .resolved
            gone.endsAt = now
            resolved.append(gone)
        }
        current = next
        return AlertChanges(time: now, firing: Self.ordered(Array(next.values)),
                            started: Self.ordered(started), resolved: Self.ordered(resolved))
    }

    static func ordered(_ alerts: [TrackedAlert]) -> [TrackedAlert] {
        alerts.sorted { ($0.name, $0.fingerprint) < ($1.name, $1.fingerprint) }
    }
}

/// One webhook notification: the alerts of one `alertname` (Alertmanager's `group_by:
/// [alertname]`), the firing ones and those that just resolved.
public struct NotificationGroup: Sendable, Equatable {
    public var alertname: String
    public var alerts: [TrackedAlert]
    /// Unix seconds of the evaluation that produced it.
    public var time: Double

    public init(alertname: String, alerts: [TrackedAlert], time: Double) {
        self.alertname = alertname
        self.alerts = alerts
        self.time = time
    }

    /// `firing` while any alert of the group fires (Alertmanager's rule).
    public var status: AlertStatus { alerts.contains { $0.status == .firing } ? .firing : .resolved }
    /// `{}:{alertname="…"}`, the group key Alertmanager would use for the same grouping.
    public var groupKey: String { "{}:{alertname=\"\(alertname)\"}" }
}

/// Decides which groups to notify after an evaluation: a group whose firing set changed
/// (something started or resolved), and a still-firing group whose last notification is
/// `repeatInterval` old. Pure; `AlertPipeline` keeps one and feeds it every evaluation.
public struct NotificationPlanner: Sendable {
    public var repeatInterval: Duration
    private var lastSent: [String: Double] = [:]

    public init(repeatInterval: Duration) {
        self.repeatInterval = repeatInterval
    }

    public mutating func plan(_ changes: AlertChanges) -> [NotificationGroup] {
        var names = Set(changes.started.map(\.name))
        names.formUnion(changes.resolved.map(\.name))
        for alert in changes.firing {
            if let last = lastSent[alert.name], changes.time - last >= repeatInterval.seconds {
                names.insert(alert.name)
            } else if lastSent[alert.name] == nil {
                names.insert(alert.name) // firing but never sent (restored after a restart)
            }
        }
        var groups: [NotificationGroup] = []
        for name in names.sorted() {
            let alerts = changes.firing.filter { $0.name == name } + changes.resolved.filter { $0.name == name }
            guard !alerts.isEmpty else { continue }
            let group = NotificationGroup(alertname: name, alerts: alerts, time: changes.time)
            groups.append(group)
            if group.status == .firing {
                lastSent[name] = changes.time
            } else {
                lastSent[name] = nil
            }
        }
        return groups
    }
}
