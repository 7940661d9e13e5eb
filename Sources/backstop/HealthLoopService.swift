import BackstopCore
import BackstopMetrics
import Health
import Logging
import ServiceLifecycle

/// The health loop: probes every interval, writes the metrics, and logs each change of state
/// (to stdout and logs/health.log). Stops at once on graceful shutdown.
struct HealthLoopService: Service {
    let checker: HealthChecker
    let registry: MetricsRegistry
    let interval: Duration
    let logger: Logger
    /// Called with every report (the alert evaluator hooks in here).
    var onReport: (@Sendable (HealthReport) async -> Void)? = nil

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var previous: [String: String] = [:]
            var first = true
            while !Task.isCancelled {
                let report = await checker.check()
                report.apply(to: registry)
                previous = Self.logChanges(report, previous: previous, logger: logger)
                await onReport?(report)
                if first {
                    // Start-up is over (configuration, catalog, first probes and alert
                    // evaluation): hand back the memory and code pages only it needed.
                    first = false
                    let released = MemoryRelease.release()
                    logger.debug("start-up settled: heap trimmed, \(released) kB of clean start-up code and data handed to the kernel's reclaim")
                }
                try? await Task.sleep(for: interval)
            }
        }
    }

    /// Logs one line per check whose status changed since the last round; returns the new state.
    static func logChanges(_ report: HealthReport, previous: [String: String], logger: Logger) -> [String: String] {
        var current: [String: String] = [:]
        current["postgres \(report.postgres.target)"] = report.postgres.up ? "up" : "down: \(report.postgres.error ?? "")"
        for r in report.redis {
            current["redis \(r.role) \(r.address)"] = r.up ? "up" : "down: \(r.error ?? "")"
        }
        if let s = report.sentinel {
            for n in s.sentinels { current["sentinel \(n.address)"] = n.up ? "up" : "down: \(n.error ?? "")" }
            current["sentinel master \(s.masterName)"] = s.master?.description ?? "unknown"
            current["sentinel quorum \(s.masterName)"] = s.quorumOK ? "ok" : "lost: \(s.quorumMessage ?? "")"
        }
        current["disk \(report.disk.path)"] = report.disk.error ?? (report.disk.freePercent < 1 ? "almost full" : "ok")
        for key in current.keys.sorted() where previous[key] != current[key] {
            let state = current[key]!
            if state.hasPrefix("down") || state.hasPrefix("lost") {
                logger.warning("\(key) \(state)")
            } else {
                logger.info("\(key) \(state)")
            }
        }
        return current
    }
}
