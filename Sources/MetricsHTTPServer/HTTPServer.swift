#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
public import BackstopCore
import CMicroHTTPD

/// What a route answers. Bodies are small (the metrics text), so they are copied into
/// libmicrohttpd's response and the Swift buffer can go away at once.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]
    /// At most one extra header is sent (Allow on 405); enough for this server.
    public var headers: [(String, String)]

    public init(status: Int, contentType: String = "text/plain; charset=utf-8", body: [UInt8], headers: [(String, String)] = []) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.headers = headers
    }

    public init(status: Int, text: String) {
        self.init(status: status, body: Array(text.utf8))
    }
}

/// Answers one request. Runs on libmicrohttpd's own threads, so it must be `@Sendable`,
/// fast, and never wait on anything but a short lock.
public typealias HTTPRequestHandler = @Sendable (_ method: String, _ path: String) -> HTTPResponse

/// The context libmicrohttpd hands back to `accessHandler`; immutable (the authenticator
/// locks its own cache), so safe on any thread.
private final class HandlerBox: Sendable {
    let handler: HTTPRequestHandler
    let authenticator: BasicAuthenticator?
    init(_ handler: @escaping HTTPRequestHandler, authenticator: BasicAuthenticator?) {
        self.handler = handler
        self.authenticator = authenticator
    }
}

/// The answer to a request without valid credentials (no user name, no hint of which part
/// was wrong).
private let unauthorized = HTTPResponse(
    status: 401, body: Array("401 Unauthorized: this server needs HTTP basic auth (see its web config file)\n".utf8),
    headers: [("WWW-Authenticate", "Basic realm=\"backstop\", charset=\"UTF-8\"")])

/// libmicrohttpd's access callback. A nonisolated static function (never a closure written in
/// an actor-isolated context): libmicrohttpd calls it from its pool threads.
private func accessHandler(
    _ cls: UnsafeMutableRawPointer?, _ connection: OpaquePointer?, _ url: UnsafePointer<CChar>?,
    _ method: UnsafePointer<CChar>?, _ version: UnsafePointer<CChar>?, _ uploadData: UnsafePointer<CChar>?,
    _ uploadDataSize: UnsafeMutablePointer<Int>?, _ connectionContext: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
) -> MHD_Result {
    guard let cls, let connection else { return backstop_mhd_no() }
    let box = Unmanaged<HandlerBox>.fromOpaque(cls).takeUnretainedValue()
    let methodText = method.map { String(cString: $0) } ?? "GET"
    // A GET or HEAD is answered on the second call, once libmicrohttpd has the whole request:
    // a response queued on the first call makes it close the connection afterwards, so no
    // keep-alive (a new TCP and TLS handshake every scrape) and no pipelining. Any other
    // method is answered at once (405), and the connection closes, body unread.
    if let connectionContext, connectionContext.pointee == nil, methodText == "GET" || methodText == "HEAD" {
        connectionContext.pointee = UnsafeMutableRawPointer(bitPattern: 1)
        return backstop_mhd_yes()
    }
    let path = url.map { String(cString: $0) } ?? "/"
    // /healthz stays open: it says only "ok", and container health checks have no password.
    let response: HTTPResponse
    if let authenticator = box.authenticator, path != "/healthz",
       !authenticator.allows(header: backstop_mhd_authorization(connection).map { String(cString: $0) }) {
        response = unauthorized
    } else {
        response = box.handler(methodText, path)
    }
    let extra = response.headers.first
    return response.body.withUnsafeBytes { raw in
        // The shim copies the bytes (MHD_RESPMEM_MUST_COPY) before this pointer dies.
        backstop_mhd_respond(connection, UInt32(response.status), raw.baseAddress, raw.count,
                             response.contentType, extra?.0, extra?.1)
    }
}

/// Errors starting the server.
public enum HTTPServerError: Error, CustomStringConvertible {
    case badAddress(String)
    case startFailed(String)
    case tlsUnavailable
    case tlsStartFailed(String, certFile: String, keyFile: String)

