import BackstopCore
import BackstopTestSupport
import Foundation
import Testing

/// The image itself, built by scripts/build-image.sh with podman (no registry: a debootstrapped
/// bookworm as the base) and run as a user would: against the test PostgreSQL, Redis and
/// Sentinels on the host network, with a named volume on /backups. A machine where podman
/// cannot build or run containers fails here, at the step that failed; it never skips.
@Suite("The container image, built and run with podman", .serialized)
struct ContainerImageTests {
    static let image = "localhost/backstop:test"

    static func podman(_ arguments: [String], check: Bool = true) throws -> CommandResult {
        let podman = try TestEnvironment.binary("podman", package: "podman")
        var env = ProcessInfo.processInfo.environment
        env["CONTAINERS_CONF"] = env["CONTAINERS_CONF"] ?? Repository.root + "/scripts/podman/containers.conf"
        return try TestProcesses.run(podman, arguments, environment: env, check: check)
    }

    /// Builds the image once per run (the release build and the base image are reused when
    /// present); throws with the script's own message when a step fails.
    static let built = Result<String, any Error> {
        var env = ProcessInfo.processInfo.environment
        env["IMAGE"] = image
        // scripts/test.sh builds the release binary before the tests (BACKSTOP_IMAGE_BIN). Run
        // alone, the release build gets its own folder: `swift test` holds .build's lock.
        if let bin = env["BACKSTOP_IMAGE_BIN"] {
            env["BACKSTOP_BIN"] = bin
        } else {
            env["BACKSTOP_SCRATCH_PATH"] = Repository.root + "/.build-image"
        }
        let result = try TestProcesses.run("/bin/bash", [Repository.root + "/scripts/build-image.sh"], environment: env, check: false)
        guard result.status == 0 else {
            throw TestSupportError("scripts/build-image.sh failed (\(result.status)): \(result.stderr.suffix(3000))")
        }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("the image runs as backstop, has no compiler or headers, and lists its packages")
    func imageContents() throws {
        _ = try Self.built.get()
        let user = try Self.podman(["image", "inspect", "--format", "{{.Config.User}}", Self.image]).stdout
        #expect(user.trimmingCharacters(in: .whitespacesAndNewlines) == "backstop")
        let probe = try Self.podman(["run", "--rm", "--network", "none", Self.image, "bash", "-c",
                                     "id -u; for c in swiftc swift gcc cc clang c++ ld; do command -v $c; done; "
                                         + "find /usr/include -name '*.h' | head -3; dpkg-query -W -f '${Package}\\n' | grep -E -- '-dev$' || true"])
        let lines = probe.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "10001", "runs as uid \(lines.first ?? "?")")
        #expect(lines.count == 1, "compilers, headers or -dev packages in the image: \(lines.dropFirst())")
        // What the binary needs is there: it starts and knows its version.
        let version = try Self.podman(["run", "--rm", "--network", "none", Self.image, "backstop", "--version"])
        #expect(!version.stdout.isEmpty)
        let pgDump = try Self.podman(["run", "--rm", "--network", "none", Self.image, "pg_dump", "--version"])
        #expect(pgDump.stdout.contains("15."), "\(pgDump.stdout)")
    }

