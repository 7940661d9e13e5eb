import Foundation

/// A fast path for the `.meta` files `list` reads by the hundred thousand: a flat JSON object
/// of strings, numbers and booleans plus the `files` array and the `keys`/`expires` objects of
/// Redis snapshots. Each value is decoded straight into its `BackupMeta` field (no dictionary
/// of the object in between). Foundation's JSONDecoder costs ~15 µs per file; this costs well
/// under 1 µs. Anything it does not understand (a type that does not match, a surrogate
/// escape, other nesting, a repeated key in `keys`) returns nil and the caller uses
/// JSONDecoder, so both paths accept and reject exactly the same files. A key given twice
/// counts with its last value, as before.
enum MetaFastDecoder {
    /// A decoded scalar (or the `files` array / a `keys`-style object).
    enum Value {
        case string(String)
        case number(Double, isInteger: Bool)
        case bool(Bool)
        case null
        case files([BackupMeta.FileEntry])
        case counts([String: Int])
    }

    /// The fields of `BackupMeta`, by JSON key.
    enum Field: Int {
        case timestamp, type, database, size, file, status, kind, target, sizeBytes, uncompressedBytes, sha256, durationSeconds
        case startedAt, finishedAt, compression, serverVersion, toolVersion, startLSN, endLSN, timeline, files
        case redisVersion, rdbVersion, master, source, sourceRole, keys, expires, method, rdbChecksum
        case encryption, recipients

        /// The field a key names; nil for keys `BackupMeta` does not have.
        static func named(_ k: UnsafeBufferPointer<UInt8>) -> Field? {
            func eq(_ s: StaticString) -> Bool {
                s.utf8CodeUnitCount == k.count && memcmp(s.utf8Start, k.baseAddress!, k.count) == 0
            }
            guard k.count >= 4 else { return nil }
            switch k.count {
            case 4:
                if eq("type") { return .type }
                if eq("size") { return .size }
                if eq("file") { return .file }
                if eq("kind") { return .kind }
                if eq("keys") { return .keys }
            case 5:
                if eq("files") { return .files }
            case 6:
                if eq("status") { return .status }
                if eq("target") { return .target }
                if eq("sha256") { return .sha256 }
                if eq("master") { return .master }
                if eq("source") { return .source }
                if eq("method") { return .method }
            case 7:
                if eq("end_lsn") { return .endLSN }
                if eq("expires") { return .expires }
            case 8:
                if eq("database") { return .database }
                if eq("timeline") { return .timeline }
            case 9:
                if eq("timestamp") { return .timestamp }
                if eq("start_lsn") { return .startLSN }
            case 10:
                if eq("size_bytes") { return .sizeBytes }
                if eq("encryption") { return .encryption }
                if eq("recipients") { return .recipients }
                if eq("started_at") { return .startedAt }
            case 11:
                if eq("finished_at") { return .finishedAt }
                if eq("compression") { return .compression }
                if eq("rdb_version") { return .rdbVersion }
                if eq("source_role") { return .sourceRole }
            case 12:
                if eq("tool_version") { return .toolVersion }
                if eq("rdb_checksum") { return .rdbChecksum }
            case 13:
                if eq("redis_version") { return .redisVersion }
            case 14:
                if eq("server_version") { return .serverVersion }
            case 16:
                if eq("duration_seconds") { return .durationSeconds }
            case 18:
                if eq("uncompressed_bytes") { return .uncompressedBytes }
            default:
                break
            }
            return nil
        }
    }

    static func decode(_ bytes: [UInt8]) -> BackupMeta? {
        bytes.withUnsafeBufferPointer { buffer in
            guard buffer.count > 0 else { return nil }
            var p = Parser(bytes: buffer)
            return p.meta()
        }
    }

    /// An optional string field: null or a string; anything else is a mismatch (nil).
    private static func optionalString(_ v: Value) -> String?? {
        switch v {
        case .null: return .some(nil)
        case .string(let s): return .some(s)
        default: return nil
        }
    }

    private static func optionalUnsigned(_ v: Value) -> UInt64?? {
        switch v {
        case .null: return .some(nil)
        case .number(let d, true) where d >= 0 && d < 1.8e19: return .some(UInt64(d))
        default: return nil
        }
    }

