import BackstopCore
import BackstopMetrics
import HTTPClient
import Logging
import Synchronization

/// The evaluator and its sinks, as the health loop uses them: rules → firing set → alerts
/// file and log, metrics, webhooks, Alertmanager. `evaluate` returns once the file is written
/// and the deliveries are queued; deliveries run in their own tasks, one queue per
/// destination, so a dead receiver never delays the health loop or another receiver.
///
/// Call `evaluate` from one loop at a time (the health loop); the state is locked, but two
/// interleaved evaluations would race on the alerts file.
public final class AlertPipeline: Sendable {
    public let rules: AlertRules
    public let config: AlertingConfig
    public let file: AlertsFile
    /// The health loop's interval: firing alerts posted to Alertmanager carry
    /// `endsAt = now + 4 × max(interval, 1 min)`, as Prometheus does, so they stay active
    /// between evaluations and expire on their own if Backstop stops.
    public let evaluationInterval: Duration

    private struct State {
        var tracker = AlertTracker()
        var planner: NotificationPlanner
        var evaluated = false
        var seriesSeen = Set<[String]>()
    }

    private let state: Mutex<State>
    private let metrics: MetricsRegistry?
    private let logger: Logger
    private let webhooks: [DeliveryQueue]
    private let alertmanagers: [DeliveryQueue]

    /// With `restoreFromFile`, the alerts a previous run left in `alerts.json` start as
    /// firing: their `startsAt` survives the restart, and those no longer firing at the first
    /// evaluation are sent as resolved.
    public init(rules: AlertRules, config: AlertingConfig, backupDir: String, evaluationInterval: Duration,
                metrics: MetricsRegistry? = nil, logger: Logger = Logger(label: "backstop.alerting"),
                restoreFromFile: Bool = true) {
        self.rules = rules
        self.config = config
        self.file = AlertsFile(backupDir: backupDir, generatorURL: config.externalURL)
        self.evaluationInterval = evaluationInterval
        self.metrics = metrics
        self.logger = logger
        var restored: [TrackedAlert] = []
        if restoreFromFile {
            do {
                restored = try file.readFiring()
            } catch {
                logger.error("could not read the alerts of the previous run from \(file.path): \(error); starting with none")
            }
        }
        state = Mutex(State(tracker: AlertTracker(firing: restored), planner: NotificationPlanner(repeatInterval: config.repeatInterval)))

        if let metrics {
            AlertMetrics.declare(in: metrics, webhooks: !config.webhookURLs.isEmpty)
        }
        let policy = RetryPolicy(maxAttempts: config.maxAttempts, initialBackoff: config.retryBackoff, maxBackoff: config.maxBackoff)
        let report: DeliveryQueue.Report = { [metrics, logger] r in
            metrics?.add(Family.webhookDeliveries, ["result": r.result.rawValue])
            Self.log(r, kind: "webhook", logger: logger)
        }
        webhooks = config.webhookURLs.map { url in
            let config = config
            return DeliveryQueue(url: url, capacity: config.queueCapacity, policy: policy, render: { job in
                let group = NotificationGroup(alertname: job.key, alerts: job.alerts, time: job.time)
                let body = config.webhookFormat == .slack
                    ? AlertPayloads.slack(group)
                    : AlertPayloads.webhook(group, receiver: config.receiverName, externalURL: config.externalURL)
                return HTTPRequest.postJSON(url, Array(body.encoded().utf8), bearerToken: config.webhookBearerToken,
                                            connectTimeout: config.connectTimeout, totalTimeout: config.requestTimeout)
            }, report: report)
        }
        let validFor = max(evaluationInterval, .seconds(60)).seconds * 4
        alertmanagers = config.alertmanagerURLs.map { base in
            let config = config
            let url = Self.alertsEndpoint(base)
            return DeliveryQueue(url: url, capacity: config.queueCapacity, policy: policy, render: { job in
                let body = AlertPayloads.alertmanagerPost(job.alerts, firingEndsAt: job.time + validFor, generatorURL: config.externalURL)
                return HTTPRequest.postJSON(url, Array(body.encoded().utf8), connectTimeout: config.connectTimeout, totalTimeout: config.requestTimeout)
            }, report: { [logger] r in Self.log(r, kind: "alertmanager", logger: logger) })
        }
    }

