#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The one way Backstop reads and writes JSON: `Codable` types through Foundation's encoder and
/// decoder, with the settings every file and output shares, so a file written by one part is
/// read by another with the same rules and nothing hand-writes or hand-parses JSON.
///
/// Keys are always sorted (the files and `--json` outputs stay stable from run to run, and
/// diff cleanly); pretty output is Foundation's layout (two spaces, `"key" : value`), the one
/// `.meta`, the state files, `list --json` and `cleanup --json` have always had. Slashes are
/// written as they are unless `escapingSlashes` (kept for the state files that have always
/// escaped them, so their bytes do not change). Times are strings or numbers in the types
/// themselves (RFC 3339 as `WallClock` writes them, or seconds), never `Date`, so the
/// encoder's date strategy never decides a file's format.
public enum JSONCoding {
    /// `value` as JSON: indented (`pretty`, for files and `--json`) or on one line (request
    /// bodies), keys sorted, with a final newline when `newline`. `snakeCaseKeys` writes the
    /// property names in snake case (`nextRuns` as `next_runs`), for output types that would
    /// otherwise spell every key twice in a `CodingKeys`.
    public static func encode(_ value: some Encodable, pretty: Bool = true, escapingSlashes: Bool = false,
                              newline: Bool = false, snakeCaseKeys: Bool = false) throws -> [UInt8] {
        let encoder = JSONEncoder()
        if snakeCaseKeys { encoder.keyEncodingStrategy = .convertToSnakeCase }
        var format: JSONEncoder.OutputFormatting = [.sortedKeys]
        if pretty { format.insert(.prettyPrinted) }
        if !escapingSlashes { format.insert(.withoutEscapingSlashes) }
        encoder.outputFormatting = format
        var bytes = Array(try encoder.encode(value))
        if newline { bytes.append(10) }
        return bytes
    }

    /// `encode` as text (for `print`), without the final newline.
    public static func text(_ value: some Encodable, pretty: Bool = true, snakeCaseKeys: Bool = false) throws -> String {
        String(decoding: try encode(value, pretty: pretty, snakeCaseKeys: snakeCaseKeys), as: UTF8.self)
    }

    /// A `T` from JSON text; throws `DecodingError` for text that is not JSON or not a `T`.
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try JSONDecoder().decode(type, from: Data(bytes))
    }

    /// Whether `bytes` is one well-formed JSON object or array, every value in it included
    /// (the decoder reads a value only when asked for it, so each one is asked for).
    public static func isWellFormed(_ bytes: [UInt8]) -> Bool {
        guard let first = bytes.first(where: { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }),
              first == UInt8(ascii: "{") || first == UInt8(ascii: "[") else { return false }
        return (try? decode(WellFormed.self, from: bytes)) != nil
    }

    /// An optional written as `null` when absent (Codable leaves an absent optional out), for
    /// the outputs whose readers expect every key.
    public struct OrNull<Wrapped: Encodable & Sendable>: Encodable, Sendable {
        public var value: Wrapped?
        public init(_ value: Wrapped?) { self.value = value }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            if let value { try container.encode(value) } else { try container.encodeNil() }
        }
    }

    /// Any JSON value, read to the end of every nested value and then dropped.
    private struct WellFormed: Decodable {
        struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        init(from decoder: any Decoder) throws {
            if let object = try? decoder.container(keyedBy: Key.self) {
                for key in object.allKeys { _ = try object.decode(WellFormed.self, forKey: key) }
            } else if var array = try? decoder.unkeyedContainer() {
                while !array.isAtEnd { _ = try array.decode(WellFormed.self) }
            } else {
                let value = try decoder.singleValueContainer()
                if value.decodeNil() || (try? value.decode(Bool.self)) != nil || (try? value.decode(Double.self)) != nil { return }
                _ = try value.decode(String.self)
            }
        }
    }
}
