import BackstopCore

/// What one PostgreSQL health probe found.
public struct PostgresProbeResult: Sendable {
    public var up: Bool
    /// `server_version` as the server reports it, when up.
    public var serverVersion: String?
    /// Whether the server is a standby (in recovery), when up.
    public var inRecovery: Bool?
    /// Size of the probed database in bytes, when up.
    public var databaseSizeBytes: Double?
    /// Why the probe failed, when down.
    public var error: String?
    public var durationSeconds: Double
}

/// The health loop's PostgreSQL probe: connect, ask a few cheap questions, disconnect.
public enum PostgresProbe {
    /// Runs the probe off the cooperative pool and gives up after `timeout` even if libpq is
    /// still waiting (a frozen server): the blocked thread finishes on its own once libpq's
    /// connect_timeout fires, and the answer is already "down".
    public static func probe(database: String, timeout: Duration) async -> PostgresProbeResult {
        let started = MonotonicClock.seconds()
        let work: @Sendable () -> PostgresProbeResult = {
            do {
                let c = try PostgresConnection(database: database, timeout: timeout, applicationName: "backstop-health")
                defer { c.close() }
                let row = try c.query("SELECT current_setting('server_version'), pg_is_in_recovery()::text, pg_database_size(current_database())::text").first ?? []
                return PostgresProbeResult(
                    up: true, serverVersion: row.first ?? nil, inRecovery: (row.count > 1 ? row[1] : nil) == "true",
                    databaseSizeBytes: (row.count > 2 ? row[2] : nil).flatMap { Double($0) }, error: nil,
                    durationSeconds: MonotonicClock.seconds() - started)
            } catch {
                return PostgresProbeResult(up: false, error: "\(error)", durationSeconds: MonotonicClock.seconds() - started)
            }
        }
        return await withTimeout(timeout, work: work) {
            PostgresProbeResult(up: false, error: "no answer from PostgreSQL within \(timeout.seconds) s", durationSeconds: timeout.seconds)
        }
    }
}

