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
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("proxy socket() failed") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            close(fd)
            throw TestSupportError("proxy bind/listen failed: \(String(cString: strerror(errno)))")
        }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        port = Int(UInt16(bigEndian: addr.sin_port))
        listener = fd
        let target = targetPort, cut = cutAfter
        Thread.detachNewThread {
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 {
                    if errno == EINTR { continue }
                    return // listener closed by stop()
                }
                Self.serve(client: client, targetPort: target, cutAfter: cut)
            }
        }
    }

    /// Stops accepting (connections in flight finish on their own).
    public func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private static func serve(client: Int32, targetPort: Int, cutAfter: Int?) {
        let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(targetPort).bigEndian
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(upstream)
            close(client)
            return
        }
        let closer = PairCloser(client: client, upstream: upstream)
        Thread.detachNewThread {
            pump(from: client, to: upstream, limit: nil)
            closer.closeBoth()
        }
        Thread.detachNewThread {
            pump(from: upstream, to: client, limit: cutAfter)
            closer.closeBoth()
        }
    }

    private static func pump(from source: Int32, to destination: Int32, limit: Int?) {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var forwarded = 0
        while true {
            var wanted = buffer.count
            if let limit { wanted = min(wanted, limit - forwarded) }
            if wanted <= 0 { return }
            let count = buffer.withUnsafeMutableBytes { recv(source, $0.baseAddress, wanted, 0) }
            if count <= 0 { return }
            var sent = 0
            while sent < count {
                let result = buffer.withUnsafeBytes { send(destination, $0.baseAddress! + sent, count - sent, Int32(MSG_NOSIGNAL)) }
                if result <= 0 { return }
                sent += result
            }
            forwarded += count
        }
    }
}

/// Ends a proxied pair: the first direction to finish shuts both sockets down (waking the
/// other pump), the second closes them, so no fd number is reused while a pump still uses it.
private final class PairCloser: @unchecked Sendable {
    // `finished` is guarded by `lock`.
    private let lock = NSLock()
    private var finished = 0
    private let client: Int32
    private let upstream: Int32

    init(client: Int32, upstream: Int32) {
        self.client = client
        self.upstream = upstream
    }

    func closeBoth() {
        lock.lock()
        defer { lock.unlock() }
        finished += 1
        shutdown(client, Int32(SHUT_RDWR))
        shutdown(upstream, Int32(SHUT_RDWR))
        if finished == 2 {
            close(client)
            close(upstream)
        }
    }
}
