#if canImport(Glibc)
import Glibc
#endif
import BackstopCore
import Foundation
import Synchronization

/// Serves one RDB snapshot as a Redis master would, so a running server loads it through
/// `REPLICAOF` (Redis loads an RDB at run time only from a master): listens on a TCP port,
/// answers the handshake (`ReplicationHandshake`), sends `$<len>\r\n` and the inflated RDB
/// (streamed from the .gz, memory bounded), then keeps the link alive with a PING every
/// second until `stop()`. A replica that reconnects is served again.
///
/// Sendable: the listening descriptor is immutable, the rest sits behind Mutexes; the
/// serving thread owns every connection descriptor.
public final class RDBMaster: Sendable {
    public let port: Int
    public let replicationID: String
    private let listenFD: Int32
    private let rdbGzipPath: String
    private let rdbLength: UInt64
    private let maxRate: UInt64?
    private let stopped = Mutex(false)
    /// Whether the snapshot's last byte went out, and whether the transfer was called off
    /// before that (`abortUnlessSent`): one lock, so exactly one of the two ever happens.
    private let gate = Mutex((sent: false, aborted: false))
    private let state = Mutex(Progress())
    private let finished = DispatchSemaphore(value: 0)

    public struct Progress: Sendable {
        /// Snapshots sent completely.
        public var transfers = 0
        public var lastError: String?
        public var commands: [String] = []
    }

    public var progress: Progress { state.withLock { $0 } }

    /// Binds `host:port` (port 0: any free port) and starts serving on a thread; the snapshot
    /// goes out at no more than `maxRate` bytes a second (nil: as fast as the target reads).
    public init(rdbGzipPath: String, rdbLength: UInt64, bindHost: String, port: Int, maxRate: UInt64? = nil) throws {
        self.rdbGzipPath = rdbGzipPath
        self.rdbLength = rdbLength
        self.maxRate = maxRate
        replicationID = ReplicationHandshake.newReplicationID()
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw FileSystemError.errno(errno, "socket", "restore master") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, bindHost, &address.sin_addr) == 1 else {
            close(fd)
            throw RestoreError("the listen address \(bindHost) is not an IPv4 address", nothingChanged: true)
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 4) == 0 else {
            let e = errno
            close(fd)
            throw RestoreError("cannot listen on \(bindHost):\(port): \(String(cString: strerror(e)))", nothingChanged: true)
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.port = Int(UInt16(bigEndian: actual.sin_port))
        listenFD = fd
        signal(SIGPIPE, SIG_IGN)
        let thread = Thread { [self] in
            self.serve()
            self.finished.signal()
        }
        thread.start()
    }

    /// Stops serving (closes the link; the target, told `REPLICAOF NO ONE` first, keeps its data).
    public func stop() {
        let already = stopped.withLock { s -> Bool in
            defer { s = true }
            return s
        }
        // Only the first call closes the socket: a second close could hit a descriptor the
        // process has reused since.
        guard !already else { return }
        finished.wait()
        close(listenFD)
    }

    private var isStopped: Bool { stopped.withLock { $0 } }

    /// Calls the transfer off unless its last byte has gone out: true when it was called off
    /// (no replica will ever get the whole snapshot from this master, so a target that was
    /// receiving it drops what it got and keeps its data), false when the snapshot was already
    /// sent whole (the target is loading it: past the point of no return).
    public func abortUnlessSent() -> Bool {
        gate.withLock { g in
            if g.sent { return false }
            g.aborted = true
            return true
        }
    }

    struct Aborted: Error, CustomStringConvertible {
        var description: String { "the transfer was called off (the restore was stopped)" }
    }

    private func serve() {
        while !isStopped {
            var p = pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 200) > 0 else { continue }
            let client = accept(listenFD, nil, nil)
            guard client >= 0 else { continue }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            do {
                try handle(client)
            } catch {
                state.withLock { $0.lastError = "\(error)" }
            }
            close(client)
        }
    }

    private func handle(_ fd: Int32) throws {
        var handshake = ReplicationHandshake(replicationID: replicationID)
        var buffer = [UInt8](repeating: 0, count: 16384)
        var lastPing = MonotonicClock.seconds()
        while !isStopped {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&p, 1, 250)
            if ready > 0 {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n == 0 { return }
                if n < 0 {
                    if errno == EINTR || errno == EAGAIN { continue }
                    throw FileSystemError.errno(errno, "read", "replica connection")
                }
                for action in try handshake.feed(Array(buffer[0..<n])) {
                    switch action {
                    case .reply(let bytes):
                        try FileSystem.writeAll(fd: fd, bytes, path: "replica connection")
                    case .sendSnapshot:
                        try FileSystem.writeAll(fd: fd, Array("$\(rdbLength)\r\n".utf8), path: "replica connection")
                        let stream = GunzipStream()
                        try stream.paced(path: rdbGzipPath, expectedBytes: rdbLength, maxRate: maxRate) { slice, last in
                            guard last else {
                                if isStopped || gate.withLock({ $0.aborted }) { throw Aborted() }
                                return try FileSystem.writeAll(fd: fd, slice, path: "replica connection")
                            }
                            // The last slice is written under the gate: once it is out the
                            // transfer can no longer be called off, and the other way round.
                            try gate.withLock { g in
                                if g.aborted || isStopped { throw Aborted() }
                                try FileSystem.writeAll(fd: fd, slice, path: "replica connection")
                                g.sent = true
                            }
                        }
                        guard stream.uncompressedBytes == rdbLength else {
                            throw RestoreError("the RDB inflated to \(stream.uncompressedBytes) bytes, \(rdbLength) were announced", nothingChanged: false)
                        }
                        state.withLock { $0.transfers += 1 }
                        lastPing = MonotonicClock.seconds()
                    }
                }
                let seen = handshake.commands
                state.withLock { $0.commands = seen }
            }
            if handshake.snapshotRequested, MonotonicClock.seconds() - lastPing >= 1 {
                // The replication stream's keep-alive (the replica times out without traffic).
                try FileSystem.writeAll(fd: fd, Array("*1\r\n$4\r\nPING\r\n".utf8), path: "replica connection")
                lastPing = MonotonicClock.seconds()
            }
        }
    }

    /// The local IPv4 address this host uses to reach `host` (what the target can connect
    /// back to, unless NAT is in the way: then pass --advertise-address).
    public static func localAddress(toward host: String, port: Int) -> String? {
        var hints = addrinfo()
        hints.ai_family = AF_INET
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let info = result else { return nil }
        defer { freeaddrinfo(result) }
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        guard connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else { return nil }
        var local = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard ok == 0 else { return nil }
        var text = [CChar](repeating: 0, count: 64)
        guard inet_ntop(AF_INET, &local.sin_addr, &text, socklen_t(text.count)) != nil else { return nil }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
