import BackstopCore
import BackstopMetrics
import BackupJobs
import Logging
import Scheduling
import ServiceLifecycle

/// The cron scheduler as a lifecycle service. On graceful shutdown no new run starts and a
/// running job gets SHUTDOWN_GRACE_PERIOD to finish before it is cancelled (a cancelled job
/// kills its child process and removes its temporary file).
public struct SchedulerService: Service {
    let scheduler: JobScheduler

    public init(settings: ScheduleSettings, actions: [String: @Sendable () async throws -> Void],
         lastSuccess: @escaping @Sendable (String) async -> LastSuccess,
         registry: MetricsRegistry, logger: Logger) {
        scheduler = JobScheduler(
            jobs: settings.jobs(actions), timeZone: settings.timeZone, gracePeriod: settings.shutdownGracePeriod,
            lastSuccess: lastSuccess,
            onEvent: { event in
                switch event {
                case let .started(job, _, catchUp):
                    logger.info("job \(job) started\(catchUp ? " (catch-up: its last success is older than its schedule's interval)" : "")")
                case let .finished(job, started, finished, error):
                    // A job (pg_dump pipeline, upload, cleanup) runs once in hours: give its
                    // heap and its code pages back rather than keep them until the next run.
                    MemoryRelease.release()
                    let seconds = finished.timeIntervalSince(started)
                    if error is BackupCancelled || error is CancellationError {
                        logger.warning("job \(job) interrupted by the shutdown after \(Int(seconds)) s: nothing of it was kept; the next run starts afresh")
                    } else if let error {
                        logger.error("job \(job) failed after \(Int(seconds)) s: \(error)")
                    } else {
                        logger.info("job \(job) finished in \(Int(seconds)) s")
                    }
                case let .skipped(job, _):
                    registry.add(Family.jobSkipped, ["job_name": job])
                    logger.warning("job \(job) skipped: its previous run is still going")
                case let .cancelledAtShutdown(job):
                    logger.warning("job \(job) cancelled at shutdown after the grace period")
                }
            })
        for job in actions.keys.sorted() { registry.touch(Family.jobSkipped, ["job_name": job]) }
    }

    public func run() async throws {
        let scheduler = self.scheduler
        await withGracefulShutdownHandler {
            await scheduler.run()
        } onGracefulShutdown: {
            scheduler.shutdown()
        }
    }
}
