import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A real `prometheus-alertmanager` (Debian package) on a free loopback port, in its own temp
/// folder, clustering off, routing every alert (grouped by alertname, resolved ones too) to
/// one webhook URL with short group timers so a test sees notifications within seconds.
public final class AlertmanagerServer: Sendable {
    public let port: Int
    public let directory: String
    public let logFile: String
    private let process: ServerProcess

    public var url: String { "http://127.0.0.1:\(port)" }

    /// Starts the server and waits (suspending, not sleeping a thread) until it listens.
    public static func start(webhookURL: String) async throws -> AlertmanagerServer {
        let server = try AlertmanagerServer(webhookURL: webhookURL)
        try await server.process.waitUntilListening(port: server.port, timeout: 20, name: "alertmanager")
        return server
    }

    private init(webhookURL: String) throws {
        let binary = try TestEnvironment.binary("prometheus-alertmanager", package: "prometheus-alertmanager")
        directory = try TestEnvironment.makeTempDirectory("alertmanager")
        port = try TestEnvironment.freePort()
        logFile = directory + "/alertmanager.log"
        let config = """
        route:
          receiver: hook
          group_by: [alertname]
          group_wait: 1s
          group_interval: 1s
          repeat_interval: 1h
        receivers:
          - name: hook
            webhook_configs:
              - url: '\(webhookURL)'
                send_resolved: true
        """
        try config.write(toFile: directory + "/alertmanager.yml", atomically: true, encoding: .utf8)
        process = ServerProcess(pid: try TestProcesses.spawn(binary, [
            "--config.file=\(directory)/alertmanager.yml",
            "--storage.path=\(directory)/data",
            "--web.listen-address=127.0.0.1:\(port)",
            "--cluster.listen-address=",
            "--log.level=debug",
        ], logFile: logFile), logFile: logFile)
    }

    deinit { stop() }

    public func stop() { process.stop() }

    public var log: String { process.log }
}
