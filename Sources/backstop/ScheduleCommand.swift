import ArgumentParser
import BackstopCore
import Foundation
import Scheduling

/// `backstop schedule`: when each job runs next, read from the same environment `serve`
/// reads; with `--cron`, the next run times of any expression, so an operator can check a
/// schedule (and its time zone and daylight-saving behaviour) before deploying it.
struct ScheduleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedule",
        abstract: "Show each job's schedule and next runs, or the next run times of a cron expression.",
        discussion: """
            Without --cron: every job (BACKUP_SCHEDULE_FULL, _INCREMENTAL, _REDIS, _CLEANUP, _DRILL, \
            and the health loop every HEALTH_CHECK_INTERVAL) with its expression and next runs. \
            An empty BACKUP_SCHEDULE_* disables that job.

            With --cron EXPR: the next --count run times of EXPR, one RFC 3339 time per line. \
            Times are read in the zone named by TZ (UTC when unset), or --time-zone.

            Cron dialect: Vixie cron / cronie (five fields, *, lists, ranges, steps, jan-dec, \
            sun-sat, 0 and 7 = Sunday, @yearly @monthly @weekly @daily @hourly).
            """
    )

    @Option(name: .customLong("cron"), help: ArgumentHelp("A cron expression to check, e.g. '0 2 * * *' or @daily.", valueName: "expr"))
    var cron: String?

    @Option(help: ArgumentHelp("List runs after this time (RFC 3339, e.g. 2026-03-29T01:30:00+01:00). Default: now.", valueName: "rfc3339"))
    var from: String?

    @Option(help: ArgumentHelp("How many run times to list (1-1000).", valueName: "n"))
    var count: Int = 3

    @Option(name: .customLong("time-zone"), help: ArgumentHelp("Time zone to read schedules in (IANA name). Default: $TZ, UTC when unset.", valueName: "zone"))
    var timeZone: String?

    @Flag(help: "Print JSON instead of text.")
    var json = false

    /// Everything the command reads is checked here, so a bad value is reported against
    /// `backstop schedule` with its usage line.
    func validate() throws {
        guard (1...1000).contains(count) else {
            throw ValidationError("--count \(count) is out of range; expected a whole number from 1 to 1000")
        }
        if let from, WallClock.parseRFC3339(from) == nil {
            throw ValidationError("--from \"\(from)\" is not an RFC 3339 time; expected e.g. 2026-03-29T00:30:00Z or 2026-03-29T01:30:00+01:00 (date, T, time, and Z or an offset)")
        }
        let env = ProcessInfo.processInfo.environment
        _ = try zone(env)
        if let cron {
            _ = try expression(cron)
        } else {
            _ = try settings(env)
        }
    }

    private func zone(_ env: [String: String]) throws -> TimeZone {
        do {
            if let timeZone { return try ScheduleTimeZone.named(timeZone, variable: "--time-zone") }
            return try ScheduleTimeZone.fromEnvironment(env)
        } catch {
            throw ValidationError("\(error)")
        }
    }

    private func expression(_ text: String) throws -> CronExpression {
        do {
            return try CronExpression(text, variable: "--cron")
        } catch {
            throw ValidationError(error.description)
        }
    }

    private func settings(_ env: [String: String]) throws -> ScheduleSettings {
        do {
            return try ScheduleSettings(environment: env)
        } catch {
            throw ValidationError("\(error)")
        }
    }

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        let start = from.flatMap(WallClock.parseRFC3339).map { Date(timeIntervalSince1970: $0) } ?? Date()
        let zone = try zone(env)
        if let cron {
            try printRuns(of: cron, from: start, zone: zone)
        } else {
            try printJobs(env: env, from: start, zone: zone)
        }
    }

    private func printRuns(of text: String, from start: Date, zone: TimeZone) throws {
        let expression = try expression(text)
        let runs = expression.next(count, after: start, in: zone).map { ScheduleTimeZone.rfc3339($0, in: zone) }
        if json {
            let out = CronRuns(expression: expression.text, timeZone: ScheduleTimeZone.name(of: zone),
                               from: ScheduleTimeZone.rfc3339(start, in: zone), nextRuns: runs)
            try printJSON(out)
        } else {
            for run in runs { print(run) }
        }
    }

    private func printJobs(env: [String: String], from start: Date, zone: TimeZone) throws {
        let settings = try settings(env)
        var rows: [JobRow] = settings.entries.map { entry in
            let runs = entry.expression.map { $0.next(count, after: start, in: zone).map { ScheduleTimeZone.rfc3339($0, in: zone) } } ?? []
            return JobRow(job: entry.job, variable: entry.variable, schedule: entry.expression?.text,
                          enabled: entry.expression != nil, nextRuns: runs)
        }
        // The health loop runs at start-up and then every interval.
        let interval = settings.healthInterval.seconds
        rows.append(JobRow(
            job: "health", variable: "HEALTH_CHECK_INTERVAL", schedule: "every \(Self.format(settings.healthInterval))",
            enabled: true,
            nextRuns: (1...count).map { ScheduleTimeZone.rfc3339(start.addingTimeInterval(interval * Double($0)), in: zone) }))
        if json {
            try printJSON(JobList(timeZone: ScheduleTimeZone.name(of: zone), from: ScheduleTimeZone.rfc3339(start, in: zone), jobs: rows))
            return
        }
        print("Time zone: \(ScheduleTimeZone.name(of: zone))   runs after \(ScheduleTimeZone.rfc3339(start, in: zone))")
        let jobWidth = max(3, rows.map(\.job.count).max() ?? 0)
        let variableWidth = rows.map(\.variable.count).max() ?? 0
        let scheduleWidth = max(8, rows.map { ($0.schedule ?? "disabled").count }.max() ?? 0)
        func pad(_ s: String, _ w: Int) -> String { s + String(repeating: " ", count: max(0, w - s.count)) }
        print("\(pad("JOB", jobWidth))  \(pad("VARIABLE", variableWidth))  \(pad("SCHEDULE", scheduleWidth))  NEXT RUNS")
        for row in rows {
            let runs = row.enabled ? row.nextRuns.joined(separator: "  ") : "-"
            print("\(pad(row.job, jobWidth))  \(pad(row.variable, variableWidth))  \(pad(row.schedule ?? "disabled", scheduleWidth))  \(runs)")
        }
    }

    /// `90s` → `1m30s`, `300s` → `5m`, `7200s` → `2h`.
    static func format(_ d: Duration) -> String {
        var s = Int(d.seconds.rounded())
        if s == 0 { return "\(Int(d.seconds * 1000))ms" }
        var out = ""
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] where s >= size {
            out += "\(s / size)\(unit)"
            s %= size
        }
        return out
    }

    /// The `--json` outputs below, their property names in snake case (`next_runs`, `time_zone`).
    private func printJSON(_ value: some Encodable) throws {
        print(try JSONCoding.text(value, snakeCaseKeys: true))
    }

    struct CronRuns: Encodable {
        var expression: String
        var timeZone: String
        var from: String
        var nextRuns: [String]
    }

    struct JobRow: Encodable {
        var job: String
        var variable: String
        var schedule: String?
        var enabled: Bool
        var nextRuns: [String]
    }

    struct JobList: Encodable {
        var timeZone: String
        var from: String
        var jobs: [JobRow]
    }
}
