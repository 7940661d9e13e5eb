import BackstopCore

/// Names and declarations of the families in DESIGN.md's metrics contract, in one place so
/// the exporter, the alert rules and the dashboard agree on spelling.
public enum Family {
    public static let buildInfo = "backstop_build_info"
    public static let backupLastSuccess = "backstop_backup_last_success_timestamp_seconds"
    public static let backupLastAttempt = "backstop_backup_last_attempt_timestamp_seconds"
    public static let backupLastRunSuccess = "backstop_backup_last_run_success"
    public static let backupAge = "backstop_backup_age_seconds"
    public static let backupLastSize = "backstop_backup_last_size_bytes"
    public static let backupEncrypted = "backstop_backup_encrypted"
    public static let backupEncryptionConfigured = "backstop_backup_encryption_configured"
    public static let backupLastDuration = "backstop_backup_last_duration_seconds"
    public static let backupDuration = "backstop_backup_duration_seconds"
    public static let backupRuns = "backstop_backup_runs_total"
    public static let diskTotal = "backstop_disk_total_bytes"
    public static let diskFree = "backstop_disk_free_bytes"
    public static let postgresUp = "backstop_postgres_up"
    public static let redisUp = "backstop_redis_up"
    public static let sentinelUp = "backstop_redis_sentinel_up"
    public static let sentinelMasterOK = "backstop_redis_sentinel_master_ok"
    public static let sentinelQuorumOK = "backstop_redis_sentinel_quorum_ok"
    public static let sentinelKnownSentinels = "backstop_redis_sentinel_known_sentinels"
    public static let sentinelKnownReplicas = "backstop_redis_sentinel_known_replicas"
    public static let redisMasterInfo = "backstop_redis_master_info"
    public static let healthCheckLast = "backstop_health_check_last_timestamp_seconds"
    public static let alertsFiring = "backstop_alerts_firing"
    public static let webhookDeliveries = "backstop_webhook_deliveries_total"
    public static let jobSkipped = "backstop_job_skipped_total"
    public static let backupsRetained = "backstop_backups_retained"
    public static let backupStorage = "backstop_backup_storage_bytes"
    public static let backupOldest = "backstop_backup_oldest_timestamp_seconds"
    public static let s3Uploads = "backstop_s3_uploads_total"
    public static let restoreLastSuccess = "backstop_restore_last_success_timestamp_seconds"
    public static let restoreDrillLastSuccess = "backstop_restore_drill_last_success_timestamp_seconds"
    public static let restoreDrillDuration = "backstop_restore_drill_duration_seconds"
    public static let restoreDrillLastAttempt = "backstop_restore_drill_last_attempt_timestamp_seconds"
    public static let restoreDrillLastRunSuccess = "backstop_restore_drill_last_run_success"

    /// The backup kinds of the contract's `kind` label.
    public static let backupKinds = ["postgres_full", "postgres_base", "redis"]
    /// Histogram buckets for backup durations, 1 s to 4 h.
    public static let durationBuckets: [Double] = [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400]