    private static func optionalInt(_ v: Value) -> Int?? {
        switch v {
        case .null: return .some(nil)
        case .number(let d, true) where abs(d) < 9e15: return .some(Int(d))
        default: return nil
        }
    }

    /// Stores `v` in the field; false when its type does not match the field's.
    private static func assign(_ field: Field, _ v: Value, to meta: inout BackupMeta) -> Bool {
        switch field {
        case .timestamp:
            guard case .string(let s) = v else { return false }
            meta.timestamp = s
        case .type:
            guard case .string(let s) = v else { return false }
            meta.type = s
        case .database: guard let s = optionalString(v) else { return false }; meta.database = s
        case .size: guard let s = optionalString(v) else { return false }; meta.size = s
        case .file: guard let s = optionalString(v) else { return false }; meta.file = s
        case .status: guard let s = optionalString(v) else { return false }; meta.status = s
        case .kind:
            guard let s = optionalString(v) else { return false }
            if let s {
                guard let k = BackupKind(rawValue: s) else { return false }
                meta.kind = k
            } else {
                meta.kind = nil
            }
        case .target: guard let s = optionalString(v) else { return false }; meta.target = s
        case .sizeBytes: guard let n = optionalUnsigned(v) else { return false }; meta.sizeBytes = n
        case .uncompressedBytes: guard let n = optionalUnsigned(v) else { return false }; meta.uncompressedBytes = n
        case .sha256: guard let s = optionalString(v) else { return false }; meta.sha256 = s
        case .durationSeconds:
            switch v {
            case .null: meta.durationSeconds = nil
            case .number(let d, _): meta.durationSeconds = d
            default: return false
            }
        case .startedAt: guard let s = optionalString(v) else { return false }; meta.startedAt = s
        case .finishedAt: guard let s = optionalString(v) else { return false }; meta.finishedAt = s
        case .compression: guard let s = optionalString(v) else { return false }; meta.compression = s
        case .serverVersion: guard let s = optionalString(v) else { return false }; meta.serverVersion = s
        case .toolVersion: guard let s = optionalString(v) else { return false }; meta.toolVersion = s
        case .startLSN: guard let s = optionalString(v) else { return false }; meta.startLSN = s
        case .endLSN: guard let s = optionalString(v) else { return false }; meta.endLSN = s
        case .timeline: guard let n = optionalInt(v) else { return false }; meta.timeline = n
        case .files:
            switch v {
            case .null: meta.files = nil
            case .files(let f): meta.files = f
            default: return false
            }
        case .redisVersion: guard let s = optionalString(v) else { return false }; meta.redisVersion = s
        case .rdbVersion: guard let n = optionalInt(v) else { return false }; meta.rdbVersion = n
        case .master: guard let s = optionalString(v) else { return false }; meta.master = s
        case .source: guard let s = optionalString(v) else { return false }; meta.source = s
        case .sourceRole: guard let s = optionalString(v) else { return false }; meta.sourceRole = s
        case .keys, .expires:
            let counts: [String: Int]?
            switch v {
            case .null: counts = nil
            case .counts(let c): counts = c
            default: return false
            }
            if field == .keys { meta.keys = counts } else { meta.expires = counts }
        case .method: guard let s = optionalString(v) else { return false }; meta.method = s
        case .rdbChecksum: guard let s = optionalString(v) else { return false }; meta.rdbChecksum = s
        case .encryption: guard let s = optionalString(v) else { return false }; meta.encryption = s
        case .recipients: guard let s = optionalString(v) else { return false }; meta.recipients = s
        }
        return true
    }

    struct Parser {
        let bytes: UnsafeBufferPointer<UInt8>
        var i = 0
        /// The keys of the `.meta` that are no field (rare: only to catch one given twice).
        var unknownKeys: [[UInt8]] = []

        init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        mutating func space() {
            while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
        }

        mutating func atEnd() -> Bool {
            space()
            return i == bytes.count
        }

        mutating func expect(_ byte: UInt8) -> Bool {
            space()
            guard i < bytes.count, bytes[i] == byte else { return false }
            i += 1
            return true
        }

