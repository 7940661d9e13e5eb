import BackstopTestSupport
import Foundation
import Testing

/// The example stack itself (deploy/docker-compose.yml), brought up with podman-compose by
/// scripts/compose-up-local.sh: the registry images swapped for stand-ins built from Debian
/// packages (deploy/local/compose.local.yml), Backstop's image from scripts/build-image.sh,
/// throwaway passwords. Checked from the host as a user would: Backstop's /metrics, Prometheus
/// scraping it and holding the alert rules, the runbook's backup command in the container, the
/// applications' way in through pgbouncer, and `down -v` leaving nothing behind. A machine where
/// podman or podman-compose cannot work fails here, at the step that failed; it never skips.
@Suite("The compose stack, up with podman-compose", .serialized)
struct ComposeStackTests {
    static let project = "backstop-example"   // deploy/docker-compose.yml's `name:`

    /// The environment of the scripts and of every podman-compose call. podman-compose `exec`
    /// sends the service's environment from the compose file again, so it needs the same
    /// passwords as `up` (with the compose defaults instead, pg_dump's password is wrong).
    static func environment(postgresPassword: String, redisPassword: String) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["CONTAINERS_CONF"] = env["CONTAINERS_CONF"] ?? Repository.root + "/scripts/podman/containers.conf"
        env["POSTGRES_PASSWORD"] = postgresPassword
        env["REDIS_PASSWORD"] = redisPassword
        // As ContainerImageTests: scripts/test.sh builds the release binary before the tests;
        // run alone, the release build gets its own folder (`swift test` holds .build's lock).
        if let bin = env["BACKSTOP_IMAGE_BIN"] {
            env["BACKSTOP_BIN"] = bin
        } else {
            env["BACKSTOP_SCRATCH_PATH"] = Repository.root + "/.build-image"
        }
        return env
    }

    static func podman(_ arguments: [String], _ env: [String: String], check: Bool = true) throws -> CommandResult {
        let podman = try TestEnvironment.binary("podman", package: "podman")
        return try TestProcesses.run(podman, arguments, environment: env, check: check)
    }

    static func compose(_ arguments: [String], _ env: [String: String], check: Bool = false) throws -> CommandResult {
        let podmanCompose = try TestEnvironment.binary("podman-compose", package: "podman-compose (pip; scripts/install-deps.sh)")
        return try TestProcesses.run(podmanCompose, ["-f", Repository.root + "/deploy/docker-compose.yml",
                                                    "-f", Repository.root + "/deploy/local/compose.local.yml"] + arguments,
                                     environment: env, check: check)
    }

    static func script(_ name: String, _ env: [String: String]) throws -> CommandResult {
        try TestProcesses.run("/bin/bash", [Repository.root + "/scripts/" + name], environment: env, check: false)
    }

    static func curl(_ url: String) throws -> CommandResult {
        try TestProcesses.run("/usr/bin/curl", ["-s", "--max-time", "5", url], check: false)
    }

    /// The `data.result` of a Prometheus instant query.
    static func query(_ promql: String) throws -> [[String: Any]] {
        let encoded = promql.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? promql
        let r = try curl("http://127.0.0.1:9090/api/v1/query?query=" + encoded)
        guard r.status == 0, let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any],
              let data = object["data"] as? [String: Any], let result = data["result"] as? [[String: Any]] else {
            throw TestSupportError("Prometheus query \(promql): \(r.status) \(r.stdout.prefix(500))")
        }
        return result
    }

    /// The project's containers, its named volumes and its network, as podman lists them.
    static func leftovers(_ env: [String: String]) throws -> [String] {
        let label = "label=io.podman.compose.project=\(project)"
        var out: [String] = []
        out += try podman(["ps", "-a", "--filter", label, "--format", "{{.Names}}"], env).stdout.split(separator: "\n").map { "container \($0)" }
        out += try podman(["volume", "ls", "--filter", label, "--format", "{{.Name}}"], env).stdout.split(separator: "\n").map { "volume \($0)" }
        out += try podman(["network", "ls", "--format", "{{.Name}}"], env).stdout.split(separator: "\n")
            .filter { $0.hasPrefix(project + "_") }.map { "network \($0)" }
        return out
    }

    static func seconds(since start: Date) -> String { String(format: "%.1f", Date().timeIntervalSince(start)) }

    @Test("up: /metrics from the host, Prometheus scraping backstop with the alert rules, a dump by the runbook's command, psql through pgbouncer; down -v leaves nothing")
    func stackUpAndDown() throws {
        let suffix = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let postgresPassword = "pg-\(suffix)", redisPassword = "redis-\(suffix)"
        let env = Self.environment(postgresPassword: postgresPassword, redisPassword: redisPassword)
        // A stack left by an interrupted run would keep its old volumes (and passwords).
        _ = try Self.script("compose-down-local.sh", env)
        let before = try Self.leftovers(env)
        try #require(before.isEmpty, "containers, volumes or a network of \(Self.project) are left from before: \(before)")

        var tornDown = false
        defer { if !tornDown { _ = try? Self.script("compose-down-local.sh", env) } }

        let upStart = Date()
        let up = try Self.script("compose-up-local.sh", env)
        try #require(up.status == 0, "scripts/compose-up-local.sh failed (\(up.status)): \(up.stderr.suffix(4000))")
        print("ComposeStackTests: compose-up-local.sh took \(Self.seconds(since: upStart)) s; its steps:\n"
              + up.stderr.split(separator: "\n").filter { $0.hasPrefix("compose-up-local: ") }.joined(separator: "\n"))
        for secret in [postgresPassword, redisPassword] {
            #expect(!up.stdout.contains(secret) && !up.stderr.contains(secret), "a password is in compose-up-local.sh's output")
        }
        // Grafana is left out (not packaged in Debian); everything else runs.
        let running = Set(try Self.podman(["ps", "--filter", "label=io.podman.compose.project=\(Self.project)",
                                           "--format", "{{index .Labels \"com.docker.compose.service\"}}"], env)
                .stdout.split(separator: "\n").map(String.init))
        #expect(running == ["postgres", "pgbouncer", "redis-master", "redis-replica", "sentinel-1", "sentinel-2", "sentinel-3",
                            "backup-service", "prometheus"], "running services: \(running.sorted())")

        // Backstop's /metrics from the host (the published port), once the first health round
        // has reached PostgreSQL, the Redis master and the Sentinels by their service names.
        var metrics = ""
        try TestEnvironment.waitUntil(timeout: 60, "Backstop's /metrics on 127.0.0.1:9847 to show PostgreSQL and Redis up") {
            metrics = try Self.curl("http://127.0.0.1:9847/metrics").stdout
            return metrics.contains("backstop_postgres_up{target=\"psscript\"} 1")
                && metrics.contains("backstop_redis_sentinel_master_ok{master_name=\"mymaster\"} 1")
        }
        #expect(metrics.contains("backstop_build_info"))
        for sentinel in 1...3 { #expect(metrics.contains("backstop_redis_sentinel_up{sentinel=\"sentinel-\(sentinel):26379\"} 1"), "\(metrics)") }

        // Prometheus, inside the stack, scrapes Backstop under its network alias.
        let scrapeStart = Date()
        var target: [String: Any] = [:]
        try TestEnvironment.waitUntil(timeout: 120, "Prometheus to report up{job=\"backstop\"} == 1") {
            guard let sample = try Self.query("up{job=\"backstop\"}").first else { return false }
            target = sample
            return ((sample["value"] as? [Any])?.last as? String) == "1"
        }
        print("ComposeStackTests: up{job=\"backstop\"} == 1 after \(Self.seconds(since: scrapeStart)) s of polling (\(Self.seconds(since: upStart)) s after up began)")
        #expect((target["metric"] as? [String: String])?["instance"] == "backstop:9847", "\(target)")
        // Data Backstop exported, as Prometheus stored it.
        let stored = try Self.query("backstop_postgres_up{job=\"backstop\",target=\"psscript\"}")
        #expect(((stored.first?["value"] as? [Any])?.last as? String) == "1", "\(stored)")

        // Every alert of alerts/*.rules.yml is loaded.
        var expected = Set<String>()
        for file in try Repository.ruleFiles() {
            for m in try String(contentsOfFile: file, encoding: .utf8).matches(of: /- alert: (\w+)/) { expected.insert(String(m.1)) }
        }
        #expect(expected.count > 5)
        let rules = try Self.curl("http://127.0.0.1:9090/api/v1/rules?type=alert")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(rules.stdout.utf8)) as? [String: Any], "\(rules.stdout.prefix(500))")
        let groups = try #require((object["data"] as? [String: Any])?["groups"] as? [[String: Any]])
        let loaded = Set(groups.flatMap { ($0["rules"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String } })
        #expect(loaded == expected, "missing: \(expected.subtracting(loaded).sorted()); unexpected: \(loaded.subtracting(expected).sorted())")
        for group in groups { #expect((group["file"] as? String)?.hasPrefix("/etc/prometheus/alerts/") == true, "\(group["file"] ?? "")") }

        // The applications' way in: psql to pgbouncer:6432 over the stack's network (from the
        // postgres container, which has psql), with the password from its own environment. The
        // marker row must then be in the dump.
        let marker = "compose-\(suffix)"
        let viaPgbouncer = "PGPASSWORD=\"$POSTGRES_PASSWORD\" psql -X -v ON_ERROR_STOP=1 -h pgbouncer -p 6432 -U postgres -Atq"
        let insert = try Self.compose(["exec", "-T", "postgres", "sh", "-c",
                                       viaPgbouncer + " -d psscript -c 'CREATE TABLE compose_probe (note text)' -c \"INSERT INTO compose_probe VALUES ('\(marker)')\" -c 'SELECT note FROM compose_probe'"], env)
        #expect(insert.status == 0 && insert.stdout.contains(marker), "psql through pgbouncer: \(insert.status) \(insert.stdout) \(insert.stderr.suffix(1500))")
        // pgbouncer's own console answered (not PostgreSQL directly): it lists its psscript pool.
        let pools = try Self.compose(["exec", "-T", "postgres", "sh", "-c", viaPgbouncer + " -d pgbouncer -c 'SHOW POOLS'"], env)
        #expect(pools.status == 0 && pools.stdout.contains("psscript|postgres|"), "SHOW POOLS: \(pools.status) \(pools.stdout) \(pools.stderr.suffix(1500))")
        #expect(pools.stdout.contains("|transaction"), "pool mode: \(pools.stdout)")

        // The old runbook's command, unchanged. 75 (EX_TEMPFAIL): serve's own start-up dump
        // holds the job's lock; try again.
        let backupStart = Date()
        var backup = try Self.compose(["exec", "-T", "backup-service", "/scripts/postgres-backup.sh", "full"], env)
        while backup.status == 75 && Date().timeIntervalSince(backupStart) < 60 {
            usleep(500_000)
            backup = try Self.compose(["exec", "-T", "backup-service", "/scripts/postgres-backup.sh", "full"], env)
        }
        #expect(backup.status == 0, "postgres-backup.sh full: \(backup.status) \(backup.stdout.suffix(1500)) \(backup.stderr.suffix(1500))")
        let written = backup.stdout + backup.stderr
        let dumpPath = try #require(written.firstMatch(of: /→ (\/backups\/postgres\/psscript_full_\d{8}_\d{6}\.sql\.gz)/).map { String($0.1) },
                                    "no dump path in: \(written.suffix(1500))")
        // In the named volume, seen from the host: complete gzip, owned by the image's user,
        // with the row written through pgbouncer.
        let mountpoint = try Self.podman(["volume", "inspect", "--format", "{{.Mountpoint}}", "\(Self.project)_backups"], env)
            .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let onHost = mountpoint + dumpPath.dropFirst("/backups".count)
        #expect(FileManager.default.fileExists(atPath: onHost), "\(onHost) is not in the backups volume")
        #expect(FileManager.default.fileExists(atPath: onHost + ".meta"), "\(onHost).meta is not in the backups volume")
        let owner = try TestProcesses.run("/usr/bin/stat", ["-c", "%u", onHost], check: false).stdout
        #expect(owner.trimmingCharacters(in: .whitespacesAndNewlines) == "10001", "owner \(owner)")
        let content = try TestProcesses.run("/bin/gzip", ["-dc", onHost], check: false)
        #expect(content.status == 0, "gzip -dc \(onHost): \(content.stderr)")
        #expect(content.stdout.contains("PostgreSQL database dump complete"), "\(content.stdout.suffix(300))")
        #expect(content.stdout.contains(marker), "the row written through pgbouncer is not in the dump")
        let logs = try Self.compose(["logs", "backup-service"], env)
        for secret in [postgresPassword, redisPassword] {
            #expect(!(logs.stdout + logs.stderr).contains(secret), "a password is in Backstop's log")
        }

        // down -v: no container, named or anonymous volume or network of the project is left.
        var anonymous: [String] = []
        for name in try Self.podman(["ps", "-a", "-q", "--filter", "label=io.podman.compose.project=\(Self.project)"], env).stdout.split(separator: "\n") {
            let mounts = try Self.podman(["inspect", "--format", "{{range .Mounts}}{{if eq .Type \"volume\"}}{{.Name}} {{end}}{{end}}", String(name)], env).stdout
            anonymous += mounts.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
                .filter { !$0.isEmpty && !$0.hasPrefix(Self.project + "_") }
        }
        #expect(!anonymous.isEmpty, "no anonymous volume to check (the replica and the Sentinels have one on /data)")
        let downStart = Date()
        let down = try Self.script("compose-down-local.sh", env)
        tornDown = true
        #expect(down.status == 0, "scripts/compose-down-local.sh failed (\(down.status)): \(down.stderr.suffix(3000))")
        print("ComposeStackTests: compose-down-local.sh took \(Self.seconds(since: downStart)) s")
        let left = try Self.leftovers(env)
        #expect(left.isEmpty, "left after down -v: \(left)")
        for volume in anonymous {
            #expect(try Self.podman(["volume", "exists", volume], env, check: false).status != 0, "anonymous volume \(volume) is left after down")
        }
    }
}
