import AgeEncryption
import BackstopCore
import Crypto
import Foundation

/// What was checked of an age-encrypted gzip backup.
public struct EncryptedGzipVerification: Sendable {
    /// SHA-256 and size of the file as stored (what the `.meta` holds).
    public var sha256: String
    public var storedBytes: UInt64
    /// X25519 recipient stanzas in the header.
    public var recipients: Int
    /// The full check ran: every chunk's tag, then the gzip stream to its end. False when no
    /// identity was available: only the stored checksum and the header could be checked.
    public var contentChecked: Bool
    public var uncompressedBytes: UInt64
    public var members: Int
}

/// `verify` for `.gz.age` files. With the identity: one pass hashes the stored bytes, opens
/// every STREAM chunk (a flipped byte anywhere fails its tag) and inflates the plaintext to
/// the end of the gzip stream, in memory only. Without it: the stored SHA-256 and a parse of
/// the age header, and the caller says the content check needs the key.
///
/// Blocking: call from a thread that may block.
public enum EncryptedGzipVerifier {
    /// - Parameter inflated: sees the plaintext inside the gzip as it is inflated (in memory),
    ///   e.g. the tar of an encrypted base backup, walked to check it against its manifest.
    public static func verify(path: String, identities: [AgeIdentity]?,
                              inflated: ((UnsafeRawBufferPointer) throws -> Void)? = nil) throws -> EncryptedGzipVerification {
        var hasher = SHA256()
        let decryptor = identities.map { AgeDecryptor(identities: $0) }
        let inflater = try GzipVerifier.makeInflater(path: path)
        var head: [UInt8] = []
        var stored: UInt64 = 0
        let sink: AgeDecryptor.Sink = { bytes in
            do {
                try inflater.feed(bytes) { piece in try inflated?(piece) }
            } catch let failure as GzipInflater.Failure {
                throw GzipVerificationError(path: path, reason: "decrypted, but " + failure.description)
            }
        }
        do {
            try FileSystem.readChunks(of: path) { bytes in
                hasher.update(bufferPointer: bytes)
                stored += UInt64(bytes.count)
                if head.count < 64 * 1024 { head += bytes.prefix(64 * 1024 - head.count) }
                try decryptor?.update(bytes, into: sink)
            }
            try decryptor?.finish(into: sink)
        } catch let error as AgeError where error.kind == .noMatch {
            throw error  // the wrong key, not a damaged file: callers say so
        } catch let error as AgeError {
            throw GzipVerificationError(path: path, reason: "\(error)")
        }
        let header: AgeHeader
        do {
            header = try AgeHeader.read(from: head)
        } catch {
            throw GzipVerificationError(path: path, reason: "not a valid age file: \(error)")
        }
        if decryptor != nil {
            do {
                try inflater.finish { piece in try inflated?(piece) }
            } catch is GzipInflater.Failure {
                throw GzipVerificationError(path: path, reason: "decrypted, but the gzip stream inside is truncated")
            }
        }
        return EncryptedGzipVerification(sha256: hasher.finalize().map { hexByte($0) }.joined(), storedBytes: stored,
                                         recipients: header.x25519RecipientCount, contentChecked: decryptor != nil,
                                         uncompressedBytes: inflater.uncompressedBytes, members: inflater.members)
    }
}
