import Alerting
import Foundation
import Testing

/// alerts/backstop.rules.yml must name every rule of the evaluator and use its default
/// thresholds (promtool's own tests in alerts/backstop.test.yml check the PromQL).
@Suite struct PrometheusRulesConsistencyTests {
    static let rulesFile: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.appendingPathComponent("alerts/backstop.rules.yml").path
    }()

    @Test func sameNamesAndDefaultThresholds() throws {
        let text = try String(contentsOfFile: Self.rulesFile, encoding: .utf8)
        for name in AlertRules.names {
            #expect(text.contains("- alert: \(name)\n"), "alerts/backstop.rules.yml has no \(name)")
        }
        let t = AlertThresholds()
        for (kind, limit) in t.backupStaleAfter {
            #expect(text.contains("backstop_backup_age_seconds{kind=\"\(kind)\"} > \(Int(limit.seconds))"), "stale threshold of \(kind)")
        }
        #expect(text.contains("* 100 < \(Int(t.diskFreeWarningPercent))\n"))
        #expect(text.contains("* 100 < \(Int(t.diskFreeCriticalPercent))\n"))
        #expect(text.contains("backstop_wal_archive_last_segment_timestamp_seconds > \(Int(t.walArchiveStaleAfter.seconds))"))
        #expect(text.contains("backstop_restore_drill_last_success_timestamp_seconds > \(Int(t.restoreDrillMaxAge.seconds))"))
        #expect(text.contains("backstop_replication_slot_retained_bytes > \(Int(t.walSlotRetainedBytes))"))
        #expect(text.contains("backstop_backup_encrypted == 0 and on() backstop_backup_encryption_configured == 1"))
    }
}
