/// The part of YAML that Prometheus exporter-toolkit web config files use: block mappings
/// nested by indentation, block sequences (`- item`) and flow sequences (`[a, b]`) of
/// scalars, plain, 'single' and "double" quoted scalars, comments and a leading `---`.
/// Anchors, aliases, tags, multi-line scalars and flow mappings with content are refused with
/// the line number rather than half-understood: a web config file is security configuration,
/// and a key silently read wrong (a bcrypt hash cut at a `#`) would lock users out or let the
/// wrong ones in. A library (Yams) would add libyaml and a build-time cost for ~40 lines of
/// input that this subset covers.
public indirect enum YAMLNode: Equatable, Sendable {
    case scalar(String, line: Int)
    case mapping([(key: String, value: YAMLNode, line: Int)], line: Int)
    case sequence([YAMLNode], line: Int)
    case null(line: Int)

    public var line: Int {
        switch self {
        case let .scalar(_, line), let .mapping(_, line), let .sequence(_, line), let .null(line): return line
        }
    }

    public static func == (lhs: YAMLNode, rhs: YAMLNode) -> Bool {
        switch (lhs, rhs) {
        case let (.scalar(a, _), .scalar(b, _)): return a == b
        case let (.sequence(a, _), .sequence(b, _)): return a == b
        case (.null, .null): return true
        case let (.mapping(a, _), .mapping(b, _)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: return false
        }
    }
}

/// A line the subset cannot read, with its number (1-based).
public struct YAMLError: Error, Equatable, Sendable, CustomStringConvertible {
    public var line: Int
    public var message: String
    public var description: String { "line \(line): \(message)" }
}

/// Parses the subset described on `YAMLNode`.
public enum WebConfigYAML {
    private struct Line {
        var number: Int
        var indent: Int
        var text: Substring
    }

    /// The document as a node: a mapping, or `.null` for an empty file.
    public static func parse(_ text: String) throws(YAMLError) -> YAMLNode {
        var lines: [Line] = []
        var number = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            var content = raw.hasSuffix("\r") ? raw.dropLast() : raw
            let indent = content.prefix { $0 == " " }.count
            if content.dropFirst(indent).first == "\t" {
                throw YAMLError(line: number, message: "a tab in the indentation (YAML indents with spaces only)")
            }
            content = try stripComment(content.dropFirst(indent), line: number)
            while content.last == " " || content.last == "\t" { content = content.dropLast() }
            if content.isEmpty { continue }
            if lines.isEmpty && content == "---" { continue }
            if content == "---" || content == "..." {
                throw YAMLError(line: number, message: "a second YAML document; a web config file holds one")
            }
            lines.append(Line(number: number, indent: indent, text: content))
        }
        guard let first = lines.first else { return .null(line: 1) }
        var index = 0
        let node = try parseBlock(lines, &index, indent: first.indent)
        if index < lines.count {
            throw YAMLError(line: lines[index].number, message: "unexpected indentation")
        }
        return node
    }

    /// Drops a `#` comment (at the start or after a space, outside quotes).
    private static func stripComment(_ text: Substring, line: Int) throws(YAMLError) -> Substring {
        var quote: Character?
        var previous: Character = " "
        var index = text.startIndex
        while index < text.endIndex {
            let c = text[index]
            if let q = quote {
                if c == q { quote = nil }
            } else if c == "'" || c == "\"" {
                if previous == " " || previous == ":" || previous == "[" || previous == "," || previous == "-" { quote = c }
            } else if c == "#" && (previous == " " || previous == "\t") {
                return text[..<index]
            } else if c == "#" && index == text.startIndex {
                return text[..<index]
            }
            previous = c
            index = text.index(after: index)
        }
        return text
    }

    private static func parseBlock(_ lines: [Line], _ index: inout Int, indent: Int) throws(YAMLError) -> YAMLNode {
        let first = lines[index]
        if first.text == "-" || first.text.hasPrefix("- ") {
            return try parseSequence(lines, &index, indent: indent)
        }
        var entries: [(key: String, value: YAMLNode, line: Int)] = []
        while index < lines.count, lines[index].indent == indent {
            let line = lines[index]
            if line.text == "-" || line.text.hasPrefix("- ") {
                throw YAMLError(line: line.number, message: "a list item where a key was expected")
            }
            let (key, rest) = try splitKey(line)
            if entries.contains(where: { $0.key == key }) {
                throw YAMLError(line: line.number, message: "the key \"\(key)\" appears twice")
            }
            index += 1
            let value: YAMLNode
            if rest.isEmpty {
                if index < lines.count, lines[index].indent > indent {
                    value = try parseBlock(lines, &index, indent: lines[index].indent)
                } else if index < lines.count, lines[index].indent == indent,
                          lines[index].text == "-" || lines[index].text.hasPrefix("- ") {
                    value = try parseSequence(lines, &index, indent: indent)
                } else {
                    value = .null(line: line.number)
                }
            } else {
                value = try inlineValue(rest, line: line.number)
                if index < lines.count, lines[index].indent > indent {
                    throw YAMLError(line: lines[index].number, message: "unexpected indentation (a value spread over several lines is not supported)")
                }
            }
            entries.append((key, value, line.number))
        }
        if index < lines.count, lines[index].indent > indent {
            throw YAMLError(line: lines[index].number, message: "unexpected indentation")
        }
        return .mapping(entries, line: first.number)
    }

    private static func parseSequence(_ lines: [Line], _ index: inout Int, indent: Int) throws(YAMLError) -> YAMLNode {
        let start = lines[index].number
        var items: [YAMLNode] = []
        while index < lines.count, lines[index].indent == indent, lines[index].text == "-" || lines[index].text.hasPrefix("- ") {
            let line = lines[index]
            let rest = line.text.dropFirst(1).drop { $0 == " " }
            index += 1
            if rest.isEmpty {
                items.append(.null(line: line.number))
            } else {
                if (try? splitKey(Line(number: line.number, indent: 0, text: rest))) != nil, !rest.hasPrefix("\""), !rest.hasPrefix("'") {
                    throw YAMLError(line: line.number, message: "a mapping inside a list is not supported here")
                }
                items.append(try inlineValue(rest, line: line.number))
            }
            if index < lines.count, lines[index].indent > indent {
                throw YAMLError(line: lines[index].number, message: "unexpected indentation")
            }
        }
        return .sequence(items, line: start)
    }

    /// `key: rest` with the key plain or quoted.
    private static func splitKey(_ line: Line) throws(YAMLError) -> (String, Substring) {
        let text = line.text
        if let q = text.first, q == "\"" || q == "'" {
            let (key, after) = try quoted(text, line: line.number)
            guard after.first == ":" else { throw YAMLError(line: line.number, message: "expected \":\" after the key \(key)") }
            return (key, after.dropFirst().drop { $0 == " " })
        }
        var index = text.startIndex
        while index < text.endIndex {
            if text[index] == ":" {
                let next = text.index(after: index)
                if next == text.endIndex || text[next] == " " {
                    let key = String(text[..<index])
                    guard !key.isEmpty else { throw YAMLError(line: line.number, message: "an empty key") }
                    return (key, text[next...].drop { $0 == " " })
                }
            }
            index = text.index(after: index)
        }
        throw YAMLError(line: line.number, message: "expected \"key: value\", found \"\(text.prefix(80))\"")
    }

    private static func inlineValue(_ text: Substring, line: Int) throws(YAMLError) -> YAMLNode {
        if text == "{}" { return .mapping([], line: line) }
        if text.first == "[" {
            guard text.last == "]" else { throw YAMLError(line: line, message: "a flow list must end on its line with \"]\"") }
            let inner = text.dropFirst().dropLast()
            var items: [YAMLNode] = []
            for part in inner.split(separator: ",", omittingEmptySubsequences: false) {
                let item = part.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed()
                let value = Substring(String(item))
                if value.isEmpty {
                    if inner.allSatisfy({ $0 == " " }) { break }
                    throw YAMLError(line: line, message: "an empty item in a flow list")
                }
                items.append(try scalar(value, line: line))
            }
            return .sequence(items, line: line)
        }
        return try scalar(text, line: line)
    }

    private static func scalar(_ text: Substring, line: Int) throws(YAMLError) -> YAMLNode {
        if let q = text.first, q == "\"" || q == "'" {
            let (value, after) = try quoted(text, line: line)
            guard after.isEmpty else { throw YAMLError(line: line, message: "text after a quoted value: \"\(after.prefix(40))\"") }
            return .scalar(value, line: line)
        }
        if let c = text.first, "&*!|>{@`%".contains(c) {
            throw YAMLError(line: line, message: "\"\(c)\" (anchors, aliases, tags, block scalars and flow mappings) is not supported in a web config file; quote the value")
        }
        if text == "~" || text == "null" || text == "Null" || text == "NULL" { return .null(line: line) }
        return .scalar(String(text), line: line)
    }

    /// A quoted scalar at the start of `text` and what follows it.
    private static func quoted(_ text: Substring, line: Int) throws(YAMLError) -> (String, Substring) {
        let q = text.first!
        var out = ""
        var index = text.index(after: text.startIndex)
        while index < text.endIndex {
            let c = text[index]
            if c == q {
                let next = text.index(after: index)
                if q == "'", next < text.endIndex, text[next] == "'" {
                    out.append("'")
                    index = text.index(after: next)
                    continue
                }
                return (out, text[next...].drop { $0 == " " })
            }
            if q == "\"", c == "\\" {
                let next = text.index(after: index)
                guard next < text.endIndex else { break }
                switch text[next] {
                case "\"": out.append("\"")
                case "\\": out.append("\\")
                case "/": out.append("/")
                case "n": out.append("\n")
                case "t": out.append("\t")
                default: throw YAMLError(line: line, message: "the escape \"\\\(text[next])\" is not supported")
                }
                index = text.index(after: next)
                continue
            }
            out.append(c)
            index = text.index(after: index)
        }
        throw YAMLError(line: line, message: "a quoted value without its closing \(q)")
    }
}
