import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A real S3-compatible server (`moto_server` from PyPI) on a free loopback port, and the AWS
/// CLI pointed at it to check what arrived from the outside. Credentials are moto's dummies and
/// reach the CLI through the environment, never argv.
public final class MotoServer: @unchecked Sendable {
    // Immutable after init except `keys`, which `lock` guards.
    public let port: Int
    public let directory: String
    public let logFile: String
    private let process: ServerProcess
    private let lock = NSLock()

    public static let accessKey = "AKIDMOTOTESTKEY00001"
    public static let secretKey = "motoTestSecretKeyDoNotLeak/0123456789abcd"
    public static let region = "us-east-1"

    /// The keys Backstop and the CLI sign with: moto's dummies, or with `authenticated` the IAM
    /// user's access key made at start (guarded by `lock`; set once, before `start` returns).
    private var keys = (access: MotoServer.accessKey, secret: MotoServer.secretKey)
    public var credentials: (accessKey: String, secretKey: String) { lock.withLock { (keys.access, keys.secret) } }

    public var endpoint: String { "http://127.0.0.1:\(port)" }

    /// The environment Backstop reads to upload into `bucket` on this server.
    public func backstopEnvironment(bucket: String, prefix: String? = nil) -> [String: String] {
        var env = [
            "BACKUP_S3_BUCKET": bucket,
            "BACKUP_S3_ENDPOINT": endpoint,
            "BACKUP_S3_REGION": Self.region,
            "AWS_ACCESS_KEY_ID": credentials.accessKey,
            "AWS_SECRET_ACCESS_KEY": credentials.secretKey,
        ]
        if let prefix { env["BACKUP_S3_PREFIX"] = prefix }
        return env
    }

    /// The four actions `start(authenticatedBucket:)` makes before moto starts checking.
    static let setupActions = 4

    /// Starts moto_server and waits until it listens. A missing moto_server fails the test.
    ///
    /// With `authenticatedBucket`, moto checks every request's SigV4 signature and IAM policy
    /// (`INITIAL_NO_AUTH_ACTION_COUNT`, after the four setup actions made here with the root
    /// dummies: the bucket, an IAM user `backstop`, its access key, and a user policy allowing
    /// `s3:*` on that bucket and its objects only). `credentials` are then the user's key.
    public static func start(authenticatedBucket: String? = nil) async throws -> MotoServer {
        let server = try MotoServer(noAuthActions: authenticatedBucket == nil ? nil : setupActions)
        try await server.process.waitUntilListening(port: server.port, timeout: 30, name: "moto_server")
        if let bucket = authenticatedBucket {
            try server.createBucket(bucket)
            try server.aws(["iam", "create-user", "--user-name", "backstop"])
            let out = try server.aws(["iam", "create-access-key", "--user-name", "backstop", "--output", "json"])
            let json = (try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])?["AccessKey"] as? [String: Any] ?? [:]
            guard let id = json["AccessKeyId"] as? String, let secret = json["SecretAccessKey"] as? String else {
                throw TestSupportError("iam create-access-key gave no key: \(out.count) bytes")
            }
            let policy = #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":["arn:aws:s3:::\#(bucket)","arn:aws:s3:::\#(bucket)/*"]}]}"#
            try server.aws(["iam", "put-user-policy", "--user-name", "backstop", "--policy-name", "backstop-s3", "--policy-document", policy])
            server.lock.withLock { server.keys = (id, secret) }
        }
        return server
    }

    private init(noAuthActions: Int?) throws {
        let home = ProcessInfo.processInfo.environment["HOME"] ?? "/root"
        let binary = try TestEnvironment.binary("moto_server", extraDirectories: [home + "/.local/bin", "/usr/local/bin"],
                                                package: "python3-pip (then: pip install 'moto[server]')")
        directory = try TestEnvironment.makeTempDirectory("moto")
        port = try TestEnvironment.freePort()
        logFile = directory + "/moto.log"
        var environment: [String: String]?
        if let noAuthActions {
            environment = ProcessInfo.processInfo.environment
            environment?["INITIAL_NO_AUTH_ACTION_COUNT"] = String(noAuthActions)
        }
        process = ServerProcess(pid: try TestProcesses.spawn(binary, ["-H", "127.0.0.1", "-p", String(port)], logFile: logFile, environment: environment),
                                logFile: logFile)
    }

    deinit { stop() }

    public func stop() { process.stop() }

    public var log: String { process.log }

    /// Runs `aws <arguments> --endpoint-url <this server>` with `credentials` in the
    /// environment; throws with stderr when the CLI fails.
    @discardableResult
    public func aws(_ arguments: [String]) throws -> String {
        let home = ProcessInfo.processInfo.environment["HOME"] ?? "/root"
        let binary = try TestEnvironment.binary("aws", extraDirectories: [home + "/.local/bin", "/usr/local/bin"],
                                                package: "python3-pip (then: pip install awscli)")
        var env = ProcessInfo.processInfo.environment
        let keys = credentials
        env["AWS_ACCESS_KEY_ID"] = keys.accessKey
        env["AWS_SECRET_ACCESS_KEY"] = keys.secretKey
        env["AWS_DEFAULT_REGION"] = Self.region
        env["AWS_PAGER"] = ""
        env["AWS_CONFIG_FILE"] = directory + "/aws-config"
        env["AWS_SHARED_CREDENTIALS_FILE"] = directory + "/aws-credentials"
        let result = try TestProcesses.run(binary, arguments + ["--endpoint-url", endpoint], environment: env)
        guard result.status == 0 else {
            throw TestSupportError("aws \(arguments.joined(separator: " ")) failed (\(result.status)): \(result.stderr)")
        }
        return result.stdout
    }

    /// Creates a bucket through the AWS CLI.
    public func createBucket(_ name: String) throws {
        try aws(["s3api", "create-bucket", "--bucket", name])
    }

    /// `head-object` as parsed JSON (StorageClass, ServerSideEncryption, ContentLength, ETag…).
    public func headObject(bucket: String, key: String) throws -> [String: Any] {
        let out = try aws(["s3api", "head-object", "--bucket", bucket, "--key", key, "--output", "json"])
        return (try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]) ?? [:]
    }

    /// Every key in the bucket (sorted).
    public func keys(bucket: String) throws -> [String] {
        let out = try aws(["s3api", "list-objects-v2", "--bucket", bucket, "--output", "json"])
        let json = (try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]) ?? [:]
        let contents = json["Contents"] as? [[String: Any]] ?? []
        return contents.compactMap { $0["Key"] as? String }.sorted()
    }

    /// Downloads an object to `path` through the AWS CLI.
    public func download(bucket: String, key: String, to path: String) throws {
        try aws(["s3api", "get-object", "--bucket", bucket, "--key", key, path])
    }
}
