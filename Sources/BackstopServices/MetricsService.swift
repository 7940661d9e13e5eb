import BackstopCore
import BackstopMetrics
import Logging
import MetricsHTTPServer
import ServiceLifecycle

/// The /metrics and /healthz server as a lifecycle service: started on `run`, stopped on
/// graceful shutdown. The request handler only renders the registry's snapshot.
public struct MetricsService: Service {
    let listen: Endpoint
    let registry: MetricsRegistry
    let logger: Logger

    public init(listen: Endpoint, registry: MetricsRegistry, logger: Logger) {
        self.listen = listen
        self.registry = registry
        self.logger = logger
    }

    public func run() async throws {
        let registry = self.registry
        let server = try HTTPServer(listen: listen, threads: 2) { method, path in
            Self.route(method: method, path: path, registry: registry)
        }
        let shown = listen.host == "0.0.0.0" || listen.host == "::" ? "127.0.0.1" : listen.host
        logger.info("metrics at http://\(Endpoint(host: shown, port: server.port))/metrics")
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
