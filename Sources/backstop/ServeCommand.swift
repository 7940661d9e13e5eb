import Alerting
import ArgumentParser
import Foundation
import BackstopCore
import BackstopMetrics
import BackstopServices
import BackstopState
import BackupJobs
import OffsiteCopies
import Health
import Scheduling
import Logging
import MetricsHTTPServer
import Restore
import WalArchive
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

            With --web.config.file (or WEB_CONFIG_FILE), the metrics port speaks TLS and/or asks \
            for HTTP basic auth, configured as for any Prometheus exporter (tls_server_config: \
            cert_file, key_file; basic_auth_users: name: bcrypt hash); /healthz needs no password. \
            METRICS_MAX_CONNECTIONS (256), METRICS_MAX_CONNECTIONS_PER_IP (16) and \
            METRICS_CONNECTION_TIMEOUT (10s) bound what clients may hold.

            Examples:
              backstop serve
              backstop serve --listen 127.0.0.1:9847 --health-interval 30s
              backstop serve --web.config.file /etc/backstop/web.yml
            """
    )

    @OptionGroup var common: CommonOptions

    @Option(help: ArgumentHelp("Address of the metrics server (overrides METRICS_LISTEN, default 0.0.0.0:\(BackstopConfig.defaultMetricsPort)).", valueName: "host:port"))
    var listen: String?

    @Option(name: .customLong("health-interval"), help: ArgumentHelp("Time between health checks: 300, 300s, 5m (overrides HEALTH_CHECK_INTERVAL, default 5m).", valueName: "duration"))
    var healthInterval: String?

    @Option(name: .customLong("web.config.file"), help: ArgumentHelp("Exporter-toolkit web config (TLS, basic auth) for the metrics port (overrides WEB_CONFIG_FILE).", valueName: "path"))
    var webConfigFile: String?

    func run() async throws {
        // Before the service threads allocate: a long-running, mostly idle process needs no
        // per-thread malloc arenas (glibc's default is 8 per core, each keeping its free pages).
        MemoryRelease.limitArenas(2)
        let overrides = ["METRICS_LISTEN": listen, "HEALTH_CHECK_INTERVAL": healthInterval, "WEB_CONFIG_FILE": webConfigFile]
        let config = try common.loadConfig(overrides: overrides)
        let settings = try ServiceSettings(environment: common.environment(overrides: overrides), backstop: config)
        let env = settings.environment
        let web = try validated { try env["WEB_CONFIG_FILE"].flatMap { $0.isEmpty ? nil : try WebConfig.load(path: $0) } }
        let limits = try validated { try HTTPServerLimits.load(environment: env) }
        try FileSystem.createDirectory(config.logsDir)
        BackstopLogging.bootstrap(level: config.logLevel, files: BackstopLogging.standardFiles(backupDir: config.backupDir))
        let logger = Logger(label: "backstop")
        // One writer of alerts.json at a time: `backstop health` beside serve leaves it to us.
        let alertsLock = try await AlertsWriterLock.acquire(backupDir: config.backupDir, waiting: .seconds(10))

        let registry = MetricsRegistry()
        Family.declareStandard(in: registry)
        if config.redis.usesSentinel { Family.declareSentinel(in: registry) }
        ProcessMetrics.register(in: registry)
        // The state comes from the disk (catalog, attempts, uploads, restores), so a restart
        // never makes a good backup look missing; the metrics are its rendering.
        let store = await StateStore.open(backupDir: config.backupDir, expected: settings.expected,
                                          s3Destination: settings.s3?.destination,
                                          encryptionConfigured: settings.postgres.encryption.isEnabled, metrics: registry)
        RetentionMetrics.load(into: registry, backupDir: config.backupDir)
        // location="s3" from the last remote listing saved by cleanup or upload (a scrape never calls S3).
        if settings.s3 != nil { RemoteMetrics.load(into: registry, backupDir: config.backupDir) }

        let alerting = settings.alerting
        let pipeline = AlertPipeline(rules: alerting.rules, config: alerting.config, backupDir: config.backupDir,
                                     evaluationInterval: config.healthInterval, metrics: registry,
                                     logger: Logger(label: "backstop.alerting"))
        let metrics = MetricsService(listen: config.metricsListen, web: web, limits: limits, registry: registry, logger: logger)
        let evaluator = AlertEvaluationService(store: store, pipeline: pipeline)
        let health = HealthLoopService(checker: HealthChecker(config: config), store: store, interval: config.healthInterval,
                                       logger: Logger(label: BackstopLogging.healthLabel))
        let walSettings = try validated { try WalArchiveSettings(environment: env) }
        // With the archive on, the scheduled drill also restores to a point in time.
        var pitrDrill = walSettings.mode == .off ? nil
            : PitrDrill(jobSettings: settings.postgres, backstopPath: URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path,
                        log: BackupLog(backupDir: config.backupDir))
        pitrDrill?.receiveDirectory = walSettings.receiveDirectory
        let scheduler = SchedulerService(
            settings: alerting.schedules, actions: ScheduledJobs.actions(postgres: settings.postgres, redis: settings.redis, retention: settings.retention, s3: settings.s3,
                                                                     environment: settings.environment, store: store, registry: registry,
                                                                     pitrDrill: pitrDrill),
            lastSuccess: { job in await store.lastSuccess(job: job) },
            registry: registry, logger: Logger(label: BackstopLogging.backupLabel))
        let wal = WalArchiveService.make(settings: walSettings, jobSettings: settings.postgres, s3: settings.s3, registry: registry, store: store)
        // Graceful shutdown runs in reverse order: the scheduler stops (and lets a running
        // backup finish) while the evaluator still hears its outcome and /metrics still answers.
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: metrics), .init(service: evaluator), .init(service: health), .init(service: scheduler)]
                + (wal.map { [.init(service: $0)] } ?? []),
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        logger.info("backstop \(BuildInfo.version) starting", metadata: ["backup_dir": "\(config.backupDir)"])
        // What a killed run left (partial files, temporary files, lock text of a dead pid).
        for action in LeftoverSweep.run(backupDir: config.backupDir) { logger.notice("start-up: \(action)") }
        for line in UnreadableFiles.report(backupDir: config.backupDir) { logger.warning("start-up: \(line)") }
        if let warning = walSettings.plaintextReceiveWarning(backupDir: config.backupDir, encrypting: settings.postgres.encryption.isEnabled) {
            logger.warning("start-up: \(warning)")
        }
        try await group.run()
        alertsLock.release()
        logger.info("backstop stopped")
    }
}
