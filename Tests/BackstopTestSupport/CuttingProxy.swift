import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A loopback TCP proxy that forwards everything a client sends to `target`, and passes
/// back only the first `cutAfter` bytes of the answer before closing both sides: a
/// connection cut part-way, to prove a truncated stream never becomes a backup.
/// With `cutAfter == nil` it forwards everything (a plain proxy).
///
/// Each accepted connection gets two threads (one per direction) doing blocking
/// read/write; the listening socket's fd is immutable, so the class is `Sendable`.
public final class CuttingProxy: Sendable {
    public let port: Int
    public let target: Int
    public let cutAfter: Int?
    private let listener: Int32

    public init(targetPort: Int, cutAfter: Int?) throws {
        target = targetPort
        self.cutAfter = cutAfter
        guard let (fd, port) = LoopbackSocket.listen(backlog: 16) else {
            throw TestSupportError("proxy bind/listen failed: \(String(cString: strerror(errno)))")
        }
        self.port = port
        listener = fd
        let target = targetPort, cut = cutAfter
        LoopbackSocket.acceptLoop(fd) { client in
            Self.serve(client: client, targetPort: target, cutAfter: cut)
        }
    }

    /// Stops accepting (connections in flight finish on their own).
    public func stop() {
        LoopbackSocket.close(listener: listener)
    }

    private static func serve(client: Int32, targetPort: Int, cutAfter: Int?) {
        guard let upstream = LoopbackSocket.connect(port: targetPort) else {
            close(client)
            return
        }
        let pair = ProxyPair(client: client, upstream: upstream)
        Thread.detachNewThread {
            LoopbackSocket.pump(from: client, to: upstream)
            pair.finish()
        }
        Thread.detachNewThread {
            LoopbackSocket.pump(from: upstream, to: client, limit: cutAfter)
            pair.finish()
        }
    }
}
