#if canImport(Glibc)
import Glibc
#endif
import BackstopCore
import BackstopMetrics
import MetricsHTTPServer
import Prometheus

/// Serves, through Backstop's own libmicrohttpd server (`HTTPServer`, the limits serve uses),
/// the families and label sets of a live Backstop's `/metrics` (a captured copy given as
/// `--exposition FILE`) from either the hand-written `MetricsRegistry` or swift-prometheus's
/// `PrometheusCollectorRegistry`, so bench/metrics.sh can load both with wrk side by side.
///
///     metrics-bench --registry backstop|prometheus --exposition FILE --listen 127.0.0.1:PORT
///
/// In both, the `process_*` families are Backstop's `ProcessMetrics` (read from /proc once a
/// second): swift-prometheus has no process collector, so a move to it would keep this one.
/// Prints one line with the number of families and series once it listens.

func argument(_ name: String) -> String? {
    let args = CommandLine.arguments
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    return args[i + 1]
}

func fail(_ message: String) -> Never {
    fputs("metrics-bench: \(message)\n", stderr)
    exit(2)
}

func readFile(_ path: String) -> String {
    guard let f = fopen(path, "r") else { fail("cannot read \(path)") }
    defer { fclose(f) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&buffer, 1, buffer.count, f)
        if n == 0 { break }
        bytes.append(contentsOf: buffer[0..<n])
    }
    return String(decoding: bytes, as: UTF8.self)
}

let registryKind = argument("--registry") ?? "backstop"
guard let expositionPath = argument("--exposition") else { fail("--exposition FILE is required") }
let listenText = argument("--listen") ?? "127.0.0.1:0"
guard let colon = listenText.lastIndex(of: ":"), let port = Int(listenText[listenText.index(after: colon)...]) else {
    fail("--listen HOST:PORT")
}
let listen = Endpoint(host: String(listenText[..<colon]), port: port)

let exposition = Exposition(text: readFile(expositionPath))
let appFamilies = exposition.families.filter { !$0.name.hasPrefix("process_") }

let render: @Sendable () -> [UInt8]
switch registryKind {
case "backstop":
    let registry = MetricsRegistry()
    for family in appFamilies {
        let type = MetricType(rawValue: family.type) ?? .gauge
        if family.name == Family.backupAge.name {
            // Computed at each scrape in serve (now − last success), so here too.
            let samples = family.samples
            registry.declareComputed(family.name, type, help: family.help, labels: family.labelNames) { _ in
                samples.map { (Dictionary(uniqueKeysWithValues: $0.labels), $0.value) }
            }
            continue
        }
        registry.declare(family.name, type, help: family.help, labels: family.labelNames, buckets: family.bounds)
        for sample in family.samples {
            registry.set(family.name, Dictionary(uniqueKeysWithValues: sample.labels), sample.value)
        }
        for series in family.histograms {
            // Observations that reproduce the cumulative bucket counts.
            var previous = 0.0
            for bucket in series.buckets {
                let value = bucket.bound.isFinite ? bucket.bound : (family.bounds.last ?? 0) + 1
                for _ in 0..<Int(bucket.count - previous) { registry.observe(family.name, Dictionary(uniqueKeysWithValues: series.labels), value) }
                previous = bucket.count
            }
            if series.buckets.isEmpty { registry.touch(family.name, Dictionary(uniqueKeysWithValues: series.labels)) }
        }
    }
    ProcessMetrics.register(in: registry)
    render = { registry.render() }
case "prometheus":
    let registry = PrometheusCollectorRegistry()
    // Backstop's process families, rendered after swift-prometheus's text.
    let processRegistry = MetricsRegistry()
    ProcessMetrics.register(in: processRegistry)
    for family in appFamilies {
        let descriptor = MetricNameDescriptor(metricName: family.name, unitName: "", helpText: family.help)
        switch family.type {
        case "counter":
            for sample in family.samples { registry.makeCounter(descriptor: descriptor, labels: sample.labels).increment(by: sample.value) }
        case "histogram":
            for series in family.histograms {
                let histogram = registry.makeValueHistogram(descriptor: descriptor, labels: series.labels, buckets: family.bounds)
                var previous = 0.0
                for bucket in series.buckets {
                    let value = bucket.bound.isFinite ? bucket.bound : (family.bounds.last ?? 0) + 1
                    for _ in 0..<Int(bucket.count - previous) { histogram.record(value) }
                    previous = bucket.count
                }
            }
        default:
            for sample in family.samples { registry.makeGauge(descriptor: descriptor, labels: sample.labels).set(sample.value) }
        }
    }
    render = {
        var bytes = registry.emitToBuffer()
        bytes.append(contentsOf: processRegistry.render())
        return bytes
    }
default:
    fail("--registry backstop|prometheus, not \(registryKind)")
}

let server = try HTTPServer(listen: listen, limits: HTTPServerLimits()) { [render] method, path in
    guard method == "GET" || method == "HEAD" else { return HTTPResponse(status: 405, text: "GET only\n") }
    guard path.hasPrefix("/metrics") else { return HTTPResponse(status: 404, text: "not found\n") }
    return HTTPResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: render())
}
let families = appFamilies.count + exposition.families.count(where: { $0.name.hasPrefix("process_") })
print("metrics-bench: \(registryKind) registry on \(listen.host):\(server.port), \(families) families, \(exposition.seriesCount) series")
fflush(stdout)
while true { pause() }
