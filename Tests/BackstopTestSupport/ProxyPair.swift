import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Ends a proxied pair: the first direction to finish shuts both sockets down (waking the
/// other pump), the second closes them, so no fd number is reused while a pump still uses it.
final class ProxyPair: @unchecked Sendable {
    // `finished` is guarded by `lock`; the fds are immutable.
    private let lock = NSLock()
    private var finished = 0
    let client: Int32
    let upstream: Int32

    init(client: Int32, upstream: Int32) {
        self.client = client
        self.upstream = upstream
    }

    func finish() {
        lock.withLock {
            finished += 1
            shutdown(client, Int32(SHUT_RDWR))
            shutdown(upstream, Int32(SHUT_RDWR))
            if finished == 2 {
                close(client)
                close(upstream)
            }
        }
    }
}
