import BackstopCore
import BackstopTestSupport
import Foundation
import Testing

@Suite("The backstop command line")
struct CommandLineTests {
    @Test("--version and --help")
    func versionAndHelp() throws {
        let version = try BackstopBinary.run(["--version"])
        #expect(version.status == 0)
        #expect(version.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == BuildInfo.version)
        let help = try BackstopBinary.run(["--help"])
        #expect(help.status == 0)
        for sub in ["serve", "health"] { #expect(help.stdout.contains(sub)) }
        let serveHelp = try BackstopBinary.run(["serve", "--help"])
        #expect(serveHelp.stdout.contains("METRICS_LISTEN"))
        #expect(serveHelp.stdout.contains("HEALTH_CHECK_INTERVAL"))
    }

    @Test("a bad value stops start-up with the variable, the value and what is accepted", arguments: [
        ("HEALTH_CHECK_INTERVAL", "soon"),
        ("METRICS_LISTEN", "nowhere:70000"),
        ("REDIS_SENTINELS", "a:1,b:notaport"),
        ("REDIS_PORT", "0"),
    ])
    func badConfiguration(variable: String, value: String) throws {
        for command in [["serve"], ["health"]] {
            let result = try BackstopBinary.run(command, environment: [variable: value, "BACKUP_DIR": NSTemporaryDirectory()])
            #expect(result.status != 0)
            let text = result.stderr + result.stdout
            #expect(text.contains(variable), "\(command): \(text)")
            #expect(text.contains(value), "\(command): \(text)")
            #expect(text.contains("expected"), "\(command): \(text)")
        }
    }

    @Test("a bad cron expression stops start-up and points at the field")
    func badSchedule() throws {
        for command in [["serve"], ["health"], ["schedule"]] {
            let result = try BackstopBinary.run(command, environment: ["BACKUP_SCHEDULE_FULL": "0 25 * * *", "BACKUP_DIR": NSTemporaryDirectory()])
            #expect(result.status != 0)
            let text = result.stderr + result.stdout
            #expect(text.contains("BACKUP_SCHEDULE_FULL=\"0 25 * * *\""), "\(command): \(text)")
            #expect(text.contains("hour"), "\(command): \(text)")
        }
    }

    @Test("a flag is checked like its variable")
    func badFlag() throws {
        let result = try BackstopBinary.run(["serve", "--health-interval", "often"], environment: ["BACKUP_DIR": NSTemporaryDirectory()])
        #expect(result.status != 0)
        #expect(result.stderr.contains("HEALTH_CHECK_INTERVAL=\"often\""))
    }

    @Test("backstop health: exit 0 and a table when all is up; 1 and DOWN when not; --json parses")
    func healthCommand() throws {
        let pg = try PostgresServer.shared
        let redis = try RedisCluster.shared()
        var env = pg.environment
        env["BACKUP_DIR"] = try TestEnvironment.makeTempDirectory("health")
        env["REDIS_HOST"] = redis.master.host
        env["REDIS_PORT"] = String(redis.master.port)
        env["REDIS_SENTINELS"] = redis.sentinels.map(\.description).joined(separator: ",")
        if let password = redis.password { env["REDIS_PASSWORD"] = password }
        // No backups exist in this fresh folder: with the schedules on, BackupStale would
        // (rightly) fire. Disabled schedules have no staleness rule.
        for job in ["FULL", "INCREMENTAL", "REDIS", "CLEANUP", "DRILL"] { env["BACKUP_SCHEDULE_\(job)"] = "" }
        let ok = try BackstopBinary.run(["health"], environment: env)
        #expect(ok.status == 0, "\(ok.stdout)\(ok.stderr)")
        #expect(ok.stdout.contains("postgres \(pg.database)"))
        #expect(ok.stdout.contains("sentinel mymaster"))
        #expect(!ok.stdout.contains("DOWN"))

        let json = try BackstopBinary.run(["health", "--json"], environment: env)
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect(object?["ok"] as? Bool == true)
        #expect((object?["postgres"] as? [String: Any])?["up"] as? Bool == true)

        env["PGPORT"] = String(try TestEnvironment.freePort())
        let down = try BackstopBinary.run(["health", "--timeout", "2s"], environment: env)
        #expect(down.status == 1)
        #expect(down.stdout.contains("DOWN"))
    }
}
