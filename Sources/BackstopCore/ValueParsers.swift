/// Parsers for the value formats Backstop's variables and flags share. Each throws a
/// `ConfigError` that names the variable, so a typo stops start-up with a useful message.
public enum ValueParsers {
    /// A duration in seconds: `300`, `300s`, `5m`, `2h`, `1d`, `1h30m`, `250ms`.
    public static func duration(_ raw: String, variable: String) throws -> Duration {
        let accepted = "a duration such as 300, 300s, 5m, 1h30m, 2h or 1d (a number with an optional unit ms, s, m, h, d), greater than 0"
        let text = raw.trimmingSpaces().lowercased()
        guard !text.isEmpty else { throw ConfigError(variable: variable, value: raw, accepted: accepted) }
        if let seconds = Int64(text) {
            guard seconds > 0 else { throw ConfigError(variable: variable, value: raw, accepted: accepted) }
            return .seconds(seconds)
        }
        var total: Duration = .zero
        var number = ""
        var index = text.startIndex
        var sawUnit = false
        while index < text.endIndex {
            let c = text[index]
            if c.isASCII, c.isNumber || c == "." {
                number.append(c)
                index = text.index(after: index)
                continue
            }
            var unit = String(c)
            index = text.index(after: index)
            if c == "m", index < text.endIndex, text[index] == "s" {
                unit = "ms"
                index = text.index(after: index)
            }
            guard let value = Double(number), value >= 0 else {
                throw ConfigError(variable: variable, value: raw, accepted: accepted)
            }
            let scale: Double
            switch unit {
            case "ms": scale = 0.001
            case "s": scale = 1
            case "m": scale = 60
            case "h": scale = 3600
            case "d": scale = 86400
            default: throw ConfigError(variable: variable, value: raw, accepted: accepted)
            }
            total += .milliseconds(Int64((value * scale * 1000).rounded()))
            number = ""
            sawUnit = true
        }
        guard sawUnit, number.isEmpty, total > .zero else {
            throw ConfigError(variable: variable, value: raw, accepted: accepted)
        }
        return total
    }

    /// A byte size: `8388608`, `8K`/`8KiB`, `10M`/`10MiB`/`10MB`, `1G`/`1GiB` (binary units
    /// whatever the spelling, as `ls -h` and the old scripts' `150M` mean them); nil otherwise.
    public static func byteSize(_ raw: String) -> UInt64? {
        let t = raw.trimmingSpaces()
        let digits = t.prefix { $0.isNumber }
        guard let n = UInt64(digits) else { return nil }
        switch t.dropFirst(digits.count).lowercased() {
        case "", "b": return n
        case "k", "kb", "kib": return n << 10
        case "m", "mb", "mib": return n << 20
        case "g", "gb", "gib": return n << 30
        default: return nil
        }
    }

    /// A whole number within `range`.
    public static func integer(_ raw: String, variable: String, in range: ClosedRange<Int>) throws -> Int {
        guard let value = Int(raw.trimmingSpaces()), range.contains(value) else {
            throw ConfigError(variable: variable, value: raw, accepted: "a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    /// A percentage from 0 to 100 (a trailing `%` is allowed).
    public static func percent(_ raw: String, variable: String) throws -> Double {
        var text = raw.trimmingSpaces()
        if text.hasSuffix("%") { text.removeLast() }
        guard let value = Double(text), value >= 0, value <= 100 else {
            throw ConfigError(variable: variable, value: raw, accepted: "a percentage from 0 to 100, such as 15 or 15%")
        }
        return value
    }

    /// `true/false`, `1/0`, `yes/no`, `on/off`.
    public static func boolean(_ raw: String, variable: String) throws -> Bool {
        switch raw.trimmingSpaces().lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off", "": return false
        default: throw ConfigError(variable: variable, value: raw, accepted: "true or false (also 1/0, yes/no, on/off)")
        }
    }

    /// `host:port`, `[v6addr]:port` or, when `defaultPort` is given, a bare host.
    public static func endpoint(_ raw: String, variable: String, defaultPort: Int? = nil) throws -> Endpoint {
        let text = raw.trimmingSpaces()
        let accepted = defaultPort == nil
            ? "host:port (for example 127.0.0.1:26379 or [::1]:26379), port from 1 to 65535"
            : "host or host:port (for example redis-master or 127.0.0.1:6379), port from 1 to 65535"
        var host: Substring
        var portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw ConfigError(variable: variable, value: raw, accepted: accepted) }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            if rest.hasPrefix(":") { portText = rest.dropFirst() } else if !rest.isEmpty {
                throw ConfigError(variable: variable, value: raw, accepted: accepted)
            }
        } else if let colon = text.lastIndex(of: ":"), text.firstIndex(of: ":") == colon {
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        } else {
            host = Substring(text)
        }
        guard !host.isEmpty, !host.contains(where: { $0 == " " || $0 == "/" }) else {
            throw ConfigError(variable: variable, value: raw, accepted: accepted)
        }
        let port: Int
        if let portText {
            guard let p = Int(portText), (1...65535).contains(p) else { throw ConfigError(variable: variable, value: raw, accepted: accepted) }
            port = p
        } else if let defaultPort {
            port = defaultPort
        } else {
            throw ConfigError(variable: variable, value: raw, accepted: accepted)
        }
        return Endpoint(host: String(host), port: port)
    }

    /// A comma-separated list of `host:port`.
    public static func endpointList(_ raw: String, variable: String, defaultPort: Int? = nil) throws -> [Endpoint] {
        let parts = raw.split(separator: ",").map { String($0).trimmingSpaces() }.filter { !$0.isEmpty }
        return try parts.map { part in
            do {
                return try endpoint(part, variable: variable, defaultPort: defaultPort)
            } catch let error as ConfigError {
                throw ConfigError(variable: variable, value: raw,
                                  accepted: "a comma-separated list of \(error.accepted); \"\(part)\" is not")
            }
        }
    }
}

extension String {
    /// Leading and trailing spaces, tabs and newlines removed (no Foundation needed).
    public func trimmingSpaces() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
