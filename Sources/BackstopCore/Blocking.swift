import Dispatch

/// Runs blocking C calls (PQexec, hiredis, curl_easy_perform, fsync) off Swift's cooperative
/// thread pool. A blocked pool thread stalls every task in the process — the /metrics
/// server, the health loop, shutdown — so every such call goes through here.
public enum Blocking {
    /// A concurrent queue: its threads are Dispatch's, not the cooperative pool's.
    private static let queue = DispatchQueue(label: "backstop.blocking", qos: .utility, attributes: .concurrent)

    /// Runs `body` on the blocking queue and resumes with its result.
    public static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result { try body() })
            }
        }
    }

    /// The non-throwing variant.
    public static func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: body()) }
        }
    }
}
