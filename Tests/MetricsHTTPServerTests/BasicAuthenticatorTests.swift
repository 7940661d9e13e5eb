import BackstopTestSupport
import Foundation
@testable import MetricsHTTPServer
import Testing

/// The Authorization header as browsers, curl and Prometheus send it, checked against
/// htpasswd's bcrypt hashes.
@Suite("basic auth")
struct BasicAuthenticatorTests {
    static func header(_ user: String, _ password: String) -> String {
        "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
    }

    @Test func credentialsKeepColonsAndUnicodeInThePassword() {
        #expect(BasicAuthenticator.credentials(Self.header("alice", "a:b:ç")).map { [$0.0, $0.1] } == ["alice", "a:b:ç"])
        #expect(BasicAuthenticator.credentials("basic " + Data("u:p".utf8).base64EncodedString()).map { $0.1 } == "p")
        #expect(BasicAuthenticator.credentials(Self.header("", "")).map { [$0.0, $0.1] } == ["", ""])
    }

    @Test(arguments: ["Bearer abc", "Basic", "Basic !!!!", "Basic " + Data("no-colon".utf8).base64EncodedString(), "Basic YQ=x", "Basic ===="])
    func malformedHeadersAreRefused(header: String) {
        if let parsed = BasicAuthenticator.credentials(header) { Issue.record("parsed \(header) as \(parsed)") }
        #expect(!BasicAuthenticator(users: ["a": "$2y$05$abcdefghijklmnopqrstuu5uKvWF1UuwzmsxTvPGs0bUlFDi7r2Cm"]).allows(header: header))
    }

    @Test func base64MatchesFoundation() {
        var random = SeededGenerator(seed: 7)
        for length in 0..<64 {
            let bytes = random.bytes(length)
            let encoded = Array(Data(bytes).base64EncodedString().utf8)
            #expect(BasicAuthenticator.base64Decode(encoded) == bytes, "length \(length)")
        }
    }

    @Test func onlyTheRightUserWithTheRightPasswordPasses() throws {
        let access = try TestWebAccess(tls: false)
        let other = try TestWebAccess(user: "grafana", password: "another one", tls: false)
        let auth = BasicAuthenticator(users: [access.user: access.hash, other.user: other.hash])
        #expect(auth.allows(header: Self.header(access.user, access.password)))
        #expect(auth.allows(header: Self.header(other.user, other.password)))
        // Twice: the second answer comes from the cache and must be the same.
        for _ in 0..<2 {
            #expect(!auth.allows(header: Self.header(access.user, other.password)))
            #expect(!auth.allows(header: Self.header(other.user, access.password)))
            #expect(!auth.allows(header: Self.header("mallory", access.password)), "an unknown user passed with a known user's password")
            #expect(!auth.allows(header: Self.header(access.user, access.password + " ")))
            #expect(!auth.allows(header: nil))
        }
    }
}
