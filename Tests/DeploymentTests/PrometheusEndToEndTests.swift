import BackstopTestSupport
import Foundation
import Testing

/// Issue 8's judgement: a real Prometheus scrapes a real `backstop serve`, loads alerts/,
/// evaluates every expression of the Grafana dashboard, and fires alerts.
@Suite("Prometheus scraping backstop serve", .serialized)
struct PrometheusEndToEndTests {
    /// Every PromQL expression of dashboards/backstop.json: panel targets and variable queries.
    static func dashboardExpressions() throws -> (panels: [(title: String, expr: String)], variables: [String]) {
        let data = Data(try Repository.read("dashboards/backstop.json").utf8)
        guard let dashboard = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw TestSupportError("dashboards/backstop.json is not a JSON object")
        }
        var panels: [(String, String)] = []
        func walk(_ list: [[String: Any]]) {
            for panel in list {
                for target in panel["targets"] as? [[String: Any]] ?? [] {
                    if let expr = target["expr"] as? String { panels.append((panel["title"] as? String ?? "?", expr)) }
                }
                walk(panel["panels"] as? [[String: Any]] ?? [])
            }
        }
        walk(dashboard["panels"] as? [[String: Any]] ?? [])
        let templating = (dashboard["templating"] as? [String: Any])?["list"] as? [[String: Any]] ?? []
        let variables = templating.compactMap { v -> String? in
            if let q = v["query"] as? [String: Any] { return q["query"] as? String }
            return v["type"] as? String == "query" ? v["query"] as? String : nil
        }
        return (panels, variables)
    }

    /// Grafana's variables replaced by what Grafana would send for this job and instance.
    static func substitute(_ expr: String, job: String, instance: String) -> String {
        expr.replacingOccurrences(of: "${job}", with: job).replacingOccurrences(of: "$job", with: job)
            .replacingOccurrences(of: "${instance}", with: instance).replacingOccurrences(of: "$instance", with: instance)
            .replacingOccurrences(of: "$__rate_interval", with: "30s").replacingOccurrences(of: "$__range", with: "1m")
            .replacingOccurrences(of: "$__interval", with: "5s")
    }

    /// The vector selectors of an expression (`name{matchers}`), without range or offset.
    static func selectors(_ expr: String) -> [(family: String, selector: String)] {
        expr.matches(of: /((?:backstop|process)_[a-z_]+)(\{[^}]*\})?/).map { (String($0.1), String($0.0)) }
    }

    @Test("the target is up, every dashboard expression evaluates and has data for the families served, and no down alert fires")
    func dashboardAgainstRealPrometheus() throws {
        let serve = try ServeProcess(environment: try ServeProcess.sharedEnvironment())
        defer { serve.stop() }
        try TestHTTP.waitFor(serve.metricsURL, timeout: 20, "a first health check with Sentinel facts") {
            $0.contains("backstop_health_check_last_timestamp_seconds ") && $0.contains("backstop_redis_master_info{")
        }
        let dir = try TestEnvironment.makeTempDirectory("prom-rules")
        let prometheus = try PrometheusServer(job: "backstop", targets: [serve.address],
                                              ruleFiles: try Repository.shortenedRuleFiles(in: dir))
        defer { prometheus.stop() }

        try prometheus.waitFor("the backstop target to be scraped and up", timeout: 30) {
            try prometheus.targets().contains { $0.job == "backstop" && $0.instance == serve.address && $0.health == "up" }
        }
        // Enough samples for increase() and rate() over the 30 s $__rate_interval.
        try prometheus.waitFor("five scrapes", timeout: 30) {
            try !prometheus.query("count_over_time(up{job=\"backstop\"}[1m]) >= 5").isEmpty
        }

        let (panels, variables) = try Self.dashboardExpressions()
        #expect(panels.count >= 25, "the dashboard has \(panels.count) expressions")
        var familiesWithData = Set<String>()
        for (title, raw) in panels {
            #expect(raw.contains(#"job=~"$job""#) && raw.contains(#"instance=~"$instance""#), "\(title): \(raw) does not filter by $job and $instance")
            let expr = Self.substitute(raw, job: "backstop", instance: serve.address)
            let result: [[String: Any]]
            do {
                result = try prometheus.query(expr)
            } catch {
                Issue.record("\(title): \(expr) fails: \(error)")
                continue
            }
            // When every selector of the expression has series, the expression must have data.
            let selectors = Self.selectors(expr)
            let present = try selectors.allSatisfy { try !prometheus.query($0.selector).isEmpty }
            if present {
                #expect(!result.isEmpty, "\(title): \(expr) returns nothing although its series exist")
                if !result.isEmpty { familiesWithData.formUnion(selectors.map(\.family)) }
            }
        }
        for family in ["backstop_build_info", "backstop_health_check_last_timestamp_seconds", "backstop_disk_free_bytes",
                       "backstop_disk_total_bytes", "backstop_postgres_up", "backstop_redis_up", "backstop_redis_sentinel_up",
                       "backstop_redis_sentinel_quorum_ok", "backstop_redis_sentinel_master_ok", "backstop_redis_master_info",
                       "backstop_redis_sentinel_known_sentinels", "process_resident_memory_bytes", "process_cpu_seconds_total"] {
            #expect(familiesWithData.contains(family), "no dashboard panel shows data of \(family)")
        }
        // The current master table names the shared cluster's master.
        let redis = try RedisCluster.shared()
        let master = try prometheus.query(Self.substitute(#"backstop_redis_master_info{job=~"$job", instance=~"$instance"}"#,
                                                          job: "backstop", instance: serve.address))
        #expect(master.compactMap { ($0["metric"] as? [String: String])?["address"] } == [redis.master.description])

        // The variables' label_values queries find this job and instance.
        #expect(variables.count == 2)
        let jobs = try prometheus.api("/api/v1/label/job/values", ["match[]": "backstop_build_info"]) as? [String] ?? []
        #expect(jobs == ["backstop"])
        let instances = try prometheus.api("/api/v1/label/instance/values", ["match[]": #"backstop_build_info{job=~"backstop"}"#]) as? [String] ?? []
        #expect(instances == [serve.address])

        // All healthy: the down alerts stay silent.
        let firing = try prometheus.alerts().map { $0.labels["alertname"] ?? "" }
        for name in ["PostgresDown", "RedisDown", "RedisSentinelDegraded", "BackstopTargetDown", "BackstopTargetAbsent"] {
            #expect(!firing.contains(name), "\(name) is pending or firing with everything up: \(firing)")
        }

        // Backstop stops: Prometheus sees the target down and BackstopTargetDown fires.
        serve.stop()
        try prometheus.waitFor("BackstopTargetDown to fire", timeout: 40) {
            try prometheus.alerts().contains {
                $0.labels["alertname"] == "BackstopTargetDown" && $0.state == "firing"
                    && $0.labels["instance"] == serve.address && $0.labels["severity"] == "critical"
            }
        }
        #expect(try prometheus.query(#"up{job="backstop"} == 0"#).count == 1)
    }

    @Test("a Redis master that goes away makes Prometheus fire RedisDown from Backstop's metrics")
    func redisDownFiresInPrometheus() throws {
        let redis = try StandaloneRedis()
        var env = try PostgresServer.shared.environment
        env["REDIS_HOST"] = "127.0.0.1"
        env["REDIS_PORT"] = String(redis.port)
        let serve = try ServeProcess(environment: env)
        defer { serve.stop() }
        let dir = try TestEnvironment.makeTempDirectory("prom-rules")
        let prometheus = try PrometheusServer(job: "backstop", targets: [serve.address],
                                              ruleFiles: try Repository.shortenedRuleFiles(in: dir))
        defer { prometheus.stop() }
        let address = "127.0.0.1:\(redis.port)"
        try prometheus.waitFor("backstop_redis_up 1 scraped", timeout: 30) {
            try prometheus.query(#"backstop_redis_up{role="master"} == 1"#).count == 1
        }
        // Up: silent (two evaluations later, still nothing).
        usleep(2_500_000)
        let alive = (try? redis.cli(["PING"])) == "PONG"
        #expect(alive, "redis-server on \(address) died before the test stopped it (a SIGKILL from outside: a recycled pid killed by another test process?)")
        #expect(try !prometheus.alerts().contains { $0.labels["alertname"] == "RedisDown" })

        redis.stop()
        try prometheus.waitFor("RedisDown to fire for \(address)", timeout: 30) {
            try prometheus.alerts().contains {
                $0.labels["alertname"] == "RedisDown" && $0.state == "firing" && $0.labels["address"] == address
                    && $0.labels["role"] == "master" && $0.labels["severity"] == "critical"
            }
        }
    }
}
