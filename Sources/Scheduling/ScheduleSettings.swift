import BackstopCore
import Foundation

/// The schedules Backstop's jobs run on, read from the environment once at start-up
/// (`backstop serve` and `backstop schedule` read the same values, so what `schedule`
/// prints is what `serve` does).
///
/// A `BACKUP_SCHEDULE_*` variable that is unset gets the old scripts' default; set but
/// empty disables the job. A bad expression is an error naming the variable and field.
public struct ScheduleSettings: Sendable {
    /// One cron-scheduled job.
    public struct Entry: Sendable, Equatable {
        /// The job name (the `job_name` label of `backstop_job_skipped_total`).
        public var job: String
        /// The environment variable it comes from.
        public var variable: String
        /// Nil when disabled.
        public var expression: CronExpression?
        public var defaultExpression: String
    }

    /// The cron jobs, in the order `backstop schedule` prints them.
    public var entries: [Entry]
    /// The health loop's period (`HEALTH_CHECK_INTERVAL`, default 5m).
    public var healthInterval: Duration
    /// The zone cron times are read in (`TZ`, UTC when unset or empty).
    public var timeZone: TimeZone
    /// How long running jobs may take to finish at shutdown (`SHUTDOWN_GRACE_PERIOD`, default 30s).
    public var shutdownGracePeriod: Duration

    /// The jobs, their variables and defaults (the scripts' crontab, plus the restore drill).
    public static let defaults: [(job: String, variable: String, expression: String)] = [
        ("full", "BACKUP_SCHEDULE_FULL", "0 2 * * *"),
        ("incremental", "BACKUP_SCHEDULE_INCREMENTAL", "0 */6 * * *"),
        ("redis", "BACKUP_SCHEDULE_REDIS", "0 */4 * * *"),
        ("cleanup", "BACKUP_SCHEDULE_CLEANUP", "0 3 * * *"),
        ("drill", "BACKUP_SCHEDULE_DRILL", "0 4 * * 0"),
    ]

    /// Throws `CronError` (naming the variable and field) or `ConfigError`.
    public init(environment env: [String: String]) throws {
        var entries: [Entry] = []
        for d in Self.defaults {
            let raw = env[d.variable]
            let expression: CronExpression?
            if let raw {
                expression = raw.trimmingSpaces().isEmpty ? nil : try CronExpression(raw, variable: d.variable)
            } else {
                expression = try CronExpression(d.expression, variable: d.variable)
            }
            entries.append(Entry(job: d.job, variable: d.variable, expression: expression, defaultExpression: d.expression))
        }
        self.entries = entries
        func value(_ name: String) -> String? {
            guard let v = env[name], !v.trimmingSpaces().isEmpty else { return nil }
            return v
        }
        healthInterval = try value("HEALTH_CHECK_INTERVAL").map {
            try ValueParsers.duration($0, variable: "HEALTH_CHECK_INTERVAL")
        } ?? .seconds(300)
        shutdownGracePeriod = try value("SHUTDOWN_GRACE_PERIOD").map {
            try ValueParsers.duration($0, variable: "SHUTDOWN_GRACE_PERIOD")
        } ?? .seconds(30)
        timeZone = try ScheduleTimeZone.fromEnvironment(env)
    }

    /// The scheduler's jobs for the given actions, keyed by job name (`full`, `incremental`,
    /// `redis`, `cleanup`, `drill`). A job whose variable is empty is included disabled; a
    /// name without an action is left out.
    public func jobs(_ actions: [String: @Sendable () async throws -> Void]) -> [ScheduledJob] {
        entries.compactMap { entry in
            actions[entry.job].map { ScheduledJob(name: entry.job, schedule: entry.expression, run: $0) }
        }
    }

    /// The expression of `job`, nil when disabled or unknown.
    public func expression(for job: String) -> CronExpression? {
        entries.first { $0.job == job }?.expression
    }
}
