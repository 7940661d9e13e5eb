import Crypto
import Foundation

/// Streaming age v1 encryption to X25519 recipients. Bytes go in through `update`, ciphertext
/// comes out through the sink as each 64 KiB chunk is sealed; memory stays at one chunk
/// whatever the size of the backup. The header (one stanza per recipient, HMAC) and the
/// payload nonce are emitted by the first `update` or by `finish`.
///
/// Use from one thread.
public final class AgeEncryptor {
    public typealias Sink = (UnsafeRawBufferPointer) throws -> Void

    private let payloadKey: SymmetricKey
    private var pendingHeader: [UInt8]?
    private var buffer: [UInt8]
    private var counter: UInt64 = 0
    private var finished = false

    /// Prepares the header for `recipients` (at least one).
    public init(recipients: [AgeRecipient]) throws {
        guard !recipients.isEmpty else { throw AgeError(.encryption, "no recipient to encrypt to") }
        let fileKey = AgePrimitives.randomBytes(AgePrimitives.fileKeySize)
        var header = Array((AgeHeader.versionLine + "\n").utf8)
        for recipient in recipients {
            let ephemeral = Curve25519.KeyAgreement.PrivateKey()
            let share = Array(ephemeral.publicKey.rawRepresentation)
            let key = try AgePrimitives.wrapKey(privateKey: ephemeral, peer: recipient.publicKey, share: share, recipient: recipient.publicKey)
            let sealed = try ChaChaPoly.seal(fileKey, using: key, nonce: AgePrimitives.zeroNonce)
            let body = Base64Unpadded.encode(Array(sealed.ciphertext) + Array(sealed.tag))
            header += Array("-> X25519 \(Base64Unpadded.encode(share))\n".utf8)
            // 32 bytes encode to 43 characters: always one short line.
            header += Array("\(body)\n".utf8)
        }
        header += Array("---".utf8)
        let mac = AgePrimitives.headerMAC(fileKey: fileKey, macInput: header)
        header += Array(" \(Base64Unpadded.encode(mac))\n".utf8)
        let nonce = AgePrimitives.randomBytes(AgePrimitives.nonceSize)
        header += nonce
        pendingHeader = header
        payloadKey = AgePrimitives.hkdf(fileKey, salt: nonce, info: "payload")
        buffer = []
        buffer.reserveCapacity(AgePrimitives.chunkSize)
    }

    /// Ciphertext bytes a plaintext of `plaintextBytes` becomes, given this header.
    public static func overhead(chunksFor plaintextBytes: UInt64) -> UInt64 {
        let chunks = max(1, (plaintextBytes + UInt64(AgePrimitives.chunkSize) - 1) / UInt64(AgePrimitives.chunkSize))
        return chunks * UInt64(AgePrimitives.tagSize)
    }

    /// Adds plaintext. A full chunk is sealed only once more bytes follow, because the last
    /// chunk (which may be full) carries the last-chunk flag.
    public func update(_ bytes: UnsafeRawBufferPointer, into sink: Sink) throws {
        precondition(!finished, "AgeEncryptor used after finish")
        try emitHeader(sink)
        var offset = 0
        while offset < bytes.count {
            if buffer.count == AgePrimitives.chunkSize { try seal(last: false, sink) }
            let n = min(AgePrimitives.chunkSize - buffer.count, bytes.count - offset)
            buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)]))
            offset += n
        }
    }

    /// Seals the last chunk (empty only when the whole payload is empty).
    public func finish(into sink: Sink) throws {
        precondition(!finished, "AgeEncryptor finished twice")
        try emitHeader(sink)
        try seal(last: true, sink)
        finished = true
    }

    /// Encrypts a whole buffer (tests, small files).
    public static func encrypt(_ plaintext: [UInt8], to recipients: [AgeRecipient]) throws -> [UInt8] {
        let encryptor = try AgeEncryptor(recipients: recipients)
        var out: [UInt8] = []
        let sink: Sink = { out.append(contentsOf: $0) }
        try plaintext.withUnsafeBytes { try encryptor.update($0, into: sink) }
        try encryptor.finish(into: sink)
        return out
    }

    private func emitHeader(_ sink: Sink) throws {
        guard let header = pendingHeader else { return }
        pendingHeader = nil
        try header.withUnsafeBytes { try sink($0) }
    }

    private func seal(last: Bool, _ sink: Sink) throws {
        let box = try ChaChaPoly.seal(buffer, using: payloadKey, nonce: AgePrimitives.streamNonce(counter, last: last))
        counter += 1
        buffer.removeAll(keepingCapacity: true)
        try box.ciphertext.withUnsafeBytes { try sink($0) }
        try box.tag.withUnsafeBytes { try sink($0) }
    }
}
