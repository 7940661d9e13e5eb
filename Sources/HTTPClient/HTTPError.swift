/// A request that did not produce a response. The text names the method, the URL with its
/// credentials and secret-looking parts removed (`URLRedaction`), and curl's own reason, so
/// the operator knows which receiver failed and why without a token ever reaching a log.
public struct HTTPError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable {
        /// An option curl refused, or a handle it could not create: a bug or a bad URL.
        case setup
        /// curl gave up (connection refused, DNS, TLS, reset…); `code` is the CURLcode.
        case transport(code: Int32)
        /// The connect or total timeout passed.
        case timeout
        /// The task waiting for the request was cancelled (shutdown).
        case cancelled
        /// The request body could not be read (a file that vanished).
        case body
    }

    public var kind: Kind
    public var method: String
    /// The URL as `URLRedaction.redact` shows it.
    public var url: String
    public var message: String

    public init(kind: Kind, method: String, url: String, message: String) {
        self.kind = kind
        self.method = method
        self.url = URLRedaction.redact(url)
        self.message = message
    }

    public var description: String { "\(method) \(url) failed: \(message)" }

    /// Worth another attempt: the network, the peer or time failed, not the request itself.
    public var isRetryable: Bool {
        switch kind {
        case .transport, .timeout: return true
        case .setup, .cancelled, .body: return false
        }
    }
}

/// Removes what must not be logged from a URL: the `user:password@` part, every query value
/// (pre-signed URLs and `?token=` carry secrets there) and path segments that look like
/// tokens (16 or more characters of letters, digits, `-` and `_` with both letters and digits,
/// or 20 or more letters in one unbroken run, as in Slack's and Discord's webhook URLs). Scheme, host, port and the readable path stay,
/// so an operator can still tell which receiver is meant.
public enum URLRedaction {
    public static let mask = "<redacted>"

    public static func redact(_ url: String) -> String {
        var rest = Substring(url)
        var out = ""
        if let schemeEnd = rest.range(of: "://") {
            out += rest[..<schemeEnd.upperBound]
            rest = rest[schemeEnd.upperBound...]
        }
        // Authority ends at the first '/', '?' or '#'.
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        var authority = rest[..<authorityEnd]
        if let at = authority.lastIndex(of: "@") {
            authority = authority[authority.index(after: at)...]
        }
        out += authority
        rest = rest[authorityEnd...]
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        var path = rest
        var query: Substring?
        if let q = rest.firstIndex(of: "?") {
            path = rest[..<q]
            query = rest[rest.index(after: q)...]
        }
        out += path.split(separator: "/", omittingEmptySubsequences: false)
            .map { looksLikeToken($0) ? mask : String($0) }
            .joined(separator: "/")
        if let query {
            out += "?" + query.split(separator: "&").map { pair -> String in
                if let eq = pair.firstIndex(of: "=") { return pair[..<eq] + "=" + mask }
                return String(pair)
            }.joined(separator: "&")
        }
        return out
    }

    static func looksLikeToken(_ segment: Substring) -> Bool {
        guard segment.count >= 16 else { return false }
        var letters = false, digits = false, separators = false
        for c in segment.unicodeScalars {
            switch c {
            case "a"..."z", "A"..."Z": letters = true
            case "0"..."9": digits = true
            case "-", "_", ".", "=", "+", "%": separators = true
            default: return false
            }
        }
        // Letters and digits mixed, or one long unbroken run of letters: random, not a word.
        return (letters && digits) || (segment.count >= 20 && !separators)
    }
}

extension Substring {
    fileprivate func range(of needle: String) -> Range<Index>? {
        var i = startIndex
        while i < endIndex {
            if self[i...].hasPrefix(needle) { return i..<index(i, offsetBy: needle.count) }
            i = index(after: i)
        }
        return nil
    }
}
