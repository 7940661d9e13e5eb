import BackstopTestSupport
import Foundation
import Testing

/// A real Prometheus scrapes `backstop serve --web.config.file` over TLS with basic auth, the
/// way a production Prometheus would: CA file, server name check, bcrypt-checked password.
@Suite("Prometheus scraping over TLS with basic auth", .serialized)
struct PrometheusTLSTests {
    static func scrapeOptions(_ access: TestWebAccess, password: String) -> String {
        """
            scheme: https
            tls_config:
              ca_file: "\(access.caFile)"
            basic_auth:
              username: \(access.user)
              password: "\(password)"
        """
    }

    @Test func prometheusScrapesOverTLSWithBasicAuthAndIsRefusedWithAWrongPassword() throws {
        let access = try TestWebAccess()
        let serve = try ServeProcess(environment: [
            "WEB_CONFIG_FILE": access.configFile, "PGHOST": "127.0.0.1", "PGPORT": "1",
            "BACKUP_SCHEDULE_FULL": "", "BACKUP_SCHEDULE_INCREMENTAL": "", "BACKUP_SCHEDULE_REDIS": "",
            "BACKUP_SCHEDULE_CLEANUP": "", "BACKUP_SCHEDULE_DRILL": "",
        ])
        defer { serve.stop() }
        // The line is written right after the server starts listening: wait for it.
        let announced = "metrics at https://127.0.0.1:\(serve.port)/metrics, basic auth for 1 user(s)"
        try? TestEnvironment.waitUntil(timeout: 5, "the metrics line in serve's log") {
            ((try? String(contentsOfFile: serve.log, encoding: .utf8)) ?? "").contains(announced)
        }
        let log = try String(contentsOfFile: serve.log, encoding: .utf8)
        #expect(log.contains(announced))
        #expect(!log.contains(access.password) && !log.contains(access.hash))

        let prometheus = try PrometheusServer(job: "backstop", targets: [serve.address], ruleFiles: [],
                                              scrapeOptions: Self.scrapeOptions(access, password: access.password))
        defer { prometheus.stop() }
        try prometheus.waitFor("the TLS target up and backstop_build_info scraped", timeout: 30) {
            let up = try prometheus.query("up{job=\"backstop\"}")
            let info = try prometheus.query("backstop_build_info{job=\"backstop\"}")
            return up.first.flatMap { ($0["value"] as? [Any])?.last as? String } == "1" && !info.isEmpty
        }

        let refused = try PrometheusServer(job: "backstop", targets: [serve.address], ruleFiles: [],
                                           scrapeOptions: Self.scrapeOptions(access, password: "not the password"))
        defer { refused.stop() }
        try refused.waitFor("the target down with 401", timeout: 30) {
            try refused.targets().contains { $0.health == "down" && $0.error.contains("401") }
        }
        #expect(try refused.query("backstop_build_info").isEmpty)
        ReliabilityReport.record(
            fault: "a real Prometheus scraping with a wrong password",
            did: "the target marked down with `401`; with the right password the same Prometheus scrapes over TLS (CA file, server name checked); the password and its hash never in serve's log",
            lost: "nothing")
    }
}
