import Foundation
import Synchronization

/// A loopback stand-in for the EC2 instance metadata service, IMDSv2 only: a session token
/// from `PUT /latest/api/token` (with `X-aws-ec2-metadata-token-ttl-seconds`) is required on
/// every GET (401 without it, as on EC2), `GET /latest/meta-data/iam/security-credentials/`
/// names the role and `GET …/<role>` returns the role's temporary credentials as JSON. The
/// test sets the credentials (`issue`) and reads what was asked (`requests`).
public final class MetadataServer: Sendable {
    public let receiver: HTTPReceiver
    public let role: String
    private final class State: Sendable {
        let values: Mutex<(credentials: [String: String], token: String)>
        init(token: String) { values = Mutex((credentials: [:], token: token)) }
    }
    private let state: State

    public var endpoint: String { receiver.url }

    public init(role: String = "backstop-node-role") throws {
        receiver = try HTTPReceiver()
        self.role = role
        let token = "imds-session-" + UUID().uuidString
        state = State(token: token)
        let credentialsPath = "/latest/meta-data/iam/security-credentials/"
        receiver.route { [state] request in
            let (credentials, token) = state.values.withLock { ($0.credentials, $0.token) }
            if request.method == "PUT" && request.path == "/latest/api/token" {
                guard request.headers["x-aws-ec2-metadata-token-ttl-seconds"] != nil else { return (400, []) }
                return (200, Array(token.utf8))
            }
            guard request.headers["x-aws-ec2-metadata-token"] == token else { return (401, []) }
            if request.path == credentialsPath { return (200, Array(role.utf8)) }
            if request.path == credentialsPath + role {
                let json = try? JSONSerialization.data(withJSONObject: credentials.merging(["Code": "Success", "Type": "AWS-HMAC"]) { a, _ in a })
                return (200, Array(json ?? Data()))
            }
            return (404, [])
        }
    }

    /// The credentials the next credentials GET returns.
    public func issue(accessKeyID: String, secret: String, token: String, expiration: Double) {
        let formatter = ISO8601DateFormatter()
        state.values.withLock {
            $0.credentials = ["AccessKeyId": accessKeyID, "SecretAccessKey": secret, "Token": token,
                              "Expiration": formatter.string(from: Date(timeIntervalSince1970: expiration))]
        }
    }

    /// How many times the role's credentials were fetched.
    public var credentialFetches: Int { receiver.requests.count { $0.method == "GET" && $0.path.hasSuffix("/" + role) } }

    public func stop() { receiver.stop() }
}
