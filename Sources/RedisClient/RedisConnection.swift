import BackstopCore
import CHiredis
#if canImport(Glibc)
import Glibc
#endif

/// One blocking connection to a Redis server or Sentinel, owning a hiredis `redisContext`.
///
/// Not `Sendable`: the context belongs to the thread that uses it. Create, use and drop it
/// inside one `Blocking.run` closure (`Redis.withConnection` does exactly that); hiredis
/// calls block and must never run on Swift's cooperative pool.
///
/// Every command goes through `redisCommandArgv` (binary-safe, no format string), never the
/// variadic `redisCommand`. After an I/O or protocol error hiredis leaves the context
/// unusable, so the connection marks itself broken and later commands fail fast.
public final class RedisConnection {
    /// The server this connection talks to.
    public let endpoint: Endpoint
    private let context: UnsafeMutablePointer<redisContext>
    private var broken = false
    /// A command was sent whose answer is a raw stream (`sendStreamingCommand`).
    private var streaming = false

    /// Connects with `timeout` seconds for the TCP connect and for every later read and
    /// write, then authenticates when a password is given (`AUTH user pass` with a user,
    /// `AUTH pass` without). Throws `RedisError` (`.connect`, `.authentication`, `.io`).
    public init(to endpoint: Endpoint, username: String? = nil, password: Secret? = nil, timeout: Double) throws {
        self.endpoint = endpoint
        let milliseconds = max(1, Int(timeout * 1000))
        let tv = backstop_timeval_ms(milliseconds)
        guard let context = redisConnectWithTimeout(endpoint.host, Int32(endpoint.port), tv) else {
            throw RedisError(.connect, endpoint: endpoint, operation: "connect", message: "out of memory allocating the connection")
        }
        self.context = context
        if context.pointee.err != 0 {
            let message = Self.describe(context: context, timeout: timeout)
            redisFree(context)
            throw RedisError(.connect, endpoint: endpoint, operation: "connect", message: message)
        }
        guard redisSetTimeout(context, tv) == REDIS_OK else {
            let message = Self.describe(context: context, timeout: timeout)
            redisFree(context)
            throw RedisError(.connect, endpoint: endpoint, operation: "set timeout", message: message)
        }
        self.timeout = timeout
        if let password {
            try authenticate(username: username, password: password)
        }
    }

    private let timeout: Double

    deinit {
        redisFree(context)
    }

    /// Sends `AUTH [username] password`. A refusal is `.authentication`, quoting the server's
    /// message (which never contains the password).
    public func authenticate(username: String?, password: Secret) throws {
        var arguments: [[UInt8]] = [Array("AUTH".utf8)]
        if let username { arguments.append(Array(username.utf8)) }
        arguments.append(Array(password.value.utf8))
        let reply = try send(arguments, operation: "AUTH")
        if case .error(let message) = reply {
            throw RedisError(.authentication, endpoint: endpoint,
                             operation: username.map { "AUTH as user \($0)" } ?? "AUTH", message: message)
        }
    }

    /// Sends one command (text arguments) and returns the reply; an error reply is returned
    /// as `.error`, I/O and protocol failures throw.
    public func command(_ arguments: [String]) throws -> RedisReply {
        try command(bytes: arguments.map { Array($0.utf8) })
    }

    /// Sends one command with binary-safe arguments.
    public func command(bytes arguments: [[UInt8]]) throws -> RedisReply {
        let name = arguments.first.map { String(decoding: $0, as: UTF8.self).uppercased() } ?? "(empty)"
        // Never name AUTH's arguments; other commands are named by their first word only.
        return try send(arguments, operation: name)
    }

    /// Like `command(_:)`, but an error reply throws `RedisError(.server)` naming the command.
    public func call(_ arguments: [String]) throws -> RedisReply {
        let reply = try command(arguments)
        if case .error(let message) = reply {
            let operation = arguments.prefix(2).joined(separator: " ")
            throw RedisError(.server, endpoint: endpoint, operation: arguments.first?.uppercased() == "AUTH" ? "AUTH" : operation,
                             message: message)
        }
        return reply
    }

    private func send(_ arguments: [[UInt8]], operation: String) throws -> RedisReply {
        let replyPointer: UnsafeMutablePointer<redisReply>? = try withArgv(arguments, operation: operation) { argc, argv, argvlen in
            backstop_redis_command_argv(context, argc, argv, argvlen)
        }
        guard let replyPointer else {
            throw failure(operation: operation)
        }
        defer { freeReplyObject(replyPointer) }
        return Self.convert(replyPointer)
    }

    /// Sends one command and reads no reply: from here on the connection carries a raw
    /// stream (the replication handshake's PSYNC, answered with keepalives, `+FULLRESYNC` and
    /// the RDB), read with `readStream`. Later commands fail.
    public func sendStreamingCommand(_ arguments: [String]) throws {
        let operation = arguments.first?.uppercased() ?? "(empty)"
        let status = try withArgv(arguments.map { Array($0.utf8) }, operation: operation) { argc, argv, argvlen in
            backstop_redis_send_argv(context, argc, argv, argvlen)
        }
        streaming = true
        guard status == REDIS_OK else { throw failure(operation: operation) }
    }

