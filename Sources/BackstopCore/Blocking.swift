import Dispatch

/// Runs blocking C calls (PQexec, hiredis, curl_easy_perform, fsync) off Swift's cooperative
/// thread pool. A blocked pool thread stalls every task in the process — the /metrics
/// server, the health loop, shutdown — so every such call goes through here.
public enum Blocking {
    /// Each call gets its own serial queue. Serial queues run on Dispatch's overcommit pool,
    /// which starts a thread at once when none is free. A shared concurrent queue does not:
    /// it runs about one thread per core and adds more only after ~1 s of stall, so a few
    /// calls hanging on a dead server (a webhook receiver that never answers) delayed every
    /// later call — the alerts file, the next probe — by seconds (BlockingStarvationTests).
    /// Threads are reused by the pool; the number alive follows the number of calls running.
    private static func queue() -> DispatchQueue {
        DispatchQueue(label: "backstop.blocking", qos: .utility)
    }

    /// Runs `body` on a Dispatch thread and resumes with its result.
    public static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue().async {
                continuation.resume(with: Result { try body() })
            }
        }
    }

    /// The non-throwing variant.
    public static func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            queue().async { continuation.resume(returning: body()) }
        }
    }
}
