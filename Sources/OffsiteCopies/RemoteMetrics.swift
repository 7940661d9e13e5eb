import BackstopCore
import BackstopMetrics
import BackupJobs
import S3

/// The location="s3" series of the catalog families, from the last remote listing.
public enum RemoteMetrics {
    /// Every kind is in a snapshot (at 0 when the bucket holds none), so none goes stale.
    public static func apply(_ snapshot: RemoteCatalogSnapshot, to registry: MetricsRegistry) {
        for (kind, totals) in snapshot.kinds {
            RetentionMetrics.set(registry, kind: kind, location: "s3", count: totals.count, bytes: totals.bytes, oldest: totals.oldest)
        }
    }

    /// Serve start: the snapshot the last cleanup (or upload) saved; no S3 call.
    public static func load(into registry: MetricsRegistry, backupDir: String) {
        apply(RemoteCatalogSnapshot.load(backupDir: backupDir) ?? RemoteCatalogSnapshot(backups: [], destination: "", listedAt: 0),
              to: registry)
    }

    /// Lists the bucket, saves the snapshot and updates the series (after an upload).
    public static func refresh(settings: S3Settings, backupDir: String, registry: MetricsRegistry?) async throws {
        let listing = try await RemoteCatalog(settings: settings, backupDir: backupDir).list()
        let snapshot = RemoteCatalogSnapshot(backups: listing.backups, destination: settings.destination, listedAt: WallClock.now())
        try snapshot.save(backupDir: backupDir)
        if let registry { apply(snapshot, to: registry) }
    }
}