    /// Reads what the server sent (at least one byte; 0 means it closed the connection):
    /// first the bytes hiredis's reader had already taken off the socket behind the last
    /// reply, then straight from the socket, under the same timeout as every command.
    public func readStream(into buffer: UnsafeMutableRawBufferPointer, operation: String) throws -> Int {
        guard !broken else {
            throw RedisError(.io, endpoint: endpoint, operation: operation, message: "the connection failed earlier; open a new one")
        }
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        let buffered = backstop_redis_take_buffered(context, base, buffer.count)
        if buffered > 0 { return buffered }
        while true {
            let result = recv(context.pointee.fd, base, buffer.count, 0)
            if result >= 0 { return result }
            if errno == EINTR { continue }
            let code = errno
            broken = true
            let message = code == EAGAIN || code == EWOULDBLOCK
                ? "no data from the server within \(timeout) s" : String(cString: strerror(code))
            throw RedisError(.io, endpoint: endpoint, operation: operation, message: message)
        }
    }

    /// Lays `arguments` out as hiredis's argc/argv/argvlen and runs `body` with them; the
    /// pointers live only inside the call.
    private func withArgv<T>(_ arguments: [[UInt8]], operation: String,
                             _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafeMutablePointer<Int>) -> T) throws -> T {
        guard !broken else {
            throw RedisError(.io, endpoint: endpoint, operation: operation, message: "the connection failed earlier; open a new one")
        }
        guard !streaming else {
            throw RedisError(.io, endpoint: endpoint, operation: operation, message: "the connection carries a replication stream; open a new one")
        }
        guard !arguments.isEmpty else {
            throw RedisError(.unexpectedReply, endpoint: endpoint, operation: operation, message: "no command given")
        }
        // One contiguous buffer holds every argument; pointers into it live only inside the closure.
        var lengths = arguments.map(\.count)
        var offsets: [Int] = []
        var flat: [UInt8] = []
        flat.reserveCapacity(lengths.reduce(0, +) + 1)
        for argument in arguments {
            offsets.append(flat.count)
            flat.append(contentsOf: argument)
        }
        flat.append(0) // a valid base pointer even when every argument is empty
        return flat.withUnsafeBufferPointer { buffer in
            let base = UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self)
            var pointers: [UnsafePointer<CChar>?] = offsets.map { base + $0 }
            return pointers.withUnsafeMutableBufferPointer { argv in
                lengths.withUnsafeMutableBufferPointer { argvlen in
                    body(Int32(arguments.count), argv.baseAddress!, argvlen.baseAddress!)
                }
            }
        }
    }

    /// The error for a failed hiredis call; the context is unusable from here on.
    private func failure(operation: String) -> RedisError {
        broken = true
        let kind: RedisError.Kind = context.pointee.err == REDIS_ERR_PROTOCOL ? .unexpectedReply : .io
        return RedisError(kind, endpoint: endpoint, operation: operation, message: Self.describe(context: context, timeout: timeout))
    }

    private static func convert(_ pointer: UnsafeMutablePointer<redisReply>) -> RedisReply {
        let reply = pointer.pointee
        switch reply.type {
        case REDIS_REPLY_STATUS:
            return .status(text(reply))
        case REDIS_REPLY_ERROR:
            return .error(text(reply))
        case REDIS_REPLY_INTEGER:
            return .integer(Int64(reply.integer))
        case REDIS_REPLY_STRING:
            guard let str = reply.str else { return .bulk([]) }
            return .bulk(Array(UnsafeRawBufferPointer(start: str, count: reply.len)))
        case REDIS_REPLY_ARRAY:
            var elements: [RedisReply] = []
            elements.reserveCapacity(reply.elements)
            for index in 0..<reply.elements {
                if let element = reply.element[index] { elements.append(convert(element)) } else { elements.append(.null) }
            }
            return .array(elements)
        default:
            return .null
        }
    }

    private static func text(_ reply: redisReply) -> String {
        guard let str = reply.str else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: str, count: reply.len), as: UTF8.self)
    }

    /// hiredis's error text, with "Resource temporarily unavailable" (a read or write
    /// timeout under SO_RCVTIMEO) spelled as the timeout it is.
    private static func describe(context: UnsafeMutablePointer<redisContext>, timeout: Double) -> String {
        let raw = String(cString: backstop_redis_errstr(context))
        if context.pointee.err == REDIS_ERR_EOF { return "the server closed the connection" }
        if raw.contains("temporarily unavailable") || raw.lowercased().contains("timed out") {
            return "no answer within \(timeout) s (\(raw))"
        }
        return raw.isEmpty ? "unknown hiredis error \(context.pointee.err)" : raw
    }
}
