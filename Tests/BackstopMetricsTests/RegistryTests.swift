import BackstopMetrics
import Testing

@Suite("Metrics registry and text format")
struct RegistryTests {
    func text(_ r: MetricsRegistry, now: Double = 1000) -> String {
        String(decoding: r.render(now: now), as: UTF8.self)
    }

    @Test("gauges, counters and histograms render in the 0.0.4 text format")
    func rendering() {
        let r = MetricsRegistry()
        r.declare("t_gauge", .gauge, help: "A gauge.", labels: ["kind"])
        r.declare("t_total", .counter, help: "A counter.", labels: ["result"])
        r.declare("t_seconds", .histogram, help: "A histogram.", labels: ["kind"], buckets: [1, 10])
        r.set("t_gauge", ["kind": "redis"], 2.5)
        r.add("t_total", ["result": "success"])
        r.add("t_total", ["result": "success"])
        r.observe("t_seconds", ["kind": "redis"], 3)
        let out = text(r)
        #expect(out.contains("# HELP t_gauge A gauge.\n# TYPE t_gauge gauge\nt_gauge{kind=\"redis\"} 2.5\n"))
        #expect(out.contains("t_total{result=\"success\"} 2\n"))
        #expect(out.contains("t_seconds_bucket{kind=\"redis\",le=\"1\"} 0\n"))
        #expect(out.contains("t_seconds_bucket{kind=\"redis\",le=\"10\"} 1\n"))
        #expect(out.contains("t_seconds_bucket{kind=\"redis\",le=\"+Inf\"} 1\n"))
        #expect(out.contains("t_seconds_sum{kind=\"redis\"} 3\n"))
        #expect(out.contains("t_seconds_count{kind=\"redis\"} 1\n"))
    }

    @Test("label values are escaped")
    func escaping() {
        let r = MetricsRegistry()
        r.declare("t", .gauge, help: "x", labels: ["path"])
        r.set("t", ["path": "a\"b\\c\nd"], 1)
        #expect(text(r).contains(#"t{path="a\"b\\c\nd"} 1"#))
    }

    @Test("replace drops series whose label values changed (a new master address)")
    func replace() {
        let r = MetricsRegistry()
        Family.declareSentinel(in: r)
        r.replace(Family.redisMasterInfo, with: [(["master_name": "mymaster", "address": "10.0.0.1:6379"], 1)])
        r.replace(Family.redisMasterInfo, with: [(["master_name": "mymaster", "address": "10.0.0.2:6379"], 1)])
        let out = text(r)
        #expect(!out.contains("10.0.0.1"))
        #expect(out.contains("backstop_redis_master_info{master_name=\"mymaster\",address=\"10.0.0.2:6379\"} 1"))
    }

    @Test("backup age is computed at scrape time from the last success")
    func age() {
        let r = MetricsRegistry()
        Family.declareStandard(in: r)
        r.set(Family.backupLastSuccess, ["kind": "redis", "target": "mymaster"], 400)
        #expect(text(r, now: 1000).contains("backstop_backup_age_seconds{kind=\"redis\",target=\"mymaster\"} 600\n"))
        #expect(text(r, now: 1600).contains("backstop_backup_age_seconds{kind=\"redis\",target=\"mymaster\"} 1200\n"))
    }

    @Test("process families are present")
    func processFamilies() {
        let r = MetricsRegistry()
        ProcessMetrics.register(in: r)
        let out = text(r)
        for name in ["process_resident_memory_bytes", "process_cpu_seconds_total", "process_start_time_seconds", "process_open_fds"] {
            #expect(out.contains("\n\(name) ") || out.hasPrefix("\(name) "), "missing \(name)")
        }
    }
}
