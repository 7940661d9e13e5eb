import CPasswordHash
import Crypto
import Synchronization

/// Checks `Authorization: Basic …` against the web config's bcrypt hashes with libcrypt.
///
/// bcrypt is slow on purpose (cost 10 is tens of milliseconds), and Prometheus sends the same
/// credentials every scrape, so a verdict is cached under a SHA-256 of user, password and
/// hash — never the password itself. An unknown user still costs one bcrypt run (against
/// another user's hash), so response time does not tell which names exist. The cache is
/// bounded: a client trying many passwords only makes it start over.
public final class BasicAuthenticator: Sendable {
    private let users: [String: String]
    private let verdicts = Mutex<[[UInt8]: Bool]>([:])
    private static let cacheLimit = 256

    public init(users: [String: String]) {
        self.users = users
    }

    /// True when `header` (the Authorization value, nil when absent) names a configured user
    /// with the right password.
    public func allows(header: String?) -> Bool {
        guard let header, let (user, password) = Self.credentials(header) else { return false }
        let known = users[user]
        // A name that does not exist is checked against a real hash all the same.
        guard let hash = known ?? users.values.first else { return false }
        var hasher = SHA256()
        hasher.update(data: Array(user.utf8) + [0] + Array(password.utf8) + [0] + Array(hash.utf8))
        let key = Array(hasher.finalize())
        if let cached = verdicts.withLock({ $0[key] }) { return cached && known != nil }
        let matches = backstop_password_matches(password, hash) != 0 && known != nil
        verdicts.withLock { cache in
            if cache.count >= Self.cacheLimit { cache.removeAll(keepingCapacity: true) }
            cache[key] = matches
        }
        return matches
    }

    /// `Basic base64(user:password)` → (user, password); nil when malformed.
    static func credentials(_ header: String) -> (String, String)? {
        let bytes = Array(header.utf8)
        guard bytes.count > 6, String(decoding: bytes[0..<6], as: UTF8.self).lowercased() == "basic " else { return nil }
        let encoded = bytes[6...].drop { $0 == 32 }
        guard let decoded = base64Decode(encoded), let colon = decoded.firstIndex(of: UInt8(ascii: ":")) else { return nil }
        let user = String(decoding: decoded[..<colon], as: UTF8.self)
        let password = String(decoding: decoded[(colon + 1)...], as: UTF8.self)
        return (user, password)
    }

    /// Standard base64 with padding (RFC 4648 §4), as browsers, curl and Prometheus send it.
    static func base64Decode<C: Collection>(_ input: C) -> [UInt8]? where C.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(input.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        var padding = 0
        for c in input {
            let value: UInt32
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = UInt32(c - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = UInt32(c - UInt8(ascii: "a")) + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = UInt32(c - UInt8(ascii: "0")) + 52
            case UInt8(ascii: "+"): value = 62
            case UInt8(ascii: "/"): value = 63
            case UInt8(ascii: "="):
                padding += 1
                continue
            default: return nil
            }
            guard padding == 0 else { return nil }
            accumulator = (accumulator << 6) | value
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8((accumulator >> UInt32(bits)) & 0xff))
            }
        }
        guard padding <= 2, (input.count % 4) == 0 || padding == 0 else { return nil }
        return out
    }
}
