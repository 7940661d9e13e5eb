import Alerting
import ArgumentParser
import BackstopCore
import BackstopMetrics
import BackstopServices
import BackstopState
import Health
import Logging

/// `backstop health`: the health loop's probes, once, for a person or a script.
struct HealthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health",
        abstract: "Probe PostgreSQL, Redis, Sentinel and the backup disk once.",
        discussion: """
            Runs the same probes as the health loop of `backstop serve`, prints one line per \
            check, then the alerts the same rules as the service would fire (backup freshness, \
            uploads and drills come from BACKUP_DIR, as serve reads them). Like the old \
            health-check.sh it appends every check to $BACKUP_DIR/logs/health.log and keeps \
            $BACKUP_DIR/alerts.json (present only while alerts fire) — unless `backstop serve` \
            runs on the same folder, which then keeps that file itself. Webhooks and \
            Alertmanager are left to serve. --no-write only looks. Exit status: 0 when \
            everything answers and no alert fires, 1 otherwise.

            Examples:
              backstop health
              backstop health --json | jq .postgres.up
              backstop health --no-write
            """
    )

    @OptionGroup var common: CommonOptions

    @Flag(help: "Print a JSON object instead of the table.")
    var json = false

    @Flag(name: .customLong("no-write"), help: "Only look: leave alerts.json and logs/health.log as they are.")
    var noWrite = false

    @Option(name: .customLong("timeout"), help: ArgumentHelp("How long each probe may take (overrides HEALTH_PROBE_TIMEOUT, default 5s).", valueName: "duration"))
    var timeout: String?

    func run() async throws {
        let overrides = ["HEALTH_PROBE_TIMEOUT": timeout]
        let config = try common.loadConfig(overrides: overrides)
        let settings = try ServiceSettings(environment: common.environment(overrides: overrides), backstop: config)
        if !noWrite { try FileSystem.createDirectory(config.logsDir) }
        BackstopLogging.bootstrap(level: config.logLevel, files: noWrite ? [:] : [BackstopLogging.healthLabel: config.logsDir + "/health.log"],
                                  toStderr: true)
        // The same store serve reads (catalog, attempts, uploads, restores from the disk) and
        // the same snapshot, so both evaluate the same rules on the same facts.
        let store = await StateStore.open(backupDir: config.backupDir, expected: settings.expected,
                                          s3Destination: settings.s3?.destination,
                                          encryptionConfigured: settings.postgres.encryption.isEnabled, metrics: nil)
        let report = await HealthChecker(config: config).check()
        await store.recordHealth(report)
        let snapshot = await store.snapshot(at: report.checkedAt)!
        let alerts = settings.alerting.rules.evaluate(snapshot)
        if !noWrite { await write(snapshot: snapshot, report: report, settings: settings) }
        if json {
            var object = report.json()
            object.ok = report.allUp && alerts.isEmpty
            print(try JSONCoding.text(Output(report: object, alerts: AlertRendering.jsonValue(alerts, at: report.checkedAt))))
        } else {
            print(report.renderTable(), terminator: "")
            print(alerts.isEmpty ? "\nno alerts firing" : "\n" + AlertRendering.render(alerts, at: report.checkedAt), terminator: alerts.isEmpty ? "\n" : "")
        }
        if !report.allUp || !alerts.isEmpty { throw ExitCode(1) }
    }

    /// As the old health-check.sh did: every check into logs/health.log, and alerts.json
    /// brought in line (created while alerts fire, removed when they clear) — unless serve
    /// keeps that file, which it then does within its own health round.
    private func write(snapshot: HealthSnapshot, report: HealthReport, settings: ServiceSettings) async {
        let logger = Logger(label: BackstopLogging.healthLabel)
        HealthLoopService.logChanges(report, previous: [:], logger: logger)
        let backupDir = settings.backstop.backupDir
        let lock: FileLock
        do {
            lock = try AlertsWriterLock.take(backupDir: backupDir, purpose: "backstop health (writes alerts.json)")
        } catch let held as FileLock.Held {
            logger.notice("alerts.json left to \(held.holder.isEmpty ? "the process holding \(held.path)" : held.holder)")
            return
        } catch {
            logger.error("could not lock \(AlertsWriterLock.path(backupDir: backupDir)): \(error); alerts.json not written")
            return
        }
        // The file's own sink only: webhooks and Alertmanager are serve's (a cron line would
        // otherwise notify on every run).
        var config = settings.alerting.config
        config.webhookURLs = []
        config.alertmanagerURLs = []
        let pipeline = AlertPipeline(rules: settings.alerting.rules, config: config, backupDir: backupDir,
                                     evaluationInterval: settings.backstop.healthInterval, logger: logger)
        await pipeline.evaluate(snapshot)
        lock.release()
    }

    /// The report's object with the alerts beside its keys (`"alerts": […]`).
    struct Output: Encodable {
        enum Key: String, CodingKey { case alerts }
        var report: HealthReport.JSON
        var alerts: [AlertPayloads.AlertBody]

        func encode(to encoder: any Encoder) throws {
            try report.encode(to: encoder)
            var container = encoder.container(keyedBy: Key.self)
            try container.encode(alerts, forKey: .alerts)
        }
    }
}
