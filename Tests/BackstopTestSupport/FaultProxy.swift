import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A loopback HTTP proxy in front of an S3-compatible server that injects faults request by
/// request and forwards everything else byte for byte. Each request head (on new and on
/// kept-alive connections alike) is matched against the `rules` in order; the first rule that
/// matches and has faults left decides what the client gets:
///
/// - `.answer`: an HTTP answer from the proxy (a `503 SlowDown`, a `500 InternalError`, with
///   or without `Retry-After`), after reading the request body, and the connection closed;
/// - `.reset(afterBodyBytes:)`: the connection reset (RST) once that many body bytes came;
/// - `.hang`: the body read, then no answer ever (until the client gives up and closes).
///
/// With `port` given it listens there (an endpoint that "comes back" on an address a client
/// already uses); otherwise on a free port. Each connection gets a thread for the requests and
/// one for the answers from the target, doing blocking I/O; the rule budgets and the request
/// log are guarded by `lock`, everything else is immutable after init.
public final class FaultProxy: @unchecked Sendable {
    public enum Fault: Sendable {
        case answer(status: Int, reason: String, headers: [String], body: String)
        case reset(afterBodyBytes: Int)
        case hang
    }

    public struct Rule: Sendable {
        public var matches: @Sendable (String) -> Bool
        public var fault: Fault
        public var times: Int

        /// `times` requests whose head `matches` get `fault`.
        public init(times: Int, _ fault: Fault, when matches: @escaping @Sendable (String) -> Bool = { _ in true }) {
            self.matches = matches
            self.fault = fault
            self.times = times
        }
    }

    /// One request the proxy saw: its head, when its head arrived, and the rule that took it
    /// (nil: forwarded).
    public struct Seen: Sendable {
        public var head: String
        public var at: ContinuousClock.Instant
        public var rule: Int?
    }

    public let port: Int
    public let targetPort: Int
    private let listener: Int32
    private let lock = NSLock()
    private var rules: [Rule]
    private var seen: [Seen] = []
    private var forwarded = 0

    public static let slowDownBody = """
        <?xml version="1.0" encoding="UTF-8"?>
        <Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>SLOWDOWNTEST</RequestId></Error>
        """

    /// S3's answer to throttling.
    public static let slowDown = Fault.answer(status: 503, reason: "Slow Down", headers: [], body: slowDownBody)

    /// An S3 error document answer with `code`, and `Retry-After: retryAfter` when given.
    public static func error(_ status: Int, _ code: String, retryAfter: String? = nil) -> Fault {
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>\(code)</Code><Message>injected by FaultProxy</Message></Error>"
        return .answer(status: status, reason: code, headers: retryAfter.map { ["Retry-After: \($0)"] } ?? [], body: body)
    }

    public var endpoint: String { "http://127.0.0.1:\(port)" }

    /// Every request seen so far, in order of arrival.
    public var requests: [Seen] { lock.withLock { seen } }
    /// How many requests a rule answered with an `.answer` fault of status 503 so far.
    public var slowDownsSent: Int {
        lock.withLock {
            seen.filter { s in
                guard let r = s.rule, case .answer(503, _, _, _) = rules[r].fault else { return false }
                return true
            }.count
        }
    }
    /// How many connections were opened to the target.
    public var connectionsForwarded: Int { lock.withLock { forwarded } }
    /// The head (request line and headers) of every request forwarded to the target, in order.
    public var forwardedRequestHeads: [String] { lock.withLock { seen.filter { $0.rule == nil }.map(\.head) } }

    public init(targetPort: Int, rules: [Rule], port: Int? = nil) throws {
        self.targetPort = targetPort
        self.rules = rules
        guard let (fd, bound) = LoopbackSocket.listen(port: port ?? 0) else {
            throw TestSupportError("proxy bind/listen on port \(port ?? 0) failed: \(String(cString: strerror(errno)))")
        }
        self.port = bound
        listener = fd
        LoopbackSocket.acceptLoop(fd) { [self] client in
            Thread.detachNewThread { self.serve(client: client) }
        }
    }

