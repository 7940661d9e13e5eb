/// One RESP reply, copied out of hiredis's reply tree so no C memory outlives the call.
///
/// Server errors (`-ERR …`, `-NOAUTH …`) are a case, not a thrown error: `command(_:)`
/// returns them so callers can decide (CKQUORUM's `-NOQUORUM` is an answer, not a failure).
/// The typed helpers turn them into `RedisError`.
public enum RedisReply: Sendable, Equatable {
    case status(String)
    case error(String)
    case integer(Int64)
    case bulk([UInt8])
    case null
    case array([RedisReply])

    /// Text of a status, bulk or error reply (bulk decoded as UTF-8, invalid bytes repaired).
    public var string: String? {
        switch self {
        case .status(let text), .error(let text): return text
        case .bulk(let bytes): return String(decoding: bytes, as: UTF8.self)
        case .integer(let value): return String(value)
        case .null, .array: return nil
        }
    }

    /// The integer of an integer reply, or of a bulk/status reply holding one.
    public var integer: Int64? {
        switch self {
        case .integer(let value): return value
        case .bulk, .status: return string.flatMap { Int64($0) }
        default: return nil
        }
    }

    /// The elements of an array reply.
    public var array: [RedisReply]? {
        if case .array(let elements) = self { return elements }
        return nil
    }

    /// True for a status reply (`+OK`, `+PONG`, …).
    public var isStatus: Bool {
        if case .status = self { return true }
        return false
    }

    /// The error text when this is an error reply.
    public var errorMessage: String? {
        if case .error(let text) = self { return text }
        return nil
    }

    /// A flat `[k1, v1, k2, v2, …]` array (CONFIG GET, SENTINEL MASTER) as a dictionary.
    public var fieldMap: [String: String]? {
        guard let elements = array else { return nil }
        var fields: [String: String] = [:]
        var index = 0
        while index + 1 < elements.count {
            if let key = elements[index].string { fields[key] = elements[index + 1].string ?? "" }
            index += 2
        }
        return fields
    }
}
