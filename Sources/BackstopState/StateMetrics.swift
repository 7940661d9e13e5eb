import BackstopMetrics
import BackupJobs
import Restore
import S3

/// The metrics as a view of the state: every change of the store renders the state into the
/// registry the scrapes read. Nothing reads these values back as state.
enum StateMetrics {
    static func declare(in registry: MetricsRegistry, s3: Bool) {
        Family.declareStandard(in: registry)
        Family.declareRestore(in: registry)
        if s3 { S3Uploader.declareMetrics(in: registry) }
    }

    static func render(_ state: ServiceState, into registry: MetricsRegistry) {
        BackupMetrics.publish(state.backups, into: registry)
        state.restores.publish(into: registry)
        if let uploads = state.uploads { S3Uploader.publish(uploads, in: registry) }
        registry.set(Family.backupEncryptionConfigured, [:], state.encryptionConfigured ? 1 : 0)
    }
}
