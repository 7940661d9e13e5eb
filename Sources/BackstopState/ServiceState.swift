import Alerting
import BackstopCore
import BackupJobs
import Health
import Restore
import S3

/// Everything Backstop knows at one moment, as plain values: the backup jobs' statuses, the
/// last round of probes, the S3 upload state, the restore and drill record, the WAL archive.
/// The state store holds the one current copy; the metrics, the alert rules, the scheduler's
/// catch-up and `backstop health` all read it, and nothing reads state back from the metrics.
public struct ServiceState: Sendable {
    /// One per configured job and per kind/target found on disk, sorted by kind and target.
    public var backups: [BackupStatus]
    /// The newest round of probes; nil until the first one finished.
    public var health: HealthReport?
    /// The upload state of `.state/s3_uploads.json`; nil when S3 is off.
    public var uploads: S3UploadState?
    /// `.state/s3_wal_uploads.json`: the WAL archive's uploads; nil when none ran (or S3 is off).
    public var walUploads: WalUploadState?
    /// The bucket (and prefix) uploads go to, for the alert description; nil when S3 is off.
    public var s3Destination: String?
    /// `.state/restores.json`: real restores and drills.
    public var restores: RestoreRecord
    /// Continuous WAL archiving; nil when not configured.
    public var walArchive: WalArchiveFacts?
    /// BACKUP_ENCRYPTION_RECIPIENTS is set.
    public var encryptionConfigured = false

    public init(backups: [BackupStatus] = [], health: HealthReport? = nil, uploads: S3UploadState? = nil,
                s3Destination: String? = nil, restores: RestoreRecord = RestoreRecord(), walArchive: WalArchiveFacts? = nil) {
        self.backups = backups
        self.health = health
        self.uploads = uploads
        self.s3Destination = s3Destination
        self.restores = restores
        self.walArchive = walArchive
    }

    /// What the alert rules see, with the probes of `report` and ages measured from `time`.
    public func snapshot(report: HealthReport, time: Double) -> HealthSnapshot {
        var snapshot = HealthSnapshot(report: report, backups: backupFacts, s3: s3Facts, walArchive: walArchive, restoreDrills: drillFacts)
        snapshot.time = time
        snapshot.encryptionConfigured = encryptionConfigured
        return snapshot
    }

    public var backupFacts: [BackupFacts] {
        backups.map { b in
            BackupFacts(kind: b.kind, target: b.target, lastSuccess: b.lastSuccess > 0 ? b.lastSuccess : nil,
                        lastAttempt: b.lastAttempt > 0 ? b.lastAttempt : nil,
                        lastRunSucceeded: b.lastAttempt > 0 ? b.lastRunSucceeded : nil,
                        lastError: b.lastRunSucceeded ? nil : b.lastError,
                        encrypted: b.lastSuccess > 0 ? b.encrypted : nil)
        }
    }

    /// S3UploadFailing's input: the backup uploads and the WAL archive's uploads together —
    /// the worse run of failures counts, and its error is the one described.
    public var s3Facts: S3Facts? {
        uploads.map { u in
            var facts = S3Facts(consecutiveFailures: u.consecutiveFailures, lastFailure: u.lastFailure, lastSuccess: u.lastSuccess,
                                lastError: u.lastError, destination: s3Destination)
            if let w = walUploads, w.consecutiveFailures > facts.consecutiveFailures {
                facts.consecutiveFailures = w.consecutiveFailures
                facts.lastFailure = w.lastFailure
                facts.lastError = w.lastError.map { "WAL archive upload: " + $0 }
            }
            return facts
        }
    }

    public var drillFacts: [RestoreDrillFacts] {
        restores.drillKinds.map { kind in
            let success = restores.drillLastSuccess[kind]
            let attempt = restores.drillLastAttempt[kind] ?? success
            let ok = restores.drillLastRunSucceeded(kind)
            return RestoreDrillFacts(kind: kind, lastSuccess: success, lastAttempt: attempt, lastRunSucceeded: ok,
                                     lastError: ok == false ? restores.drillLastError[kind] : nil)
        }
    }

    /// The newest success of the jobs' kind, for the scheduler's catch-up: the oldest of the
    /// targets' newest backups (one database without a backup is enough to need a run).
    /// `nil` kind (cleanup) has nothing to go by.
    public func oldestLastSuccess(kind: String) -> Double? {
        let values = backups.filter { $0.kind == kind }.map(\.lastSuccess)
        guard let oldest = values.min() else { return nil }
        return oldest
    }

    /// When the oldest of the drilled kinds last finished a drill; nil when none ran.
    public var oldestDrillAttempt: Double? {
        RestoreRecord.drilledKinds.compactMap { restores.drillLastAttempt[$0] ?? restores.drillLastSuccess[$0] }.filter { $0 > 0 }.min()
    }
}
