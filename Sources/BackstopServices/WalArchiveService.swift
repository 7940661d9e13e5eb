import BackstopCore
import BackstopMetrics
import Alerting
import BackstopState
import BackupJobs
import OffsiteCopies
import S3
import ServiceLifecycle
import WalArchive

/// Serve's part of the WAL archive (BACKUP_WAL_ARCHIVE): with `receivewal`, pg_receivewal
/// supervised on a thread of its own; in both modes the archive's gauges refreshed every 15 s,
/// and — with S3 on — the files not yet in the bucket uploaded every 15 s (`WalUploader`, its
/// outcome into the state store, where S3UploadFailing reads it). On graceful shutdown the
/// loops stop (an upload in flight finishes), pg_receivewal is stopped (it flushes) and its
/// last segments archived; what is not uploaded yet goes at the next start.
public struct WalArchiveService: Service {
    let receiver: WalReceiver?
    let monitor: WalMonitor
    let registry: MetricsRegistry
    /// WalArchiveStalled and WalSlotRetentionHigh read the archive's facts from the store.
    let store: StateStore
    let path: String
    let uploader: WalUploader?
    let log: BackupLog

    /// nil when BACKUP_WAL_ARCHIVE is off (the caller parsed the settings: a bad BACKUP_WAL_*
    /// value stops start-up before any service runs).
    public static func make(settings: WalArchiveSettings, jobSettings: PostgresJobSettings, s3: S3Settings?, registry: MetricsRegistry,
                            store: StateStore) -> WalArchiveService? {
        guard settings.mode != .off else { return nil }
        WalMetrics.declare(in: registry, receiver: settings.mode == .receivewal)
        let log = BackupLog(backupDir: jobSettings.backupDir, echo: false)
        let receiver = settings.mode == .receivewal
            ? WalReceiver(settings: settings, jobSettings: jobSettings, log: log, metrics: registry)
            : nil
        let uploader = s3.map { WalUploader(settings: $0, backupDir: jobSettings.backupDir) }
        if uploader != nil {
            Family.declareWalS3(in: registry)
            if let state = WalUploadState.load(backupDir: jobSettings.backupDir) { WalUploader.publish(state, in: registry) }
        }
        return WalArchiveService(receiver: receiver, monitor: WalMonitor(jobSettings: jobSettings, settings: settings),
                                 registry: registry, store: store, path: jobSettings.backupDir + "/postgres/wal", uploader: uploader, log: log)
    }

    public func run() async throws {
        let receiving: Task<Void, Never>? = receiver.map { receiver in
            Task { await Blocking.run { receiver.run() } }
        }
        let (monitor, registry, store, path, uploader) = (self.monitor, self.registry, self.store, self.path, self.uploader)
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    var slots: [String: Double] = [:]
                    while !Task.isCancelled {
                        let reading = await Blocking.run { monitor.refresh(registry) }
                        if let fresh = reading.slotRetainedBytes { slots = fresh }
                        await store.recordWalArchive(WalArchiveFacts(lastSegmentTime: reading.lastSegment, path: path, slotRetainedBytes: slots))
                        try? await Task.sleep(for: .seconds(15))
                    }
                }
                if let uploader {
                    group.addTask {
                        var failing = false
                        while !Task.isCancelled {
                            failing = await uploadOnce(uploader, wasFailing: failing)
                            try? await Task.sleep(for: .seconds(15))
                        }
                    }
                }
            }
        }
        receiver?.stop()
        await receiving?.value
    }

    /// One upload run; logs what went (and a failure once per run of failures, not every 15 s).
    /// Returns whether it failed.
    func uploadOnce(_ uploader: WalUploader, wasFailing: Bool) async -> Bool {
        let destination = uploader.settings.destination
        do {
            let result = try await uploader.uploadPending(metrics: registry)
            await store.recordWalUploads(WalUploadState.load(backupDir: uploader.backupDir))
            if !result.uploaded.isEmpty {
                log.info("s3: uploaded \(result.uploaded.count) WAL file\(result.uploaded.count == 1 ? "" : "s") to \(destination)/postgres/wal (newest \(result.uploaded.last ?? ""))")
            }
            if let error = result.error {
                if !wasFailing {
                    log.error("s3: WAL upload of \(result.failed ?? "?") to \(destination) failed: \(error). \(result.pending) WAL files stay pending (kept on disk until uploaded); retried every 15 s")
                }
                return true
            }
            if wasFailing { log.info("s3: WAL uploads to \(destination) work again") }
            return false
        } catch is FileLock.Held {
            // `backstop wal upload` by hand is running: it does this round's work.
            return wasFailing
        } catch {
            if !wasFailing { log.error("s3: could not run the WAL upload to \(destination): \(uploader.settings.credentials.redact("\(error)"))") }
            return true
        }
    }
}
