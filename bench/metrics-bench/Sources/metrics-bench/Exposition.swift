/// A Prometheus text exposition read back into families and series: the bench takes the
/// `/metrics` of a live `backstop serve` and registers exactly those families and label sets,
/// so both registries serve what a real Backstop serves.
struct Exposition {
    struct Sample {
        var labels: [(String, String)]
        var value: Double
    }

    /// One histogram series: its labels (without `le`), cumulative bucket counts by bound, sum.
    struct HistogramSeries {
        var labels: [(String, String)]
        var buckets: [(bound: Double, count: Double)] = []
        var sum: Double = 0
        var count: Double = 0
    }

    struct Family {
        var name: String
        var help = ""
        var type = "untyped"
        var samples: [Sample] = []
        var histograms: [HistogramSeries] = []

        /// Label names in the order the first series gives them.
        var labelNames: [String] {
            (samples.first?.labels ?? histograms.first?.labels ?? []).map(\.0)
        }

        var bounds: [Double] { histograms.first?.buckets.map(\.bound).filter(\.isFinite) ?? [] }
    }

    var families: [Family] = []

    var seriesCount: Int { families.reduce(0) { $0 + $1.samples.count + $1.histograms.count } }

    init(text: String) {
        var index: [String: Int] = [:]
        func family(_ name: String) -> Int {
            if let i = index[name] { return i }
            families.append(Family(name: name))
            index[name] = families.count - 1
            return families.count - 1
        }
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") {
                let parts = line.dropFirst(7).split(separator: " ", maxSplits: 1)
                guard let name = parts.first else { continue }
                let rest = parts.count > 1 ? String(parts[1]) : ""
                let i = family(String(name))
                if line.hasPrefix("# HELP ") { families[i].help = rest } else { families[i].type = rest }
                continue
            }
            guard !line.hasPrefix("#"), let sample = Self.parseSample(line) else { continue }
            var base = sample.name
            var part = ""
            for suffix in ["_bucket", "_sum", "_count"] where sample.name.hasSuffix(suffix) {
                let stem = String(sample.name.dropLast(suffix.count))
                if let i = index[stem], families[i].type == "histogram" { base = stem; part = suffix }
            }
            let i = family(base)
            if part.isEmpty {
                families[i].samples.append(Sample(labels: sample.labels, value: sample.value))
                continue
            }
            let labels = sample.labels.filter { $0.0 != "le" }
            let key = labels.map { "\($0.0)=\($0.1)" }
            var h = families[i].histograms.firstIndex { $0.labels.map { "\($0.0)=\($0.1)" } == key }
            if h == nil {
                families[i].histograms.append(HistogramSeries(labels: labels))
                h = families[i].histograms.count - 1
            }
            switch part {
            case "_bucket":
                let le = sample.labels.first { $0.0 == "le" }?.1 ?? "+Inf"
                families[i].histograms[h!].buckets.append((le == "+Inf" ? .infinity : Double(le) ?? .infinity, sample.value))
            case "_sum": families[i].histograms[h!].sum = sample.value
            default: families[i].histograms[h!].count = sample.value
            }
        }
    }

    /// `name{a="x",b="y"} value` (label values with the format's escapes).
    static func parseSample(_ line: Substring) -> (name: String, labels: [(String, String)], value: Double)? {
        var labels: [(String, String)] = []
        var rest: Substring
        let name: String
        if let brace = line.firstIndex(of: "{") {
            name = String(line[..<brace])
            var i = line.index(after: brace)
            while i < line.endIndex, line[i] != "}" {
                guard let eq = line[i...].firstIndex(of: "=") else { return nil }
                let key = String(line[i..<eq]).trimmingCharacters(in: [","])
                var j = line.index(eq, offsetBy: 2)  // past ="
                var value = ""
                while j < line.endIndex, line[j] != "\"" {
                    if line[j] == "\\" {
                        j = line.index(after: j)
                        value.append(line[j] == "n" ? "\n" : line[j])
                    } else {
                        value.append(line[j])
                    }
                    j = line.index(after: j)
                }
                labels.append((key, value))
                i = line.index(after: j)
                if i < line.endIndex, line[i] == "," { i = line.index(after: i) }
            }
            rest = line[line.index(after: i)...]
        } else {
            guard let space = line.firstIndex(of: " ") else { return nil }
            name = String(line[..<space])
            rest = line[space...]
        }
        rest = rest.drop { $0 == " " }
        let number = rest.prefix { $0 != " " }
        let value = number == "+Inf" ? Double.infinity : number == "-Inf" ? -Double.infinity : Double(number)
        guard let value else { return nil }
        return (name, labels, value)
    }
}

extension String {
    func trimmingCharacters(in set: Set<Character>) -> String {
        String(drop { set.contains($0) }.reversed().drop { set.contains($0) }.reversed())
    }
}
