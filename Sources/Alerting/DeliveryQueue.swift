import BackstopCore
import HTTPClient
import Synchronization

/// One pending notification for one destination: the alerts of a group at an evaluation.
struct DeliveryJob: Sendable {
    /// Jobs with the same key replace each other while waiting (the newer state wins, but
    /// resolved alerts of the older one are kept so a resolution is never lost).
    var key: String
    var alerts: [TrackedAlert]
    var time: Double

    func merged(withNewer newer: DeliveryJob) -> DeliveryJob {
        let present = Set(newer.alerts.map(\.fingerprint))
        let keptResolved = alerts.filter { $0.status == .resolved && !present.contains($0.fingerprint) }
        return DeliveryJob(key: newer.key, alerts: newer.alerts + keptResolved, time: newer.time)
    }
}

/// How one delivery ended, for metrics and the log.
public struct DeliveryReport: Sendable, Equatable {
    public enum Result: String, Sendable {
        case success, failure
    }

    /// The destination URL, redacted.
    public var destination: String
    public var key: String
    public var result: Result
    public var attempts: Int
    /// Why it failed (last attempt), or nil.
    public var error: String?
}

/// When to try again and how often.
struct RetryPolicy: Sendable {
    var maxAttempts: Int
    var initialBackoff: Duration
    var maxBackoff: Duration

    /// The wait before attempt `attempt + 1`: exponential, capped, jittered to 50–100 %.
    func backoff(after attempt: Int) -> Duration {
        let base = min(maxBackoff.seconds, initialBackoff.seconds * Double(1 << min(attempt - 1, 30)))
        return .milliseconds(Int64(base * Double.random(in: 0.5...1.0) * 1000))
    }
}

/// A bounded queue of deliveries to one destination and the one task that works through it,
/// so a slow or dead receiver holds up only its own queue: never the health loop (enqueue
/// is a short lock, no await) and never the other destinations.
final class DeliveryQueue: Sendable {
    typealias Render = @Sendable (DeliveryJob) -> HTTPRequest
    typealias Report = @Sendable (DeliveryReport) -> Void

    private struct State {
        var pending: [DeliveryJob] = []
        var busy = false
    }

    /// State shared with the worker task (a Mutex: the worker and `enqueue` run on different threads).
    private final class Shared: Sendable {
        let state = Mutex(State())
    }

    let destination: String
    private let shared = Shared()
    private let wake: AsyncStream<Void>.Continuation
    private let worker: Task<Void, Never>
    private let capacity: Int
    private let report: Report

    init(url: String, capacity: Int, policy: RetryPolicy, render: @escaping Render, report: @escaping Report) {
        let destination = URLRedaction.redact(url)
        self.destination = destination
        self.capacity = capacity
        self.report = report
        let (stream, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        self.wake = wake
        let shared = self.shared
        worker = Task.detached {
            for await _ in stream {
                while let job = shared.state.withLock({ s -> DeliveryJob? in
                    guard !s.pending.isEmpty else { return nil }
                    s.busy = true
                    return s.pending.removeFirst()
                }) {
                    await Self.deliver(job, destination: destination, policy: policy, render: render, report: report, shared: shared)
                    shared.state.withLock { $0.busy = false }
                    if Task.isCancelled { return }
                }
            }
        }
    }

    deinit {
        // Ends the worker's wait once nobody can enqueue any more.
        wake.finish()
    }

    /// Adds a job (merging it into a waiting one with the same key); never waits.
    func enqueue(_ job: DeliveryJob) {
        let dropped: DeliveryJob? = shared.state.withLock { s in
            if let i = s.pending.firstIndex(where: { $0.key == job.key }) {
                s.pending[i] = s.pending[i].merged(withNewer: job)
                return nil
            }
            s.pending.append(job)
            return s.pending.count > capacity ? s.pending.removeFirst() : nil
        }
        if let dropped {
            report(DeliveryReport(destination: destination, key: dropped.key, result: .failure, attempts: 0,
                                  error: "dropped: more than \(capacity) deliveries waiting for this receiver"))
        }
        wake.yield(())
    }

    /// Nothing waiting and nothing in flight.
    var isIdle: Bool { shared.state.withLock { $0.pending.isEmpty && !$0.busy } }

    /// Stops taking work, lets the worker finish what is queued for up to `grace`, then
    /// cancels it (an in-flight request is aborted through curl's progress callback).
    func shutdown(grace: Duration) async {
        wake.finish()
        let worker = self.worker
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await worker.value }
            group.addTask { try? await Task.sleep(for: grace) }
            await group.next()
            worker.cancel()
            group.cancelAll()
        }
    }

    private static func deliver(_ first: DeliveryJob, destination: String, policy: RetryPolicy,
                                render: Render, report: Report, shared: Shared) async {
        var job = first
        var attempt = 1
        while true {
            let request = render(job)
            var failure: String
            var retryable: Bool
            do {
                let response = try await HTTP.send(request)
                if response.isSuccess {
                    report(DeliveryReport(destination: destination, key: job.key, result: .success, attempts: attempt, error: nil))
                    return
                }
                let snippet = String(response.bodyText.prefix(200))
                failure = "HTTP \(response.status) from \(destination)" + (snippet.isEmpty ? "" : ": \(snippet)")
                // 4xx means the request itself is wrong (bad token, bad payload); only
                // timeouts and rate limits among them are worth repeating.
                retryable = response.status >= 500 || response.status == 408 || response.status == 429
            } catch let error as HTTPError {
                failure = error.description
                retryable = error.isRetryable
            } catch {
                failure = "\(error)"
                retryable = false
            }
            if !retryable || attempt >= policy.maxAttempts || Task.isCancelled {
                report(DeliveryReport(destination: destination, key: job.key, result: .failure, attempts: attempt, error: failure))
                return
            }
            do {
                try await Task.sleep(for: policy.backoff(after: attempt))
            } catch {
                report(DeliveryReport(destination: destination, key: job.key, result: .failure, attempts: attempt, error: failure + " (shutting down)"))
                return
            }
            // A newer state of the same group arrived while waiting: send that instead.
            if let newer = shared.state.withLock({ s -> DeliveryJob? in
                guard let i = s.pending.firstIndex(where: { $0.key == job.key }) else { return nil }
                return s.pending.remove(at: i)
            }) {
                job = job.merged(withNewer: newer)
            }
            attempt += 1
        }
    }
}