    /// `<base>/api/v2/alerts`.
    static func alertsEndpoint(_ base: String) -> String {
        var b = base
        while b.hasSuffix("/") { b.removeLast() }
        return b + "/api/v2/alerts"
    }

    /// Evaluates the rules on `snapshot` and feeds every sink. Returns what changed.
    @discardableResult
    public func evaluate(_ snapshot: HealthSnapshot) async -> AlertChanges {
        let alerts = rules.evaluate(snapshot)
        let (changes, first, groups, series) = state.withLock { s in
            let changes = s.tracker.update(alerts, now: snapshot.time)
            let first = !s.evaluated
            s.evaluated = true
            let groups = webhooks.isEmpty ? [] : s.planner.plan(changes)
            for a in changes.firing + changes.resolved { s.seriesSeen.insert([a.name, a.severity.rawValue]) }
            return (changes, first, groups, s.seriesSeen)
        }

        if let metrics {
            let firingKeys = Set(changes.firing.map { [$0.name, $0.severity.rawValue] })
            for key in series {
                metrics.set(Family.alertsFiring, ["alertname": key[0], "severity": key[1]], firingKeys.contains(key) ? 1 : 0)
            }
        }

        for a in changes.started {
            logger.warning("alert firing: \(a.name) \(a.alert.summary)", metadata: ["fingerprint": "\(a.fingerprint)", "severity": "\(a.severity.rawValue)"])
        }
        for a in changes.resolved {
            logger.notice("alert resolved: \(a.name) \(a.alert.summary)", metadata: ["fingerprint": "\(a.fingerprint)"])
        }

        for group in groups {
            let job = DeliveryJob(key: group.alertname, alerts: group.alerts, time: changes.time)
            for queue in webhooks { queue.enqueue(job) }
        }
        let toAlertmanager = changes.firing + changes.resolved
        if !toAlertmanager.isEmpty {
            let job = DeliveryJob(key: "alerts", alerts: toAlertmanager, time: changes.time)
            for queue in alertmanagers { queue.enqueue(job) }
        }

        let file = self.file
        do {
            try await Blocking.run { try file.apply(changes, force: first) }
        } catch {
            logger.error("could not update \(file.path): \(error); check that BACKUP_DIR is writable and not full")
        }
        return changes
    }

    /// The alerts firing after the last evaluation.
    public var firing: [TrackedAlert] { state.withLock { $0.tracker.firing } }

    /// True when no delivery is queued or in flight (for tests and an orderly shutdown).
    public var deliveriesIdle: Bool { (webhooks + alertmanagers).allSatisfy(\.isIdle) }

    /// Lets queued deliveries finish for up to `grace`, then aborts them.
    public func shutdown(grace: Duration = .seconds(5)) async {
        await withTaskGroup(of: Void.self) { group in
            for queue in webhooks + alertmanagers {
                group.addTask { await queue.shutdown(grace: grace) }
            }
        }
    }

    private static func log(_ r: DeliveryReport, kind: String, logger: Logger) {
        switch r.result {
        case .success:
            logger.info("\(kind) delivered to \(r.destination)", metadata: ["group": "\(r.key)", "attempts": "\(r.attempts)"])
        case .failure:
            let reason = r.error ?? "unknown error"
            logger.error("\(kind) delivery to \(r.destination) failed after \(r.attempts) attempt(s): \(reason); check that the receiver is up and reachable from Backstop",
                         metadata: ["group": "\(r.key)"])
        }
    }
}

/// The alerting families of the metrics contract.
public enum AlertMetrics {
    /// Declares `backstop_alerts_firing` and (with webhooks) `backstop_webhook_deliveries_total`
    /// with both results at 0, so dashboards and `rate()` see the series before the first delivery.
    ///
    /// `backstop_webhook_deliveries_total{result}` counts deliveries, not attempts: one
    /// notification to one webhook URL is one `success` once a try got a 2xx (however many
    /// retries it took), or one `failure` when it was given up (attempts exhausted, a 4xx, or
    /// dropped from a full queue). Alertmanager posts are not counted here (they are logged).
    public static func declare(in registry: MetricsRegistry, webhooks: Bool) {
        registry.declare(Family.alertsFiring)
        guard webhooks else { return }
        registry.declare(Family.webhookDeliveries)
        registry.touch(Family.webhookDeliveries, ["result": "success"])
        registry.touch(Family.webhookDeliveries, ["result": "failure"])
    }
}
