import BackstopCore

/// The async face of the Redis client: each interaction opens a connection, runs on
/// `Blocking.run` (hiredis blocks; the cooperative pool must not), and closes it.
///
/// One connection per interaction keeps the health loop simple and correct across
/// failovers: nothing is cached that could point at yesterday's master.
public enum Redis {
    /// Connects (and authenticates), runs `body` on a blocking-queue thread, closes.
    public static func withConnection<T: Sendable>(
        to endpoint: Endpoint, username: String? = nil, password: Secret? = nil, timeout: Double,
        _ body: @escaping @Sendable (RedisConnection) throws -> T
    ) async throws -> T {
        try await Blocking.run {
            let connection = try RedisConnection(to: endpoint, username: username, password: password, timeout: timeout)
            return try body(connection)
        }
    }

    /// `fetchSnapshot` on the blocking queue; the sink runs on that queue's thread.
    public static func fetchSnapshot(
        from endpoint: Endpoint, username: String? = nil, password: Secret? = nil, timeout: Double,
        options: SnapshotOptions = SnapshotOptions(),
        sink: @escaping @Sendable (UnsafeRawBufferPointer) throws -> Void
    ) async throws -> SnapshotInfo {
        try await Blocking.run {
            try RedisClient.fetchSnapshot(from: endpoint, username: username, password: password, timeout: timeout,
                                          options: options, sink: sink)
        }
    }
}
