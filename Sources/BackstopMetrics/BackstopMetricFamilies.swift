import BackstopCore

/// DESIGN.md's metrics contract as one typed list: every `backstop_*` family Backstop exports
/// is a case here, and its type, HELP text and label names are in `declaration`, beside the
/// name. Code names a family only through a case (the registry takes `Family`), so a family
/// cannot be spelled twice in Swift; `MetricNamesConsistencyTests` fails when the alert rules,
/// the dashboard or README name a `backstop_*` family this list does not declare.
public enum Family: String, CaseIterable, Sendable {
    case buildInfo = "backstop_build_info"
    case backupLastSuccess = "backstop_backup_last_success_timestamp_seconds"
    case backupLastAttempt = "backstop_backup_last_attempt_timestamp_seconds"
    case backupLastRunSuccess = "backstop_backup_last_run_success"
    case backupAge = "backstop_backup_age_seconds"
    case backupLastSize = "backstop_backup_last_size_bytes"
    case backupEncrypted = "backstop_backup_encrypted"
    case backupEncryptionConfigured = "backstop_backup_encryption_configured"
    case backupLastDuration = "backstop_backup_last_duration_seconds"
    case backupDuration = "backstop_backup_duration_seconds"
    case backupRuns = "backstop_backup_runs_total"
    case diskTotal = "backstop_disk_total_bytes"
    case diskFree = "backstop_disk_free_bytes"
    case postgresUp = "backstop_postgres_up"
    case redisUp = "backstop_redis_up"
    case sentinelUp = "backstop_redis_sentinel_up"
    case sentinelMasterOK = "backstop_redis_sentinel_master_ok"
    case sentinelQuorumOK = "backstop_redis_sentinel_quorum_ok"
    case sentinelKnownSentinels = "backstop_redis_sentinel_known_sentinels"
    case sentinelKnownReplicas = "backstop_redis_sentinel_known_replicas"
    case redisMasterInfo = "backstop_redis_master_info"
    case healthCheckLast = "backstop_health_check_last_timestamp_seconds"
    case alertsFiring = "backstop_alerts_firing"
    case webhookDeliveries = "backstop_webhook_deliveries_total"
    case jobSkipped = "backstop_job_skipped_total"
    case backupsRetained = "backstop_backups_retained"
    case backupStorage = "backstop_backup_storage_bytes"
    case backupOldest = "backstop_backup_oldest_timestamp_seconds"
    case s3Uploads = "backstop_s3_uploads_total"
    case s3UploadConsecutiveFailures = "backstop_s3_upload_consecutive_failures"
    case s3UploadLastSuccess = "backstop_s3_upload_last_success_timestamp_seconds"
    case restoreLastSuccess = "backstop_restore_last_success_timestamp_seconds"
    case restoreDrillLastSuccess = "backstop_restore_drill_last_success_timestamp_seconds"
    case restoreDrillDuration = "backstop_restore_drill_duration_seconds"
    case restoreDrillLastAttempt = "backstop_restore_drill_last_attempt_timestamp_seconds"
    case restoreDrillLastRunSuccess = "backstop_restore_drill_last_run_success"
    case walArchiveLastSegment = "backstop_wal_archive_last_segment_timestamp_seconds"
    case walArchiveLagBytes = "backstop_wal_archive_lag_bytes"
    case walArchiveLagSeconds = "backstop_wal_archive_lag_seconds"
    case walReceiverUp = "backstop_wal_receiver_up"
    case walReceiverRestarts = "backstop_wal_receiver_restarts_total"
    case replicationSlotRetained = "backstop_replication_slot_retained_bytes"
    case recoveryWindowStart = "backstop_recovery_window_start_timestamp_seconds"
    case recoveryWindowEnd = "backstop_recovery_window_end_timestamp_seconds"
    case walS3LastSegment = "backstop_wal_archive_s3_last_segment_timestamp_seconds"
    case walS3Pending = "backstop_wal_archive_s3_pending_files"

    /// The family's name in the text format.
    public var name: String { rawValue }

