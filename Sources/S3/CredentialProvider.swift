import BackstopCore
import Foundation
import HTTPClient
import Synchronization

/// One set of AWS credentials and when it stops working. Made only by the providers in this
/// module (their memberwise initializer); others read them.
public struct AWSCredentials: Sendable, Equatable {
    public var accessKeyID: String
    public var secretAccessKey: Secret
    /// Temporary credentials' token (`x-amz-security-token`).
    public var sessionToken: Secret?
    /// Unix time the credentials expire (nil: long-lived keys).
    public var expiration: Double?
}

/// Where S3 credentials come from, in the AWS SDKs' default-chain order (the SDK for PHP and
/// Java v2 document it so): the first source configured wins.
///
/// 1. **environment**: `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`);
/// 2. **web identity** (Kubernetes IRSA, EKS Pod Identity-style tokens): `AWS_WEB_IDENTITY_TOKEN_FILE`
///    + `AWS_ROLE_ARN` (+ `AWS_ROLE_SESSION_NAME`), exchanged at STS with
///    AssumeRoleWithWebIdentity (`AWS_ENDPOINT_URL_STS`, else `https://sts.<region>.amazonaws.com`);
///    the token file is read again at every refresh, since the kubelet rotates it;
/// 3. **shared files**: profile `AWS_PROFILE` (else `default`) from `AWS_SHARED_CREDENTIALS_FILE`
///    (`~/.aws/credentials`), then `AWS_CONFIG_FILE` (`~/.aws/config`, `[profile NAME]`), with
///    `aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`; re-read every 5 minutes
///    so rotated keys are picked up without a restart;
/// 4. **instance metadata** (IMDSv2): a session token (`PUT /latest/api/token`), then the
///    role's credentials (`GET /latest/meta-data/iam/security-credentials/ROLE`), from
///    `AWS_EC2_METADATA_SERVICE_ENDPOINT` (default `http://169.254.169.254`) unless
///    `AWS_EC2_METADATA_DISABLED=true`.
///
/// Temporary credentials are fetched again `refreshMargin` (5 minutes) before they expire, at
/// the first request after that point, so a long-running serve never signs with an expired
/// token and never needs a restart. Secrets live in `Secret` values and never reach an error
/// text: errors name the source and the variable to check.
public final class CredentialProvider: Sendable {
    public enum Source: Sendable, Equatable {
        case environment(AWSCredentials)
        case webIdentity(tokenFile: String, roleARN: String, sessionName: String, stsEndpoint: String)
        case sharedFiles(profile: String, credentialsFile: String, configFile: String)
        case instanceMetadata(endpoint: String)

        /// For messages: which source, never a secret.
        public var name: String {
            switch self {
            case .environment: "environment (AWS_ACCESS_KEY_ID)"
            case .webIdentity(let file, let role, _, _): "web identity (AWS_ROLE_ARN=\(role), AWS_WEB_IDENTITY_TOKEN_FILE=\(file))"
            case .sharedFiles(let profile, let credentials, let config): "profile \(profile) of \(credentials) / \(config)"
            case .instanceMetadata(let endpoint): "instance metadata (IMDSv2 at \(endpoint))"
            }
        }
    }

    public let source: Source
    public let region: String
    /// Temporary credentials are refreshed once they are this close to their expiry.
    public let refreshMargin: Double
    /// Shared-file credentials are read again after this long.
    public let fileRecheckSeconds: Double
    private let cache: Mutex<(credentials: AWSCredentials, fetchedAt: Double)?>
    /// The fetch in progress: parts uploaded in parallel at expiry wait for one STS/IMDS call.
    private let inflight = Mutex<Task<AWSCredentials, any Error>?>(nil)
    /// Every secret handed out so far, for `redact` (a rotated key may still echo in an old error).
    private let seenSecrets = Mutex<[String]>([])

    public init(source: Source, region: String, refreshMargin: Double = 300, fileRecheckSeconds: Double = 300) {
        self.source = source
        self.region = region
        self.refreshMargin = refreshMargin
        self.fileRecheckSeconds = fileRecheckSeconds
        if case .environment(let credentials) = source {
            cache = Mutex((credentials, 0))
            seenSecrets.withLock { $0 = [credentials.secretAccessKey.value, credentials.sessionToken?.value].compactMap { $0 } }
        } else {
            cache = Mutex(nil)
        }
    }

