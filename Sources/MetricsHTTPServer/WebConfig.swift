import BackstopCore
import CPasswordHash

/// The `--web.config.file` of the Prometheus exporter toolkit, so the file an operator already
/// writes for node_exporter works here unchanged:
///
/// ```yaml
/// tls_server_config:
///   cert_file: backstop.crt      # relative paths are relative to this file's folder
///   key_file: backstop.key
///   min_version: TLS12           # optional: TLS12 (default) or TLS13
/// basic_auth_users:
///   prometheus: $2y$10$...       # bcrypt (htpasswd -nBC 10 prometheus)
/// ```
///
/// Keys the toolkit knows but Backstop does not implement (client certificates, cipher
/// suites, HTTP/2, extra headers) are refused by name rather than ignored: ignoring
/// `client_auth_type: RequireAndVerifyClientCert` would leave open a port its operator
/// believes closed. Unknown keys are refused too, as the toolkit's strict parser does.
public struct WebConfig: Sendable, Equatable {
    public enum TLSVersion: String, Sendable, Equatable {
        case tls12 = "TLS12"
        case tls13 = "TLS13"
    }

    /// TLS on the metrics port: the key and certificate files as read at start-up.
    public struct TLS: Sendable, Equatable {
        public var certFile: String
        public var keyFile: String
        public var minVersion: TLSVersion
        public var maxVersion: TLSVersion
        /// PEM text, read once at start-up (libmicrohttpd takes keys from memory).
        public var certificatePEM: String
        public var keyPEM: String

        /// The GnuTLS priority string for the version range.
        public var gnutlsPriorities: String {
            var text = "NORMAL:-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1"
            if minVersion == .tls13 { text += ":-VERS-TLS1.2" }
            if maxVersion == .tls12 { text += ":-VERS-TLS1.3" }
            return text
        }
    }

    public var path: String
    public var tls: TLS?
    /// User name → bcrypt hash.
    public var users: [String: String]

    public init(path: String, tls: TLS? = nil, users: [String: String] = [:]) {
        self.path = path
        self.tls = tls
        self.users = users
    }

    /// Reads and checks the file; a bad file stops start-up with an error naming the file and
    /// the key.
    public static func load(path: String) throws(WebConfigError) -> WebConfig {
        let bytes: [UInt8]
        do { bytes = try FileSystem.read(path) } catch {
            throw WebConfigError(path: path, key: nil, message: "cannot read the file (\(error))")
        }
        return try parse(String(decoding: bytes, as: UTF8.self), path: path)
    }

    /// Parses `text` as the file `path`; cert and key files are read relative to its folder.
    public static func parse(_ text: String, path: String) throws(WebConfigError) -> WebConfig {
        let root: YAMLNode
        do { root = try WebConfigYAML.parse(text) } catch {
            throw WebConfigError(path: path, key: nil, message: error.description)
        }
        var config = WebConfig(path: path)
        let top: [(key: String, value: YAMLNode, line: Int)]
        switch root {
        case .null: return config
        case let .mapping(entries, _): top = entries
        default: throw WebConfigError(path: path, key: nil, message: "line \(root.line): the file must be a mapping of keys (tls_server_config, basic_auth_users)")
        }
        for entry in top {
            switch entry.key {
            case "tls_server_config":
                config.tls = try tls(entry.value, path: path)
            case "basic_auth_users":
                config.users = try users(entry.value, path: path)
            case "http_server_config":
                try httpServerConfig(entry.value, path: path)
            default:
                throw WebConfigError(path: path, key: entry.key, message: "line \(entry.line): unknown key; accepted: tls_server_config, basic_auth_users, http_server_config")
            }
        }
        return config
    }

    private static func mapping(_ node: YAMLNode, key: String, path: String) throws(WebConfigError) -> [(key: String, value: YAMLNode, line: Int)] {
        switch node {
        case .null: return []
        case let .mapping(entries, _): return entries
        default: throw WebConfigError(path: path, key: key, message: "line \(node.line): expected a mapping of keys below it")
        }
    }

    private static func string(_ node: YAMLNode, key: String, path: String) throws(WebConfigError) -> String {
        guard case let .scalar(value, _) = node, !value.isEmpty else {
            throw WebConfigError(path: path, key: key, message: "line \(node.line): expected a non-empty text value")
        }
        return value
    }