        /// The whole `.meta`: one object, its known keys decoded into the fields.
        mutating func meta() -> BackupMeta? {
            guard expect(UInt8(ascii: "{")) else { return nil }
            var meta = BackupMeta(timestamp: "", type: "")
            // Fields whose last value did not match their type; timestamp and type must be there.
            var mismatched: UInt64 = 0
            var seen: UInt64 = 0
            if !expect(UInt8(ascii: "}")) {
                while true {
                    space()
                    guard let field = key(), expect(UInt8(ascii: ":")) else { return nil }
                    space()
                    guard i < bytes.count else { return nil }
                    let value: Value
                    if bytes[i] == UInt8(ascii: "[") {
                        guard field == .files, let files = fileArray() else { return nil }
                        value = .files(files)
                    } else if bytes[i] == UInt8(ascii: "{") {
                        guard field == .keys || field == .expires, let counts = counts() else { return nil }
                        value = .counts(counts)
                    } else {
                        guard let v = scalar() else { return nil }
                        value = v
                    }
                    if let field {
                        let bit = UInt64(1) << UInt64(field.rawValue)
                        guard seen & bit == 0 else { return nil }  // a repeated key: JSONDecoder rejects it
                        seen |= bit
                        if MetaFastDecoder.assign(field, value, to: &meta) { mismatched &= ~bit } else { mismatched |= bit }
                    }
                    if expect(UInt8(ascii: ",")) { continue }
                    guard expect(UInt8(ascii: "}")) else { return nil }
                    break
                }
            }
            guard atEnd(), mismatched == 0 else { return nil }
            let required = (UInt64(1) << UInt64(Field.timestamp.rawValue)) | (UInt64(1) << UInt64(Field.type.rawValue))
            return seen & required == required ? meta : nil
        }

        /// An object key: `.some(field)` for a known key, `.some(nil)` for another, nil when not
        /// a string or an unknown key given twice (as JSONDecoder, which rejects repeated keys).
        mutating func key() -> Field?? {
            guard let raw = rawString() else { return nil }
            let name: [UInt8]
            if !raw.escaped {
                let k = UnsafeBufferPointer(rebasing: bytes[raw.range])
                if let field = Field.named(k) { return .some(field) }
                name = Array(k)
            } else {
                guard let unescaped = unescape(raw.range) else { return nil }
                if let field = unescaped.withUnsafeBufferPointer({ Field.named($0) }) { return .some(field) }
                name = unescaped
            }
            guard String(validating: name, as: UTF8.self) != nil, !unknownKeys.contains(name) else { return nil }
            unknownKeys.append(name)
            return .some(nil)
        }

        /// A `keys`/`expires` object: string keys, integer values, each key once (anything else: nil).
        mutating func counts() -> [String: Int]? {
            guard expect(UInt8(ascii: "{")) else { return nil }
            var out: [String: Int] = [:]
            if expect(UInt8(ascii: "}")) { return out }
            while true {
                space()
                guard let k = string(), expect(UInt8(ascii: ":")) else { return nil }
                space()
                guard i < bytes.count, case .number(let d, true)? = scalar(), abs(d) < 9e15,
                      out.updateValue(Int(d), forKey: k) == nil else { return nil }
                if expect(UInt8(ascii: ",")) { continue }
                return expect(UInt8(ascii: "}")) ? out : nil
            }
        }

        /// An object of scalars (a `files` element), as a dictionary.
        mutating func object() -> [String: Value]? {
            guard expect(UInt8(ascii: "{")) else { return nil }
            var result: [String: Value] = [:]
            if expect(UInt8(ascii: "}")) { return result }
            while true {
                space()
                guard let key = string(), expect(UInt8(ascii: ":")) else { return nil }
                space()
                guard i < bytes.count, let v = scalar(), result.updateValue(v, forKey: key) == nil else { return nil }
                if expect(UInt8(ascii: ",")) { continue }
                return expect(UInt8(ascii: "}")) ? result : nil
            }
        }

