import BackstopCore
#if canImport(Glibc)
import Glibc
#endif

/// A blocking TCP socket with a connect timeout and read/write timeouts (SO_RCVTIMEO /
/// SO_SNDTIMEO), for the replication stream, which hiredis cannot hand over as a stream.
///
/// Not `Sendable`: owned by the one thread running a snapshot fetch. Errors are
/// `RedisError(.connect / .io)` naming the server.
final class PlainSocket {
    let endpoint: Endpoint
    private let fd: Int32
    private let timeout: Double

    init(connectingTo endpoint: Endpoint, timeout: Double) throws {
        self.endpoint = endpoint
        self.timeout = timeout
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(endpoint.host, String(endpoint.port), &hints, &list)
        guard status == 0, let list else {
            throw RedisError(.connect, endpoint: endpoint, operation: "resolve", message: String(cString: gai_strerror(status)))
        }
        defer { freeaddrinfo(list) }
        var lastError = "no address"
        var candidate: UnsafeMutablePointer<addrinfo>? = list
        while let info = candidate {
            candidate = info.pointee.ai_next
            let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
            guard fd >= 0 else {
                lastError = String(cString: strerror(errno))
                continue
            }
            if let error = Self.connect(fd: fd, address: info.pointee.ai_addr, length: info.pointee.ai_addrlen, timeout: timeout) {
                lastError = error
                close(fd)
                continue
            }
            self.fd = fd
            try setTimeouts()
            return
        }
        throw RedisError(.connect, endpoint: endpoint, operation: "connect", message: lastError)
    }

    deinit {
        close(fd)
    }

    /// Non-blocking connect, poll for `timeout`, back to blocking. Returns an error text or nil.
    private static func connect(fd: Int32, address: UnsafeMutablePointer<sockaddr>?, length: socklen_t, timeout: Double) -> String? {
        let flags = fcntl(fd, F_GETFL, 0)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        defer { _ = fcntl(fd, F_SETFL, flags) }
        if Glibc.connect(fd, address, length) == 0 { return nil }
        guard errno == EINPROGRESS else { return String(cString: strerror(errno)) }
        var pollfd = Glibc.pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        let ready = poll(&pollfd, 1, Int32(max(1, timeout * 1000)))
        if ready == 0 { return "no connection within \(timeout) s" }
        if ready < 0 { return String(cString: strerror(errno)) }
        var soError: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &size)
        return soError == 0 ? nil : String(cString: strerror(soError))
    }

    private func setTimeouts() throws {
        let seconds = max(0.001, timeout)
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1_000_000))
        let size = socklen_t(MemoryLayout<timeval>.size)
        guard setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, size) == 0,
              setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, size) == 0 else {
            throw RedisError(.connect, endpoint: endpoint, operation: "set socket timeouts", message: String(cString: strerror(errno)))
        }
    }

    /// Writes every byte or throws.
    func writeAll(_ bytes: [UInt8], operation: String) throws {
        var sent = 0
        try bytes.withUnsafeBytes { raw in
            while sent < raw.count {
                let result = send(fd, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
                if result < 0 {
                    if errno == EINTR { continue }
                    throw RedisError(.io, endpoint: endpoint, operation: operation, message: describe(errno))
                }
                sent += result
            }
        }
    }

    /// Reads what is available (at least one byte); 0 means the server closed the connection.
    func read(into buffer: UnsafeMutableRawBufferPointer, operation: String) throws -> Int {
        while true {
            let result = recv(fd, buffer.baseAddress, buffer.count, 0)
            if result >= 0 { return result }
            if errno == EINTR { continue }
            throw RedisError(.io, endpoint: endpoint, operation: operation, message: describe(errno))
        }
    }

    /// Reads one `\n`-terminated line (without `\r\n`), a byte at a time: only used for the
    /// few short replies of the handshake, before the stream starts.
    func readLine(operation: String) throws -> String {
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            let count = try withUnsafeMutableBytes(of: &byte) { try read(into: $0, operation: operation) }
            if count == 0 {
                throw RedisError(.io, endpoint: endpoint, operation: operation, message: "the server closed the connection")
            }
            if byte == UInt8(ascii: "\n") { break }
            line.append(byte)
            if line.count > 4096 {
                throw RedisError(.unexpectedReply, endpoint: endpoint, operation: operation, message: "reply line longer than 4096 bytes")
            }
        }
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        return String(decoding: line, as: UTF8.self)
    }

    private func describe(_ code: Int32) -> String {
        if code == EAGAIN || code == EWOULDBLOCK { return "no data from the server within \(timeout) s" }
        return String(cString: strerror(code))
    }

    /// RESP encoding of one command.
    static func encode(_ arguments: [String]) -> [UInt8] {
        var out = Array("*\(arguments.count)\r\n".utf8)
        for argument in arguments {
            let bytes = Array(argument.utf8)
            out += Array("$\(bytes.count)\r\n".utf8) + bytes + Array("\r\n".utf8)
        }
        return out
    }
}
