import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The blocking loopback TCP calls the test servers and proxies share, so the `sockaddr_in`
/// casts, `MSG_NOSIGNAL` and partial sends are written once. Every call blocks: use it from
/// the fixtures' own threads, never from the cooperative pool.
public enum LoopbackSocket {
    /// A socket listening on 127.0.0.1:`port` (0: a free one) and the port it got, or nil with
    /// `errno` set.
    public static func listen(port: Int = 0, backlog: Int32 = 64) -> (fd: Int32, port: Int)? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, port: port), Glibc.listen(fd, backlog) == 0 else {
            let saved = errno
            Glibc.close(fd)
            errno = saved
            return nil
        }
        return (fd, boundPort(fd))
    }

    /// Binds `fd` to 127.0.0.1:`port`.
    public static func bind(_ fd: Int32, port: Int) -> Bool {
        var addr = address(port: port)
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    /// The local port `fd` is bound to.
    public static func boundPort(_ fd: Int32) -> Int {
        var addr = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// A socket connected to `host`:`port` (loopback by default), or nil.
    public static func connect(port: Int, host: String = "127.0.0.1") -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var addr = address(port: port, host: host)
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            Glibc.close(fd)
            return nil
        }
        return fd
    }

    /// Accepts connections on a new thread until `fd` is closed, handing each to `handle`
    /// (on the accepting thread: start a thread there for slow work).
    public static func acceptLoop(_ fd: Int32, _ handle: @escaping @Sendable (Int32) -> Void) {
        Thread.detachNewThread {
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 {
                    if errno == EINTR { continue }
                    return // the listener was closed
                }
                handle(client)
            }
        }
    }

    /// Stops a listener: wakes its accept loop and closes it.
    public static func close(listener fd: Int32) {
        shutdown(fd, Int32(SHUT_RDWR))
        Glibc.close(fd)
    }

    /// Sends all of `bytes`; false when the peer went away.
    @discardableResult
    public static func sendAll(_ fd: Int32, _ bytes: some Collection<UInt8>) -> Bool {
        // Arrays and slices send from their own storage; only other collections are copied.
        if let sent = bytes.withContiguousStorageIfAvailable({ sendRaw(fd, UnsafeRawBufferPointer($0)) }) { return sent }
        return Array(bytes).withUnsafeBytes { sendRaw(fd, $0) }
    }

    private static func sendRaw(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let result = send(fd, bytes.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL))
            if result <= 0 { return false }
            sent += result
        }
        return true
    }

    /// Copies from `source` to `destination` until either side ends, or after `limit` bytes.
    public static func pump(from source: Int32, to destination: Int32, limit: Int? = nil) {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var forwarded = 0
        while true {
            var wanted = buffer.count
            if let limit { wanted = min(wanted, limit - forwarded) }
            if wanted <= 0 { return }
            let count = buffer.withUnsafeMutableBytes { recv(source, $0.baseAddress, wanted, 0) }
            if count <= 0 { return }
            guard sendAll(destination, buffer[0..<count]) else { return }
            forwarded += count
        }
    }

    private static func address(port: Int, host: String = "127.0.0.1") -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr(host)
        addr.sin_port = UInt16(port).bigEndian
        return addr
    }
}
