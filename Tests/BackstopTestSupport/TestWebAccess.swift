import Foundation

/// A throw-away certificate authority and a server certificate for 127.0.0.1 (openssl), a
/// bcrypt hash from Apache's `htpasswd` (an implementation independent of the libcrypt that
/// Backstop verifies with) and the web config file that ties them together.
public struct TestWebAccess: Sendable {
    public let directory: String
    public let caFile: String
    public let certFile: String
    public let keyFile: String
    public let configFile: String
    public let user: String
    public let password: String
    public let hash: String

    /// `hashPrefix` rewrites htpasswd's `$2y$` (same algorithm) to test `$2b$` acceptance.
    public init(user: String = "prometheus", password: String = "scrape: s3cret #1", hashPrefix: String = "$2y$",
                tls: Bool = true) throws {
        directory = try TestEnvironment.makeTempDirectory("web-access")
        caFile = directory + "/ca.crt"
        certFile = directory + "/server.crt"
        keyFile = directory + "/server.key"
        configFile = directory + "/web.yml"
        self.user = user
        self.password = password
        let openssl = try TestEnvironment.binary("openssl", package: "openssl")
        let htpasswd = try TestEnvironment.binary("htpasswd", package: "apache2-utils")
        let d = directory
        try TestProcesses.run(openssl, ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                        "-keyout", d + "/ca.key", "-out", caFile, "-days", "2", "-subj", "/CN=backstop test CA"])
        try TestProcesses.run(openssl, ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                        "-keyout", keyFile, "-out", d + "/server.csr", "-subj", "/CN=127.0.0.1"])
        try "subjectAltName=IP:127.0.0.1,DNS:localhost\n".write(toFile: d + "/ext.cnf", atomically: true, encoding: .utf8)
        try TestProcesses.run(openssl, ["x509", "-req", "-in", d + "/server.csr", "-CA", caFile, "-CAkey", d + "/ca.key",
                                        "-CAcreateserial", "-out", certFile, "-days", "2", "-extfile", d + "/ext.cnf"])
        let line = try TestProcesses.run(htpasswd, ["-nbBC", "10", user, password]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard let colon = line.firstIndex(of: ":") else { throw TestSupportError("htpasswd printed \(line)") }
        let generated = String(line[line.index(after: colon)...])
        hash = hashPrefix + generated.dropFirst(4)
        // Relative file names: the toolkit reads them relative to the config file's folder.
        let tlsPart = tls ? """
            tls_server_config:
              cert_file: server.crt
              key_file: "server.key"   # quoted, with a comment
              min_version: TLS12

            """ : ""
        try """
            # web config in the Prometheus exporter-toolkit format
            \(tlsPart)basic_auth_users:
              \(user): '\(hash)'

            """.write(toFile: configFile, atomically: true, encoding: .utf8)
    }

    /// curl with the test CA; returns (HTTP status or 0 when curl failed, headers and body).
    public func curl(_ url: String, _ extra: [String] = []) throws -> (status: Int, output: String) {
        let curl = try TestEnvironment.binary("curl", package: "curl")
        let result = try TestProcesses.run(curl, ["-sS", "-i", "--max-time", "10", "--cacert", caFile] + extra + [url], check: false)
        guard result.status == 0 else { return (0, result.stderr) }
        let statusLine = result.stdout.split(separator: "\r\n").first.map(String.init) ?? ""
        let code = statusLine.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        return (code, result.stdout)
    }
}
