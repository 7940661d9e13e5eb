import Foundation
import BackstopCore
import HTTPClient

/// Where and how backups are copied off-site. S3 is on when `BACKUP_S3_BUCKET` is set.
public struct S3Settings: Sendable {
    public enum Encryption: Sendable, Equatable {
        case none
        case aes256
        case kms(keyID: String?)
    }

    public var bucket: String
    public var region: String
    /// `https://s3.<region>.amazonaws.com` unless `BACKUP_S3_ENDPOINT` names an
    /// S3-compatible store (MinIO, Ceph, moto…), which is then addressed path-style.
    public var endpoint: String
    public var pathStyle: Bool
    /// Key prefix without leading or trailing slash ("" for none).
    public var prefix: String
    public var storageClass: String
    /// `BACKUP_S3_ARCHIVE_STORAGE_CLASS`: the class a backup is copied into (in place) once it
    /// is the yearly keeper of a finished year (nil: off).
    public var archiveStorageClass: String?
    public var encryption: Encryption
    /// Asked for the signing keys before every request (cached; temporary ones refreshed
    /// before they expire).
    public var credentials: CredentialProvider
    public var multipartThreshold: UInt64
    public var partSize: UInt64
    public var concurrency: Int
    public var maxAttempts: Int
    /// First retry delay; doubles per attempt (capped at 30 s), with full jitter.
    public var retryBase: Duration
    public var connectTimeout: Duration
    /// A transfer that moves nothing for this long is aborted (and retried).
    public var stallTimeout: Duration

    /// nil when `BACKUP_S3_BUCKET` is unset or empty (S3 off).
    public init?(environment env: [String: String]) throws {
        guard let bucket = env["BACKUP_S3_BUCKET"]?.trimmingCharacters(in: .whitespaces), !bucket.isEmpty else { return nil }
        func text(_ name: String, _ fallback: String) -> String {
            let v = env[name]?.trimmingCharacters(in: .whitespaces) ?? ""
            return v.isEmpty ? fallback : v
        }
        func bytes(_ name: String, _ fallback: UInt64, minimum: UInt64) throws -> UInt64 {
            guard let raw = env[name], !raw.isEmpty else { return fallback }
            guard let value = S3Settings.parseBytes(raw), value >= minimum else {
                throw ConfigError(variable: name, value: raw, accepted: "a size of at least \(minimum) bytes such as 8388608, 64MiB or 1GiB")
            }
            return value
        }
        func duration(_ name: String, _ fallback: Duration) throws -> Duration {
            guard let raw = env[name], !raw.isEmpty else { return fallback }
            return try ValueParsers.duration(raw, variable: name)
        }
        self.bucket = bucket
        region = text("BACKUP_S3_REGION", text("AWS_REGION", "us-east-1"))
        if let custom = env["BACKUP_S3_ENDPOINT"], !custom.isEmpty {
            guard custom.hasPrefix("http://") || custom.hasPrefix("https://") else {
                throw ConfigError(variable: "BACKUP_S3_ENDPOINT", value: custom, accepted: "an http:// or https:// URL such as http://minio:9000")
            }
            var e = custom
            while e.hasSuffix("/") { e.removeLast() }
            endpoint = e
            pathStyle = true
        } else {
            endpoint = "https://s3.\(region).amazonaws.com"
            pathStyle = false
        }
        prefix = text("BACKUP_S3_PREFIX", "").split(separator: "/").joined(separator: "/")
        storageClass = text("BACKUP_S3_STORAGE_CLASS", "STANDARD_IA")
        let classes = ["STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER", "GLACIER_IR", "DEEP_ARCHIVE", "REDUCED_REDUNDANCY"]
        guard classes.contains(storageClass) else {
            throw ConfigError(variable: "BACKUP_S3_STORAGE_CLASS", value: storageClass, accepted: classes.joined(separator: ", "))
        }
        let archive = text("BACKUP_S3_ARCHIVE_STORAGE_CLASS", "")
        guard archive.isEmpty || classes.contains(archive) else {
            throw ConfigError(variable: "BACKUP_S3_ARCHIVE_STORAGE_CLASS", value: archive,
                              accepted: "GLACIER, DEEP_ARCHIVE or another of " + classes.joined(separator: ", ") + ", or empty for none")
        }
        archiveStorageClass = archive.isEmpty ? nil : archive
        switch text("BACKUP_S3_SSE", "") {
        case "": encryption = .none
        case "AES256": encryption = .aes256
        case "aws:kms": encryption = .kms(keyID: env["BACKUP_S3_SSE_KMS_KEY_ID"].flatMap { $0.isEmpty ? nil : $0 })
        case let other: throw ConfigError(variable: "BACKUP_S3_SSE", value: other, accepted: "AES256 or aws:kms (with BACKUP_S3_SSE_KMS_KEY_ID), or empty for none")
        }
        credentials = try CredentialProvider(environment: env, region: region)
        multipartThreshold = try bytes("BACKUP_S3_MULTIPART_THRESHOLD", 64 << 20, minimum: 5 << 20)
        partSize = try bytes("BACKUP_S3_PART_SIZE", 16 << 20, minimum: 5 << 20)
        let concurrency = env["BACKUP_S3_CONCURRENCY"].flatMap { $0.isEmpty ? nil : $0 } ?? "4"
        self.concurrency = try ValueParsers.integer(concurrency, variable: "BACKUP_S3_CONCURRENCY", in: 1...32)
        let attempts = env["BACKUP_S3_MAX_ATTEMPTS"].flatMap { $0.isEmpty ? nil : $0 } ?? "5"
        maxAttempts = try ValueParsers.integer(attempts, variable: "BACKUP_S3_MAX_ATTEMPTS", in: 1...20)
        retryBase = try duration("BACKUP_S3_RETRY_BACKOFF", .milliseconds(500))
        connectTimeout = try duration("BACKUP_S3_CONNECT_TIMEOUT", .seconds(10))
        stallTimeout = try duration("BACKUP_S3_STALL_TIMEOUT", .seconds(60))
    }