    public var description: String {
        switch self {
        case let .badAddress(text): return "cannot listen on \(text): not an IP address or resolvable host name"
        case let .startFailed(text): return "cannot start the metrics server on \(text) (port in use, or address not on this machine?)"
        case .tlsUnavailable: return "this libmicrohttpd was built without TLS; install Debian's libmicrohttpd12 (built with GnuTLS) or remove tls_server_config"
        case let .tlsStartFailed(text, certFile, keyFile):
            return "cannot start the metrics server with TLS on \(text): check that \(certFile) is a PEM certificate and \(keyFile) its unencrypted PEM private key (they must match), or that the port is free"
        }
    }
}

/// An HTTP server on libmicrohttpd with an internal thread pool. It owns the daemon handle;
/// `stop()` (or deinit) stops the daemon first and only then releases the handler context,
/// so no libmicrohttpd thread can call into freed memory.
public final class HTTPServer {
    private var daemon: OpaquePointer?
    private let context: Unmanaged<HandlerBox>
    private var tlsStrings: [UnsafeMutablePointer<CChar>?] = []
    /// The port bound (useful with port 0).
    public let port: Int

    /// Starts listening. `web` adds TLS and basic auth (nil: plain HTTP, open to all);
    /// `limits` bounds what clients may hold.
    public init(listen: Endpoint, web: WebConfig? = nil, limits: HTTPServerLimits = HTTPServerLimits(),
                handler: @escaping HTTPRequestHandler) throws {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(listen.host, String(listen.port), &hints, &result) == 0, let info = result else {
            throw HTTPServerError.badAddress(listen.description)
        }
        defer { freeaddrinfo(result) }
        var flags = UInt32(MHD_USE_INTERNAL_POLLING_THREAD.rawValue | MHD_USE_EPOLL.rawValue | MHD_USE_TURBO.rawValue)
        if info.pointee.ai_family == AF_INET6 { flags |= UInt32(MHD_USE_IPv6.rawValue) }
        let tls = web?.tls
        if tls != nil, backstop_mhd_has_tls() == 0 { throw HTTPServerError.tlsUnavailable }
        let users = web?.users ?? [:]
        let context = Unmanaged.passRetained(HandlerBox(handler, authenticator: users.isEmpty ? nil : BasicAuthenticator(users: users)))
        // libmicrohttpd keeps pointers to the PEM text and priorities: copies that live as long
        // as the daemon (freed in stop(), after it).
        let key = tls.map { strdup($0.keyPEM) }
        let certificate = tls.map { strdup($0.certificatePEM) }
        let priorities = tls.map { strdup($0.gnutlsPriorities) }
        let daemon = backstop_mhd_start(
            flags, info.pointee.ai_addr, accessHandler, context.toOpaque(),
            UInt32(max(1, limits.threads)), UInt32(limits.idleTimeoutSeconds), UInt32(limits.connections),
            UInt32(limits.connectionsPerIP), limits.memoryPerConnection, key ?? nil, certificate ?? nil, priorities ?? nil)
        let strings = [key ?? nil, certificate ?? nil, priorities ?? nil]
        guard let daemon else {
            Self.wipe(strings)
            context.release()
            if let tls { throw HTTPServerError.tlsStartFailed(listen.description, certFile: tls.certFile, keyFile: tls.keyFile) }
            throw HTTPServerError.startFailed(listen.description)
        }
        self.daemon = daemon
        self.context = context
        self.tlsStrings = strings
        self.port = Int(backstop_mhd_bound_port(daemon))
    }

    /// Stops accepting, waits for the pool threads to finish, then frees the context.
    public func stop() {
        guard let daemon else { return }
        MHD_stop_daemon(daemon)
        self.daemon = nil
        context.release()
        Self.wipe(tlsStrings)
        tlsStrings = []
    }

    deinit { stop() }

    /// Zeroes (the key) and frees the C copies.
    private static func wipe(_ strings: [UnsafeMutablePointer<CChar>?]) {
        for case let pointer? in strings {
            explicit_bzero(pointer, strlen(pointer))
            free(pointer)
        }
    }
}
