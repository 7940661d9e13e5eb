import Alerting
import ArgumentParser
import BackstopCore
import BackstopMetrics
import BackupJobs
import Health

/// `backstop health`: the health loop's probes, once, for a person or a script.
struct HealthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health",
        abstract: "Probe PostgreSQL, Redis, Sentinel and the backup disk once.",
        discussion: """
            Runs the same probes as the health loop of `backstop serve`, prints one line per \
            check, then the alerts the same rules as the service would fire (backup freshness \
            comes from the catalog in BACKUP_DIR). Exit status: 0 when everything answers and \
            no alert fires, 1 otherwise.

            Examples:
              backstop health
              backstop health --json | jq .postgres.up
            """
    )

    @OptionGroup var common: CommonOptions

    @Flag(help: "Print a JSON object instead of the table.")
    var json = false

    @Option(name: .customLong("timeout"), help: ArgumentHelp("How long each probe may take (overrides HEALTH_PROBE_TIMEOUT, default 5s).", valueName: "duration"))
    var timeout: String?

    func run() async throws {
        let overrides = ["HEALTH_PROBE_TIMEOUT": timeout]
        let config = try common.loadConfig(overrides: overrides)
        let env = common.environment(overrides: overrides)
        let alerting = try AlertingSetup(environment: env, backstop: config)
        let expected = try ScheduledJobs.expectedSeries(environment: env)
        let s3 = try S3Config.optional(env)
        BackstopLogging.bootstrap(level: config.logLevel, toStderr: true)
        let report = await HealthChecker(config: config).check()
        let registry = MetricsRegistry()
        BackupMetrics.load(into: registry, backupDir: config.backupDir, expected: expected)
        let snapshot = HealthSnapshot(report: report, backups: BackupFacts.all(from: registry),
                                      s3: s3.map { S3Facts.load(backupDir: config.backupDir, settings: $0) })
        let alerts = alerting.rules.evaluate(snapshot)
        if json {
            guard case var .object(object) = report.jsonObject() else { return }
            object["alerts"] = AlertRendering.jsonValue(alerts, at: report.checkedAt)
            object["ok"] = .bool(report.allUp && alerts.isEmpty)
            print(JSONValue.object(object).encoded(pretty: true))
        } else {
            print(report.renderTable(), terminator: "")
            print(alerts.isEmpty ? "\nno alerts firing" : "\n" + AlertRendering.render(alerts, at: report.checkedAt), terminator: alerts.isEmpty ? "\n" : "")
        }
        if !report.allUp || !alerts.isEmpty { throw ExitCode(1) }
    }
}
