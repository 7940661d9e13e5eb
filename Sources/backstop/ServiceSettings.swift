import BackstopCore
import BackupCatalog
import BackupJobs
import S3

/// Every setting `serve` and `health` need, parsed once from one environment: a bad value is
/// one `ValidationError` at start-up naming the variable, and nothing downstream parses again.
struct ServiceSettings {
    let environment: [String: String]
    let backstop: BackstopConfig
    let alerting: AlertingSetup
    let postgres: PostgresJobSettings
    let redis: RedisJobSettings
    let retention: RetentionPolicy
    /// Nil when S3 is off.
    let s3: S3Settings?

    init(environment env: [String: String], backstop: BackstopConfig) throws {
        environment = env
        self.backstop = backstop
        alerting = try AlertingSetup(environment: env, backstop: backstop)
        postgres = try validated { try PostgresJobSettings(environment: env) }
        redis = try validated { try RedisJobSettings(environment: env) }
        retention = try validated { try RetentionPolicy(environment: env) }
        // S3 is checked here, not at the first upload: a bad BACKUP_S3_* value stops start-up.
        s3 = try S3Config.optional(env)
    }

    /// The series every configured job owns, at 0 until its first run, so a job that never
    /// succeeded is visible (and BackupStale can fire for it).
    var expected: [BackupMetrics.Expected] {
        BackupMetrics.expected(postgres: postgres) + BackupMetrics.expected(redis: redis)
    }
}
