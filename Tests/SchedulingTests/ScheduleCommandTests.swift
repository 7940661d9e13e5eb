import BackstopTestSupport
import Foundation
import Testing

/// Runs the built `backstop` binary (`swift build` must have run before `swift test`; the
/// test does not build it) and checks what `backstop schedule` prints.
@Suite struct ScheduleCommandTests {
    func schedule(_ arguments: [String], environment: [String: String] = [:]) throws -> CommandResult {
        var env = ["TZ": ""]
        for name in ["BACKUP_SCHEDULE_FULL", "BACKUP_SCHEDULE_INCREMENTAL", "BACKUP_SCHEDULE_REDIS",
                     "BACKUP_SCHEDULE_CLEANUP", "BACKUP_SCHEDULE_DRILL"] where ProcessInfo.processInfo.environment[name] != nil {
            Issue.record("\(name) is set in the test environment; the defaults cannot be checked")
        }
        env.merge(environment) { _, new in new }
        return try TestProcesses.run(try BackstopBinary.path(), ["schedule"] + arguments, environment: env, check: false)
    }

    @Test func cronPrintsTheNextRunsOnePerLine() throws {
        let utc = try schedule(["--cron", "0 */6 * * *", "--from", "2026-01-01T00:00:00Z", "--count", "3"])
        #expect(utc.status == 0, "\(utc.stderr)")
        #expect(utc.stdout == "2026-01-01T06:00:00Z\n2026-01-01T12:00:00Z\n2026-01-01T18:00:00Z\n")

        // Europe/Berlin skips 02:00-03:00 on 2026-03-29: the 02:30 run happens at 03:00 CEST.
        let berlin = try schedule(["--cron", "30 2 * * *", "--from", "2026-03-28T12:00:00+01:00", "--count", "3"],
                                  environment: ["TZ": "Europe/Berlin"])
        #expect(berlin.status == 0, "\(berlin.stderr)")
        #expect(berlin.stdout == "2026-03-29T03:00:00+02:00\n2026-03-30T02:30:00+02:00\n2026-03-31T02:30:00+02:00\n")

        let json = try schedule(["--cron", "@weekly", "--from", "2026-01-01T00:00:00Z", "--count", "2", "--json"])
        #expect(json.status == 0, "\(json.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["next_runs"] as? [String] == ["2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"])
        #expect(object["time_zone"] as? String == "UTC")
    }

    @Test func badInputIsAUsageErrorThatNamesTheValue() throws {
        let hour = try schedule(["--cron", "0 25 * * *"])
        #expect(hour.status == 64)
        #expect(hour.stderr.contains("invalid --cron=\"0 25 * * *\": field 2 (hour) value 25 is out of range 0-23"), "\(hour.stderr)")
        #expect(hour.stdout.isEmpty)

        let from = try schedule(["--cron", "@daily", "--from", "tomorrow"])
        #expect(from.status == 64)
        #expect(from.stderr.contains("--from \"tomorrow\" is not an RFC 3339 time"), "\(from.stderr)")

        let count = try schedule(["--cron", "@daily", "--count", "0"])
        #expect(count.status == 64)
        #expect(count.stderr.contains("--count 0 is out of range"), "\(count.stderr)")

        let zone = try schedule(["--cron", "@daily"], environment: ["TZ": "Mars/Olympus_Mons"])
        #expect(zone.status == 64)
        #expect(zone.stderr.contains("invalid TZ=\"Mars/Olympus_Mons\""), "\(zone.stderr)")

        let variable = try schedule([], environment: ["BACKUP_SCHEDULE_CLEANUP": "0 3 * * mon-funday"])
        #expect(variable.status == 64)
        #expect(variable.stderr.contains("invalid BACKUP_SCHEDULE_CLEANUP=\"0 3 * * mon-funday\": field 5 (day-of-week)"), "\(variable.stderr)")
    }

    @Test func jobListShowsEachJobItsScheduleAndNextThreeRuns() throws {
        let result = try schedule(["--from", "2026-01-01T00:30:00Z"],
                                  environment: ["BACKUP_SCHEDULE_REDIS": "", "BACKUP_SCHEDULE_FULL": "15 1 * * *",
                                                "HEALTH_CHECK_INTERVAL": "10m"])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        func row(_ job: String) -> [String]? { lines.first { $0.first == job } }
        #expect(row("full") == ["full", "BACKUP_SCHEDULE_FULL", "15", "1", "*", "*", "*",
                                "2026-01-01T01:15:00Z", "2026-01-02T01:15:00Z", "2026-01-03T01:15:00Z"])
        #expect(row("incremental") == ["incremental", "BACKUP_SCHEDULE_INCREMENTAL", "0", "*/6", "*", "*", "*",
                                       "2026-01-01T06:00:00Z", "2026-01-01T12:00:00Z", "2026-01-01T18:00:00Z"])
        #expect(row("redis") == ["redis", "BACKUP_SCHEDULE_REDIS", "disabled", "-"])
        #expect(row("cleanup") == ["cleanup", "BACKUP_SCHEDULE_CLEANUP", "0", "3", "*", "*", "*",
                                   "2026-01-01T03:00:00Z", "2026-01-02T03:00:00Z", "2026-01-03T03:00:00Z"])
        #expect(row("drill")?.suffix(3) == ["2026-01-04T04:00:00Z", "2026-01-11T04:00:00Z", "2026-01-18T04:00:00Z"])
        #expect(row("health") == ["health", "HEALTH_CHECK_INTERVAL", "every", "10m",
                                  "2026-01-01T00:40:00Z", "2026-01-01T00:50:00Z", "2026-01-01T01:00:00Z"])
    }
}
