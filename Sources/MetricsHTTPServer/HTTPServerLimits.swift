import BackstopCore

/// What one client, or many, may hold of the metrics server. Prometheus needs one kept-alive
/// connection per scraper; everything above that is a client to be bounded, not served.
/// With these numbers the server's file descriptors stay under `connections` + a few and its
/// connection memory under `connections` × `memoryPerConnection`, whatever the clients do.
public struct HTTPServerLimits: Sendable, Equatable {
    /// Connections open at once, in all (METRICS_MAX_CONNECTIONS). Beyond it, new
    /// connections wait in the kernel's backlog until one closes.
    public var connections: Int = 256
    /// Connections open at once from one IP address (METRICS_MAX_CONNECTIONS_PER_IP). One
    /// host opening hundreds (a slowloris, a broken client) is refused at accept, so the
    /// `connections` left stay for the other scrapers.
    public var connectionsPerIP: Int = 16
    /// A connection idle this long is closed (METRICS_CONNECTION_TIMEOUT): half-sent requests
    /// cannot hold a slot for ever.
    public var idleTimeoutSeconds: Int = 10
    /// Bytes of request (request line and headers) a connection may buffer; a larger request
    /// is answered 431 and closed. 32 KiB is libmicrohttpd's default and fits any real scrape.
    public var memoryPerConnection: Int = 32 * 1024
    /// libmicrohttpd's worker threads.
    public var threads: Int = 2

    public init() {}

    /// The limits from the environment; a bad value names the variable and what is accepted.
    public static func load(environment: [String: String]) throws -> HTTPServerLimits {
        var limits = HTTPServerLimits()
        if let raw = environment["METRICS_MAX_CONNECTIONS"], !raw.isEmpty {
            limits.connections = try ValueParsers.integer(raw, variable: "METRICS_MAX_CONNECTIONS", in: 4...65536)
        }
        if let raw = environment["METRICS_MAX_CONNECTIONS_PER_IP"], !raw.isEmpty {
            limits.connectionsPerIP = try ValueParsers.integer(raw, variable: "METRICS_MAX_CONNECTIONS_PER_IP", in: 1...limits.connections)
        }
        if let raw = environment["METRICS_CONNECTION_TIMEOUT"], !raw.isEmpty {
            let duration = try ValueParsers.duration(raw, variable: "METRICS_CONNECTION_TIMEOUT")
            let seconds = duration.components.seconds + (duration.components.attoseconds > 0 ? 1 : 0)
            guard seconds <= 3600 else {
                throw ConfigError(variable: "METRICS_CONNECTION_TIMEOUT", value: raw, accepted: "a duration from 1s to 1h")
            }
            limits.idleTimeoutSeconds = Int(max(1, seconds))
        }
        return limits
    }
}
