import BackstopCore
import BackstopTestSupport
import Foundation
import MetricsHTTPServer
import Testing

/// TLS and basic auth on a real libmicrohttpd server, checked from the outside with curl.
@Suite("metrics port: TLS and basic auth", .serialized)
struct AccessTests {
    static func server(_ web: WebConfig?) throws -> HTTPServer {
        try HTTPServer(listen: Endpoint(host: "127.0.0.1", port: 0), web: web) { _, path in
            HTTPResponse(status: 200, text: "served \(path)\n")
        }
    }

    @Test func tlsAndBasicAuthWithAnHtpasswdHash() throws {
        let access = try TestWebAccess()
        let server = try Self.server(try WebConfig.load(path: access.configFile))
        defer { server.stop() }
        let url = "https://127.0.0.1:\(server.port)"

        let good = try access.curl(url + "/metrics", ["-u", "\(access.user):\(access.password)"])
        #expect(good.status == 200, "\(good.output)")
        #expect(good.output.contains("served /metrics"))

        let wrong = try access.curl(url + "/metrics", ["-u", "\(access.user):\(access.password)x"])
        #expect(wrong.status == 401)
        #expect(wrong.output.lowercased().contains("www-authenticate: basic realm=\"backstop\""))
        #expect(!wrong.output.contains("served"))

        let unknown = try access.curl(url + "/metrics", ["-u", "mallory:\(access.password)"])
        #expect(unknown.status == 401)
        let none = try access.curl(url + "/metrics")
        #expect(none.status == 401)
        let garbage = try access.curl(url + "/metrics", ["-H", "Authorization: Basic !!!not-base64"])
        #expect(garbage.status == 401)

        // Liveness needs no password (container health checks have none), and says nothing.
        let health = try access.curl(url + "/healthz")
        #expect(health.status == 200)

        // Plain HTTP to the TLS port gets no answer; TLS 1.1 is never offered.
        let plain = try access.curl("http://127.0.0.1:\(server.port)/metrics", ["-u", "\(access.user):\(access.password)"])
        #expect(plain.status != 200)
        let old = try access.curl(url + "/metrics", ["--tlsv1.0", "--tls-max", "1.1", "-u", "\(access.user):\(access.password)"])
        #expect(old.status == 0, "TLS 1.1 was accepted: \(old.output)")
        // A client that does not trust the CA refuses the certificate (it is a real chain).
        let curl = try TestEnvironment.binary("curl", package: "curl")
        let untrusted = try TestProcesses.run(curl, ["-sS", "--max-time", "5", url + "/healthz"], check: false)
        #expect(untrusted.status != 0)
        ReliabilityReport.record(
            fault: "a wrong password, an unknown user, no password, or bad base64",
            did: "`\(wrong.status)`, `\(unknown.status)`, `\(none.status)`, `\(garbage.status)` with `WWW-Authenticate`; plain HTTP to the TLS port and TLS 1.1 get no answer; `/healthz` answers without a password",
            lost: "nothing")
    }

    @Test func aTwoBHashFromTheSameAlgorithmIsAccepted() throws {
        let access = try TestWebAccess(hashPrefix: "$2b$", tls: false)
        let server = try Self.server(try WebConfig.load(path: access.configFile))
        defer { server.stop() }
        let url = "http://127.0.0.1:\(server.port)/metrics"
        #expect(try access.curl(url, ["-u", "\(access.user):\(access.password)"]).status == 200)
        #expect(try access.curl(url, ["-u", "\(access.user):wrong"]).status == 401)
    }

    @Test func startFailsClearlyWhenTheKeyDoesNotMatchTheCertificate() throws {
        let one = try TestWebAccess()
        let other = try TestWebAccess()
        var config = try WebConfig.load(path: one.configFile)
        config.tls?.keyPEM = try String(contentsOfFile: other.keyFile, encoding: .utf8)
        #expect {
            _ = try Self.server(config)
        } throws: { error in
            "\(error)".contains("cannot start the metrics server with TLS") && "\(error)".contains(one.certFile)
        }
    }
}
