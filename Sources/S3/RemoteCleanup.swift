import BackstopCore
import BackupCatalog
import Foundation

/// Retention for the S3 copies: the same `RetentionPolicy` as on disk, applied per kind and
/// target to what the bucket holds (`RemoteCatalog`). A backup goes with its `.meta` — the
/// `.meta` first, so an interrupted cleanup leaves at most an incomplete data object (removed
/// by a later run), never a `.meta` describing a copy that is gone. The newest good remote
/// backup of each kind and target is never deleted (the policy's `newest` rule).
///
/// Never throws: an unreachable bucket or a refused delete ends up in `Report.errors`, so the
/// local cleanup it runs beside is never stopped by it.
public struct RemoteCleanup: Sendable {
    public struct PlanEntry: Sendable {
        public var backup: RemoteBackup
        public var decision: RetentionPolicy.Decision
    }

    public struct Report: Sendable {
        public var dryRun: Bool
        /// `s3://bucket/prefix`.
        public var destination: String
        /// Newest first; empty when the bucket could not be listed.
        public var plan: [PlanEntry] = []
        /// Orphaned `.meta` objects (s3:// addresses) removed (or, in a dry run, to be removed).
        public var removedOrphans: [String] = []
        /// `reports/backup_inventory_*` objects of days past the retention period.
        public var removedReports: [String] = []
        /// Backups (s3:// addresses) copied (or, in a dry run, to be copied) into
        /// `BACKUP_S3_ARCHIVE_STORAGE_CLASS` as the yearly keeper of a finished year.
        public var archived: [String] = []
        public var freedBytes: UInt64 = 0
        public var errors: [String] = []
        /// The good backups left in the bucket afterwards (nil when the listing failed).
        public var kept: [RemoteBackup]?
    }

    public let settings: S3Settings
    public let policy: RetentionPolicy
    public let backupDir: String?

    public init(settings: S3Settings, policy: RetentionPolicy, backupDir: String?) {
        self.settings = settings
        self.policy = policy
        self.backupDir = backupDir
    }

    /// The decision for every remote backup (pure). An incomplete backup's age is the upload
    /// time of its newest object (an upload in progress is never a day old).
    public func decide(_ backups: [RemoteBackup], now: Double) -> [PlanEntry] {
        let decisions = policy.decide(backups.map {
            RetentionPolicy.Item(group: $0.entry.kind.rawValue + "/" + $0.entry.target,
                                 startedAt: $0.entry.isGood ? $0.entry.startedAt : max($0.lastModified, $0.entry.startedAt),
                                 isGood: $0.entry.isGood)
        }, now: now)
        return zip(backups, decisions).map { PlanEntry(backup: $0, decision: $1) }
    }

    public func run(dryRun: Bool, now: Double = WallClock.now()) async -> Report {
        var report = Report(dryRun: dryRun, destination: settings.destination)
        let listing: RemoteListing
        do {
            listing = try await RemoteCatalog(settings: settings, backupDir: backupDir).list()
        } catch {
            report.errors.append("listing \(settings.destination): \(error)")
            return report
        }
        report.plan = decide(listing.backups, now: now)
        let client = S3Client(settings: settings)
        var kept: [RemoteBackup] = []
        let archive = RemoteArchive(settings: settings)
        for item in report.plan {
            if item.decision.keep {
                var backup = item.backup
                if archive.shouldArchive(backup, decision: item.decision, now: now) {
                    report.archived.append(backup.entry.path)
                    if !dryRun {
                        do {
                            for key in backup.dataKeys { try await archive.archive(key: key) }
                            backup.storageClass = settings.archiveStorageClass
                        } catch {
                            report.errors.append("archiving \(backup.entry.path): \(error)")
                        }
                    }
                }
                kept.append(backup)
                continue
            }
            if dryRun {
                report.freedBytes += item.backup.storedBytes
                continue
            }
            do {
                if let meta = item.backup.metaKey { try await client.delete(key: meta) }
                for key in item.backup.dataKeys { try await client.delete(key: key) }
                report.freedBytes += item.backup.storedBytes
            } catch {
                report.errors.append("\(item.backup.entry.path): \(error)")
                kept.append(item.backup)
            }
        }
        for orphan in listing.orphanMetas where now - orphan.lastModified > policy.incompleteGraceSeconds {
            report.removedOrphans.append("s3://\(settings.bucket)/\(orphan.key)")
            if dryRun { continue }
            do { try await client.delete(key: orphan.key) } catch { report.errors.append("s3://\(settings.bucket)/\(orphan.key): \(error)") }
        }
        // Inventory reports the old scripts (and earlier cleanups) left under reports/, by the day
        // in the name; today's upload comes after this and is never one of them.
        let cutoff = now - Double(policy.retentionDays) * 86_400
        for (key, day) in listing.inventoryReports where day + 86_400 <= cutoff {
            report.removedReports.append("s3://\(settings.bucket)/\(key)")
            if dryRun { continue }
            do { try await client.delete(key: key) } catch { report.errors.append("s3://\(settings.bucket)/\(key): \(error)") }
        }
        report.kept = kept
        return report
    }
}

/// The remote side of the catalog families and of the inventory, per metric kind, from the
/// last listing: saved in `$BACKUP_DIR/.state/s3_catalog.json` so `serve` shows it from start-up
/// without calling S3 (a scrape never does).
public struct RemoteCatalogSnapshot: Codable, Sendable, Equatable {
    public struct Kind: Codable, Sendable, Equatable {
        public var count: Int
        public var bytes: UInt64
        /// Unix start time of the oldest good backup; 0 when there is none.
        public var oldest: Double
    }

    public var listedAt: Double
    public var destination: String
    /// Metric kind (`postgres_full`, `postgres_base`, `redis`) → totals of the good backups.
    public var kinds: [String: Kind]

    enum CodingKeys: String, CodingKey {
        case kinds, destination
        case listedAt = "listed_at"
    }

    public init(backups: [RemoteBackup], destination: String, listedAt: Double) {
        var kinds: [String: Kind] = [:]
        for kind in ["postgres_full", "postgres_base", "redis"] { kinds[kind] = Kind(count: 0, bytes: 0, oldest: 0) }
        for b in backups where b.entry.isGood {
            let k = b.entry.kind.metricKind
            var v = kinds[k] ?? Kind(count: 0, bytes: 0, oldest: 0)
            v.count += 1
            v.bytes += b.entry.sizeBytes
            v.oldest = v.oldest == 0 ? b.entry.startedAt : min(v.oldest, b.entry.startedAt)
            kinds[k] = v
        }
        self.kinds = kinds
        self.destination = destination
        self.listedAt = listedAt
    }

    public static func path(backupDir: String) -> String { backupDir + "/.state/s3_catalog.json" }

    public static func load(backupDir: String) -> RemoteCatalogSnapshot? {
        guard let bytes = try? FileSystem.read(path(backupDir: backupDir)) else { return nil }
        return try? JSONCoding.decode(RemoteCatalogSnapshot.self, from: bytes)
    }

    public func save(backupDir: String) throws {
        try FileSystem.createDirectory(backupDir + "/.state")
        try AtomicFile.write(try JSONCoding.encode(self), to: Self.path(backupDir: backupDir), mode: 0o640)
    }
}
