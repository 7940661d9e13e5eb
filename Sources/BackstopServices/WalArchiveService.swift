import BackstopCore
import BackstopMetrics
import Alerting
import BackstopState
import BackupJobs
import ServiceLifecycle
import WalArchive

/// Serve's part of the WAL archive (BACKUP_WAL_ARCHIVE): with `receivewal`, pg_receivewal
/// supervised on a thread of its own; in both modes the archive's gauges refreshed every 15 s.
/// On graceful shutdown pg_receivewal is stopped (it flushes) and its last segments archived.
public struct WalArchiveService: Service {
    let receiver: WalReceiver?
    let monitor: WalMonitor
    let registry: MetricsRegistry
    /// WalArchiveStalled and WalSlotRetentionHigh read the archive's facts from the store.
    let store: StateStore
    let path: String

    /// nil when BACKUP_WAL_ARCHIVE is off (the caller parsed the settings: a bad BACKUP_WAL_*
    /// value stops start-up before any service runs).
    public static func make(settings: WalArchiveSettings, jobSettings: PostgresJobSettings, registry: MetricsRegistry, store: StateStore) -> WalArchiveService? {
        guard settings.mode != .off else { return nil }
        let archive = WalArchive(backupDir: jobSettings.backupDir, compressionLevel: jobSettings.compressionLevel)
        WalMetrics.declare(in: registry, receiver: settings.mode == .receivewal)
        let receiver = settings.mode == .receivewal
            ? WalReceiver(settings: settings, jobSettings: jobSettings, log: BackupLog(backupDir: jobSettings.backupDir, echo: false), metrics: registry)
            : nil
        return WalArchiveService(receiver: receiver, monitor: WalMonitor(archive: archive, jobSettings: jobSettings, settings: settings),
                                 registry: registry, store: store, path: jobSettings.backupDir + "/postgres/wal")
    }

    public func run() async throws {
        let receiving: Task<Void, Never>? = receiver.map { receiver in
            Task { await Blocking.run { receiver.run() } }
        }
        let (monitor, registry, store, path) = (self.monitor, self.registry, self.store, self.path)
        await cancelWhenGracefulShutdown {
            var slots: [String: Double] = [:]
            while !Task.isCancelled {
                let reading = await Blocking.run { monitor.refresh(registry) }
                if let fresh = reading.slotRetainedBytes { slots = fresh }
                await store.recordWalArchive(WalArchiveFacts(lastSegmentTime: reading.lastSegment, path: path, slotRetainedBytes: slots))
                try? await Task.sleep(for: .seconds(15))
            }
        }
        receiver?.stop()
        await receiving?.value
    }
}
