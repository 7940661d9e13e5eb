import BackstopCore
import HTTPClient

/// How alerts leave the process: webhooks, Alertmanager, and the delivery policy. Parsed once
/// at start-up; a bad value is a `ConfigError` naming the variable (URLs are shown redacted,
/// since webhook URLs often carry their token in the path).
public struct AlertingConfig: Sendable {
    public enum WebhookFormat: String, Sendable {
        /// Alertmanager's webhook payload, version 4.
        case alertmanager
        /// `{"text": …}` for Slack-compatible incoming webhooks.
        case slack
    }

    /// `ALERT_WEBHOOK_URL`: comma-separated http(s) URLs; empty = no webhooks.
    public var webhookURLs: [String]
    /// `ALERT_WEBHOOK_FORMAT`: `alertmanager` (default) or `slack`.
    public var webhookFormat: WebhookFormat
    /// `ALERT_WEBHOOK_BEARER_TOKEN`: sent as `Authorization: Bearer …` to every webhook.
    public var webhookBearerToken: Secret?
    /// `ALERT_REPEAT_INTERVAL` (default 4h): a still-firing group is sent again this often.
    public var repeatInterval: Duration
    /// `ALERT_WEBHOOK_TIMEOUT` (default 10s): total time per attempt; connect gets at most 5 s of it.
    public var requestTimeout: Duration
    /// `ALERT_WEBHOOK_MAX_ATTEMPTS` (default 5): attempts per delivery before giving up.
    public var maxAttempts: Int
    /// `ALERT_WEBHOOK_RETRY_BACKOFF` (default 1s): wait before the 2nd attempt; doubles each
    /// time up to `maxBackoff`, each wait jittered to 50–100 %.
    public var retryBackoff: Duration
    /// Longest wait between attempts (60 s).
    public var maxBackoff: Duration
    /// `ALERTMANAGER_URL`: comma-separated Alertmanager base URLs (`http://alertmanager:9093`).
    public var alertmanagerURLs: [String]
    /// `ALERT_EXTERNAL_URL`: where people can see Backstop (its /metrics), used as the
    /// payloads' externalURL and generatorURL. Empty by default.
    public var externalURL: String
    /// The `receiver` field of webhook payloads.
    public var receiverName: String
    /// Deliveries waiting per destination before the oldest is dropped (and counted as a failure).
    public var queueCapacity: Int

    public init(webhookURLs: [String] = [], webhookFormat: WebhookFormat = .alertmanager, webhookBearerToken: Secret? = nil,
                repeatInterval: Duration = .seconds(4 * 3600), requestTimeout: Duration = .seconds(10), maxAttempts: Int = 5,
                retryBackoff: Duration = .seconds(1), maxBackoff: Duration = .seconds(60), alertmanagerURLs: [String] = [],
                externalURL: String = "", receiverName: String = "backstop", queueCapacity: Int = 64) {
        self.webhookURLs = webhookURLs
        self.webhookFormat = webhookFormat
        self.webhookBearerToken = webhookBearerToken
        self.repeatInterval = repeatInterval
        self.requestTimeout = requestTimeout
        self.maxAttempts = maxAttempts
        self.retryBackoff = retryBackoff
        self.maxBackoff = maxBackoff
        self.alertmanagerURLs = alertmanagerURLs
        self.externalURL = externalURL
        self.receiverName = receiverName
        self.queueCapacity = queueCapacity
    }

    public init(environment env: [String: String]) throws {
        func value(_ name: String) -> String? {
            guard let v = env[name], !v.trimmingSpaces().isEmpty else { return nil }
            return v
        }
        self.init()
        webhookURLs = try value("ALERT_WEBHOOK_URL").map { try Self.urlList($0, variable: "ALERT_WEBHOOK_URL") } ?? []
        if let raw = value("ALERT_WEBHOOK_FORMAT") {
            guard let format = WebhookFormat(rawValue: raw.trimmingSpaces().lowercased()) else {
                throw ConfigError(variable: "ALERT_WEBHOOK_FORMAT", value: raw, accepted: "alertmanager (Alertmanager's webhook payload, version 4) or slack ({\"text\": …})")
            }
            webhookFormat = format
        }
        webhookBearerToken = value("ALERT_WEBHOOK_BEARER_TOKEN").map { Secret($0.trimmingSpaces()) }
        repeatInterval = try value("ALERT_REPEAT_INTERVAL").map { try ValueParsers.duration($0, variable: "ALERT_REPEAT_INTERVAL") } ?? repeatInterval
        requestTimeout = try value("ALERT_WEBHOOK_TIMEOUT").map { try ValueParsers.duration($0, variable: "ALERT_WEBHOOK_TIMEOUT") } ?? requestTimeout
        maxAttempts = try value("ALERT_WEBHOOK_MAX_ATTEMPTS").map { try ValueParsers.integer($0, variable: "ALERT_WEBHOOK_MAX_ATTEMPTS", in: 1...100) } ?? maxAttempts
        retryBackoff = try value("ALERT_WEBHOOK_RETRY_BACKOFF").map { try ValueParsers.duration($0, variable: "ALERT_WEBHOOK_RETRY_BACKOFF") } ?? retryBackoff
        alertmanagerURLs = try value("ALERTMANAGER_URL").map { try Self.urlList($0, variable: "ALERTMANAGER_URL") } ?? []
        if let raw = value("ALERT_EXTERNAL_URL") {
            externalURL = try Self.urlList(raw, variable: "ALERT_EXTERNAL_URL").first ?? ""
        }
    }

    /// Connect timeout of one attempt: 5 s, or the total timeout when that is shorter.
    public var connectTimeout: Duration { min(.seconds(5), requestTimeout) }

    /// Parses comma-separated http(s) URLs.
    static func urlList(_ raw: String, variable: String) throws -> [String] {
        let parts = raw.split(separator: ",").map { String($0).trimmingSpaces() }.filter { !$0.isEmpty }
        for url in parts {
            let lower = url.lowercased()
            let rest: Substring
            if lower.hasPrefix("http://") {
                rest = url.dropFirst(7)
            } else if lower.hasPrefix("https://") {
                rest = url.dropFirst(8)
            } else {
                throw ConfigError(variable: variable, value: URLRedaction.redact(url), accepted: "http:// or https:// URLs, comma-separated")
            }
            let host = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
            guard !host.isEmpty, !url.contains(where: { $0 == " " || $0 == "\t" }) else {
                throw ConfigError(variable: variable, value: URLRedaction.redact(url), accepted: "http:// or https:// URLs with a host, comma-separated")
            }
        }
        return parts
    }
}