    private static func tls(_ node: YAMLNode, path: String) throws(WebConfigError) -> TLS? {
        let entries = try mapping(node, key: "tls_server_config", path: path)
        if entries.isEmpty { return nil }
        var certFile: String?
        var keyFile: String?
        var minVersion = TLSVersion.tls12
        var maxVersion = TLSVersion.tls13
        for entry in entries {
            let key = "tls_server_config." + entry.key
            switch entry.key {
            case "cert_file": certFile = try string(entry.value, key: key, path: path)
            case "key_file": keyFile = try string(entry.value, key: key, path: path)
            case "min_version", "max_version":
                let text = try string(entry.value, key: key, path: path)
                guard let version = TLSVersion(rawValue: text) else {
                    throw WebConfigError(path: path, key: key, message: "line \(entry.line): \"\(text)\" is not accepted; use TLS12 or TLS13 (TLS 1.0 and 1.1 are never offered)")
                }
                if entry.key == "min_version" { minVersion = version } else { maxVersion = version }
            case "client_auth_type":
                let text = try string(entry.value, key: key, path: path)
                guard text == "NoClientCert" else {
                    throw WebConfigError(path: path, key: key, message: "line \(entry.line): \"\(text)\" is not supported by backstop (client certificates are not implemented); use basic_auth_users, or NoClientCert")
                }
            case "cert", "key", "client_ca_file", "client_ca", "cipher_suites", "curve_preferences",
                 "prefer_server_cipher_suites", "client_allowed_sans":
                throw WebConfigError(path: path, key: key, message: "line \(entry.line): not supported by backstop; supported: cert_file, key_file, min_version, max_version, client_auth_type: NoClientCert")
            default:
                throw WebConfigError(path: path, key: key, message: "line \(entry.line): unknown key; accepted: cert_file, key_file, min_version, max_version, client_auth_type")
            }
        }
        guard let certFile else { throw WebConfigError(path: path, key: "tls_server_config.cert_file", message: "missing (key_file needs its certificate)") }
        guard let keyFile else { throw WebConfigError(path: path, key: "tls_server_config.key_file", message: "missing (cert_file needs its private key)") }
        if minVersion == .tls13 && maxVersion == .tls12 {
            throw WebConfigError(path: path, key: "tls_server_config.min_version", message: "TLS13 is above max_version TLS12")
        }
        let folder = FileSystem.directory(of: path)
        let certPath = certFile.hasPrefix("/") ? certFile : folder + "/" + certFile
        let keyPath = keyFile.hasPrefix("/") ? keyFile : folder + "/" + keyFile
        let certificate = try pem(certPath, key: "tls_server_config.cert_file", marker: "CERTIFICATE", path: path)
        let privateKey = try pem(keyPath, key: "tls_server_config.key_file", marker: "PRIVATE KEY", path: path)
        return TLS(certFile: certPath, keyFile: keyPath, minVersion: minVersion, maxVersion: maxVersion,
                   certificatePEM: certificate, keyPEM: privateKey)
    }

    /// A PEM file's text; its content is never put in an error (it may be a key).
    private static func pem(_ file: String, key: String, marker: String, path: String) throws(WebConfigError) -> String {
        let bytes: [UInt8]
        do { bytes = try FileSystem.read(file) } catch {
            throw WebConfigError(path: path, key: key, message: "cannot read \(file) (\(error))")
        }
        let text = String(decoding: bytes, as: UTF8.self)
        guard text.contains("-----BEGIN "), text.contains(marker + "-----") else {
            throw WebConfigError(path: path, key: key, message: "\(file) is not a PEM file with a \(marker) block")
        }
        return text
    }

    private static func users(_ node: YAMLNode, path: String) throws(WebConfigError) -> [String: String] {
        var users: [String: String] = [:]
        for entry in try mapping(node, key: "basic_auth_users", path: path) {
            let key = "basic_auth_users." + entry.key
            if entry.key.contains(":") {
                throw WebConfigError(path: path, key: key, message: "line \(entry.line): a user name cannot contain \":\" (HTTP basic auth separates name and password with it)")
            }
            let hash = try string(entry.value, key: key, path: path)
            guard backstop_password_hash_is_bcrypt(hash) != 0 else {
                throw WebConfigError(path: path, key: key, message: "line \(entry.line): not a bcrypt hash ($2y$, $2b$ or $2a$, 60 characters); make one with `htpasswd -nBC 10 \(entry.key)`")
            }
            users[entry.key] = hash
        }
        return users
    }

    /// Only `http2` is accepted (and has no effect: libmicrohttpd speaks HTTP/1.1).
    private static func httpServerConfig(_ node: YAMLNode, path: String) throws(WebConfigError) {
        for entry in try mapping(node, key: "http_server_config", path: path) {
            let key = "http_server_config." + entry.key
            guard entry.key == "http2" else {
                throw WebConfigError(path: path, key: key, message: "line \(entry.line): not supported by backstop; supported: http2")
            }
            let text = try string(entry.value, key: key, path: path)
            guard text == "true" || text == "false" else {
                throw WebConfigError(path: path, key: key, message: "line \(entry.line): \"\(text)\" is not accepted; use true or false")
            }
        }
    }
}

/// A web config file that cannot be used: the file, the key (dotted) and why.
public struct WebConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    public var path: String
    public var key: String?
    public var message: String

    public var description: String {
        "web config file \(path): \(key.map { "\($0): " } ?? "")\(message)"
    }
}
