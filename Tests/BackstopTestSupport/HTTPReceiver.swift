import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A small HTTP/1.1 server on a loopback port for tests: it records every request and
/// answers 200, or a failure status for the next N requests, or never answers at all (a
/// receiver that hangs). One thread accepts, one thread per connection; `Connection: close`.
public final class HTTPReceiver: @unchecked Sendable {
    // Mutable state below is guarded by `lock`; the socket is only closed under it.
    public struct Request: Sendable {
        public var method: String
        public var path: String
        /// Header names lowercased.
        public var headers: [String: String]
        public var body: [UInt8]
        /// The status this receiver answered (nil when it never answered).
        public var answered: Int?
        /// Wall-clock seconds the request was complete.
        public var receivedAt: Double

        public var bodyText: String { String(decoding: body, as: UTF8.self) }

        /// The body parsed as JSON.
        public func json() throws -> Any {
            try JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed])
        }
    }

    public let port: Int
    public var url: String { "http://127.0.0.1:\(port)" }

    private let lock = NSLock()
    private var listenFD: Int32
    private var recorded: [Request] = []
    private var failuresLeft = 0
    private var failureStatus = 500
    private var hang = false
    private var stopped = false
    private var responseBody: [UInt8] = Array("ok\n".utf8)
    private var router: (@Sendable (Request) -> (status: Int, body: [UInt8])?)?

    /// Listens on 127.0.0.1 on a port from `TestEnvironment.freePort()`, so the port ledger
    /// knows it and no other server of the run is handed the same one.
    public init() throws {
        var lastError = ""
        for _ in 0..<10 {
            let candidate = try TestEnvironment.freePort()
            if let (fd, _) = LoopbackSocket.listen(port: candidate) {
                port = candidate
                listenFD = fd
                LoopbackSocket.acceptLoop(fd) { [self] client in
                    Thread.detachNewThread { self.serve(client) }
                }
                return
            }
            lastError = String(cString: strerror(errno))
        }
        throw TestSupportError("HTTPReceiver: could not listen on a loopback port: \(lastError)")
    }

    deinit { stop() }

    /// The next `count` requests get `status` (then 200 again).
    public func failNext(_ count: Int, status: Int = 500) {
        lock.withLock {
            failuresLeft = count
            failureStatus = status
        }
    }

    /// The body of 200 answers (default `ok\n`).
    public func respond(with body: [UInt8]) {
        lock.withLock { responseBody = body }
    }

    /// Answers each request with what `handler` returns for it (nil: the usual answer), so a
    /// test server can behave like a small API (the instance metadata service).
    public func route(_ handler: @escaping @Sendable (Request) -> (status: Int, body: [UInt8])?) {
        lock.withLock { router = handler }
    }

    /// While true, requests are read and recorded but never answered (the connection stays
    /// open until `stop`).
    public func neverAnswer(_ value: Bool = true) {
        lock.withLock { hang = value }
    }

    /// Every request received so far, in arrival order.
    public var requests: [Request] { lock.withLock { recorded } }

    /// Waits until at least `count` requests arrived; throws after `timeout` seconds.
    @discardableResult
    public func waitForRequests(_ count: Int, timeout: Double = 10) async throws -> [Request] {
        try await AsyncWait.until(timeout: timeout, "\(count) request(s) at \(url)") { requests.count >= count }
        return requests
    }

    /// Closes the listening socket; hanging connections are closed by their threads.
    public func stop() {
        lock.withLock {
            guard !stopped else { return }
            stopped = true
            LoopbackSocket.close(listener: listenFD)
        }
    }

    private var isStopped: Bool { lock.withLock { stopped } }

    private func serve(_ fd: Int32) {
        defer { close(fd) }
        guard var request = readRequest(fd) else { return }
        let (firstStatus, hangNow) = lock.withLock { () -> (Int, Bool) in
            if hang { return (0, true) }
            if failuresLeft > 0 {
                failuresLeft -= 1
                return (failureStatus, false)
            }
            return (200, false)
        }
        if hangNow {
            lock.withLock { recorded.append(request) }
            while !isStopped { usleep(20_000) }
            return
        }
        var status = firstStatus
        var routed: [UInt8]?
        if status == 200, let answer = lock.withLock({ router })?(request) { (status, routed) = (answer.status, answer.body) }
        request.answered = status
        lock.withLock { recorded.append(request) }
        let body = routed ?? (status == 200 ? lock.withLock { responseBody } : Array("failing on purpose\n".utf8))
        let head = "HTTP/1.1 \(status) \(status == 200 ? "OK" : "Error")\r\nContent-Type: text/plain\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        writeAll(fd, Array(head.utf8) + body)
    }

    private func readRequest(_ fd: Int32) -> Request? {
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var headerEnd: Int?
        while headerEnd == nil {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return nil }
            buffer.append(contentsOf: chunk[0..<n])
            headerEnd = find(buffer, Array("\r\n\r\n".utf8))
        }
        let head = String(decoding: buffer[0..<headerEnd!], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let requestLine = lines.removeFirst().split(separator: " ")
        guard requestLine.count >= 2 else { return nil }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        if headers["expect"]?.lowercased() == "100-continue" {
            writeAll(fd, Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
        }
        let length = Int(headers["content-length"] ?? "0") ?? 0
        var body = Array(buffer[(headerEnd! + 4)...])
        while body.count < length {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return nil }
            body.append(contentsOf: chunk[0..<n])
        }
        return Request(method: String(requestLine[0]), path: String(requestLine[1]), headers: headers,
                       body: Array(body.prefix(length)), answered: nil, receivedAt: Date().timeIntervalSince1970)
    }

    private func find(_ haystack: [UInt8], _ needle: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for i in 0...(haystack.count - needle.count) where haystack[i..<(i + needle.count)].elementsEqual(needle) {
            return i
        }
        return nil
    }

    private func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            offset += n
        }
    }
}
