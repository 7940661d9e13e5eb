import BackstopMetrics
import Foundation
import Testing

/// The family names are spelled in Swift only through `Family`; the Prometheus rules, the
/// Grafana dashboard and README spell them again. These tests read those files and fail when
/// they name a `backstop_*` family, or a label of one, that the typed list does not declare,
/// so the spellings cannot drift apart.
@Suite("Metric names: one typed list")
struct MetricNamesConsistencyTests {
    static let root: URL = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url
    }()

    /// Labels Prometheus attaches to every scraped series, and the histogram bucket bound.
    static let targetLabels: Set<String> = ["job", "instance"]

    /// One PromQL expression and where it came from.
    struct Expression: CustomStringConvertible {
        var file: String
        var text: String
        var description: String { "\(file): \(text)" }
    }

    static func files(in folder: String, suffix: String) throws -> [URL] {
        let dir = root.appendingPathComponent(folder)
        return try FileManager.default.contentsOfDirectory(atPath: dir.path)
            .filter { $0.hasSuffix(suffix) }.sorted()
            .map { dir.appendingPathComponent($0) }
    }

    /// The `expr:` values of a rules file: inline, or a `>-`/`|` block (the lines indented
    /// deeper than the key).
    static func ruleExpressions(_ url: URL) throws -> [Expression] {
        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var out: [Expression] = []
        var i = 0
        while i < lines.count {
            let line = lines[i]
            let trimmed = line.drop { $0 == " " || $0 == "-" }
            i += 1
            guard trimmed.hasPrefix("expr:") else { continue }
            let indent = line.prefix { $0 == " " || $0 == "-" }.count
            let value = trimmed.dropFirst("expr:".count).trimmingCharacters(in: .whitespaces)
            if !value.isEmpty, !["|", "|-", ">", ">-"].contains(value) {
                out.append(Expression(file: url.lastPathComponent, text: value))
                continue
            }
            var block: [String] = []
            while i < lines.count, lines[i].trimmingCharacters(in: .whitespaces).isEmpty || lines[i].prefix(while: { $0 == " " }).count > indent {
                block.append(lines[i].trimmingCharacters(in: .whitespaces))
                i += 1
            }
            out.append(Expression(file: url.lastPathComponent, text: block.joined(separator: " ")))
        }
        return out
    }

    /// Every `expr` string anywhere in a dashboard's JSON.
    static func dashboardExpressions(_ url: URL) throws -> [Expression] {
        var out: [Expression] = []
        func walk(_ node: Any) {
            if let object = node as? [String: Any] {
                for (key, value) in object {
                    if key == "expr", let text = value as? String { out.append(Expression(file: url.lastPathComponent, text: text)) }
                    walk(value)
                }
            } else if let array = node as? [Any] {
                array.forEach(walk)
            }
        }
        walk(try JSONSerialization.jsonObject(with: Data(contentsOf: url)))
        return out
    }

    static func allExpressions() throws -> [Expression] {
        try files(in: "alerts", suffix: ".rules.yml").flatMap(ruleExpressions)
            + files(in: "dashboards", suffix: ".json").flatMap(dashboardExpressions)
    }

    static func matches(_ pattern: String, in text: String) -> [[String]] {
        let regex = try! NSRegularExpression(pattern: pattern)
        let ns = text as NSString
        return regex.matches(in: text, range: NSRange(location: 0, length: ns.length)).map { m in
            (0..<m.numberOfRanges).map { m.range(at: $0).location == NSNotFound ? "" : ns.substring(with: m.range(at: $0)) }
        }
    }

    /// The declared family a series name belongs to: the name itself, or a histogram's
    /// `_bucket`/`_sum`/`_count` series.
    static func family(of series: String) -> Family? {
        if let family = Family(rawValue: series) { return family }
        for suffix in ["_bucket", "_sum", "_count"] where series.hasSuffix(suffix) {
            if let family = Family(rawValue: String(series.dropLast(suffix.count))), family.declaration.type == .histogram { return family }
        }
        return nil
    }

    @Test("the rules and the dashboard name only declared families")
    func expressionsUseDeclaredNames() throws {
        let expressions = try Self.allExpressions()
        // The files are there and were read: a parser that found nothing would pass anything.
        #expect(expressions.count > 40)
        var seen = Set<Family>()
        for e in expressions {
            for m in Self.matches(#"\bbackstop_[a-zA-Z0-9_]+"#, in: e.text) {
                let family = Self.family(of: m[0])
                #expect(family != nil, "\(m[0]) is not in Family (\(e))")
                if let family { seen.insert(family) }
            }
        }
        // The alerts and panels cover the contract's core; a rename on one side shows here.
        for family in [Family.backupAge, .backupLastRunSuccess, .postgresUp, .redisUp, .diskFree, .jobSkipped, .walArchiveLastSegment,
                       .s3UploadConsecutiveFailures, .restoreDrillLastSuccess, .backupEncrypted, .backupDuration] {
            #expect(seen.contains(family), "no expression uses \(family.name)")
        }
    }

    @Test("label matchers name only the family's declared labels")
    func selectorsUseDeclaredLabels() throws {
        var checked = 0
        for e in try Self.allExpressions() {
            for m in Self.matches(#"\b(backstop_[a-zA-Z0-9_]+)\s*\{([^}]*)\}"#, in: e.text) {
                guard let family = Self.family(of: m[1]) else { continue }  // reported by the names test
                var allowed = Set(family.declaration.labels).union(Self.targetLabels)
                if m[1].hasSuffix("_bucket") { allowed.insert("le") }
                for matcher in Self.matches(#"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)"#, in: m[2]) {
                    #expect(allowed.contains(matcher[1]), "\(family.name) has no label \(matcher[1]) (\(e))")
                    checked += 1
                }
            }
        }
        #expect(checked > 20)
    }

    @Test("by, without, on and group_left name labels of the families in the expression")
    func groupingUsesDeclaredLabels() throws {
        var checked = 0
        for e in try Self.allExpressions() {
            let families = Self.matches(#"\bbackstop_[a-zA-Z0-9_]+"#, in: e.text).compactMap { Self.family(of: $0[0]) }
            guard !families.isEmpty else { continue }
            var allowed = Self.targetLabels.union(["le"])
            for family in families { allowed.formUnion(family.declaration.labels) }
            for m in Self.matches(#"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)"#, in: e.text) {
                for label in m[2].split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !label.isEmpty {
                    #expect(allowed.contains(label), "\(label) in \(m[1])(…) is no label of \(families.map(\.name)) (\(e))")
                    checked += 1
                }
            }
        }
        #expect(checked > 5)
    }

    @Test("backstop_job_skipped_total is labelled job_name, and the dashboard groups by it")
    func jobSkippedLabel() throws {
        #expect(Family.jobSkipped.declaration.labels == ["job_name"])
        let uses = try Self.allExpressions().filter { $0.text.contains(Family.jobSkipped.name) }
        #expect(!uses.isEmpty)
        for e in uses {
            #expect(e.text.contains("by (job_name)") || !e.text.contains(" by "), "\(e)")
        }
    }

    @Test("README's metrics table names only declared families")
    func readmeTable() throws {
        let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        let rows = readme.split(separator: "\n").filter { $0.hasPrefix("| `backstop_") }
        #expect(rows.count > 15)
        for row in rows {
            let first = row.split(separator: "|").first.map(String.init) ?? ""
            for m in Self.matches(#"`(backstop_[a-zA-Z0-9_]+)(\*?)`"#, in: first) where m[2].isEmpty {
                #expect(Family(rawValue: m[1]) != nil, "README names \(m[1]), which is not in Family")
            }
        }
    }

    @Test("every family's declaration follows the naming rules")
    func declarations() {
        var names = Set<String>()
        for family in Family.allCases {
            let d = family.declaration
            #expect(names.insert(family.name).inserted)
            #expect(family.name.hasPrefix("backstop_"))
            #expect(family.name.hasSuffix("_total") == (d.type == .counter), "\(family.name): _total only on counters")
            #expect(!d.help.isEmpty)
            #expect(d.type == .histogram ? !d.buckets.isEmpty : d.buckets.isEmpty)
            #expect(!d.labels.contains("job") && !d.labels.contains("instance"), "\(family.name) would clash with Prometheus's target labels")
        }
    }
}
