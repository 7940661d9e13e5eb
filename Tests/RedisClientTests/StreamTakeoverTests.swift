import BackstopCore
import BackstopTestSupport
import Foundation
import Testing
import RedisClient
#if canImport(Glibc)
import Glibc
#endif

/// Taking the socket over from hiredis: the bytes its reader already took off the socket
/// behind a reply come first, then the socket itself. A loopback server sends a reply and
/// the stream behind it in one write, so hiredis's 16 KiB read swallows both — exactly what
/// a master does when `+FULLRESYNC` and the start of the RDB arrive together.
@Suite("hiredis stream takeover", .timeLimit(.minutes(1)))
struct StreamTakeoverTests {
    /// Accepts one connection, waits for `PING`, answers `+PONG\r\n` + `inline` in one write,
    /// then sends `later` in a second write after a pause, and closes.
    final class OneShotServer: Sendable {
        let port: Int
        private let listener: Int32

        init(inline: [UInt8], later: [UInt8]) throws {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw TestSupportError("socket() failed") }
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = 0
            let bound = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0, listen(fd, 1) == 0 else {
                close(fd)
                throw TestSupportError("bind/listen failed")
            }
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
            }
            port = Int(UInt16(bigEndian: addr.sin_port))
            listener = fd
            Thread.detachNewThread {
                let client = accept(fd, nil, nil)
                guard client >= 0 else { return }
                defer { close(client) }
                var received: [UInt8] = []
                var buffer = [UInt8](repeating: 0, count: 256)
                while !String(decoding: received, as: UTF8.self).contains("PING\r\n") {
                    let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
                    guard n > 0 else { return }
                    received += buffer[0..<n]
                }
                let first = Array("+PONG\r\n".utf8) + inline
                _ = first.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                usleep(200_000)
                _ = later.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            }
        }

        func stop() { close(listener) }
    }

    @Test("bytes hiredis buffered behind a reply are read before the socket, none lost or repeated")
    func bufferedBytesComeFirst() throws {
        let inline = Array("+FULLRESYNC 0123456789012345678901234567890123456789 0\r\n$11\r\nREDIS0".utf8)
        let later = Array("01234".utf8)
        let server = try OneShotServer(inline: inline, later: later)
        defer { server.stop() }
        let connection = try RedisConnection(to: Endpoint(host: "127.0.0.1", port: server.port), timeout: 5)
        #expect(try connection.command(["PING"]) == .status("PONG"))

        var stream: [UInt8] = []
        var reads: [Int] = []
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
        defer { buffer.deallocate() }
        while true {
            let count = try connection.readStream(into: buffer, operation: "test")
            if count == 0 { break }
            reads.append(count)
            stream += buffer[0..<count]
        }
        #expect(stream == inline + later)
        // The first read is the buffered part alone: it was already in hiredis's reader.
        #expect(reads.first == inline.count)
    }

    @Test("a buffer smaller than what hiredis holds takes it in pieces")
    func bufferedBytesInPieces() throws {
        let inline = (0..<3000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let server = try OneShotServer(inline: inline, later: [])
        defer { server.stop() }
        let connection = try RedisConnection(to: Endpoint(host: "127.0.0.1", port: server.port), timeout: 5)
        #expect(try connection.command(["PING"]) == .status("PONG"))
        var stream: [UInt8] = []
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1000, alignment: 1)
        defer { buffer.deallocate() }
        while true {
            let count = try connection.readStream(into: buffer, operation: "test")
            if count == 0 { break }
            stream += buffer[0..<count]
        }
        #expect(stream == inline)
    }

    @Test("after a streaming command the connection refuses ordinary commands")
    func noCommandsAfterStreaming() throws {
        let server = try StandaloneRedis()
        defer { server.stop() }
        let connection = try RedisConnection(to: server.endpoint, timeout: 5)
        try connection.sendStreamingCommand(["PING"])
        #expect(throws: RedisError.self) { _ = try connection.command(["PING"]) }
        // The PING's answer is in the raw stream.
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 1)
        defer { buffer.deallocate() }
        let count = try connection.readStream(into: buffer, operation: "test")
        #expect(Array(buffer[0..<count]) == Array("+PONG\r\n".utf8))
    }
}
