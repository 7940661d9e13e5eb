import BackstopCore
import BackstopMetrics
import BackupJobs
import S3

/// The object-store step of the data flow: after a backup job finishes, every good backup not
/// yet in S3 is uploaded (`S3Uploader.uploadPending`). It never throws and never touches a
/// local backup: a failed upload is logged to the backup log (without credentials), counted in
/// `.state/s3_uploads.json` (S3UploadFailing reads it) and retried after the next backup job.
///
/// Runs are serialized within the process: a job that finishes while an upload is going asks
/// for one more run instead of waiting, so its backup goes right after. Across processes
/// (`backstop backup …` by hand while `serve` uploads) `.state/s3.lock` keeps one at a time,
/// and the run that finds it held leaves its backups pending for the next cycle.
public final class OffsiteUploads: Sendable {
    let settings: S3Settings
    let backupDir: String
    let log: BackupLog
    let metrics: MetricsRegistry?
    /// Called after every upload run, good or not (serve's state store re-reads the upload state).
    let finished: (@Sendable () async -> Void)?
    private let serial = SerialRuns()

    public init(settings: S3Settings, backupDir: String, log: BackupLog, metrics: MetricsRegistry?, finished: (@Sendable () async -> Void)? = nil) {
        self.settings = settings
        self.backupDir = backupDir
        self.log = log
        self.metrics = metrics
        self.finished = finished
    }

    /// Uploads what is pending; `job` names the job that just finished, for the log.
    public func afterJob(_ job: String) async {
        await serial.run {
            await self.uploadOnce(after: job)
            await self.finished?()
        }
    }

    private func uploadOnce(after job: String) async {
        let destination = settings.destination
        let uploader = S3Uploader(settings: settings, backupDir: backupDir, metrics: metrics)
        do {
            let result = try await uploader.uploadPending()
            if !result.uploaded.isEmpty {
                log.info("s3: uploaded \(result.uploaded.count) backup\(result.uploaded.count == 1 ? "" : "s") to \(destination) after \(job): "
                    + result.uploaded.joined(separator: ", "))
                // The location="s3" series follow the bucket (listed here, never at a scrape).
                do {
                    try await RemoteMetrics.refresh(settings: settings, backupDir: backupDir, registry: metrics)
                } catch {
                    log.info("s3: the uploads went, but listing \(destination) for the location=\"s3\" metrics failed: \(uploader.redacted("\(error)"))")
                }
            }
            if let error = result.error {
                log.error("s3: upload of \(result.failed.joined(separator: ", ")) to \(destination) failed after \(job): \(error). "
                    + "\(result.pending) backup\(result.pending == 1 ? "" : "s") stay pending; the local backups are good and unchanged, "
                    + "and the upload is retried after the next backup job")
            } else if result.uploaded.isEmpty {
                log.info("s3: nothing pending for \(destination) after \(job)")
            }
        } catch let held as FileLock.Held {
            log.info("s3: another upload is running (\(held.holder.isEmpty ? held.path : held.holder)); "
                + "the backups of \(job) go with it or after the next backup job")
        } catch {
            log.error("s3: could not run the upload to \(destination) after \(job): \(uploader.redacted("\(error)")); "
                + "the local backups are unchanged; retried after the next backup job")
        }
    }
}
