import BackstopCore
import BackstopMetrics
import Logging
import MetricsHTTPServer
import ServiceLifecycle

/// The /metrics and /healthz server as a lifecycle service: started on `run`, stopped on
/// graceful shutdown. The request handler only renders the registry's snapshot.
public struct MetricsService: Service {
    let listen: Endpoint
    /// TLS and basic auth from --web.config.file; nil serves plain HTTP to anyone.
    let web: WebConfig?
    let limits: HTTPServerLimits
    let registry: MetricsRegistry
    let logger: Logger

    public init(listen: Endpoint, web: WebConfig? = nil, limits: HTTPServerLimits, registry: MetricsRegistry, logger: Logger) {
        self.listen = listen
        self.web = web
        self.limits = limits
        self.registry = registry
        self.logger = logger
    }

    public func run() async throws {
        let registry = self.registry
        let server = try HTTPServer(listen: listen, web: web, limits: limits) { method, path in
            Self.route(method: method, path: path, registry: registry)
        }
        let shown = listen.host == "0.0.0.0" || listen.host == "::" ? "127.0.0.1" : listen.host
        let scheme = web?.tls == nil ? "http" : "https"
        let auth = web.map { $0.users.isEmpty ? "" : ", basic auth for \($0.users.count) user(s) from \($0.path)" } ?? ""
        logger.info("metrics at \(scheme)://\(Endpoint(host: shown, port: server.port))/metrics\(auth)")
        try? await gracefulShutdown()
        server.stop()
    }

    public static func route(method: String, path: String, registry: MetricsRegistry) -> HTTPResponse {
        guard method == "GET" || method == "HEAD" else {
            return HTTPResponse(status: 405, body: Array("method \(method) not allowed; use GET\n".utf8), headers: [("Allow", "GET, HEAD")])
        }
        let route = path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? path
        switch route {
        case "/metrics":
            return HTTPResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: registry.render())
        case "/healthz":
            return HTTPResponse(status: 200, text: "ok\n")
        case "/":
            return HTTPResponse(status: 200, text: "backstop \(BuildInfo.version)\n/metrics  Prometheus metrics\n/healthz  liveness\n")
        default:
            return HTTPResponse(status: 404, text: "not found: \(route) (try /metrics or /healthz)\n")
        }
    }
}
