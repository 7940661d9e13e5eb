import ArgumentParser
import BackstopCore
import Health

/// `backstop health`: the health loop's probes, once, for a person or a script.
struct HealthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health",
        abstract: "Probe PostgreSQL, Redis, Sentinel and the backup disk once.",
        discussion: """
            Runs the same probes as the health loop of `backstop serve` and prints one line per \
            check. Exit status: 0 when everything answers, 1 when something is down.

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
        let config = try common.loadConfig(overrides: ["HEALTH_PROBE_TIMEOUT": timeout])
        BackstopLogging.bootstrap(level: config.logLevel, toStderr: true)
        let report = await HealthChecker(config: config).check()
        if json {
            print(report.jsonObject().encoded(pretty: true))
        } else {
            print(report.renderTable(), terminator: "")
        }
        if !report.allUp { throw ExitCode(1) }
    }
}
