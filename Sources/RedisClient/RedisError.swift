import BackstopCore

/// A failed Redis interaction: which server, what was being done, and what went wrong.
///
/// Built only from the server's address, the command name and the server's or the
/// socket's message, so a password can never end up in it (AUTH's arguments are never
/// quoted; the command name alone is).
public struct RedisError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        /// TCP connect failed or timed out.
        case connect
        /// AUTH was refused (wrong password or user, or the server wants one).
        case authentication
        /// Read or write failed, the connection closed, or a timeout passed.
        case io
        /// The server answered with an error reply.
        case server
        /// The reply had a shape the command does not produce.
        case unexpectedReply
        /// The replication stream broke its framing or the snapshot failed its checks.
        case snapshot
    }

    public let kind: Kind
    /// The server that was talked to.
    public let endpoint: Endpoint
    /// What was being done: `"connect"`, `"AUTH"`, `"INFO"`, `"PSYNC"`, …
    public let operation: String
    /// The server's or the system's message.
    public let message: String

    public init(_ kind: Kind, endpoint: Endpoint, operation: String, message: String) {
        self.kind = kind
        self.endpoint = endpoint
        self.operation = operation
        self.message = message
    }

    public var description: String {
        let hint: String
        switch kind {
        case .connect: hint = " (is Redis running and reachable at this address?)"
        case .authentication: hint = " (check REDIS_PASSWORD / REDIS_USERNAME)"
        case .io: hint = ""
        case .server: hint = ""
        case .unexpectedReply: hint = ""
        case .snapshot: hint = ""
        }
        return "Redis \(endpoint): \(operation) failed: \(message)\(hint)"
    }
}
