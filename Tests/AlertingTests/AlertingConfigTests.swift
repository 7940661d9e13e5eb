import Alerting
import BackstopCore
import Testing

@Suite struct AlertingConfigTests {
    @Test func defaults() throws {
        let c = try AlertingConfig(environment: [:])
        #expect(c.webhookURLs.isEmpty && c.alertmanagerURLs.isEmpty)
        #expect(c.webhookFormat == .alertmanager)
        #expect(c.repeatInterval == .seconds(4 * 3600))
        #expect(c.requestTimeout == .seconds(10) && c.connectTimeout == .seconds(5))
        #expect(c.maxAttempts == 5 && c.retryBackoff == .seconds(1))
        #expect(c.webhookBearerToken == nil)
    }

    @Test func parsesEverything() throws {
        let c = try AlertingConfig(environment: [
            "ALERT_WEBHOOK_URL": "http://a:1/hook, https://b/x",
            "ALERT_WEBHOOK_FORMAT": "Slack",
            "ALERT_WEBHOOK_BEARER_TOKEN": "tok",
            "ALERT_REPEAT_INTERVAL": "30m",
            "ALERT_WEBHOOK_TIMEOUT": "2s",
            "ALERT_WEBHOOK_MAX_ATTEMPTS": "3",
            "ALERT_WEBHOOK_RETRY_BACKOFF": "250ms",
            "ALERTMANAGER_URL": "http://am:9093",
            "ALERT_EXTERNAL_URL": "http://backstop:9847",
        ])
        #expect(c.webhookURLs == ["http://a:1/hook", "https://b/x"])
        #expect(c.webhookFormat == .slack)
        #expect(c.webhookBearerToken?.value == "tok")
        #expect("\(c.webhookBearerToken!)" == "<redacted>")
        #expect(c.repeatInterval == .seconds(1800))
        #expect(c.requestTimeout == .seconds(2) && c.connectTimeout == .seconds(2))
        #expect(c.maxAttempts == 3 && c.retryBackoff == .milliseconds(250))
        #expect(c.alertmanagerURLs == ["http://am:9093"])
        #expect(c.externalURL == "http://backstop:9847")
    }

    @Test func badValuesNameTheVariableAndNeverEchoSecrets() {
        #expect(throws: ConfigError.self) { try AlertingConfig(environment: ["ALERT_WEBHOOK_FORMAT": "teams"]) }
        #expect(throws: ConfigError.self) { try AlertingConfig(environment: ["ALERT_REPEAT_INTERVAL": "soon"]) }
        #expect(throws: ConfigError.self) { try AlertingConfig(environment: ["ALERT_WEBHOOK_MAX_ATTEMPTS": "0"]) }
        #expect(throws: ConfigError.self) { try AlertingConfig(environment: ["ALERTMANAGER_URL": "am:9093"]) }
        do {
            _ = try AlertingConfig(environment: ["ALERT_WEBHOOK_URL": "ftp://user:hunter2@hooks.example/services/T0/B0/abcdefghijklmnop1234"])
            Issue.record("accepted an ftp URL")
        } catch let error as ConfigError {
            #expect(error.variable == "ALERT_WEBHOOK_URL")
            #expect(!error.description.contains("hunter2"))
            #expect(!error.description.contains("abcdefghijklmnop1234"))
            #expect(error.description.contains("hooks.example"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func thresholdsFollowSchedulesAndOverrides() throws {
        let t = try AlertThresholds(environment: ["ALERT_BACKUP_STALE_REDIS": "90m", "ALERT_WAL_ARCHIVE_STALE_AFTER": "2h"],
                                    scheduleIntervals: ["postgres_full": .seconds(3600), "redis": .seconds(4 * 3600)],
                                    diskFreeWarningPercent: 20, diskFreeCriticalPercent: 10)
        #expect(t.backupStaleAfter["postgres_full"] == .seconds(2 * 3600 + 1800))
        #expect(t.backupStaleAfter["redis"] == .seconds(5400))
        #expect(t.backupStaleAfter["postgres_base"] == nil) // not scheduled, not set
        #expect(t.walArchiveStaleAfter == .seconds(7200))
        #expect(t.diskFreeWarningPercent == 20 && t.diskFreeCriticalPercent == 10)
        #expect(throws: ConfigError.self) {
            try AlertThresholds(environment: ["ALERT_BACKUP_STALE_POSTGRES_FULL": "-1"], scheduleIntervals: [:], diskFreeWarningPercent: 15, diskFreeCriticalPercent: 5)
        }
        #expect(throws: ConfigError.self) {
            try AlertThresholds(environment: ["ALERT_S3_FAILURES": "0"], scheduleIntervals: [:], diskFreeWarningPercent: 15, diskFreeCriticalPercent: 5)
        }
    }
}
