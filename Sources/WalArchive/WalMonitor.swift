import BackstopCore
import BackstopMetrics
import BackupCatalog
import BackupJobs
import Foundation
import PostgresClient

/// Refreshes the archive's gauges: newest segment, lag behind the server, slot retention and
/// the recovery window. Reads the folder and asks the server (libpq) — blocking: call from a
/// dedicated thread; scrapes only read what this wrote.
public struct WalMonitor: Sendable {
    public let archive: WalArchive
    public let jobSettings: PostgresJobSettings
    public let settings: WalArchiveSettings

    /// Watches the archive serve keeps for these settings (`WalArchive(jobSettings:settings:)`).
    public init(jobSettings: PostgresJobSettings, settings: WalArchiveSettings) {
        self.jobSettings = jobSettings
        self.settings = settings
        archive = WalArchive(jobSettings: jobSettings, settings: settings)
    }

    /// What the alert rules need of one refresh: the newest segment's arrival, and the slots'
    /// retained bytes (nil when the server could not be asked: keep the last known values).
    public struct Reading: Sendable {
        public var lastSegment: Double?
        public var slotRetainedBytes: [String: Double]?
    }

    @discardableResult
    public func refresh(_ registry: MetricsRegistry, now: Double = WallClock.now()) -> Reading {
        let chain = WalChain.load(archive)
        let newest = chain.contents.segments.max { $0.meta.archivedAtSeconds < $1.meta.archivedAtSeconds }
        registry.set(Family.walArchiveLastSegment, [:], newest?.meta.archivedAtSeconds ?? 0)
        var reading = Reading(lastSegment: newest?.meta.archivedAtSeconds)
        // The recovery window: from the end of the oldest base backup whose chain is continuous.
        let bases = BackupCatalog(backupDir: jobSettings.backupDir).list(kinds: [.postgresBase]).filter(\.isGood)
            .sorted { $0.startedAt < $1.startedAt }
        var start = 0.0
        var end = 0.0
        for base in bases {
            guard let meta = try? BackupMeta.read(forData: base.path), let lsn = meta.startLSN.flatMap({ LSN($0) }),
                  let tli = meta.timeline else { continue }
            let report = chain.check(from: lsn, timeline: UInt32(tli), allowPartial: true)
            if report.isContinuous {
                start = meta.finishedAt.flatMap { WallClock.parseRFC3339($0) } ?? base.startedAt
                end = max(start, newest?.meta.archivedAtSeconds ?? 0)
                if report.partial != nil { end = max(end, now) }
                break
            }
        }
        registry.set(Family.recoveryWindowStart, [:], start)
        registry.set(Family.recoveryWindowEnd, [:], end)
        // Lag and slots from the server.
        do {
            // The same settings (password included) as the client programs and the restore get.
            let connection = try PostgresConnection(database: "postgres", timeout: .seconds(5), extra: jobSettings.libpqParameters)
            let current = (try connection.query("SELECT pg_current_wal_lsn()").first?.first ?? nil).flatMap { LSN($0) }
            var durable: LSN?
            var lagSeconds = 0.0
            if settings.mode == .receivewal {
                let row = try connection.query("SELECT flush_lsn, COALESCE(EXTRACT(EPOCH FROM flush_lag), 0) FROM pg_stat_replication WHERE application_name = $1 ORDER BY flush_lsn DESC NULLS LAST LIMIT 1", [settings.slot]).first
                durable = row?[0].flatMap { LSN($0) }
                lagSeconds = row?[1].flatMap { Double($0) } ?? 0
            }
            if durable == nil, let seg = chain.contents.segments.last?.segment {
                durable = LSN(seg.startLSN.value + chain.segmentSize)
            }
            if let current {
                let lag = durable.map { LSN.distance(from: $0, to: current) } ?? current.value
                registry.set(Family.walArchiveLagBytes, [:], Double(lag))
                if settings.mode != .receivewal { lagSeconds = lag > 0 ? max(0, now - (newest?.meta.archivedAtSeconds ?? now)) : 0 }
                registry.set(Family.walArchiveLagSeconds, [:], lagSeconds)
            }
            let slots = try connection.query("SELECT slot_name, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) FROM pg_replication_slots WHERE restart_lsn IS NOT NULL")
            let retained = slots.compactMap { row -> (String, Double)? in
                guard let name = row[0], let bytes = row[1].flatMap({ Double($0) }) else { return nil }
                return (name, bytes)
            }
            registry.replace(Family.replicationSlotRetained, with: retained.map { (labels: ["slot": $0.0], value: $0.1) })
            reading.slotRetainedBytes = Dictionary(retained) { a, _ in a }
        } catch {
            // The server is down: PostgresDown says so; the gauges keep their last values.
        }
        return reading
    }
}
