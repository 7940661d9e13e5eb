import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A loopback HTTP proxy in front of an S3-compatible server that answers the first
/// `slowDowns` requests itself with `503 Slow Down` and an S3 `<Error><Code>SlowDown</Code>…`
/// body (as S3 does when throttling), then forwards every later connection byte for byte.
/// With `port` given it listens there (an endpoint that "comes back" on an address a client
/// already uses); otherwise on a free port.
///
/// Each connection gets its own thread(s) doing blocking I/O; `remaining` and `answered` are
/// guarded by `lock`, everything else is immutable after init.
public final class SlowDownProxy: @unchecked Sendable {
    public let port: Int
    public let targetPort: Int
    private let listener: Int32
    private let lock = NSLock()
    private var remaining: Int
    private var answered = 0
    private var forwarded = 0
    private var heads: [String] = []

    public static let slowDownBody = """
        <?xml version="1.0" encoding="UTF-8"?>
        <Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>SLOWDOWNTEST</RequestId></Error>
        """

    public var endpoint: String { "http://127.0.0.1:\(port)" }

    /// How many requests got the 503 so far.
    public var slowDownsSent: Int { lock.withLock { answered } }
    /// How many connections were forwarded to the target.
    public var connectionsForwarded: Int { lock.withLock { forwarded } }
    /// The head (request line and headers) of every request forwarded to the target, in order.
    public var forwardedRequestHeads: [String] { lock.withLock { heads } }

    public init(targetPort: Int, slowDowns: Int, port: Int? = nil) throws {
        self.targetPort = targetPort
        remaining = slowDowns
        guard let (fd, bound) = LoopbackSocket.listen(port: port ?? 0) else {
            throw TestSupportError("proxy bind/listen on port \(port ?? 0) failed: \(String(cString: strerror(errno)))")
        }
        self.port = bound
        listener = fd
        LoopbackSocket.acceptLoop(fd) { [self] client in
            Thread.detachNewThread { self.serve(client: client) }
        }
    }

    /// Stops accepting (connections in flight finish on their own).
    public func stop() {
        LoopbackSocket.close(listener: listener)
    }

    /// Takes one 503 from the budget, if any is left.
    private func takeSlowDown() -> Bool {
        lock.withLock {
            guard remaining > 0 else {
                forwarded += 1
                return false
            }
            remaining -= 1
            answered += 1
            return true
        }
    }

    private func serve(client: Int32) {
        // The request head (and whatever body bytes came with it).
        var head = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var headEnd: Int?
        while headEnd == nil {
            let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if n <= 0 {
                close(client)
                return
            }
            head += buffer[0..<n]
            headEnd = Self.find([13, 10, 13, 10], in: head).map { $0 + 4 }
            if head.count > 1 << 20 {
                close(client)
                return
            }
        }
        guard let headEnd else { return }
        if takeSlowDown() {
            // Read (and drop) the body, so the client sees an answer, not a reset.
            let text = String(decoding: head[0..<headEnd], as: UTF8.self).lowercased()
            var length = 0
            for line in text.split(separator: "\r\n") where line.hasPrefix("content-length:") {
                length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
            }
            var left = length - (head.count - headEnd)
            while left > 0 {
                let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, min($0.count, left), 0) }
                if n <= 0 { break }
                left -= n
            }
            let body = Array(Self.slowDownBody.utf8)
            let response = "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: \(body.count)\r\n"
                + "Connection: close\r\n\r\n"
            LoopbackSocket.sendAll(client, Array(response.utf8) + body)
            shutdown(client, Int32(SHUT_WR))
            close(client)
            return
        }
        guard let upstream = LoopbackSocket.connect(port: targetPort) else {
            close(client)
            return
        }
        let pair = ProxyPair(client: client, upstream: upstream)
        Thread.detachNewThread { [self, head] in
            forwardRequests(from: client, to: upstream, buffered: head)
            pair.finish()
        }
        LoopbackSocket.pump(from: upstream, to: client)
        pair.finish()
    }

    /// Forwards request after request (head, then Content-Length bytes of body), recording
    /// each head; keep-alive connections carry several.
    private func forwardRequests(from client: Int32, to upstream: Int32, buffered: [UInt8]) {
        var pending = buffered
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        func fill() -> Bool {
            let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return false }
            pending += buffer[0..<n]
            return true
        }
        while true {
            var end = Self.find([13, 10, 13, 10], in: pending)
            while end == nil {
                guard fill() else { return }
                end = Self.find([13, 10, 13, 10], in: pending)
            }
            let headEnd = end! + 4
            let text = String(decoding: pending[0..<headEnd], as: UTF8.self)
            lock.withLock { heads.append(text) }
            var length = 0
            for line in text.lowercased().split(separator: "\r\n") where line.hasPrefix("content-length:") {
                length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
            }
            guard LoopbackSocket.sendAll(upstream, pending[0..<headEnd]) else { return }
            pending.removeFirst(headEnd)
            var left = length
            while left > 0 {
                if pending.isEmpty { guard fill() else { return } }
                let take = min(left, pending.count)
                guard LoopbackSocket.sendAll(upstream, pending[0..<take]) else { return }
                pending.removeFirst(take)
                left -= take
            }
        }
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] {
            if Array(haystack[i..<(i + needle.count)]) == needle { return i }
        }
        return nil
    }
}