    /// Picks the source from the environment (no network call). Throws a `ConfigError` for a
    /// half-set pair, a role without a token file, or a named profile that is not in the files.
    public convenience init(environment env: [String: String], region: String) throws {
        func value(_ name: String) -> String? {
            guard let v = env[name]?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
            return v
        }
        let keyID = value("AWS_ACCESS_KEY_ID"), secret = value("AWS_SECRET_ACCESS_KEY")
        if keyID != nil || secret != nil {
            guard let keyID, let secret else {
                throw ConfigError(variable: keyID == nil ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY", value: "",
                                  accepted: "both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither (then web identity, the shared files or the instance metadata are used)")
            }
            self.init(source: .environment(AWSCredentials(accessKeyID: keyID, secretAccessKey: Secret(secret),
                                                          sessionToken: value("AWS_SESSION_TOKEN").map(Secret.init))), region: region)
            return
        }
        let tokenFile = value("AWS_WEB_IDENTITY_TOKEN_FILE"), role = value("AWS_ROLE_ARN")
        if tokenFile != nil || role != nil {
            guard let tokenFile, let role else {
                throw ConfigError(variable: tokenFile == nil ? "AWS_WEB_IDENTITY_TOKEN_FILE" : "AWS_ROLE_ARN", value: "",
                                  accepted: "both AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN for web identity (as EKS sets them)")
            }
            var sts = value("AWS_ENDPOINT_URL_STS") ?? "https://sts.\(region).amazonaws.com"
            while sts.hasSuffix("/") { sts.removeLast() }
            self.init(source: .webIdentity(tokenFile: tokenFile, roleARN: role, sessionName: value("AWS_ROLE_SESSION_NAME") ?? "backstop-\(getpid())",
                                           stsEndpoint: sts), region: region)
            return
        }
        let home = value("HOME") ?? "/root"
        let credentialsFile = value("AWS_SHARED_CREDENTIALS_FILE") ?? home + "/.aws/credentials"
        let configFile = value("AWS_CONFIG_FILE") ?? home + "/.aws/config"
        let profile = value("AWS_PROFILE") ?? "default"
        if (try? Self.readProfile(profile, credentialsFile: credentialsFile, configFile: configFile)) != nil {
            self.init(source: .sharedFiles(profile: profile, credentialsFile: credentialsFile, configFile: configFile), region: region)
            return
        }
        if value("AWS_PROFILE") != nil {
            throw ConfigError(variable: "AWS_PROFILE", value: profile,
                              accepted: "a profile with aws_access_key_id and aws_secret_access_key in \(credentialsFile) or \(configFile)")
        }
        if value("AWS_EC2_METADATA_DISABLED")?.lowercased() == "true" {
            throw ConfigError(variable: "AWS_ACCESS_KEY_ID", value: "",
                              accepted: "credentials from one of: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY, AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN, a profile in \(credentialsFile), or the instance metadata (AWS_EC2_METADATA_DISABLED is true)")
        }
        var endpoint = value("AWS_EC2_METADATA_SERVICE_ENDPOINT") ?? "http://169.254.169.254"
        while endpoint.hasSuffix("/") { endpoint.removeLast() }
        self.init(source: .instanceMetadata(endpoint: endpoint), region: region)
    }

    /// The credentials to sign the next requests with: the cached ones while they are valid for
    /// longer than `refreshMargin`, else fresh ones from the source.
    public func current(now: Double = WallClock.now()) async throws -> AWSCredentials {
        if let cached = cache.withLock({ $0 }), isFresh(cached.credentials, fetchedAt: cached.fetchedAt, now: now) {
            return cached.credentials
        }
        let task = inflight.withLock { current in
            if let current { return current }
            let started = Task { try await self.fetch(now: now) }
            current = started
            return started
        }
        let result = await task.result
        inflight.withLock { if $0 == task { $0 = nil } }
        let fresh = try result.get()
        cache.withLock { $0 = (fresh, now) }
        seenSecrets.withLock { seen in
            for s in [fresh.secretAccessKey.value, fresh.sessionToken?.value].compactMap({ $0 }) where !seen.contains(s) { seen.append(s) }
        }
        return fresh
    }

