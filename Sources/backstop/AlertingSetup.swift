import Alerting
import BackstopCore
import BackstopMetrics
import BackstopState
import Scheduling

/// The alert rules and their configuration, built the same way for `serve` and `health` so
/// both show the same alerts with the same thresholds.
struct AlertingSetup {
    let schedules: ScheduleSettings
    let config: AlertingConfig
    let rules: AlertRules

    init(environment env: [String: String], backstop: BackstopConfig) throws {
        let schedules = try validated { try ScheduleSettings(environment: env) }
        self.schedules = schedules
        config = try validated { try AlertingConfig(environment: env) }
        let intervals = Self.staleIntervals(schedules)
        let thresholds = try validated {
            try AlertThresholds(environment: env, config: backstop, scheduleIntervals: intervals)
        }
        rules = AlertRules(thresholds: thresholds)
    }

    /// BackupStale's default threshold per kind comes from the longest gap of that kind's
    /// schedule (a weekdays-only schedule must not alert on a Sunday). A disabled schedule
    /// gets no default threshold.
    static func staleIntervals(_ schedules: ScheduleSettings) -> [String: Duration] {
        var out: [String: Duration] = [:]
        for (job, kind) in JobKinds.backupJobs {
            if let expression = schedules.expression(for: job) { out[kind] = expression.longestInterval }
        }
        return out
    }
}