    /// Storage classes whose objects cannot be read before a RestoreObject (`backstop s3 thaw`).
    public static let archiveClasses: Set<String> = ["GLACIER", "DEEP_ARCHIVE"]

    /// `s3://bucket/prefix` for messages (never credentials).
    public var destination: String { "s3://\(bucket)" + (prefix.isEmpty ? "" : "/\(prefix)") }

    /// The object key of a path relative to BACKUP_DIR (`postgres/x.sql.gz`).
    public func key(for relativePath: String) -> String { prefix.isEmpty ? relativePath : prefix + "/" + relativePath }

    /// The URL of an object (key percent-encoded, `/` kept) or of the bucket (key nil).
    public func url(key: String?, query: String? = nil) -> String {
        let encodedKey = key.map { "/" + S3Settings.encodePath($0) } ?? "/"
        var base: String
        if pathStyle {
            base = endpoint + "/" + bucket + (key == nil ? "" : encodedKey)
        } else {
            let scheme = endpoint.hasPrefix("http://") ? "http://" : "https://"
            base = scheme + bucket + "." + endpoint.dropFirst(scheme.count) + encodedKey
        }
        if let query { base += "?" + query }
        return base
    }

    static let unreserved = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~".utf8)

    /// RFC 3986 percent-encoding as SigV4 wants it; `/` kept in paths.
    public static func encode(_ text: String, keepSlash: Bool = false) -> String {
        var out = ""
        for byte in text.utf8 {
            if unreserved.contains(byte) || (keepSlash && byte == UInt8(ascii: "/")) {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(2)
            }
        }
        return out
    }

    static func encodePath(_ key: String) -> String { encode(key, keepSlash: true) }

    /// `8388608`, `8MiB`, `8M`, `64MB` (binary units), `1GiB`.
    public static func parseBytes(_ raw: String) -> UInt64? { ValueParsers.byteSize(raw) }
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
