import BackstopTestSupport
import Foundation
import Testing

/// What can be checked of the container files without a Docker engine.
@Suite("Dockerfile, compose file and scrape config")
struct DeploymentFilesTests {
    /// The final stage of the Dockerfile: its text after the last FROM, continuation lines joined.
    static func runtimeStage() throws -> String {
        let text = try Repository.read("Dockerfile").replacingOccurrences(of: "\\\n", with: " ")
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let from = lines.lastIndex(where: { $0.hasPrefix("FROM ") }) else { throw TestSupportError("Dockerfile has no FROM") }
        return lines[from...].joined(separator: "\n")
    }

    /// The packages the runtime stage installs with `apt-get install`, `${PG_MAJOR}` replaced
    /// by the ARG's default.
    static func runtimePackages() throws -> Set<String> {
        let stage = try runtimeStage()
        let pgMajor = stage.firstMatch(of: /ARG PG_MAJOR=(\d+)/).map { String($0.1) } ?? "PG_MAJOR"
        var packages = Set<String>()
        for match in stage.matches(of: /apt-get install ([^;&]*)/) {
            for word in match.1.split(whereSeparator: \.isWhitespace) where !word.hasPrefix("-") {
                packages.insert(word.replacingOccurrences(of: "\"", with: "").replacingOccurrences(of: "${PG_MAJOR}", with: pgMajor))
            }
        }
        return packages
    }

    /// glibc, the Swift runtime (linked statically by --static-swift-stdlib in the image, from
    /// the toolchain in a debug build) and the C++ runtime that every Debian image carries.
    static func isBaseLibrary(_ soname: String, path: String) -> Bool {
        let glibc = ["linux-vdso.so", "ld-linux", "libc.so", "libm.so", "libpthread.so", "libdl.so", "librt.so",
                     "libresolv.so", "libutil.so", "libstdc++.so", "libgcc_s.so"]
        if glibc.contains(where: { soname.hasPrefix($0) }) { return true }
        let swift = ["libswift", "libFoundation", "lib_FoundationICU", "libdispatch.so", "libBlocksRuntime.so"]
        return swift.contains(where: { soname.hasPrefix($0) }) && !path.hasPrefix("/usr/lib/") && !path.hasPrefix("/lib/")
    }

    /// The Debian package holding `path` (symlinks resolved), e.g. libpq5.
    static func package(of path: String) throws -> String {
        let real = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        for candidate in [real, path, real.replacingOccurrences(of: "/usr/lib/", with: "/lib/"),
                          path.replacingOccurrences(of: "/lib/", with: "/usr/lib/")] {
            let r = try TestProcesses.run("/usr/bin/dpkg", ["-S", candidate], check: false)
            if r.status == 0, let line = r.stdout.split(separator: "\n").first, let colon = line.firstIndex(of: ":") {
                return String(line[..<colon])
            }
        }
        throw TestSupportError("no Debian package owns \(path) (dpkg -S)")
    }

    @Test("the runtime stage installs the package of every shared library the binary links")
    func runtimeLibraries() throws {
        let binary = try BackstopBinary.path()
        let installed = try Self.runtimePackages()
        #expect(installed.contains("redis-tools"))
        #expect(installed.contains(where: { $0.hasPrefix("postgresql-client-") }))

        // Direct dependencies (NEEDED): installed by name.
        let readelf = try TestProcesses.run("/usr/bin/readelf", ["-d", binary])
        let needed = readelf.stdout.matches(of: /\(NEEDED\)\s+Shared library: \[([^\]]+)\]/).map { String($0.1) }
        let ldd = try TestProcesses.run("/usr/bin/ldd", [binary])
        var paths: [String: String] = [:]
        for match in ldd.stdout.matches(of: /^\s*(\S+) => (\S+) \(/.anchorsMatchLineEndings()) {
            paths[String(match.1)] = String(match.2)
        }
        #expect(!ldd.stdout.contains("not found"), "ldd: \(ldd.stdout)")
        var direct: [String: String] = [:]
        for soname in needed {
            let path = paths[soname] ?? ""
            if Self.isBaseLibrary(soname, path: path) { continue }
            let pkg = try Self.package(of: path)
            direct[soname] = pkg
            #expect(installed.contains(pkg), "\(binary) links \(soname) (\(path)) from \(pkg), which the Dockerfile's runtime stage does not install")
        }
        // Not vacuous: the five C libraries of DESIGN.md are among them.
        for prefix in ["libpq.so", "libhiredis.so", "libcurl.so", "libz.so", "libmicrohttpd.so"] {
            #expect(direct.keys.contains(where: { $0.hasPrefix(prefix) }), "\(prefix) is not a direct dependency: \(needed)")
        }

        // Everything ldd resolves transitively comes with the installed packages' dependencies.
        let depends = try TestProcesses.run("/usr/bin/apt-cache", [
            "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts", "--no-breaks",
            "--no-replaces", "--no-enhances",
        ] + installed.sorted())
        let closure = Set(depends.stdout.split(separator: "\n").filter { !$0.hasPrefix(" ") }.map { String($0) })
        for (soname, path) in paths where !Self.isBaseLibrary(soname, path: path) && direct[soname] == nil {
            let pkg = try Self.package(of: path)
            #expect(closure.contains(pkg), "\(soname) (\(pkg)) is not pulled in by the runtime packages \(installed.sorted())")
        }
    }

