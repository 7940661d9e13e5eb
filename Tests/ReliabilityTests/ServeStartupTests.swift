import BackstopTestSupport
import Foundation
import Testing

/// A bad web config or limit stops `backstop serve` before it listens, naming the file, the
/// key or the variable.
@Suite("serve start-up refusals")
struct ServeStartupTests {
    @Test func aBadWebConfigStopsServeNamingFileAndKey() throws {
        let dir = try TestEnvironment.makeTempDirectory("bad-web")
        let file = dir + "/web.yml"
        try "basic_auth_users:\n  prometheus: plain-text-password\n".write(toFile: file, atomically: true, encoding: .utf8)
        let env = ["BACKUP_DIR": dir + "/backups", "METRICS_LISTEN": "127.0.0.1:\(try TestEnvironment.freePort())"]
        let result = try BackstopBinary.run(["serve", "--web.config.file", file], environment: env)
        #expect(result.status == 64)
        #expect(result.stderr.contains("web config file \(file): basic_auth_users.prometheus: line 2: not a bcrypt hash"), "\(result.stderr)")
        #expect(!result.stderr.contains("plain-text-password"))

        var limits = env
        limits["METRICS_MAX_CONNECTIONS_PER_IP"] = "0"
        let refused = try BackstopBinary.run(["serve"], environment: limits)
        #expect(refused.status == 64 && refused.stderr.contains("METRICS_MAX_CONNECTIONS_PER_IP"), "\(refused.stderr)")
    }
}