    /// The SigV4 signer for S3 requests with the current credentials.
    public func signer(service: String = "s3") async throws -> AWSSigV4 {
        let c = try await current()
        return AWSSigV4(region: region, service: service, accessKeyID: c.accessKeyID, secretAccessKey: c.secretAccessKey, sessionToken: c.sessionToken)
    }

    /// `text` with every secret handed out so far blanked (the last line of defence before
    /// logs, alerts and `s3_uploads.json`).
    public func redact(_ text: String) -> String {
        var out = text
        for secret in seenSecrets.withLock({ $0 }) where secret.count >= 4 {
            out = out.replacingAll(secret, with: "<redacted>")
        }
        return out
    }

    func isFresh(_ credentials: AWSCredentials, fetchedAt: Double, now: Double) -> Bool {
        switch source {
        case .environment: return true
        case .sharedFiles: return now - fetchedAt < fileRecheckSeconds
        case .webIdentity, .instanceMetadata:
            guard let expiration = credentials.expiration else { return true }
            return expiration - now > refreshMargin
        }
    }

    func fetch(now: Double) async throws -> AWSCredentials {
        switch source {
        case .environment(let credentials):
            return credentials
        case .sharedFiles(let profile, let credentialsFile, let configFile):
            return try await Blocking.run { try Self.readProfile(profile, credentialsFile: credentialsFile, configFile: configFile) }
        case .webIdentity(let tokenFile, let role, let session, let sts):
            return try await assumeRoleWithWebIdentity(tokenFile: tokenFile, role: role, session: session, sts: sts)
        case .instanceMetadata(let endpoint):
            return try await instanceMetadata(endpoint: endpoint)
        }
    }

    // MARK: Shared files

    /// The profile's keys: the credentials file's `[NAME]` first, then the config file's
    /// `[profile NAME]` (`[default]` for the default profile).
    static func readProfile(_ profile: String, credentialsFile: String, configFile: String) throws -> AWSCredentials {
        for (file, section) in [(credentialsFile, profile), (configFile, profile == "default" ? "default" : "profile " + profile)] {
            guard FileSystem.exists(file) else { continue }
            let text = String(decoding: try FileSystem.read(file), as: UTF8.self)
            let values = INIFile.section(section, in: text)
            if let keyID = values["aws_access_key_id"], let secret = values["aws_secret_access_key"], !keyID.isEmpty, !secret.isEmpty {
                return AWSCredentials(accessKeyID: keyID, secretAccessKey: Secret(secret),
                                      sessionToken: values["aws_session_token"].flatMap { $0.isEmpty ? nil : Secret($0) })
            }
        }
        throw CredentialError(source: "profile \(profile)", message: "no aws_access_key_id and aws_secret_access_key in [\(profile)] of \(credentialsFile) or \(configFile)")
    }

    // MARK: Web identity

    func assumeRoleWithWebIdentity(tokenFile: String, role: String, session: String, sts: String) async throws -> AWSCredentials {
        let source = "web identity (\(role))"
        let token: String
        do {
            token = try await Blocking.run { String(decoding: try FileSystem.read(tokenFile), as: UTF8.self).trimmingSpaces() }
        } catch {
            throw CredentialError(source: source, message: "cannot read AWS_WEB_IDENTITY_TOKEN_FILE: \(error)")
        }
        // A form body, not the query string: the token must not end up in an access log.
        let form = [("Action", "AssumeRoleWithWebIdentity"), ("Version", "2011-06-15"), ("RoleArn", role),
                    ("RoleSessionName", session), ("WebIdentityToken", token), ("DurationSeconds", "3600")]
            .map { "\($0.0)=\(S3Settings.encode($0.1))" }.joined(separator: "&")
        let request = HTTPRequest(method: "POST", url: sts + "/",
                                  headers: [HTTPHeader("Content-Type", "application/x-www-form-urlencoded"), HTTPHeader("Accept", "application/xml")],
                                  body: .bytes(Array(form.utf8)), connectTimeout: .seconds(5), totalTimeout: .seconds(20))
        let response: HTTPClientResponse
        do {
            response = try await HTTP.send(request)
        } catch {
            throw CredentialError(source: source, message: "STS at \(sts) unreachable: \(error) (check AWS_ENDPOINT_URL_STS and the network)")
        }
        let body = response.bodyText
        guard response.isSuccess, let keyID = S3Client.xmlValue(body, "AccessKeyId"), let secret = S3Client.xmlValue(body, "SecretAccessKey") else {
            let code = S3Client.xmlValue(body, "Code").map { " \($0)" } ?? ""
            throw CredentialError(source: source, message: "STS AssumeRoleWithWebIdentity answered HTTP \(response.status)\(code) (check the role's trust policy for this service account)")
        }
        return AWSCredentials(accessKeyID: keyID, secretAccessKey: Secret(S3Client.xmlUnescape(secret)),
                              sessionToken: S3Client.xmlValue(body, "SessionToken").map { Secret(S3Client.xmlUnescape($0)) },
                              expiration: S3Client.xmlValue(body, "Expiration").flatMap(WallClock.parseRFC3339))
    }