    @Test("every file the Dockerfile copies from the build context exists")
    func copiedFilesExist() throws {
        let text = try Repository.read("Dockerfile").replacingOccurrences(of: "\\\n", with: " ")
        var sources: [String] = []
        for line in text.split(separator: "\n") {
            let words = line.split(whereSeparator: \.isWhitespace).map(String.init)
            guard let op = words.first?.uppercased(), op == "COPY" || op == "ADD" else { continue }
            let args = words.dropFirst().filter { !$0.hasPrefix("--") }
            if words.contains(where: { $0.hasPrefix("--from=") }) { continue }
            sources += args.dropLast().filter { !$0.contains("://") }
        }
        #expect(sources.contains("Sources"), "the Dockerfile copies Sources: \(sources)")
        let ignored = try Repository.read(".dockerignore").split(separator: "\n")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && !$0.hasPrefix("#") }
        for source in sources {
            let directory = Repository.root + "/" + (URL(fileURLWithPath: source).deletingLastPathComponent().relativePath)
            let pattern = URL(fileURLWithPath: source).lastPathComponent
            let names = try FileManager.default.contentsOfDirectory(atPath: directory)
            let matches = names.filter { fnmatch(pattern, $0, 0) == 0 }
            #expect(!matches.isEmpty, "the Dockerfile copies \(source), which does not exist")
            for name in matches {
                #expect(!ignored.contains(where: { fnmatch($0, name, 0) == 0 }), ".dockerignore excludes \(name), which the Dockerfile copies")
            }
        }
        // The image builds the product the README runs and runs it as described.
        let stage = try Self.runtimeStage()
        for line in ["VOLUME /backups", "EXPOSE 9847", "USER backstop", #"CMD ["backstop", "serve"]"#] {
            #expect(stage.contains(line), "runtime stage lacks \(line)")
        }
        #expect(stage.contains("HEALTHCHECK") && stage.contains("/healthz"))
        // The release build: scripts/build-release.sh, the one recipe the benchmarks use too.
        #expect(try Repository.read("Dockerfile").contains("./scripts/build-release.sh"))
        let recipe = try Repository.read("scripts/build-release.sh")
        #expect(recipe.contains("swift build -c release --product backstop --static-swift-stdlib"))
    }

    /// The backstop service's environment and the host paths the compose file mounts.
    static func composeFacts() throws -> [String: Any] {
        let script = """
            import json, sys, yaml
            d = yaml.safe_load(open(sys.argv[1]))
            s = d["services"]
            mounts = []
            for svc in s.values():
                for v in svc.get("volumes", []):
                    src = v.split(":")[0]
                    if src.startswith("."):
                        mounts.append(src)
            b = s["backup-service"]
            print(json.dumps({"services": sorted(s), "env": b["environment"], "mounts": mounts, "build": b["build"],
                              "aliases": b.get("networks", {}).get("default", {}).get("aliases", []),
                              "pgbouncer": s.get("pgbouncer", {}).get("environment", {})}))
            """
        let python = try TestEnvironment.binary("python3", package: "python3-yaml")
        let out = try TestProcesses.run(python, ["-c", script, Repository.root + "/deploy/docker-compose.yml"]).stdout
        return try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any] ?? [:]
    }

    /// Names Backstop reads: string literals in Sources/ and the README's variable table.
    static func variablesBackstopReads() throws -> Set<String> {
        var names = Set<String>()
        let enumerator = FileManager.default.enumerator(atPath: Repository.root + "/Sources")
        while let file = enumerator?.nextObject() as? String {
            guard file.hasSuffix(".swift") else { continue }
            let text = try String(contentsOfFile: Repository.root + "/Sources/" + file, encoding: .utf8)
            for m in text.matches(of: /"([A-Z][A-Z0-9]*_[A-Z0-9_]+)"/) { names.insert(String(m.1)) }
        }
        for line in try Repository.read("README.md").split(separator: "\n") where line.hasPrefix("| `") {
            for m in line.matches(of: /`([A-Z][A-Z0-9_]+)`/) { names.insert(String(m.1)) }
        }
        return names
    }

    @Test("the compose file parses, mounts files that exist, and gives backstop the variables it reads")
    func composeFile() throws {
        let facts = try Self.composeFacts()
        let services = Set(facts["services"] as? [String] ?? [])
        for service in ["postgres", "pgbouncer", "redis-master", "redis-replica", "sentinel-1", "sentinel-2", "sentinel-3", "backup-service",
                        "prometheus", "grafana"] {
            #expect(services.contains(service), "compose has no \(service) service")
        }
        for mount in facts["mounts"] as? [String] ?? [] {
            let path = URL(fileURLWithPath: Repository.root + "/deploy/" + mount).standardized.path
            #expect(FileManager.default.fileExists(atPath: path), "compose mounts \(mount), which does not exist")
        }
        let build = facts["build"] as? [String: Any] ?? [:]
        #expect(build["context"] as? String == ".." && build["dockerfile"] as? String == "Dockerfile")

        let env = facts["env"] as? [String: Any] ?? [:]
        let reads = try Self.variablesBackstopReads()
        // The ones without which the example stack would probe the wrong thing.
        let essential = ["BACKUP_DIR", "METRICS_LISTEN", "HEALTH_CHECK_INTERVAL", "PGHOST", "PGPORT", "PGUSER", "PGPASSWORD",
                         "PGDATABASE", "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "REDIS_SENTINELS", "REDIS_SENTINEL_MASTER",
                         "BACKUP_SCHEDULE_FULL", "BACKUP_SCHEDULE_INCREMENTAL", "BACKUP_SCHEDULE_REDIS"]
        for name in essential {
            #expect(reads.contains(name), "\(name) is neither read in Sources/ nor documented in README.md")
            #expect(env[name] != nil, "the compose backstop service does not set \(name)")
        }
        // No typos: every variable set is one Backstop (or libpq, or the C library) reads. The
        // retention and S3 variables of DESIGN.md are allowed before their code lands.
        let outside: Set<String> = ["TZ", "PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE",
                                    "BACKUP_RETENTION_DAYS", "BACKUP_S3_BUCKET", "BACKUP_S3_REGION",
                                    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
        for name in env.keys where !reads.contains(name) && !outside.contains(name) {
            Issue.record("the compose backstop service sets \(name), which Backstop does not read")
        }
        #expect((env["REDIS_SENTINELS"] as? String)?.split(separator: ",").count == 3)
        #expect(env["METRICS_LISTEN"] as? String == "0.0.0.0:9847")
        // The old runbook's `exec backup-service`, and Prometheus's target name `backstop`.
        #expect((facts["aliases"] as? [String] ?? []).contains("backstop"))
        // Backstop dumps from the server, never through the transaction-pooling pgbouncer
        // the applications use.
        #expect(env["PGHOST"] as? String == "postgres")
        let pgbouncer = facts["pgbouncer"] as? [String: Any] ?? [:]
        #expect(pgbouncer["DB_HOST"] as? String == "postgres" && pgbouncer["POOL_MODE"] as? String == "transaction")
    }

    @Test("promtool accepts deploy/prometheus.yml, which scrapes job backstop and loads the alert rules")
    func scrapeConfig() throws {
        let promtool = try TestEnvironment.binary("promtool", package: "prometheus")
        let check = try TestProcesses.run(promtool, ["check", "config", "--syntax-only", Repository.root + "/deploy/prometheus.yml"], check: false)
        #expect(check.status == 0, "promtool check config: \(check.stdout)\(check.stderr)")
        let text = try Repository.read("deploy/prometheus.yml")
        #expect(text.contains("job_name: backstop"))
        #expect(text.contains("backstop:9847"))
        #expect(text.contains("/etc/prometheus/alerts/*.rules.yml"))
    }

    @Test("the README's Alerts section names every alert of alerts/*.rules.yml")
    func readmeNamesEveryAlert() throws {
        let readme = try Repository.read("README.md")
        guard let start = readme.range(of: "\n## Alerts\n") else { throw TestSupportError("README.md has no Alerts section") }
        let section = String(readme[start.upperBound...]).components(separatedBy: "\n## ").first ?? ""
        var names = Set<String>()
        for file in try Repository.ruleFiles() {
            for m in try String(contentsOfFile: file, encoding: .utf8).matches(of: /- alert: (\w+)/) { names.insert(String(m.1)) }
        }
        #expect(names.count >= 13, "alert names found: \(names.sorted())")
        for name in names.sorted() {
            #expect(section.contains("| `\(name)` |"), "README's Alerts table has no row for \(name)")
        }
    }

    @Test("the dashboard is an importable model: variables, and a data source, unit and description on every panel")
    func dashboardModel() throws {
        let data = Data(try Repository.read("dashboards/backstop.json").utf8)
        let dashboard = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
        #expect((dashboard["schemaVersion"] as? Int).map { (36...41).contains($0) } == true)
        #expect(dashboard["uid"] as? String == "backstop")
        let variables = ((dashboard["templating"] as? [String: Any])?["list"] as? [[String: Any]]) ?? []
        let byName = Dictionary(variables.map { ($0["name"] as? String ?? "", $0) }, uniquingKeysWith: { a, _ in a })
        #expect(byName["datasource"]?["type"] as? String == "datasource" && byName["datasource"]?["query"] as? String == "prometheus")
        for name in ["job", "instance"] {
            let query = (byName[name]?["query"] as? [String: Any])?["query"] as? String ?? ""
            #expect(byName[name]?["type"] as? String == "query" && query.hasPrefix("label_values(") && query.hasSuffix(", \(name))"),
                    "variable \(name): \(query)")
            #expect((byName[name]?["datasource"] as? [String: String])?["uid"] == "${datasource}")
        }
        let panels = (dashboard["panels"] as? [[String: Any]] ?? []).filter { $0["type"] as? String != "row" }
        #expect(panels.count >= 25)
        var ids = Set<Int>()
        for panel in panels {
            let title = panel["title"] as? String ?? "?"
            if let id = panel["id"] as? Int { #expect(ids.insert(id).inserted, "duplicate panel id \(id)") }
            #expect((panel["datasource"] as? [String: String])?["uid"] == "${datasource}", "\(title): data source")
            let description = panel["description"] as? String ?? ""
            #expect(!description.isEmpty, "\(title): no description")
            let defaults = (panel["fieldConfig"] as? [String: Any])?["defaults"] as? [String: Any] ?? [:]
            let unit = defaults["unit"] as? String ?? ""
            #expect(!unit.isEmpty, "\(title): no unit")
            let targets = panel["targets"] as? [[String: Any]] ?? []
            #expect(!targets.isEmpty, "\(title): no query")
            for target in targets {
                #expect((target["datasource"] as? [String: String])?["uid"] == "${datasource}", "\(title): target data source")
            }
        }
        // The issue's panels, by the families they show.
        let text = String(decoding: data, as: UTF8.self)
        for family in ["backstop_backup_age_seconds", "backstop_backup_last_size_bytes", "backstop_backup_last_duration_seconds",
                       "backstop_backup_runs_total", "backstop_backups_retained", "backstop_backup_storage_bytes",
                       "backstop_disk_free_bytes", "backstop_postgres_up", "backstop_redis_up", "backstop_redis_sentinel_up",
                       "backstop_redis_master_info", "backstop_alerts_firing", "backstop_s3_uploads_total",
                       "backstop_restore_drill_last_success_timestamp_seconds"] {
            #expect(text.contains(family + "{"), "no panel shows \(family)")
        }
    }

    /// The HEALTHCHECK's exec-form command, as Docker would run it.
    static func healthcheckCommand() throws -> [String] {
        let stage = try runtimeStage()
        guard let match = stage.firstMatch(of: /HEALTHCHECK[^\n]*?CMD (\[[^\n]*\])/) else {
            throw TestSupportError("no exec-form HEALTHCHECK CMD in the runtime stage")
        }
        return try JSONSerialization.jsonObject(with: Data(match.1.utf8)) as? [String] ?? []
    }

    @Test("the HEALTHCHECK command succeeds against a running backstop serve and fails when nothing listens")
    func healthcheckCommandWorks() throws {
        let command = try Self.healthcheckCommand()
        #expect(command.first == "bash", "the runtime image has bash, not curl: \(command)")
        let executable = try TestEnvironment.binary(command[0], package: "bash")
        // No PostgreSQL or Redis needed: /healthz answers while the process is alive.
        let serve = try ServeProcess(environment: ["PGHOST": "127.0.0.1", "PGPORT": "1", "REDIS_HOST": "127.0.0.1", "REDIS_PORT": "1"])
        defer { serve.stop() }
        let ok = try TestProcesses.run(executable, Array(command.dropFirst()), environment: ["METRICS_LISTEN": serve.address], check: false)
        #expect(ok.status == 0, "HEALTHCHECK against \(serve.address): \(ok.status) \(ok.stderr)")
        let closed = try TestEnvironment.freePort()
        let down = try TestProcesses.run(executable, Array(command.dropFirst()), environment: ["METRICS_LISTEN": "127.0.0.1:\(closed)"], check: false)
        #expect(down.status != 0, "HEALTHCHECK succeeded with nothing on port \(closed)")
    }
}
