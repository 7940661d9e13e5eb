import Crypto
import Foundation

/// An X25519 recipient (`age1…`): what a backup machine needs to encrypt. Holding it reveals
/// nothing about the backups, which is why it can live in the environment of the backup host.
public struct AgeRecipient: Sendable, Hashable, CustomStringConvertible {
    /// The Bech32 string as given (lowercase).
    public let encoded: String
    let publicKey: [UInt8]

    /// Parses `age1…`; refuses other prefixes, bad checksums and lengths other than 32 bytes.
    public init(parsing text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard let (hrp, data) = Bech32.decode(trimmed), hrp == "age" else {
            throw AgeError(.badKey, "\"\(trimmed)\" is not an age X25519 recipient (expected age1… as age-keygen prints it)")
        }
        guard data.count == 32 else { throw AgeError(.badKey, "\"\(trimmed)\" holds \(data.count) bytes, an X25519 recipient holds 32") }
        publicKey = data
        encoded = trimmed.lowercased()
    }

    init(publicKey: [UInt8]) {
        self.publicKey = publicKey
        encoded = Bech32.encode(hrp: "age", data: publicKey)
    }

    /// A short, stable name for the key a backup needs: the first 16 hex digits of the SHA-256
    /// of the recipient string. Written to `.meta` and shown by `backstop list`; it reveals nothing.
    public var fingerprint: String {
        SHA256.hash(data: Array(encoded.utf8)).prefix(8).map { String(format: "%02x", $0) }.joined()
    }

    public var description: String { encoded }
}

/// An X25519 identity (`AGE-SECRET-KEY-1…`): the secret that decrypts. Never logged; its
/// description shows only the recipient's fingerprint.
public struct AgeIdentity: Sendable, CustomStringConvertible {
    /// The 32-byte scalar (swift-crypto's key type is not Sendable; it is rebuilt per use).
    private let scalar: [UInt8]

    var privateKey: Curve25519.KeyAgreement.PrivateKey {
        // The scalar was accepted by the same initializer when parsed or generated.
        try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: scalar)
    }

    /// Parses one `AGE-SECRET-KEY-1…` string.
    public init(parsing text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard let (hrp, data) = Bech32.decode(trimmed), hrp == "age-secret-key-", data.count == 32 else {
            throw AgeError(.badKey, "not an age X25519 identity (expected AGE-SECRET-KEY-1… as age-keygen writes it)")
        }
        _ = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: data)
        scalar = data
    }

    private init(scalar: [UInt8]) { self.scalar = scalar }

    /// A fresh random identity (tests, and operators without age-keygen).
    public static func generate() -> AgeIdentity {
        AgeIdentity(scalar: Array(Curve25519.KeyAgreement.PrivateKey().rawRepresentation))
    }

    /// The identity in age-keygen's form.
    public var encoded: String { Bech32.encode(hrp: "age-secret-key-", data: scalar).uppercased() }

    /// The recipient that encrypts to this identity.
    public var recipient: AgeRecipient { AgeRecipient(publicKey: Array(privateKey.publicKey.rawRepresentation)) }

    public var description: String { "age identity for recipient \(recipient.fingerprint)" }

    /// Every `AGE-SECRET-KEY-1` line of an identity file (age-keygen's format: `#` comments,
    /// blank lines). A file with none is an error.
    public static func parseFile(_ text: String, name: String) throws -> [AgeIdentity] {
        var identities: [AgeIdentity] = []
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            do {
                identities.append(try AgeIdentity(parsing: line))
            } catch {
                throw AgeError(.badKey, "\(name) line \(number + 1) is not an AGE-SECRET-KEY-1… identity")
            }
        }
        guard !identities.isEmpty else { throw AgeError(.badKey, "\(name) holds no AGE-SECRET-KEY-1… identity") }
        return identities
    }
}