    /// Declares the families every `backstop serve` exports, before anything has happened.
    public static func declareStandard(in registry: MetricsRegistry) {
        registry.declare(buildInfo, .gauge, help: "Backstop build information; always 1.", labels: ["version"])
        registry.set(buildInfo, ["version": BuildInfo.version], 1)

        registry.declare(backupLastSuccess, .gauge, help: "Unix time the newest good backup of this kind and target finished.", labels: ["kind", "target"])
        registry.declare(backupLastAttempt, .gauge, help: "Unix time the newest backup attempt of this kind and target started.", labels: ["kind", "target"])
        registry.declare(backupLastRunSuccess, .gauge, help: "1 when the newest backup attempt of this kind and target succeeded, 0 when it failed.", labels: ["kind", "target"])
        registry.declareComputed(backupAge, .gauge, help: "Seconds since the newest good backup of this kind and target finished.", labels: ["kind", "target"]) { [registry] now in
            registry.series(backupLastSuccess).map { ($0.labels, $0.value > 0 ? max(0, now - $0.value) : now) }
        }
        registry.declare(backupLastSize, .gauge, help: "Size in bytes of the newest good backup of this kind and target.", labels: ["kind", "target"])
        registry.declare(backupEncryptionConfigured, .gauge, help: "1 when BACKUP_ENCRYPTION_RECIPIENTS is set (every new backup must be age-encrypted).")
        registry.declare(backupEncrypted, .gauge, help: "1 when the newest good backup of this kind is age-encrypted, 0 when it is plain gzip.", labels: ["kind"])
        registry.declare(backupLastDuration, .gauge, help: "Duration in seconds of the newest backup attempt of this kind and target.", labels: ["kind", "target"])
        registry.declare(backupDuration, .histogram, help: "Durations of backup runs in seconds.", labels: ["kind"], buckets: durationBuckets)
        registry.declare(backupRuns, .counter, help: "Backup runs by kind, target and result (success, failure, or interrupted by a shutdown).", labels: ["kind", "target", "result"])

        registry.declare(diskTotal, .gauge, help: "Size in bytes of the file system holding the backup folder.", labels: ["path"])
        registry.declare(diskFree, .gauge, help: "Bytes available to Backstop on the file system holding the backup folder.", labels: ["path"])
        registry.declare(postgresUp, .gauge, help: "1 when the last PostgreSQL probe succeeded.", labels: ["target"])
        registry.declare(redisUp, .gauge, help: "1 when the last probe of this Redis server succeeded.", labels: ["address", "role"])
        registry.declare(healthCheckLast, .gauge, help: "Unix time the last health check finished.")
        registry.declare(alertsFiring, .gauge, help: "1 while the alert fires, 0 once it has resolved.", labels: ["alertname", "severity"])
        // `job_name`, not `job`: Prometheus's own `job` label would rename it to `exported_job`.
        registry.declare(jobSkipped, .counter, help: "Scheduled runs skipped because the previous run of the job was still going.", labels: ["job_name"])
    }

    /// Declares the restore families (`backstop restore` records real restores in
    /// `.state/restores.json`; serve reads it).
    public static func declareRestore(in registry: MetricsRegistry) {
        registry.declare(restoreLastSuccess, .gauge, help: "Unix time the last successful restore of this kind finished.", labels: ["kind"])
        registry.declare(restoreDrillLastSuccess, .gauge, help: "Unix time the last successful restore drill of this kind finished (0: none yet).", labels: ["kind"])
        registry.declare(restoreDrillDuration, .gauge, help: "Seconds the last successful restore drill of this kind took: the measured recovery time.", labels: ["kind"])
        registry.declare(restoreDrillLastAttempt, .gauge, help: "Unix time the last restore drill of this kind finished, good or not (0: none yet).", labels: ["kind"])
        registry.declare(restoreDrillLastRunSuccess, .gauge, help: "1 when the last restore drill of this kind succeeded, 0 when it failed or none ran yet.", labels: ["kind"])
    }

    /// Declares the Sentinel families (only when Sentinel is configured).
    public static func declareSentinel(in registry: MetricsRegistry) {
        registry.declare(sentinelUp, .gauge, help: "1 when this Sentinel answered the last probe.", labels: ["sentinel"])
        registry.declare(sentinelMasterOK, .gauge, help: "1 when every answering Sentinel names the same, reachable master.", labels: ["master_name"])
        registry.declare(sentinelQuorumOK, .gauge, help: "1 when SENTINEL CKQUORUM succeeds on an answering Sentinel.", labels: ["master_name"])
        registry.declare(sentinelKnownSentinels, .gauge, help: "Sentinels watching the master, this one included, as a Sentinel reports them.", labels: ["master_name"])
        registry.declare(sentinelKnownReplicas, .gauge, help: "Replicas of the master known to Sentinel.", labels: ["master_name"])
        registry.declare(redisMasterInfo, .gauge, help: "The current Redis master address; always 1.", labels: ["master_name", "address"])
    }
}