    /// Type, HELP text, label names and buckets: the whole declaration, next to the name.
    public var declaration: MetricDeclaration {
        switch self {
        case .buildInfo: .gauge("Backstop build information; always 1.", labels: ["version"])
        case .backupLastSuccess: .gauge("Unix time the newest good backup of this kind and target finished.", labels: ["kind", "target"])
        case .backupLastAttempt: .gauge("Unix time the newest backup attempt of this kind and target started.", labels: ["kind", "target"])
        case .backupLastRunSuccess: .gauge("1 when the newest backup attempt of this kind and target succeeded, 0 when it failed.", labels: ["kind", "target"])
        case .backupAge: .gauge("Seconds since the newest good backup of this kind and target finished.", labels: ["kind", "target"])
        case .backupLastSize: .gauge("Size in bytes of the newest good backup of this kind and target.", labels: ["kind", "target"])
        case .backupEncrypted: .gauge("1 when the newest good backup of this kind is age-encrypted, 0 when it is plain gzip.", labels: ["kind"])
        case .backupEncryptionConfigured: .gauge("1 when BACKUP_ENCRYPTION_RECIPIENTS is set (every new backup must be age-encrypted).")
        case .backupLastDuration: .gauge("Duration in seconds of the newest backup attempt of this kind and target.", labels: ["kind", "target"])
        case .backupDuration: .histogram("Durations of backup runs in seconds.", labels: ["kind"], buckets: Self.durationBuckets)
        case .backupRuns: .counter("Backup runs by kind, target and result (success or failure).", labels: ["kind", "target", "result"])
        case .diskTotal: .gauge("Size in bytes of the file system holding the backup folder.", labels: ["path"])
        case .diskFree: .gauge("Bytes available to Backstop on the file system holding the backup folder.", labels: ["path"])
        case .postgresUp: .gauge("1 when the last PostgreSQL probe succeeded.", labels: ["target"])
        case .redisUp: .gauge("1 when the last probe of this Redis server succeeded.", labels: ["address", "role"])
        case .sentinelUp: .gauge("1 when this Sentinel answered the last probe.", labels: ["sentinel"])
        case .sentinelMasterOK: .gauge("1 when every answering Sentinel names the same, reachable master.", labels: ["master_name"])
        case .sentinelQuorumOK: .gauge("1 when SENTINEL CKQUORUM succeeds on an answering Sentinel.", labels: ["master_name"])
        case .sentinelKnownSentinels: .gauge("Sentinels watching the master, this one included, as a Sentinel reports them.", labels: ["master_name"])
        case .sentinelKnownReplicas: .gauge("Replicas of the master known to Sentinel.", labels: ["master_name"])
        case .redisMasterInfo: .gauge("The current Redis master address; always 1.", labels: ["master_name", "address"])
        case .healthCheckLast: .gauge("Unix time the last health check finished.")
        case .alertsFiring: .gauge("1 while the alert fires, 0 once it has resolved.", labels: ["alertname", "severity"])
        case .webhookDeliveries:
            .counter("Alert webhook deliveries by result (success or failure), counted once per notification and URL after retries.", labels: ["result"])
        // `job_name`, not `job`: Prometheus's own `job` label would rename it to `exported_job`.
        case .jobSkipped: .counter("Scheduled runs skipped because the previous run of the job was still going.", labels: ["job_name"])
        case .backupsRetained: .gauge("Good backups kept, by kind and location (local or s3).", labels: ["kind", "location"])
        case .backupStorage: .gauge("Bytes used by the good backups of this kind at this location.", labels: ["kind", "location"])
        case .backupOldest: .gauge("Unix start time of the oldest good backup of this kind at this location; 0 when there is none.", labels: ["kind", "location"])
        case .s3Uploads: .counter("Backup uploads to S3 by result (success or failure).", labels: ["result"])
        case .s3UploadConsecutiveFailures:
            .gauge("Upload runs in a row that failed since the last successful upload (S3UploadFailing fires at ALERT_S3_FAILURES, default 1).")
        case .s3UploadLastSuccess: .gauge("Unix time the last successful upload to S3 finished (0: none yet).")
        case .restoreLastSuccess: .gauge("Unix time the last successful restore of this kind finished.", labels: ["kind"])
        case .restoreDrillLastSuccess: .gauge("Unix time the last successful restore drill of this kind finished (0: none yet).", labels: ["kind"])
        case .restoreDrillDuration: .gauge("Seconds the last successful restore drill of this kind took: the measured recovery time.", labels: ["kind"])
        case .restoreDrillLastAttempt: .gauge("Unix time the last restore drill of this kind finished, good or not (0: none yet).", labels: ["kind"])
        case .restoreDrillLastRunSuccess: .gauge("1 when the last restore drill of this kind succeeded, 0 when it failed or none ran yet.", labels: ["kind"])
        case .walArchiveLastSegment: .gauge("When the newest WAL segment reached the archive (0: none yet).")
        case .walArchiveLagBytes: .gauge("Bytes of WAL the server has written that are not durable in the archive yet.")
        case .walArchiveLagSeconds: .gauge("Seconds the archive is behind the server (0 when it has everything).")
        case .walReceiverUp: .gauge("1 while pg_receivewal runs under serve.")
        case .walReceiverRestarts: .counter("Times pg_receivewal was restarted after it ended.")
        case .replicationSlotRetained:
            .gauge("Bytes of WAL a replication slot makes the server keep (current LSN minus the slot's restart LSN).", labels: ["slot"])
        case .recoveryWindowStart:
            .gauge("The earliest time a point-in-time restore can reach: the end of the oldest base backup with a continuous WAL chain (0: none).")
        case .recoveryWindowEnd: .gauge("The latest time a point-in-time restore can reach: the newest WAL in the archive (0: none).")
        case .walS3LastSegment: .gauge("When the newest WAL segment in S3 reached the local archive (its archived_at; 0: none uploaded yet).")
        case .walS3Pending: .gauge("Archived WAL files (segments, .history, .backup) not in S3 yet after the last upload run.")
        }
    }

