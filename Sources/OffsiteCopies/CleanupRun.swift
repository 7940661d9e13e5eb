import BackstopCore
import BackstopMetrics
import BackupCatalog
import BackupJobs
import S3
import WalArchive

/// The whole cleanup, as `backstop cleanup` and the scheduled job run it: the local one first
/// (a remote failure never stops it), then — with S3 on — the same policy on the bucket, the
/// inventory rewritten with the remote groups and uploaded under `reports/`, and the
/// location="s3" series refreshed.
public enum CleanupRun {
    public struct Outcome: Sendable {
        public var local: BackupCleanup.Report
        public var remote: RemoteCleanup.Report?
        /// The WAL archive's part (segments no kept base backup needs).
        public var wal = WalRetention.Report()
        /// The bucket's WAL archive (nil: S3 off, or the bucket's backups could not be listed).
        public var remoteWal: WalRetention.Report?
        /// s3:// addresses of the inventory files uploaded.
        public var uploadedReports: [String] = []
        public var inventoryErrors: [String] = []
        public var remoteErrors: [String] { (remote?.errors ?? []) + (remoteWal?.errors ?? []) + inventoryErrors }
    }

    public static func run(backupDir: String, policy: RetentionPolicy, s3: S3Settings?, dryRun: Bool,
                    log: BackupLog?, metrics: MetricsRegistry?) async throws -> Outcome {
        let now = WallClock.now()
        // The local part runs on a blocking thread: the task's cancellation reaches it through
        // `cancellation`, checked before each backup it removes.
        let cancellation = JobCancellation()
        let local = try await withTaskCancellationHandler {
            try await Blocking.run {
                try BackupCleanup(backupDir: backupDir, policy: policy, log: log, metrics: metrics)
                    .run(dryRun: dryRun, now: now, cancellation: cancellation)
            }
        } onCancel: {
            cancellation.cancel()
        }
        // A shutdown (SIGTERM to `backstop cleanup`, serve's grace period over) stops it between
        // parts: each part leaves every backup either whole or removed with its `.meta`.
        try Task.checkCancellation()
        var outcome = Outcome(local: local)
        // With S3 on, a segment leaves the disk only once the bucket has it (its upload marker).
        outcome.wal = await Blocking.run { WalRetention(backupDir: backupDir, requireUploaded: s3 != nil).run(dryRun: dryRun, log: log) }
        outcome.local.errors += outcome.wal.errors
        guard let s3 else { return outcome }
        try Task.checkCancellation()
        let remote = await RemoteCleanup(settings: s3, policy: policy, backupDir: backupDir).run(dryRun: dryRun, now: now)
        outcome.remote = remote
        for error in remote.errors { log?.error("cleanup \(s3.destination): \(error)") }
        if let kept = remote.kept {
            // The bucket's WAL against the base backups the bucket keeps (after their retention).
            let bases = RemoteWalArchive.bases(kept).map { (start: $0.start, timeline: $0.timeline) }
            let wal = await RemoteWalArchive(settings: s3, backupDir: backupDir).prune(bases: bases, dryRun: dryRun)
            outcome.remoteWal = wal
            for error in wal.errors { log?.error("cleanup \(s3.destination)/postgres/wal: \(error)") }
            if !dryRun && !wal.removed.isEmpty {
                log?.info("cleanup \(s3.destination)/postgres/wal: removed \(wal.removed.count) WAL files before \(wal.keepFrom ?? "?"), freed \(HumanBytes.format(wal.freedBytes))")
            }
        }
        guard !dryRun else { return outcome }
        let removed = remote.plan.count(where: { !$0.decision.keep }) - remote.errors.count
        if remote.kept != nil {
            log?.info("cleanup \(s3.destination): kept \(remote.plan.count(where: { $0.decision.keep })) backups, removed \(max(0, removed)); freed \(HumanBytes.format(remote.freedBytes))")
        }
        if let kept = remote.kept {
            let snapshot = RemoteCatalogSnapshot(backups: kept, destination: s3.destination, listedAt: now)
            do { try snapshot.save(backupDir: backupDir) } catch { outcome.inventoryErrors.append("saving \(RemoteCatalogSnapshot.path(backupDir: backupDir)): \(error)") }
            if let metrics { RemoteMetrics.apply(snapshot, to: metrics) }
        }
        if var inventory = local.inventory {
            inventory.remote = BackupInventory.Remote(location: s3.destination, entries: remote.kept?.map(\.entry) ?? [],
                                                      error: remote.kept == nil ? remote.errors.first : nil)
            outcome.local.inventory = inventory
            do {
                let written = inventory
                let paths = try await Blocking.run { try BackupCleanup.writeInventory(written, backupDir: backupDir, now: now) }
                let client = S3Client(settings: s3)
                for path in paths {
                    let key = s3.key(for: "reports/" + FileSystem.lastComponent(of: path))
                    try await client.upload(file: path, key: key)
                    outcome.uploadedReports.append("s3://\(s3.bucket)/\(key)")
                }
            } catch {
                outcome.inventoryErrors.append("inventory upload to \(s3.destination)/reports: \(error)")
                log?.error("cleanup: inventory upload to \(s3.destination)/reports failed: \(error)")
            }
        }
        return outcome
    }
}
