import BackstopCore
import Synchronization

/// The kind of a metric family, as the text format names it.
public enum MetricType: String, Sendable {
    case gauge, counter, histogram
}

/// Label names and values of one series, in a fixed order (the family's label names).
public typealias Labels = [String: String]

/// The one place every part of Backstop records what it knows and the `/metrics` handler
/// reads from. Writers (jobs, the health loop) update values under a short lock; a scrape
/// copies the values under the same lock and renders outside it, so it never waits on a
/// database, a network call or a job.
public final class MetricsRegistry: Sendable {
    struct StoredFamily: Sendable {
        var name: String
        var help: String
        var type: MetricType
        var labelNames: [String]
        var buckets: [Double]
        var series: [[String]: Series] = [:]
        var order: [[String]] = []
    }

    struct Series: Sendable {
        var value: Double = 0
        var bucketCounts: [UInt64] = []
        var sum: Double = 0
        var count: UInt64 = 0
    }

    /// A family whose samples are computed when a scrape renders (ages, process figures).
    public typealias Collector = @Sendable (_ now: Double) -> [(labels: Labels, value: Double)]

    private struct State: Sendable {
        var families: [String: StoredFamily] = [:]
        var order: [String] = []
        var collectors: [String: Collector] = [:]
        /// Bumped by every change; the rendered text of the stored families is reused while
        /// it stays the same (scrapes far outnumber changes: the health loop writes once per
        /// interval).
        var generation: UInt64 = 0
        var rendered: (generation: UInt64, parts: [Part])?
    }

    /// One family of the rendered text: stored families as their finished bytes, computed ones
    /// as what is needed to render them at each scrape.
    private enum Part: Sendable {
        case fixed([UInt8])
        case computed(name: String, help: String, type: MetricType, labelNames: [String], collector: Collector)
    }

    private let state = Mutex(State())

    public init() {}

    /// Declares a family; declaring the same name again keeps the first declaration.
    public func declare(_ name: String, _ type: MetricType, help: String, labels: [String] = [], buckets: [Double] = []) {
        state.withLock { s in
            guard s.families[name] == nil else { return }
            s.families[name] = StoredFamily(name: name, help: help, type: type, labelNames: labels, buckets: buckets.sorted())
            s.order.append(name)
            s.generation &+= 1
        }
    }

    /// Declares a family whose samples `collector` computes at scrape time.
    public func declareComputed(_ name: String, _ type: MetricType, help: String, labels: [String] = [], collector: @escaping Collector) {
        declare(name, type, help: help, labels: labels)
        state.withLock {
            $0.collectors[name] = collector
            $0.generation &+= 1
        }
    }

    /// Sets a gauge (or creates the series at `value`).
    public func set(_ name: String, _ labels: Labels = [:], _ value: Double) {
        update(name, labels) { $0.value = value }
    }

    /// Adds to a counter or gauge.
    public func add(_ name: String, _ labels: Labels = [:], _ delta: Double = 1) {
        update(name, labels) { $0.value += delta }
    }

    /// Creates a series at 0 if it does not exist, so configured things show up before the
    /// first event.
    public func touch(_ name: String, _ labels: Labels = [:]) {
        update(name, labels) { _ in }
    }

    /// Records one observation in a histogram.
    public func observe(_ name: String, _ labels: Labels = [:], _ value: Double) {
        state.withLock { s in
            guard var family = s.families[name] else { return }
            let key = family.labelNames.map { labels[$0] ?? "" }
            var series = family.series[key] ?? Series(bucketCounts: Array(repeating: 0, count: family.buckets.count))
            if family.series[key] == nil { family.order.append(key) }
            for (i, bound) in family.buckets.enumerated() where value <= bound { series.bucketCounts[i] += 1 }
            series.sum += value
            series.count += 1
            family.series[key] = series
            s.families[name] = family
            s.generation &+= 1
        }
    }

    /// The current value of a series, if it exists.
    public func value(_ name: String, _ labels: Labels = [:]) -> Double? {
        state.withLock { s in
            guard let family = s.families[name] else { return nil }
            return family.series[family.labelNames.map { labels[$0] ?? "" }]?.value
        }
    }

    /// All series of a family with their values (histograms give their counts).
    public func series(_ name: String) -> [(labels: Labels, value: Double)] {
        state.withLock { s in
            guard let family = s.families[name] else { return [] }
            return family.order.compactMap { key in
                guard let series = family.series[key] else { return nil }
                let labels = Dictionary(uniqueKeysWithValues: zip(family.labelNames, key))
                return (labels, family.type == .histogram ? Double(series.count) : series.value)
            }
        }
    }

    /// Replaces every series of a gauge family at once: for families whose label values
    /// change (the current master's address), so a stale series never lingers.
    public func replace(_ name: String, with samples: [(labels: Labels, value: Double)]) {
        state.withLock { s in
            guard var family = s.families[name] else { return }
            family.series = [:]
            family.order = []
            for sample in samples {
                let key = family.labelNames.map { sample.labels[$0] ?? "" }
                if family.series[key] == nil { family.order.append(key) }
                family.series[key] = Series(value: sample.value)
            }
            s.families[name] = family
            s.generation &+= 1
        }
    }

