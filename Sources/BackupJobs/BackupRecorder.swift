import BackstopCore
import BackstopMetrics
import BackupCatalog

/// Records a finished attempt where it must survive: `.state/attempts.json` (so last-attempt
/// metrics come back after a restart) and, when given, the live metrics registry.
enum BackupRecorder {
    static func record(_ outcome: BackupOutcome, backupDir: String, metrics: MetricsRegistry?, log: BackupLog) {
        let attempt = AttemptsRecord.Attempt(kind: outcome.kind.rawValue, target: outcome.target, startedAt: outcome.startedAt,
                                             finishedAt: outcome.finishedAt, success: outcome.success,
                                             sizeBytes: outcome.success ? outcome.sizeBytes : nil, message: outcome.message,
                                             interrupted: outcome.interrupted)
        do {
            try AttemptsRecord.record(attempt, backupDir: backupDir)
        } catch {
            log.error("recording the attempt in \(AttemptsRecord.path(backupDir: backupDir)) failed: \(error)")
        }
        if let metrics { BackupMetrics.record(outcome, into: metrics) }
    }
}
