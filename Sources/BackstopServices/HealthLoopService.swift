import BackstopCore
import BackstopState
import Health
import Logging
import ServiceLifecycle

/// The health loop: probes every interval, re-reads what other processes changed on disk
/// (backups, uploads, restores), writes both into the state store — which renders the
/// metrics and wakes the alert evaluator — and logs each change of state (to stdout and
/// logs/health.log). Stops at once on graceful shutdown.
public struct HealthLoopService: Service {
    let checker: HealthChecker
    let store: StateStore
    let interval: Duration
    let logger: Logger

    public init(checker: HealthChecker, store: StateStore, interval: Duration, logger: Logger) {
        self.checker = checker
        self.store = store
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var previous: [String: String] = [:]
            var first = true
            while !Task.isCancelled {
                let report = await checker.check()
                await store.refreshFromDisk()
                await store.recordHealth(report)
                previous = Self.logChanges(report, previous: previous, logger: logger)
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

    /// The state of each check as one short text, keyed by what was checked.
    public static func states(_ report: HealthReport) -> [String: String] {
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
        return current
    }

    /// Logs one line per check whose status changed since `previous` (every check when
    /// `previous` is empty); returns the new state.
    @discardableResult
    public static func logChanges(_ report: HealthReport, previous: [String: String], logger: Logger) -> [String: String] {
        let current = states(report)
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
