import Crypto
import Foundation

/// The key schedule and STREAM constants of age v1, shared by the encryptor and decryptor.
enum AgePrimitives {
    static let chunkSize = 64 * 1024
    static let tagSize = 16
    static let fileKeySize = 16
    static let nonceSize = 16
    static let x25519Label = Array("age-encryption.org/v1/X25519".utf8)

    static func hkdf(_ key: [UInt8], salt: [UInt8], info: String) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: key), salt: salt, info: Array(info.utf8), outputByteCount: 32)
    }

    static func headerMAC(fileKey: [UInt8], macInput: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: macInput, using: hkdf(fileKey, salt: [], info: "header")))
    }

    /// X25519 then HKDF(shared, salt: share ‖ recipient, info: label). The all-zero shared
    /// secret (a low-order or identity share) is refused: swift-crypto would return it.
    /// - Parameters:
    ///   - peer: the other side's public key: the recipient when encrypting, the share when decrypting.
    static func wrapKey(privateKey: Curve25519.KeyAgreement.PrivateKey, peer peerKey: [UInt8], share: [UInt8], recipient: [UInt8]) throws -> SymmetricKey {
        let peer: Curve25519.KeyAgreement.PublicKey
        let shared: SharedSecret
        do {
            peer = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: peerKey)
            shared = try privateKey.sharedSecretFromKeyAgreement(with: peer)
        } catch {
            throw AgeError(.headerFailure, "the X25519 share is not a usable point")
        }
        let isZero = shared.withUnsafeBytes { bytes in bytes.allSatisfy { $0 == 0 } }
        guard !isZero else { throw AgeError(.headerFailure, "the X25519 shared secret is all zero (low-order share)") }
        return shared.hkdfDerivedSymmetricKey(using: SHA256.self, salt: share + recipient, sharedInfo: x25519Label, outputByteCount: 32)
    }

    /// The all-zero nonce of the X25519 stanza body (its wrap key is used once).
    static var zeroNonce: ChaChaPoly.Nonce { try! ChaChaPoly.Nonce(data: [UInt8](repeating: 0, count: 12)) }

    /// STREAM nonce: 11-byte big-endian chunk counter, then 1 on the last chunk.
    static func streamNonce(_ counter: UInt64, last: Bool) -> ChaChaPoly.Nonce {
        var bytes = [UInt8](repeating: 0, count: 12)
        for index in 0..<8 { bytes[10 - index] = UInt8(truncatingIfNeeded: counter >> UInt64(8 * index)) }
        bytes[11] = last ? 1 : 0
        return try! ChaChaPoly.Nonce(data: bytes)
    }

    static func randomBytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }
}
