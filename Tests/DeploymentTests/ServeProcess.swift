import BackstopTestSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A `backstop serve` on a free loopback port with a 1 s health interval.
final class ServeProcess {
    let port: Int
    let backupDir: String
    let log: String
    private var pid: Int32?
    var address: String { "127.0.0.1:\(port)" }
    var metricsURL: String { "http://\(address)/metrics" }

    /// Starts serve; when the free port was taken by someone else before serve bound it (serve
    /// then exits), tries again on another port.
    init(environment: [String: String]) throws {
        let dir = try TestEnvironment.makeTempDirectory("deploy-serve")
        backupDir = dir + "/backups"
        log = dir + "/serve.log"
        var attempt = 0
        while true {
            attempt += 1
            let port = try TestEnvironment.freePort()
            var env: [String: String] = [
                "BACKUP_DIR": backupDir,
                "METRICS_LISTEN": "127.0.0.1:\(port)",
                "HEALTH_CHECK_INTERVAL": "1s",
                "HEALTH_PROBE_TIMEOUT": "1s",
            ]
            env.merge(environment) { _, new in new }
            let pid = try BackstopBinary.spawn(["serve"], environment: env, logFile: log)
            var exited = false
            let log = self.log
            try TestEnvironment.waitUntil(timeout: 20, "backstop serve to listen on \(port) (log \(log))") {
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid { exited = true; return true }
                return TestEnvironment.isListening(port: port)
            }
            if !exited {
                self.port = port
                self.pid = pid
                return
            }
            TestProcesses.unregister(pid: pid)
            if attempt == 3 {
                throw TestSupportError("backstop serve exited at start-up three times; log \(log):\n\((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
            }
        }
    }

    /// The environment for the shared PostgreSQL and the shared Redis cluster with its Sentinels.
    static func sharedEnvironment() throws -> [String: String] {
        let pg = try PostgresServer.shared
        let redis = try RedisCluster.shared()
        var env = pg.environment
        env["REDIS_HOST"] = redis.master.host
        env["REDIS_PORT"] = String(redis.master.port)
        env["REDIS_SENTINELS"] = redis.sentinels.map(\.description).joined(separator: ",")
        env["REDIS_SENTINEL_MASTER"] = redis.masterName
        if let password = redis.password { env["REDIS_PASSWORD"] = password }
        return env
    }

    func metrics() throws -> String { try TestHTTP.request(metricsURL).body }

    /// SIGTERM and wait for the exit.
    func stop() {
        guard let pid else { return }
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        TestProcesses.unregister(pid: pid)
        self.pid = nil
    }

    deinit {
        if let pid { kill(pid, SIGKILL) }
    }
}

/// The repository root (Tests/DeploymentTests/ is two folders below it).
enum Repository {
    static let root: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    static func read(_ relative: String) throws -> String {
        try String(contentsOfFile: root + "/" + relative, encoding: .utf8)
    }

    /// alerts/*.rules.yml, sorted.
    static func ruleFiles() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: root + "/alerts")
            .filter { $0.hasSuffix(".rules.yml") }.sorted().map { root + "/alerts/" + $0 }
    }

    /// Copies of alerts/*.rules.yml in `directory` with every `for:` shortened to `forDuration`,
    /// so an alert that waits minutes in production fires within seconds under test; `edit`
    /// may change a file's text further (keyed by file name).
    static func shortenedRuleFiles(in directory: String, forDuration: String = "2s",
                                   edit: (String, String) throws -> String = { _, text in text }) throws -> [String] {
        var out: [String] = []
        for path in try ruleFiles() {
            let name = URL(fileURLWithPath: path).lastPathComponent
            var text = try String(contentsOfFile: path, encoding: .utf8)
            text = text.replacingOccurrences(of: #"(?m)^(\s+)for: \S+$"#, with: "$1for: \(forDuration)", options: .regularExpression)
            text = try edit(name, text)
            let target = directory + "/" + name
            try text.write(toFile: target, atomically: true, encoding: .utf8)
            out.append(target)
        }
        return out
    }
}
