import Alerting
import BackstopMetrics
import Restore

/// The restore-drill facts the alert evaluator needs: the metrics (what Prometheus sees too)
/// plus why the last drill failed, which only `.state/restores.json` holds.
enum RestoreDrills {
    static func facts(registry: MetricsRegistry, backupDir: String) -> [RestoreDrillFacts] {
        let record = RestoreRecord.load(backupDir: backupDir)
        return RestoreDrillFacts.all(from: registry).map { facts in
            var facts = facts
            if facts.lastRunSucceeded == false { facts.lastError = record.drillLastError[facts.kind] }
            return facts
        }
    }
}
