import BackstopCore
import BackstopTestSupport
import Foundation
import MetricsHTTPServer
import Testing

/// The web config file as an operator writes it for any Prometheus exporter, and the errors a
/// bad one gives at start-up (file and key named, never a secret).
@Suite("web config file")
struct WebConfigTests {
    let hash = "$2y$10$I2DW2hp32orbliCPX5/16.8XG94SX0j3ahWyCDzptiyDo7PKUdjTC"

    @Test func readsTheToolkitFormatWithRelativeFilesQuotesAndComments() throws {
        let access = try TestWebAccess()
        let config = try WebConfig.load(path: access.configFile)
        let tls = try #require(config.tls)
        #expect(tls.certFile == access.directory + "/server.crt")
        #expect(tls.keyFile == access.directory + "/server.key")
        #expect(tls.keyPEM.contains("PRIVATE KEY"))
        #expect(tls.gnutlsPriorities.contains("-VERS-TLS1.1"))
        #expect(config.users == [access.user: access.hash])
    }

    @Test func anEmptyFileMeansNoTLSAndNoAuth() throws {
        let config = try WebConfig.parse("# nothing yet\n---\n", path: "/etc/web.yml")
        #expect(config.tls == nil && config.users.isEmpty)
    }

    @Test func yamlSubsetReadsQuotedHashesListsAndNesting() throws {
        let node = try WebConfigYAML.parse("""
            a:
              b: "x # not a comment"   # a comment
              c: 'it''s'
              d: [TLS12, "TLS13"]
              e:
              - one
              - two
            f: plain value # end
            """)
        let expected: YAMLNode = .mapping([
            ("a", .mapping([
                ("b", .scalar("x # not a comment", line: 0), 0),
                ("c", .scalar("it's", line: 0), 0),
                ("d", .sequence([.scalar("TLS12", line: 0), .scalar("TLS13", line: 0)], line: 0), 0),
                ("e", .sequence([.scalar("one", line: 0), .scalar("two", line: 0)], line: 0), 0),
            ], line: 0), 0),
            ("f", .scalar("plain value", line: 0), 0),
        ], line: 0)
        #expect(node == expected)
    }

    @Test(arguments: [
        ("basic_auth_users:\n\talice: x\n", "line 2: a tab"),
        ("a: 1\na: 2\n", "line 2: the key \"a\" appears twice"),
        ("a: *alias\n", "line 1: \"*\""),
        ("a:\n  b: 1\n    c: 2\n", "line 3: unexpected indentation"),
        ("a: \"open\n", "line 1: a quoted value without its closing"),
        ("just text\n", "line 1: expected \"key: value\""),
    ])
    func yamlErrorsNameTheLine(text: String, message: String) {
        #expect(throws: YAMLError.self) { try WebConfigYAML.parse(text) }
        do { _ = try WebConfigYAML.parse(text) } catch {
            #expect(error.description.contains(message), "\(error)")
        }
    }

    @Test(arguments: [
        ("basic_auth_users:\n  alice: not-a-hash\n", "basic_auth_users.alice: line 2: not a bcrypt hash"),
        ("basic_auth_users:\n  alice: $1$abc$def\n", "basic_auth_users.alice: line 2: not a bcrypt hash"),
        ("basic_auth_user:\n  alice: x\n", "basic_auth_user: line 1: unknown key"),
        ("tls_server_config:\n  cert_file: a.crt\n", "tls_server_config.key_file: missing"),
        ("tls_server_config:\n  key_file: a.key\n", "tls_server_config.cert_file: missing"),
        ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n",
         "tls_server_config.client_auth_type: line 4: \"RequireAndVerifyClientCert\" is not supported"),
        ("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS10\n", "tls_server_config.min_version: line 4: \"TLS10\" is not accepted"),
        ("tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n", "tls_server_config.cert_file: cannot read /etc/backstop/missing.crt"),
        ("http_server_config:\n  headers:\n    X: y\n", "http_server_config.headers: line 2: not supported"),
        ("- a\n", "the file must be a mapping"),
    ])
    func badFilesStopStartUpNamingFileAndKey(text: String, message: String) {
        do {
            _ = try WebConfig.parse(text, path: "/etc/backstop/web.yml")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.description.hasPrefix("web config file /etc/backstop/web.yml: "), "\(error)")
            #expect(error.description.contains(message), "\(error)")
        }
    }

    @Test func aKeyFileThatIsNotPEMIsRefusedWithoutPrintingIt() throws {
        let access = try TestWebAccess()
        try "SECRET-KEY-BYTES\n".write(toFile: access.keyFile, atomically: true, encoding: .utf8)
        do {
            _ = try WebConfig.load(path: access.configFile)
            Issue.record("a key file without PEM was accepted")
        } catch {
            #expect(error.description.contains("tls_server_config.key_file: \(access.keyFile) is not a PEM file"))
            #expect(!error.description.contains("SECRET-KEY-BYTES"))
        }
    }

    @Test func promtoolAcceptsTheSameFile() throws {
        // Prometheus's own checker reads the file the toolkit way: the format is the real one.
        let access = try TestWebAccess()
        let promtool = try TestEnvironment.binary("promtool", package: "prometheus")
        let result = try TestProcesses.run(promtool, ["check", "web-config", access.configFile], check: false)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        _ = try WebConfig.load(path: access.configFile)
    }

    @Test func limitsFromTheEnvironment() throws {
        let limits = try HTTPServerLimits.load(environment: [
            "METRICS_MAX_CONNECTIONS": "64", "METRICS_MAX_CONNECTIONS_PER_IP": "4", "METRICS_CONNECTION_TIMEOUT": "3s",
        ])
        #expect(limits.connections == 64 && limits.connectionsPerIP == 4 && limits.idleTimeoutSeconds == 3)
        #expect(throws: ConfigError.self) { try HTTPServerLimits.load(environment: ["METRICS_MAX_CONNECTIONS_PER_IP": "0"]) }
        let error = #expect(throws: ConfigError.self) { try HTTPServerLimits.load(environment: ["METRICS_CONNECTION_TIMEOUT": "forever"]) }
        #expect(error?.variable == "METRICS_CONNECTION_TIMEOUT")
    }
}