    /// Removes the series of a family whose labels include all of `matching`.
    public func remove(_ name: String, matching: Labels) {
        state.withLock { s in
            guard var family = s.families[name] else { return }
            let keep = family.order.filter { key in
                !matching.allSatisfy { k, v in
                    guard let i = family.labelNames.firstIndex(of: k) else { return false }
                    return key[i] == v
                }
            }
            family.series = family.series.filter { keep.contains($0.key) }
            family.order = keep
            s.families[name] = family
            s.generation &+= 1
        }
    }

    private func update(_ name: String, _ labels: Labels, _ body: (inout Series) -> Void) {
        state.withLock { s in
            guard var family = s.families[name] else { return }
            let key = family.labelNames.map { labels[$0] ?? "" }
            var series = family.series[key] ?? Series(bucketCounts: Array(repeating: 0, count: family.buckets.count))
            if family.series[key] == nil { family.order.append(key) }
            body(&series)
            family.series[key] = series
            s.families[name] = family
            s.generation &+= 1
        }
    }

    /// The Prometheus text format (version 0.0.4) of everything registered. The stored
    /// families' text is rendered once per change and reused; computed families (ages,
    /// process figures) are rendered at every call.
    public func render(now: Double = WallClock.now()) -> [UInt8] {
        enum Snapshot {
            case cached([Part])
            case fresh(UInt64, [StoredFamily], [String: Collector])
        }
        let snapshot: Snapshot = state.withLock { s in
            if let rendered = s.rendered, rendered.generation == s.generation { return .cached(rendered.parts) }
            return .fresh(s.generation, s.order.compactMap { s.families[$0] }, s.collectors)
        }
        let parts: [Part]
        switch snapshot {
        case .cached(let cached):
            parts = cached
        case let .fresh(generation, families, collectors):
            parts = families.map { family in
                if let collector = collectors[family.name] {
                    return .computed(name: family.name, help: family.help, type: family.type, labelNames: family.labelNames, collector: collector)
                }
                return .fixed(Self.renderStored(family))
            }
            // Kept only if nothing changed meanwhile; otherwise the next scrape renders anew.
            state.withLock { s in
                if s.generation == generation { s.rendered = (generation, parts) }
            }
        }
        var out = TextExposition()
        for part in parts {
            switch part {
            case .fixed(let bytes):
                out.bytes.append(contentsOf: bytes)
            case let .computed(name, help, type, labelNames, collector):
                out.header(name, help, type)
                for sample in collector(now) {
                    out.sample(name, labelNames.map { ($0, sample.labels[$0] ?? "") }, sample.value)
                }
            }
        }
        return out.bytes
    }

    private static func renderStored(_ family: StoredFamily) -> [UInt8] {
        var out = TextExposition(capacity: 256)
        out.header(family.name, family.help, family.type)
        for key in family.order {
            guard let series = family.series[key] else { continue }
            let labels = Array(zip(family.labelNames, key))
            if family.type == .histogram {
                for (i, bound) in family.buckets.enumerated() {
                    out.sample(family.name + "_bucket", labels + [("le", TextExposition.format(bound))], Double(series.bucketCounts[i]))
                }
                out.sample(family.name + "_bucket", labels + [("le", "+Inf")], Double(series.count))
                out.sample(family.name + "_sum", labels, series.sum)
                out.sample(family.name + "_count", labels, Double(series.count))
            } else {
                out.sample(family.name, labels, series.value)
            }
        }
        return out.bytes
    }
}

/// Builds the text format into one byte buffer.
struct TextExposition {
    var bytes: [UInt8] = []

    init(capacity: Int = 16384) { bytes.reserveCapacity(capacity) }

    mutating func header(_ name: String, _ help: String, _ type: MetricType) {
        append("# HELP \(name) \(Self.escapeHelp(help))\n# TYPE \(name) \(type.rawValue)\n")
    }

    mutating func sample(_ name: String, _ labels: [(String, String)], _ value: Double) {
        append(name)
        if !labels.isEmpty {
            append("{")
            for (i, (k, v)) in labels.enumerated() {
                if i > 0 { append(",") }
                append(k)
                append("=\"")
                append(Self.escapeLabel(v))
                append("\"")
            }
            append("}")
        }
        append(" ")
        append(Self.format(value))
        append("\n")
    }

    private mutating func append(_ s: String) { bytes.append(contentsOf: s.utf8) }

    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value == .infinity { return "+Inf" }
        if value == -.infinity { return "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    static func escapeLabel(_ v: String) -> String {
        guard v.contains(where: { $0 == "\\" || $0 == "\"" || $0 == "\n" }) else { return v }
        var out = ""
        for c in v {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }

    static func escapeHelp(_ v: String) -> String {
        guard v.contains(where: { $0 == "\\" || $0 == "\n" }) else { return v }
        return v.replacingAll("\\", with: "\\\\").replacingAll("\n", with: "\\n")
    }
}
