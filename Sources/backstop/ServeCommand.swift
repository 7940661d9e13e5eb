import Alerting
import ArgumentParser
import BackstopCore
import BackstopMetrics
import BackupJobs
import Health
import Scheduling
import Logging
import Restore
import S3
import ServiceLifecycle

/// `backstop serve`: the long-running sidecar.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the service: /metrics, the health loop and the scheduled jobs.",
        discussion: """
            Serves GET /metrics (Prometheus text format) and GET /healthz on --listen, probes \
            PostgreSQL, Redis, Sentinel and the backup disk every HEALTH_CHECK_INTERVAL, and \
            writes the results to the metrics and to $BACKUP_DIR/logs/health.log; evaluates the \
            alert rules into $BACKUP_DIR/alerts.json, the webhooks (ALERT_WEBHOOK_URL) and \
            Alertmanager (ALERTMANAGER_URL). Runs the jobs on their schedules: full, incremental \
            and redis backups, cleanup and the restore drill (BACKUP_SCHEDULE_FULL, _INCREMENTAL, \
            _REDIS, _CLEANUP, _DRILL; an empty value turns a job off; `backstop schedule` shows \
            them). With BACKUP_S3_BUCKET set, each backup job is followed by an upload of every \
            good backup not yet in S3 (failed uploads are retried after the next job and raise \
            S3UploadFailing). Stops gracefully on SIGTERM or SIGINT; a running job gets \
            SHUTDOWN_GRACE_PERIOD to finish.

            Examples:
              backstop serve
              backstop serve --listen 127.0.0.1:9847 --health-interval 30s
            """
    )

    @OptionGroup var common: CommonOptions

    @Option(help: ArgumentHelp("Address of the metrics server (overrides METRICS_LISTEN, default 0.0.0.0:\(BackstopConfig.defaultMetricsPort)).", valueName: "host:port"))
    var listen: String?

    @Option(name: .customLong("health-interval"), help: ArgumentHelp("Time between health checks: 300, 300s, 5m (overrides HEALTH_CHECK_INTERVAL, default 5m).", valueName: "duration"))
    var healthInterval: String?

    func run() async throws {
        // Before the service threads allocate: a long-running, mostly idle process needs no
        // per-thread malloc arenas (glibc's default is 8 per core, each keeping its free pages).
        MemoryRelease.limitArenas(2)
        let overrides = ["METRICS_LISTEN": listen, "HEALTH_CHECK_INTERVAL": healthInterval]
        let config = try common.loadConfig(overrides: overrides)
        let env = common.environment(overrides: overrides)
        let alerting = try AlertingSetup(environment: env, backstop: config)
        let expected = try ScheduledJobs.expectedSeries(environment: env)
        // S3 is checked here, not at the first upload: a bad BACKUP_S3_* value stops start-up.
        let s3 = try S3Config.optional(env)
        try FileSystem.createDirectory(config.logsDir)
        BackstopLogging.bootstrap(level: config.logLevel, files: BackstopLogging.standardFiles(backupDir: config.backupDir))
        let logger = Logger(label: "backstop")

        let registry = MetricsRegistry()
        Family.declareStandard(in: registry)
        if config.redis.usesSentinel { Family.declareSentinel(in: registry) }
        ProcessMetrics.register(in: registry)
        // Last success and attempt come from the catalog on disk, so a restart never makes a
        // good backup look missing.
        BackupMetrics.load(into: registry, backupDir: config.backupDir, expected: expected)
        RetentionMetrics.load(into: registry, backupDir: config.backupDir)
        RestoreRecord.loadMetrics(into: registry, backupDir: config.backupDir)
        // S3 families only when S3 is on; the gauges come from .state/s3_uploads.json.
        if s3 != nil {
            S3Uploader.declareMetrics(in: registry)
            S3Uploader.publish(S3UploadState.load(backupDir: config.backupDir), in: registry)
        }
        // location="s3" from the last remote listing saved by cleanup or upload (a scrape never calls S3).
        if s3 != nil { RemoteMetrics.load(into: registry, backupDir: config.backupDir) }

        AlertMetrics.declare(in: registry, webhooks: !alerting.config.webhookURLs.isEmpty)
        let pipeline = AlertPipeline(rules: alerting.rules, config: alerting.config, backupDir: config.backupDir,
                                     evaluationInterval: config.healthInterval, metrics: registry,
                                     logger: Logger(label: "backstop.alerting"))

        let metrics = MetricsService(listen: config.metricsListen, registry: registry, logger: logger)
        let health = HealthLoopService(
            checker: HealthChecker(config: config), registry: registry,
            interval: config.healthInterval, logger: Logger(label: BackstopLogging.healthLabel),
            onReport: { [registry, backupDir = config.backupDir] report in
                // The upload state is re-read each time: `backstop backup …` run by hand
                // uploads too, and its success must resolve S3UploadFailing here.
                let s3Facts = s3.map { settings in
                    let state = S3UploadState.load(backupDir: backupDir)
                    S3Uploader.publish(state, in: registry)
                    return S3Facts(state: state, destination: settings.destination)
                }
                let snapshot = HealthSnapshot(report: report, backups: BackupFacts.all(from: registry), s3: s3Facts,
                                              walArchive: WalArchiveFacts.from(registry),
                                              restoreDrills: RestoreDrills.facts(registry: registry, backupDir: backupDir))
                _ = await pipeline.evaluate(snapshot)
            })
        let scheduler = SchedulerService(
            settings: alerting.schedules, actions: try ScheduledJobs.actions(environment: env, registry: registry, s3: s3),
            lastSuccess: { job in ScheduledJobs.lastSuccess(job: job, registry: registry) },
            registry: registry, logger: Logger(label: BackstopLogging.backupLabel))
        let wal = try WalArchiveService.make(environment: env, registry: registry)
        // Graceful shutdown runs in reverse order: the scheduler stops (and lets a running
        // backup finish) while /metrics still answers.
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: metrics), .init(service: health), .init(service: scheduler)] + (wal.map { [.init(service: $0)] } ?? []),
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        logger.info("backstop \(BuildInfo.version) starting", metadata: ["backup_dir": "\(config.backupDir)"])
        try await group.run()
        await pipeline.shutdown(grace: .seconds(5))
        logger.info("backstop stopped")
    }
}
