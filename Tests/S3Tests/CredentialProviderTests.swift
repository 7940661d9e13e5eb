import BackstopCore
import BackstopTestSupport
import Foundation
@testable import S3
import Testing

/// Credentials the way AWS users have them, in the SDKs' order: environment keys, web identity
/// (moto's STS), the shared files, the instance metadata (IMDSv2 on a loopback server); session
/// tokens signed into requests and refreshed before they expire, without a restart.
@Suite(.serialized) struct CredentialProviderTests {
    static func home() throws -> String { try TestEnvironment.makeTempDirectory("awshome") }

    @Test func theSourceIsChosenInTheSDKsOrderAndHalfSetValuesAreNamed() throws {
        let home = try Self.home()
        try FileManager.default.createDirectory(atPath: home + "/.aws", withIntermediateDirectories: true)
        try "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = fileSecret0001\n".write(toFile: home + "/.aws/credentials", atomically: true, encoding: .utf8)
        let keys = ["AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "envSecret0001"]
        let web = ["AWS_WEB_IDENTITY_TOKEN_FILE": home + "/token", "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/backstop"]
        func source(_ env: [String: String]) throws -> CredentialProvider.Source {
            try CredentialProvider(environment: env.merging(["HOME": home]) { a, _ in a }, region: "eu-west-1").source
        }
        if case .environment(let c) = try source(keys.merging(web) { a, _ in a }) { #expect(c.accessKeyID == "AKIDENV") } else { Issue.record("environment keys come first") }
        if case .webIdentity(_, let role, _, let sts) = try source(web) {
            #expect(role == web["AWS_ROLE_ARN"] && sts == "https://sts.eu-west-1.amazonaws.com")
        } else { Issue.record("web identity comes before the shared files") }
        if case .sharedFiles(let profile, _, _) = try source([:]) { #expect(profile == "default") } else { Issue.record("the shared files come before IMDS") }
        let empty = try Self.home()
        if case .instanceMetadata(let endpoint) = try CredentialProvider(environment: ["HOME": empty], region: "eu-west-1").source {
            #expect(endpoint == "http://169.254.169.254")
        } else { Issue.record("the instance metadata is last") }

        let half = #expect(throws: ConfigError.self) { try source(["AWS_ACCESS_KEY_ID": "AKIDENV"]) }
        #expect(half?.variable == "AWS_SECRET_ACCESS_KEY")
        let roleOnly = #expect(throws: ConfigError.self) { try source(["AWS_ROLE_ARN": "arn:aws:iam::1:role/x"]) }
        #expect(roleOnly?.variable == "AWS_WEB_IDENTITY_TOKEN_FILE")
        let profile = #expect(throws: ConfigError.self) { try source(["AWS_PROFILE": "nope"]) }
        #expect(profile?.variable == "AWS_PROFILE" && !"\(profile.map { "\($0)" } ?? "")".contains("fileSecret0001"))
        #expect(throws: ConfigError.self) { try CredentialProvider(environment: ["HOME": empty, "AWS_EC2_METADATA_DISABLED": "true"], region: "us-east-1") }
    }

    @Test func aNamedProfileIsReadFromTheFilesAndARotatedKeyIsPickedUpWithoutARestart() async throws {
        let home = try Self.home()
        let credentials = home + "/creds", config = home + "/config"
        try "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s0000001\n".write(toFile: credentials, atomically: true, encoding: .utf8)
        try "# team profile\n[profile backups]\nregion = eu-west-1\naws_access_key_id = AKIDCONFIG1\naws_secret_access_key = configSecret1\naws_session_token = tok1\n"
            .write(toFile: config, atomically: true, encoding: .utf8)
        let provider = try CredentialProvider(environment: ["HOME": home, "AWS_PROFILE": "backups", "AWS_SHARED_CREDENTIALS_FILE": credentials,
                                                            "AWS_CONFIG_FILE": config], region: "eu-west-1")
        let t0 = WallClock.now()
        let first = try await provider.current(now: t0)
        #expect(first.accessKeyID == "AKIDCONFIG1" && first.secretAccessKey.value == "configSecret1" && first.sessionToken?.value == "tok1")
        try "[profile backups]\naws_access_key_id = AKIDCONFIG2\naws_secret_access_key = configSecret2\n".write(toFile: config, atomically: true, encoding: .utf8)
        #expect(try await provider.current(now: t0 + 10).accessKeyID == "AKIDCONFIG1", "cached between re-reads")
        let rotated = try await provider.current(now: t0 + 301)
        #expect(rotated.accessKeyID == "AKIDCONFIG2" && rotated.sessionToken == nil)
        #expect(provider.redact("echo configSecret1 and configSecret2") == "echo <redacted> and <redacted>")
    }

    @Test func webIdentityFromMotoSTSSignsS3RequestsWithTheSessionTokenAndRefreshesBeforeExpiry() async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        try moto.createBucket("webid")
        let home = try Self.home()
        try "eyJhbGciOiJSUzI1NiJ9.service-account-token-1".write(toFile: home + "/token", atomically: true, encoding: .utf8)
        let env = ["HOME": home, "BACKUP_S3_BUCKET": "webid", "BACKUP_S3_ENDPOINT": moto.endpoint, "BACKUP_S3_REGION": "us-east-1",
                   "AWS_WEB_IDENTITY_TOKEN_FILE": home + "/token", "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/backstop-irsa",
                   "AWS_ENDPOINT_URL_STS": moto.endpoint]
        let settings = try #require(try S3Settings(environment: env))
        let t0 = WallClock.now()
        let first = try await settings.credentials.current(now: t0)
        #expect(first.accessKeyID.hasPrefix("ASIA") && first.sessionToken != nil)
        let expiration = try #require(first.expiration)
        #expect(abs(expiration - (t0 + 3600)) < 120, "one hour, as asked")

        // An upload through moto with those credentials.
        try AtomicFile.write(Array("data".utf8), to: home + "/f")
        try await S3Client(settings: settings).upload(file: home + "/f", key: "postgres/x.sql.gz")
        #expect(try moto.keys(bucket: "webid") == ["postgres/x.sql.gz"])

        // What S3 receives: the session token header and the temporary key in the signature.
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }
        var seen = settings
        seen.endpoint = receiver.url
        _ = try await S3Client(settings: seen).list()
        let request = try #require(receiver.requests.first)
        #expect(request.headers["x-amz-security-token"] == first.sessionToken?.value)
        #expect(request.headers["authorization"]?.contains("Credential=\(first.accessKeyID)/") == true)

        // Still valid for long: cached. Within five minutes of expiry: a new AssumeRoleWithWebIdentity
        // with the token file read again (rotated by the kubelet).
        #expect(try await settings.credentials.current(now: t0 + 60) == first)
        try "eyJhbGciOiJSUzI1NiJ9.service-account-token-2".write(toFile: home + "/token", atomically: true, encoding: .utf8)
        let refreshed = try await settings.credentials.current(now: expiration - 200)
        #expect(refreshed.accessKeyID != first.accessKeyID && refreshed.sessionToken != first.sessionToken)
        _ = try await S3Client(settings: seen).list()
        #expect(receiver.requests.last?.headers["x-amz-security-token"] == refreshed.sessionToken?.value)
    }

    @Test func instanceMetadataV2CredentialsAreUsedAndRefreshedBeforeTheyExpire() async throws {
        let imds = try MetadataServer()
        defer { imds.stop() }
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        try moto.createBucket("imds")
        let home = try Self.home()
        let t0 = WallClock.now()
        imds.issue(accessKeyID: "ASIAIMDSFIRST", secret: "imdsSecretFirst", token: "imdsTokenFirst", expiration: t0 + 360)
        let env = ["HOME": home, "BACKUP_S3_BUCKET": "imds", "BACKUP_S3_ENDPOINT": moto.endpoint, "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.endpoint]
        let settings = try #require(try S3Settings(environment: env))
        #expect(settings.credentials.source == .instanceMetadata(endpoint: imds.endpoint))

        let first = try await settings.credentials.current(now: t0)
        #expect(first.accessKeyID == "ASIAIMDSFIRST" && first.sessionToken?.value == "imdsTokenFirst")
        let requests = imds.receiver.requests
        #expect(requests.first?.method == "PUT" && requests.first?.path == "/latest/api/token", "IMDSv2: the token first")
        #expect(requests.dropFirst().allSatisfy { $0.answered == 200 }, "every GET carried the session token")
        try AtomicFile.write(Array("data".utf8), to: home + "/f")
        try await S3Client(settings: settings).upload(file: home + "/f", key: "redis/redis_20260101_000000.rdb.gz")
        #expect(try moto.keys(bucket: "imds") == ["redis/redis_20260101_000000.rdb.gz"])
        #expect(imds.credentialFetches == 1, "cached while valid")

        imds.issue(accessKeyID: "ASIAIMDSSECOND", secret: "imdsSecretSecond", token: "imdsTokenSecond", expiration: t0 + 7200)
        #expect(try await settings.credentials.current(now: t0 + 30).accessKeyID == "ASIAIMDSFIRST")
        let second = try await settings.credentials.current(now: t0 + 70)  // 290 s before expiry: inside the 5-minute margin
        #expect(second.accessKeyID == "ASIAIMDSSECOND" && imds.credentialFetches == 2)

        // Parts uploaded in parallel when the credentials are due share one fetch.
        let parallel = try CredentialProvider(environment: ["HOME": home, "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.endpoint], region: "us-east-1")
        let before = imds.credentialFetches
        try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<8 { group.addTask { try await parallel.current(now: t0 + 100).accessKeyID } }
            for try await key in group { #expect(key == "ASIAIMDSSECOND") }
        }
        #expect(imds.credentialFetches == before + 1)

        // An unreachable service: a clear error that names the source and carries no secret.
        imds.stop()
        let orphan = try CredentialProvider(environment: ["HOME": home, "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.endpoint], region: "us-east-1")
        do {
            _ = try await orphan.current()
            Issue.record("credentials from a stopped metadata service")
        } catch {
            #expect("\(error)".contains("instance metadata") && !"\(error)".contains("imdsSecret"))
        }
    }
}
