import BackstopTestSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A real Prometheus (Debian package `prometheus`) on a free loopback port, scraping the given
/// targets every second and evaluating the given rule files every second, with its TSDB in a
/// temporary folder. Killed by `stop()` or when the test process exits.
final class PrometheusServer {
    let port: Int
    let directory: String
    private let pid: Int32
    var baseURL: String { "http://127.0.0.1:\(port)" }
    var log: String { directory + "/prometheus.log" }

    /// `scrapeOptions`: extra lines of the job's scrape config (scheme, tls_config, basic_auth),
    /// indented as job keys (4 spaces).
    init(job: String, targets: [String], ruleFiles: [String], scrapeOptions: String = "") throws {
        let binary = try TestEnvironment.binary("prometheus", package: "prometheus")
        port = try TestEnvironment.freePort()
        directory = try TestEnvironment.makeTempDirectory("prometheus")
        let rules = ruleFiles.map { "  - \"\($0)\"" }.joined(separator: "\n")
        let config = """
            global:
              scrape_interval: 1s
              scrape_timeout: 1s
              evaluation_interval: 1s
            rule_files:
            \(rules)
            scrape_configs:
              - job_name: \(job)
            \(scrapeOptions)
                static_configs:
                  - targets: [\(targets.map { "\"\($0)\"" }.joined(separator: ", "))]

            """
        try config.write(toFile: directory + "/prometheus.yml", atomically: true, encoding: .utf8)
        pid = try TestProcesses.spawn(binary, [
            "--config.file=\(directory)/prometheus.yml",
            "--storage.tsdb.path=\(directory)/data",
            "--web.listen-address=127.0.0.1:\(port)",
        ], logFile: directory + "/prometheus.log")
        let url = baseURL + "/-/ready"
        let log = self.log
        try TestEnvironment.waitUntil(timeout: 30, "Prometheus ready on \(url) (log \(log))") {
            (try? TestHTTP.request(url, timeout: 1).status) == 200
        }
    }

    func stop() {
        kill(pid, SIGKILL)
        TestProcesses.unregister(pid: pid)
    }

    deinit { stop() }

    /// GET `path` of the HTTP API and return its `data` member; throws on an API error.
    func api(_ path: String, _ parameters: [String: String] = [:]) throws -> Any {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let query = parameters.sorted { $0.key < $1.key }
            .map { "\($0.key.addingPercentEncoding(withAllowedCharacters: allowed)!)=\($0.value.addingPercentEncoding(withAllowedCharacters: allowed)!)" }
            .joined(separator: "&")
        let url = baseURL + path + (query.isEmpty ? "" : "?" + query)
        let response = try TestHTTP.request(url, timeout: 10)
        guard let object = try JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any] else {
            throw TestSupportError("GET \(url): not JSON: \(response.body.prefix(500))")
        }
        guard response.status == 200, object["status"] as? String == "success", let data = object["data"] else {
            throw TestSupportError("GET \(url) -> \(response.status): \(object["errorType"] ?? "") \(object["error"] ?? response.body)")
        }
        return data
    }

    /// Evaluates `expr` now (instant query); returns the result samples (vector) or a
    /// one-element array for scalars. Throws with Prometheus' error for a bad expression.
    func query(_ expr: String) throws -> [[String: Any]] {
        guard let data = try api("/api/v1/query", ["query": expr]) as? [String: Any] else {
            throw TestSupportError("query \(expr): no data object")
        }
        switch data["resultType"] as? String {
        case "vector", "matrix":
            return data["result"] as? [[String: Any]] ?? []
        case "scalar", "string":
            return [["value": data["result"] ?? NSNull()]]
        default:
            throw TestSupportError("query \(expr): unexpected result \(data)")
        }
    }

    /// The active targets' (job, health, lastError).
    func targets() throws -> [(job: String, instance: String, health: String, error: String)] {
        let data = try api("/api/v1/targets") as? [String: Any]
        let active = data?["activeTargets"] as? [[String: Any]] ?? []
        return active.map {
            let labels = $0["labels"] as? [String: String] ?? [:]
            return (labels["job"] ?? "", labels["instance"] ?? "", $0["health"] as? String ?? "", $0["lastError"] as? String ?? "")
        }
    }

    /// The alerts Prometheus holds now (pending and firing): labels and state.
    func alerts() throws -> [(labels: [String: String], state: String)] {
        let data = try api("/api/v1/alerts") as? [String: Any]
        let alerts = data?["alerts"] as? [[String: Any]] ?? []
        return alerts.map { ($0["labels"] as? [String: String] ?? [:], $0["state"] as? String ?? "") }
    }

    /// Polls `condition` until it holds (checked at most every 250 ms) or fails after `timeout`
    /// seconds, saying what it waited for and the end of Prometheus' log.
    func waitFor(_ what: String, timeout: Double, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        var lastError = ""
        while Date() < deadline {
            do {
                if try condition() { return }
            } catch {
                lastError = "\(error)"
            }
            usleep(250_000)
        }
        let tail = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").suffix(2000)
        let targets = (try? self.targets()).map { "\($0)" } ?? "?"
        let alerts = (try? self.alerts()).map { "\($0)" } ?? "?"
        throw TestSupportError("""
            timed out after \(timeout) s waiting for \(what); last error: \(lastError)
            targets: \(targets)
            alerts: \(alerts)
            prometheus log tail:
            \(tail)
            """)
    }
}