        mutating func fileArray() -> [BackupMeta.FileEntry]? {
            guard expect(UInt8(ascii: "[")) else { return nil }
            var out: [BackupMeta.FileEntry] = []
            if expect(UInt8(ascii: "]")) { return out }
            while true {
                guard let o = object(),
                      case .string(let name)? = o["name"], case .string(let sha)? = o["sha256"],
                      case .number(let size, true)? = o["size_bytes"], size >= 0 else { return nil }
                out.append(BackupMeta.FileEntry(name: name, sizeBytes: UInt64(size), sha256: sha))
                if expect(UInt8(ascii: ",")) { continue }
                return expect(UInt8(ascii: "]")) ? out : nil
            }
        }

        /// A string, number, boolean or null (the caller has checked `i < bytes.count`).
        mutating func scalar() -> Value? {
            let c = bytes[i]
            if c == UInt8(ascii: "\"") { return string().map(Value.string) }
            if literal("true") { return .bool(true) }
            if literal("false") { return .bool(false) }
            if literal("null") { return .null }
            let start = i
            var integer = true
            var digits = 0
            var plain = true  // an optional leading minus, then only digits
            while i < bytes.count {
                let b = bytes[i]
                if b >= 0x30 && b <= 0x39 {
                    digits += 1
                    i += 1
                } else if b == UInt8(ascii: "-") {
                    if i != start { plain = false }
                    i += 1
                } else if b == UInt8(ascii: ".") || b == UInt8(ascii: "e") || b == UInt8(ascii: "E") || b == UInt8(ascii: "+") {
                    integer = false
                    plain = false
                    i += 1
                } else {
                    break
                }
            }
            guard i > start else { return nil }
            // JSON has no leading zeros ("007"); JSONDecoder rejects them.
            let first = bytes[start] == UInt8(ascii: "-") ? start + 1 : start
            if first + 1 < i, bytes[first] == UInt8(ascii: "0"), bytes[first + 1] >= 0x30 && bytes[first + 1] <= 0x39 { return nil }
            // Integers beyond 15 digits are not exact in a Double: JSONDecoder reads them exactly.
            if plain && digits > 15 { return nil }
            if plain && digits > 0 {
                // Exact in a Double: the same value Double(String) gives, without the String.
                var value = 0
                var j = start
                let negative = bytes[j] == UInt8(ascii: "-")
                if negative { j += 1 }
                while j < i {
                    value = value * 10 + Int(bytes[j] - 0x30)
                    j += 1
                }
                return .number(negative ? -Double(value) : Double(value), isInteger: true)
            }
            guard let d = Double(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)) else { return nil }
            return .number(d, isInteger: integer)
        }

        mutating func literal(_ word: StaticString) -> Bool {
            let n = word.utf8CodeUnitCount
            guard i + n <= bytes.count, memcmp(word.utf8Start, bytes.baseAddress! + i, n) == 0 else { return false }
            i += n
            return true
        }

        /// The bytes between the quotes of a string (`i` after the closing quote) and whether it has escapes.
        mutating func rawString() -> (range: Range<Int>, escaped: Bool)? {
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { return nil }
            i += 1
            let start = i
            var escaped = false
            while i < bytes.count, bytes[i] != UInt8(ascii: "\"") {
                if bytes[i] == UInt8(ascii: "\\") {
                    escaped = true
                    i += 1
                    guard i < bytes.count else { return nil }
                }
                if bytes[i] < 0x20 { return nil }
                i += 1
            }
            guard i < bytes.count else { return nil }
            let range = start..<i
            i += 1
            return (range, escaped)
        }

        mutating func string() -> String? {
            guard let raw = rawString() else { return nil }
            if !raw.escaped { return String(validating: UnsafeBufferPointer(rebasing: bytes[raw.range]), as: UTF8.self) }
            guard let out = unescape(raw.range) else { return nil }
            return String(validating: out, as: UTF8.self)
        }

        /// The bytes of an escaped string; nil for `\u` escapes (left to JSONDecoder).
        func unescape(_ range: Range<Int>) -> [UInt8]? {
            var out: [UInt8] = []
            out.reserveCapacity(range.count)
            var j = range.lowerBound
            while j < range.upperBound {
                let b = bytes[j]
                if b != UInt8(ascii: "\\") {
                    out.append(b)
                    j += 1
                    continue
                }
                j += 1
                guard j < range.upperBound else { return nil }
                switch bytes[j] {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                default: return nil  // \u escapes: leave them to JSONDecoder
                }
                j += 1
            }
            return out
        }
    }
}
