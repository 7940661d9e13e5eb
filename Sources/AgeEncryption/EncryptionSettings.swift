import BackstopCore
import Foundation

/// Encryption at rest as configured in the environment. Recipients (public keys) are what the
/// backup machine needs; the identity (secret key) is read only by the commands that decrypt
/// (verify, restore, drill, decrypt) and should normally live elsewhere.
public struct EncryptionSettings: Sendable {
    /// `BACKUP_ENCRYPTION_RECIPIENTS` (comma-separated) or `BACKUP_ENCRYPTION_RECIPIENTS_FILE`
    /// (one per line, `#` comments). Empty: backups are not encrypted.
    public var recipients: [AgeRecipient]
    /// `BACKUP_ENCRYPTION_IDENTITY_FILE`, the path only; read with `loadIdentities()`.
    public var identityFile: String?

    public var isEnabled: Bool { !recipients.isEmpty }

    /// The `.meta` fingerprints of the recipients, in order.
    public var fingerprints: [String] { recipients.map(\.fingerprint) }

    public init(recipients: [AgeRecipient] = [], identityFile: String? = nil) {
        self.recipients = recipients
        self.identityFile = identityFile
    }

    /// Parses the variables; a bad value is a `ConfigError` naming the variable.
    public init(environment env: [String: String]) throws {
        func value(_ name: String) -> String? {
            guard let v = env[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !v.isEmpty else { return nil }
            return v
        }
        let inline = value("BACKUP_ENCRYPTION_RECIPIENTS")
        let file = value("BACKUP_ENCRYPTION_RECIPIENTS_FILE")
        if inline != nil && file != nil {
            throw ConfigError(variable: "BACKUP_ENCRYPTION_RECIPIENTS_FILE", value: file!,
                              accepted: "either BACKUP_ENCRYPTION_RECIPIENTS or BACKUP_ENCRYPTION_RECIPIENTS_FILE, not both")
        }
        var parsed: [AgeRecipient] = []
        if let inline {
            for item in inline.split(separator: ",", omittingEmptySubsequences: false) {
                let text = item.trimmingCharacters(in: .whitespaces)
                guard let recipient = try? AgeRecipient(parsing: text) else {
                    throw ConfigError(variable: "BACKUP_ENCRYPTION_RECIPIENTS", value: text,
                                      accepted: "comma-separated age X25519 recipients (age1…, as `age-keygen -y key.txt` prints)")
                }
                parsed.append(recipient)
            }
        }
        if let file {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw ConfigError(variable: "BACKUP_ENCRYPTION_RECIPIENTS_FILE", value: file, accepted: "a readable file of age1… recipients, one per line")
            }
            for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
                if line.isEmpty || line.hasPrefix("#") { continue }
                guard let recipient = try? AgeRecipient(parsing: line) else {
                    throw ConfigError(variable: "BACKUP_ENCRYPTION_RECIPIENTS_FILE", value: file,
                                      accepted: "one age1… recipient per line (# comments allowed); line \(number + 1) is not one")
                }
                parsed.append(recipient)
            }
            guard !parsed.isEmpty else {
                throw ConfigError(variable: "BACKUP_ENCRYPTION_RECIPIENTS_FILE", value: file, accepted: "at least one age1… recipient")
            }
        }
        var unique: [AgeRecipient] = []
        for recipient in parsed where !unique.contains(recipient) { unique.append(recipient) }
        recipients = unique
        identityFile = value("BACKUP_ENCRYPTION_IDENTITY_FILE")
    }

    /// Reads the identity file. Refuses a file readable or writable by group or others (the
    /// key to every backup), naming the file and its mode; never echoes its content.
    public func loadIdentities() throws -> [AgeIdentity]? {
        guard let path = identityFile else { return nil }
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw ConfigError(variable: "BACKUP_ENCRYPTION_IDENTITY_FILE", value: path, accepted: "an existing file of AGE-SECRET-KEY-1… lines (\(String(cString: strerror(errno))))")
        }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw ConfigError(variable: "BACKUP_ENCRYPTION_IDENTITY_FILE", value: path,
                              accepted: "a file only its owner can read (mode 0600); it has mode 0\(String(mode, radix: 8)): chmod 600 \(path)")
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigError(variable: "BACKUP_ENCRYPTION_IDENTITY_FILE", value: path, accepted: "a readable UTF-8 file of AGE-SECRET-KEY-1… lines")
        }
        do {
            return try AgeIdentity.parseFile(text, name: path)
        } catch let error as AgeError {
            throw ConfigError(variable: "BACKUP_ENCRYPTION_IDENTITY_FILE", value: path, accepted: "AGE-SECRET-KEY-1… lines as age-keygen writes them (\(error.detail))")
        }
    }
}
