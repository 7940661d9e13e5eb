#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Runs blocking C calls (PQexec, hiredis, curl_easy_perform, fsync) off Swift's cooperative
/// thread pool. A blocked pool thread stalls every task in the process — the /metrics
/// server, the health loop, shutdown — so every such call goes through here.
public enum Blocking {
    /// At most this many threads run blocking calls at once; more calls wait their turn.
    /// A call waits behind another only when all of them are busy: a few calls hanging on a
    /// dead server (a webhook receiver that never answers) never delay the alerts file or
    /// the next probe (BlockingStarvationTests), and a storm of them cannot start a thread
    /// per call.
    public static let maxThreads = 64

    static let pool = BlockingPool(maxThreads: maxThreads, idleSeconds: 30)

    /// Runs `body` on a blocking-pool thread and resumes with its result.
    public static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            pool.submit { continuation.resume(with: Result { try body() }) }
        }
    }

    /// The non-throwing variant.
    public static func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            pool.submit { continuation.resume(returning: body()) }
        }
    }

    /// Starts `body` on a blocking-pool thread and returns at once.
    public static func start(_ body: @escaping @Sendable () -> Void) {
        pool.submit(body)
    }
}

/// A pool of dedicated threads for blocking work: a new thread starts whenever more work is
/// waiting than threads are idle (up to `maxThreads`), and a thread idle for `idleSeconds`
/// exits, so the number alive follows the number of calls running and stays bounded.
///
/// `@unchecked Sendable`: every mutable field is read and written under `mutex`.
final class BlockingPool: @unchecked Sendable {
    typealias Work = @Sendable () -> Void

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    private let maxThreads: Int
    private let idleSeconds: Int
    private var pending: [Work] = []
    private var head = 0
    private var idle = 0
    private var threads = 0

    init(maxThreads: Int, idleSeconds: Int) {
        self.maxThreads = maxThreads
        self.idleSeconds = idleSeconds
        mutex = .allocate(capacity: 1)
        condition = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    /// Threads alive now (for tests).
    var threadCount: Int {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return threads
    }

    func submit(_ work: @escaping Work) {
        pthread_mutex_lock(mutex)
        pending.append(work)
        let spawn = pending.count - head > idle && threads < maxThreads
        if spawn { threads += 1 }
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
        if spawn { startThread() }
    }

    /// The next piece of work for a pool thread; nil when the thread has been idle long enough
    /// to exit (it is then no longer counted).
    fileprivate func next() -> Work? {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while head == pending.count {
            var deadline = timespec()
            clock_gettime(CLOCK_MONOTONIC, &deadline)
            deadline.tv_sec += idleSeconds
            idle += 1
            let rc = pthread_cond_timedwait(condition, mutex, &deadline)
            idle -= 1
            if rc == ETIMEDOUT && head == pending.count {
                threads -= 1
                return nil
            }
        }
        let work = pending[head]
        head += 1
        if head == pending.count {
            pending.removeAll(keepingCapacity: true)
            head = 0
        }
        return work
    }

    private func startThread() {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        var thread = pthread_t()
        // The pool is a process-wide constant: the unretained reference stays valid.
        let context = Unmanaged.passUnretained(self).toOpaque()
        let rc = pthread_create(&thread, &attributes, blockingPoolThread, context)
        pthread_attr_destroy(&attributes)
        if rc != 0 {
            // No thread: the work waits for a running one (there is at least the caller's turn
            // once any thread frees up); count it back.
            pthread_mutex_lock(mutex)
            threads -= 1
            pthread_mutex_unlock(mutex)
        }
    }
}

/// A pool thread's body: a non-capturing C function; the pool comes through `context`.
private func blockingPoolThread(_ context: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    guard let context else { return nil }
    let pool = Unmanaged<BlockingPool>.fromOpaque(context).takeUnretainedValue()
    while let work = pool.next() { work() }
    return nil
}
