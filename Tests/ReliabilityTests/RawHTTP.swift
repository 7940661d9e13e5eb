import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Raw TCP for hostile-client tests: exact bytes out, whatever comes back, from a chosen
/// loopback source address (127.0.0.2 is another "host" for the per-IP limit).
struct RawConnection {
    let fd: Int32

    /// Connects to 127.0.0.1:`port` from `source`; nil when refused.
    init?(port: Int, source: String = "127.0.0.1", receiveTimeout: Double = 2, blocking: Bool = true) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        var from = sockaddr_in()
        from.sin_family = sa_family_t(AF_INET)
        from.sin_addr.s_addr = inet_addr(source)
        _ = withUnsafePointer(to: &from) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var tv = timeval(tv_sec: Int(receiveTimeout), tv_usec: Int((receiveTimeout - Double(Int(receiveTimeout))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var to = sockaddr_in()
        to.sin_family = sa_family_t(AF_INET)
        to.sin_addr.s_addr = inet_addr("127.0.0.1")
        to.sin_port = in_port_t(UInt16(port).bigEndian)
        let rc = withUnsafePointer(to: &to) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { Glibc.close(fd); return nil }
        self.fd = fd
    }

    /// Sends all of `bytes`; false when the server closed or reset the connection.
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }

    func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    /// Reads until the peer closes, the timeout passes or `limit` bytes.
    func readAll(limit: Int = 4 << 20) -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while out.count < limit {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            out += buffer[0..<n]
        }
        return out
    }

    /// True when the server has closed its side (read returns 0 or a reset) within `timeout`.
    func closedByPeer() -> Bool {
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, 0)
        return n == 0 || (n < 0 && errno == ECONNRESET)
    }

    func close() { Glibc.close(fd) }
}

/// One ordinary scrape (GET /metrics, Connection: close) from `source`: status and seconds.
func timedScrape(port: Int, source: String = "127.0.0.2") -> (status: Int, seconds: Double, body: String) {
    let started = Date()
    guard let connection = RawConnection(port: port, source: source, receiveTimeout: 5) else { return (0, 0, "") }
    defer { connection.close() }
    _ = connection.send("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    let response = String(decoding: connection.readAll(), as: UTF8.self)
    let seconds = Date().timeIntervalSince(started)
    return (statusCode(response), seconds, response)
}

/// The status of the first response in `text` (0 when none).
func statusCode(_ text: String) -> Int {
    guard text.hasPrefix("HTTP/1.") else { return 0 }
    return Int(text.dropFirst(9).prefix(3)) ?? 0
}