    @Test("serve in the container: /metrics, HEALTHCHECK healthy, backups into the volume by the compat scripts, podman stop < 10 s")
    func serveInTheContainer() throws {
        _ = try Self.built.get()
        let pg = try PostgresServer.shared
        let database = try pg.createDatabase(PostgresServer.uniqueDatabaseName("image"))
        try pg.psql("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 1000);", database: database)
        let redis = try RedisCluster.shared()
        let port = try TestEnvironment.freePort()
        let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let name = "backstop-test-\(suffix)", volume = "backstop-test-backups-\(suffix)"
        _ = try Self.podman(["volume", "create", volume])
        defer {
            _ = try? Self.podman(["rm", "-f", "-t", "0", name], check: false)
            _ = try? Self.podman(["volume", "rm", "-f", volume], check: false)
        }
        var env: [String: String] = pg.environment(database: database)
        env["BACKUP_POSTGRES_DATABASES"] = database
        env["METRICS_LISTEN"] = "127.0.0.1:\(port)"
        env["REDIS_HOST"] = redis.master.host
        env["REDIS_PORT"] = String(redis.master.port)
        env["REDIS_SENTINELS"] = redis.sentinels.map(\.description).joined(separator: ",")
        env["REDIS_SENTINEL_MASTER"] = redis.masterName
        // Through the environment file, as a secret should go: never in podman's argv.
        let envFile = try TestEnvironment.makeTempDirectory("image-env") + "/backstop.env"
        var lines = env.map { "\($0.key)=\($0.value)" }
        if let password = redis.password { lines.append("REDIS_PASSWORD=\(password)") }
        try lines.joined(separator: "\n").write(toFile: envFile, atomically: true, encoding: .utf8)
        _ = try Self.podman(["run", "-d", "--name", name, "--network", "host", "--env-file", envFile, "-v", "\(volume):/backups", Self.image])

        // /metrics from the host.
        var metrics = ""
        try TestEnvironment.waitUntil(timeout: 30, "backstop serve in the container to answer /metrics") {
            let r = try TestProcesses.run("/usr/bin/curl", ["-s", "--max-time", "2", "http://127.0.0.1:\(port)/metrics"], check: false)
            metrics = r.stdout
            // Until the first health round has probed PostgreSQL.
            return r.status == 0 && metrics.contains("backstop_postgres_up{target=\"\(database)\"} 1")
        }
        #expect(metrics.contains("backstop_build_info"))
        // The image's HEALTHCHECK, run by podman.
        let health = try Self.podman(["healthcheck", "run", name], check: false)
        #expect(health.status == 0, "HEALTHCHECK: \(health.stdout)\(health.stderr)")
        let status = try Self.podman(["inspect", "--format", "{{.State.Health.Status}}", name]).stdout
        #expect(status.trimmingCharacters(in: .whitespacesAndNewlines) == "healthy")

        // serve's start-up catch-up runs (dump, base backup, snapshot) finish first: until then
        // health-check.sh rightly reports BackupStale for the kind not backed up yet.
        try TestEnvironment.waitUntil(timeout: 180, "serve's catch-up backups") {
            let r = try? TestProcesses.run("/usr/bin/curl", ["-s", "--max-time", "2", "http://127.0.0.1:\(port)/metrics"], check: false)
            let text = r?.stdout ?? ""
            return ["postgres_full", "postgres_base", "redis"].allSatisfy { kind in
                text.split(separator: "\n").contains { $0.hasPrefix("backstop_backup_last_success_timestamp_seconds{kind=\"\(kind)\"") && !$0.hasSuffix(" 0") }
            }
        }
        // The old scripts' names, inside the container, as the runbook runs them.
        for (script, arguments) in [("postgres-backup.sh", ["full"]), ("redis-backup.sh", []), ("cleanup-backups.sh", []),
                                    ("restore-postgres.sh", []), ("restore-redis.sh", []), ("health-check.sh", [])] {
            // 75 (EX_TEMPFAIL): serve's own start-up run of that job holds its lock; try again.
            var r = try Self.podman(["exec", name, "/scripts/" + script] + arguments, check: false)
            let deadline = WallClock.now() + 60
            while r.status == 75 && WallClock.now() < deadline {
                usleep(500_000)
                r = try Self.podman(["exec", name, "/scripts/" + script] + arguments, check: false)
            }
            #expect(r.status == 0, "/scripts/\(script) \(arguments.joined(separator: " ")): \(r.status) \(r.stdout.suffix(1500)) \(r.stderr.suffix(1500))")
        }
        let listed = try Self.podman(["exec", name, "backstop", "list", "--json"]).stdout
        let entries = try #require(try JSONSerialization.jsonObject(with: Data(listed.utf8)) as? [[String: Any]])
        let dump = try #require(entries.first { $0["kind"] as? String == "postgres_full" && $0["target"] as? String == database })
        #expect(entries.contains { $0["kind"] as? String == "redis" && $0["state"] as? String == "complete" }, "\(listed)")
        let path = try #require(dump["path"] as? String)
        #expect(path.hasPrefix("/backups/postgres/\(database)_full_"))
        // Owned by the image's user, in the volume, and checksummed.
        let owner = try Self.podman(["exec", name, "stat", "-c", "%u:%g %a", path, path + ".meta", "/backups/postgres"]).stdout
        for line in owner.split(separator: "\n") { #expect(line.hasPrefix("10001:10001 "), "\(owner)") }
        let verify = try Self.podman(["exec", name, "backstop", "verify", path], check: false)
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        // The dump holds the table's rows.
        let rows = try Self.podman(["exec", name, "bash", "-c", "gzip -dc \(path) | grep -c '^[0-9]'"]).stdout
        #expect(rows.trimmingCharacters(in: .whitespacesAndNewlines) == "1000")

        // SIGTERM (podman stop) ends serve cleanly, well within podman's 10 s before SIGKILL.
        let start = WallClock.now()
        _ = try Self.podman(["stop", "-t", "10", name])
        let took = WallClock.now() - start
        #expect(took < 10, "podman stop took \(took) s")
        let exit = try Self.podman(["inspect", "--format", "{{.State.ExitCode}}", name]).stdout
        #expect(exit.trimmingCharacters(in: .whitespacesAndNewlines) == "0", "exit code \(exit)")
        let logs = try Self.podman(["logs", name]).stderr + (try Self.podman(["logs", name]).stdout)
        if let password = redis.password { #expect(!logs.contains(password), "the Redis password is in the container's log") }
    }
}
