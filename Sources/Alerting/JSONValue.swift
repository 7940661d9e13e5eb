/// A JSON document built in code and written with keys in the order given, so payloads and
/// `alerts.json` are byte-for-byte deterministic (diffable, testable) without Foundation.
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([JSONMember])

    /// An object from label-like string maps, keys sorted (Alertmanager's own order).
    public static func sortedObject(_ map: [String: String]) -> JSONValue {
        .object(map.keys.sorted().map { JSONMember($0, .string(map[$0]!)) })
    }

    /// Compact JSON text.
    public func encoded() -> String {
        var out = ""
        write(into: &out, indent: nil, level: 0)
        return out
    }

    /// Indented JSON text (two spaces), for files people read.
    public func pretty() -> String {
        var out = ""
        write(into: &out, indent: "  ", level: 0)
        return out + "\n"
    }

    public var bytes: [UInt8] { Array(encoded().utf8) }

    private func write(into out: inout String, indent: String?, level: Int) {
        func newline(_ depth: Int) {
            guard let indent else { return }
            out += "\n" + String(repeating: indent, count: depth)
        }
        switch self {
        case .null: out += "null"
        case let .bool(b): out += b ? "true" : "false"
        case let .int(i): out += String(i)
        case let .number(d): out += d.isFinite ? "\(d)" : "null"
        case let .string(s): Self.quote(s, into: &out)
        case let .array(items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                newline(level + 1)
                item.write(into: &out, indent: indent, level: level + 1)
            }
            if !items.isEmpty { newline(level) }
            out += "]"
        case let .object(members):
            out += "{"
            for (i, member) in members.enumerated() {
                if i > 0 { out += "," }
                newline(level + 1)
                Self.quote(member.key, into: &out)
                out += indent == nil ? ":" : ": "
                member.value.write(into: &out, indent: indent, level: level + 1)
            }
            if !members.isEmpty { newline(level) }
            out += "}"
        }
    }

    static func quote(_ s: String, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}

/// One key and value of a JSON object.
public struct JSONMember: Sendable, Equatable {
    public var key: String
    public var value: JSONValue

    public init(_ key: String, _ value: JSONValue) {
        self.key = key
        self.value = value
    }
}