    /// The backup kinds of the contract's `kind` label.
    public static let backupKinds = ["postgres_full", "postgres_base", "redis"]
    /// Histogram buckets for backup durations, 1 s to 4 h.
    public static let durationBuckets: [Double] = [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400]

    /// Declares the families every `backstop serve` exports, before anything has happened.
    public static func declareStandard(in registry: MetricsRegistry) {
        registry.declare(buildInfo)
        registry.set(buildInfo, ["version": BuildInfo.version], 1)
        for family in [backupLastSuccess, backupLastAttempt, backupLastRunSuccess] { registry.declare(family) }
        registry.declareComputed(backupAge) { [registry] now in
            registry.series(backupLastSuccess).map { ($0.labels, $0.value > 0 ? max(0, now - $0.value) : now) }
        }
        for family in [backupLastSize, backupEncryptionConfigured, backupEncrypted, backupLastDuration, backupDuration, backupRuns,
                       diskTotal, diskFree, postgresUp, redisUp, healthCheckLast, alertsFiring, jobSkipped] {
            registry.declare(family)
        }
    }

    /// Declares the restore families (`backstop restore` records real restores in
    /// `.state/restores.json`; serve reads it).
    public static func declareRestore(in registry: MetricsRegistry) {
        for family in [restoreLastSuccess, restoreDrillLastSuccess, restoreDrillDuration, restoreDrillLastAttempt, restoreDrillLastRunSuccess] {
            registry.declare(family)
        }
    }

    /// Declares the WAL archive's S3 families (archive on and S3 configured), 0 until the
    /// first upload run.
    public static func declareWalS3(in registry: MetricsRegistry) {
        registry.declare(walS3LastSegment)
        registry.declare(walS3Pending)
        registry.touch(walS3LastSegment)
        registry.touch(walS3Pending)
    }

    /// Declares the Sentinel families (only when Sentinel is configured).
    public static func declareSentinel(in registry: MetricsRegistry) {
        for family in [sentinelUp, sentinelMasterOK, sentinelQuorumOK, sentinelKnownSentinels, sentinelKnownReplicas, redisMasterInfo] {
            registry.declare(family)
        }
    }
}
