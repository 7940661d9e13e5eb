import BackstopMetrics
import Foundation
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

    @Test("a scrape reuses the rendered text until something changes; computed families are fresh every time")
    func renderedTextFollowsEveryChange() {
        let r = MetricsRegistry()
        r.declare("t_gauge", .gauge, help: "g", labels: ["k"])
        r.declare("t_hist", .histogram, help: "h", buckets: [1, 10])
        r.declareComputed("t_now", .gauge, help: "n") { now in [(labels: [:], value: now)] }
        r.set("t_gauge", ["k": "a"], 1)
        let first = String(decoding: r.render(now: 100), as: UTF8.self)
        #expect(first.contains("t_gauge{k=\"a\"} 1\n") && first.contains("t_now 100\n"))
        // Unchanged registry: same stored text, computed family rendered anew.
        let again = String(decoding: r.render(now: 200), as: UTF8.self)
        #expect(again == first.replacingOccurrences(of: "t_now 100", with: "t_now 200"))
        // Every kind of change shows at the next scrape.
        r.set("t_gauge", ["k": "a"], 2)
        #expect(String(decoding: r.render(now: 200), as: UTF8.self).contains("t_gauge{k=\"a\"} 2\n"))
        r.add("t_gauge", ["k": "b"], 5)
        #expect(String(decoding: r.render(now: 200), as: UTF8.self).contains("t_gauge{k=\"b\"} 5\n"))
        r.observe("t_hist", [:], 3)
        #expect(String(decoding: r.render(now: 200), as: UTF8.self).contains("t_hist_bucket{le=\"10\"} 1\n"))
        r.replace("t_gauge", with: [(labels: ["k": "c"], value: 7)])
        let replaced = String(decoding: r.render(now: 200), as: UTF8.self)
        #expect(replaced.contains("t_gauge{k=\"c\"} 7\n") && !replaced.contains("k=\"a\""))
        r.remove("t_gauge", matching: ["k": "c"])
        #expect(!String(decoding: r.render(now: 200), as: UTF8.self).contains("k=\"c\""))
        r.declare("t_late", .counter, help: "l")
        r.touch("t_late")
        #expect(String(decoding: r.render(now: 200), as: UTF8.self).contains("t_late 0\n"))
    }

    @Test("process figures: one /proc reading serves the scrapes of one second, a later scrape reads again")
    func processReadingIsSharedWithinASecond() {
        let r = MetricsRegistry()
        ProcessMetrics.register(in: r)
        func cpu(_ now: Double) -> Double? {
            let text = String(decoding: r.render(now: now), as: UTF8.self)
            return text.split(separator: "\n").first { $0.hasPrefix("process_cpu_seconds_total ") }
                .flatMap { Double($0.split(separator: " ")[1]) }
        }
        func burn() {
            var x = 0.0
            for i in 0..<30_000_000 { x += Double(i).squareRoot() }
            #expect(x > 0)
        }
        let t = 1_000_000.0
        let first = cpu(t)
        burn()
        #expect(cpu(t + 0.5) == first, "within a second the same reading")
        let later = cpu(t + 1.5)
        #expect(later != nil && first != nil && later! > first!, "a later scrape reads /proc again: \(String(describing: first)) -> \(String(describing: later))")
    }
}