    // MARK: Instance metadata (IMDSv2)

    func instanceMetadata(endpoint: String) async throws -> AWSCredentials {
        let source = "instance metadata (\(endpoint))"
        func send(_ request: HTTPRequest, _ what: String) async throws -> HTTPClientResponse {
            let response: HTTPClientResponse
            do {
                response = try await HTTP.send(request)
            } catch {
                throw CredentialError(source: source, message: "\(what): \(error) (no credentials in the environment, no web identity, no profile; on EC2 check the hop limit, elsewhere set credentials)")
            }
            guard response.isSuccess else { throw CredentialError(source: source, message: "\(what) answered HTTP \(response.status)") }
            return response
        }
        let tokenResponse = try await send(HTTPRequest(method: "PUT", url: endpoint + "/latest/api/token",
                                                       headers: [HTTPHeader("X-aws-ec2-metadata-token-ttl-seconds", "21600")],
                                                       connectTimeout: .seconds(1), totalTimeout: .seconds(3)), "the IMDSv2 token request")
        let token = HTTPHeader("X-aws-ec2-metadata-token", tokenResponse.bodyText)
        let base = endpoint + "/latest/meta-data/iam/security-credentials/"
        let roles = try await send(HTTPRequest(method: "GET", url: base, headers: [token], connectTimeout: .seconds(1), totalTimeout: .seconds(3)),
                                   "the instance role lookup")
        guard let role = roles.bodyText.split(whereSeparator: \.isNewline).first.map(String.init), !role.isEmpty else {
            throw CredentialError(source: source, message: "the instance has no IAM role attached")
        }
        let answer = try await send(HTTPRequest(method: "GET", url: base + S3Settings.encode(role), headers: [token],
                                                connectTimeout: .seconds(1), totalTimeout: .seconds(3)), "the role credentials of \(role)")
        guard let json = try? JSONCoding.decode(InstanceCredentials.self, from: Array(answer.body)) else {
            throw CredentialError(source: source, message: "the role credentials of \(role) are not the expected JSON")
        }
        return AWSCredentials(accessKeyID: json.AccessKeyId, secretAccessKey: Secret(json.SecretAccessKey), sessionToken: json.Token.map(Secret.init),
                              expiration: json.Expiration.flatMap(WallClock.parseRFC3339))
    }

    /// The JSON the metadata service returns for a role (field names as AWS spells them).
    private struct InstanceCredentials: Decodable {
        var AccessKeyId: String
        var SecretAccessKey: String
        var Token: String?
        var Expiration: String?
    }
}

/// Credentials could not be had: which source, and what to check (never a secret).
public struct CredentialError: Error, CustomStringConvertible, Sendable {
    public var source: String
    public var message: String
    public var description: String { "no S3 credentials from \(source): \(message)" }
}

/// The AWS shared files' INI dialect: `[section]`, `key = value`, `#`/`;` comments.
enum INIFile {
    static func section(_ name: String, in text: String) -> [String: String] {
        var values: [String: String] = [:]
        var inside = false
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                inside = line.dropFirst().dropLast().trimmingCharacters(in: .whitespaces) == name
                continue
            }
            guard inside, let eq = line.firstIndex(of: "=") else { continue }
            values[line[..<eq].trimmingCharacters(in: .whitespaces).lowercased()] = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
        }
        return values
    }
}