    /// The first `slowDowns` requests get `503 Slow Down`, every later one is forwarded.
    public convenience init(targetPort: Int, slowDowns: Int, port: Int? = nil) throws {
        try self.init(targetPort: targetPort, rules: [Rule(times: slowDowns, Self.slowDown)], port: port)
    }

    /// Stops accepting (connections in flight finish on their own).
    public func stop() {
        LoopbackSocket.close(listener: listener)
    }

    /// Records the request and takes a fault from the first matching rule with some left.
    private func admit(_ head: String) -> Fault? {
        lock.withLock {
            var taken: Int?
            for (i, rule) in rules.enumerated() where rule.times > 0 && rule.matches(head) {
                rules[i].times -= 1
                taken = i
                break
            }
            seen.append(Seen(head: head, at: .now, rule: taken))
            return taken.map { rules[$0].fault }
        }
    }

    private func serve(client: Int32) {
        var pending = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        func fill() -> Bool {
            let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return false }
            pending += buffer[0..<n]
            return true
        }
        /// Takes up to `count` body bytes (buffered first); false when the client went away.
        func consume(_ count: Int, into upstream: Int32?) -> Bool {
            var left = count
            while left > 0 {
                if pending.isEmpty { guard fill() else { return false } }
                let take = min(left, pending.count)
                if let upstream { guard LoopbackSocket.sendAll(upstream, pending[0..<take]) else { return false } }
                pending.removeFirst(take)
                left -= take
            }
            return true
        }
        var upstream: Int32?
        let answersDone = DispatchSemaphore(value: 0)
        var resetClient = false
        defer {
            if let upstream {
                shutdown(upstream, Int32(SHUT_RDWR))
                answersDone.wait()
                close(upstream)
            }
            if resetClient {
                // SO_LINGER 0: close sends RST instead of FIN.
                var off = linger(l_onoff: 1, l_linger: 0)
                setsockopt(client, SOL_SOCKET, SO_LINGER, &off, socklen_t(MemoryLayout<linger>.size))
            } else {
                shutdown(client, Int32(SHUT_RDWR))
            }
            close(client)
        }
        while true {
            var end = Self.find([13, 10, 13, 10], in: pending)
            while end == nil {
                guard pending.count < 1 << 20, fill() else { return }
                end = Self.find([13, 10, 13, 10], in: pending)
            }
            let headEnd = end! + 4
            let head = String(decoding: pending[0..<headEnd], as: UTF8.self)
            pending.removeFirst(headEnd)
            var length = 0
            for line in head.lowercased().split(separator: "\r\n") where line.hasPrefix("content-length:") {
                length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
            }
            switch admit(head) {
            case .answer(let status, let reason, let headers, let body)?:
                // Read (and drop) the body, so the client sees an answer, not a reset.
                guard consume(length, into: nil) else { return }
                let bytes = Array(body.utf8)
                var response = "HTTP/1.1 \(status) \(reason)\r\nContent-Type: application/xml\r\nContent-Length: \(bytes.count)\r\n"
                for header in headers { response += header + "\r\n" }
                response += "Connection: close\r\n\r\n"
                LoopbackSocket.sendAll(client, Array(response.utf8) + bytes)
                return
            case .reset(let afterBodyBytes)?:
                _ = consume(min(afterBodyBytes, length), into: nil)
                resetClient = true
                return
            case .hang?:
                guard consume(length, into: nil) else { return }
                while fill() { pending.removeAll() }  // until the client gives up
                return
            case nil:
                if upstream == nil {
                    guard let fd = LoopbackSocket.connect(port: targetPort) else { return }
                    upstream = fd
                    lock.withLock { forwarded += 1 }
                    Thread.detachNewThread {
                        LoopbackSocket.pump(from: fd, to: client)
                        // The target closed (or was shut down): wake the request side.
                        shutdown(client, Int32(SHUT_RD))
                        answersDone.signal()
                    }
                }
                guard let upstream, LoopbackSocket.sendAll(upstream, Array(head.utf8)), consume(length, into: upstream) else { return }
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
