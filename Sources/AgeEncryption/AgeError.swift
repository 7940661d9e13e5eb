/// Why an age file was refused, in the spec's failure classes (the CCTV test kit names the
/// same four), so a caller can tell "wrong key" from "damaged file".
public struct AgeError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// None of the identities opens any recipient stanza: the file is for another key.
        case noMatch = "no match"
        /// The header parses and a stanza opened, but the header MAC is wrong: it was altered.
        case hmacFailure = "HMAC failure"
        /// The header is malformed (syntax, stanza shape, all-zero shared secret, truncation).
        case headerFailure = "header failure"
        /// A payload chunk fails its tag, is truncated, missing its last-chunk flag, or followed by data.
        case payloadFailure = "payload failure"
        /// A key or recipient string that is not valid.
        case badKey = "bad key"
        /// Encryption was asked without a usable recipient.
        case encryption = "encryption failure"
    }

    public var kind: Kind
    public var detail: String

    public init(_ kind: Kind, _ detail: String) {
        self.kind = kind
        self.detail = detail
    }

    public var description: String {
        switch kind {
        case .noMatch: return "age: no identity matches this file (it was encrypted to another key): \(detail)"
        default: return "age \(kind.rawValue): \(detail)"
        }
    }
}
