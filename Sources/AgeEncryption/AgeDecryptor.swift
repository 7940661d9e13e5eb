import Crypto
import Foundation

/// Streaming age v1 decryption with X25519 identities. Ciphertext goes in through `update` in
/// any slices; plaintext is released chunk by chunk and ONLY after that chunk's Poly1305 tag
/// verified, so a damaged file never yields unauthenticated bytes. `finish` checks the end:
/// the last chunk must carry the last-chunk flag, must not be empty unless the whole payload
/// is, and nothing may follow it. Memory: the header plus one chunk.
///
/// Use from one thread.
public final class AgeDecryptor {
    public typealias Sink = (UnsafeRawBufferPointer) throws -> Void

    /// Headers larger than this are refused (Backstop's have one short stanza per recipient).
    static let maxHeaderBytes = 1 << 20
    private static let encryptedChunkSize = AgePrimitives.chunkSize + AgePrimitives.tagSize

    private let identities: [AgeIdentity]
    private var headerBytes: [UInt8] = []
    private var fileKey: [UInt8]?
    private var nonce: [UInt8] = []
    private var payloadKey: SymmetricKey?
    private var chunk: [UInt8] = []
    private var counter: UInt64 = 0
    private var sawLastChunk = false
    private var failed: AgeError?

    /// The parsed header, once enough bytes arrived.
    public private(set) var header: AgeHeader?
    /// Plaintext bytes released so far.
    public private(set) var plaintextBytes: UInt64 = 0

    public init(identities: [AgeIdentity]) {
        self.identities = identities
        chunk.reserveCapacity(Self.encryptedChunkSize)
    }

    /// Feeds ciphertext; releases every complete, authenticated chunk that is known not to be
    /// the last. Throws an `AgeError` (and keeps throwing it) once the file is refused.
    public func update(_ bytes: UnsafeRawBufferPointer, into sink: Sink) throws {
        if let failed { throw failed }
        do {
            try consume(bytes, sink)
        } catch let error as AgeError {
            failed = error
            throw error
        }
    }

    /// End of input: decrypts the last chunk with the last-chunk flag.
    public func finish(into sink: Sink) throws {
        if let failed { throw failed }
        do {
            guard payloadKey != nil else {
                if header == nil { throw AgeError(.headerFailure, "the file ends inside the header") }
                throw AgeError(.headerFailure, "the file ends inside the payload nonce")
            }
            if sawLastChunk { return }
            guard chunk.count >= AgePrimitives.tagSize else {
                throw AgeError(.payloadFailure, chunk.isEmpty && counter == 0 ? "the payload has no chunk" : "the file is truncated (a chunk is shorter than its tag)")
            }
            if chunk.count == AgePrimitives.tagSize && counter > 0 {
                throw AgeError(.payloadFailure, "the last chunk is empty (only an empty payload may have an empty chunk)")
            }
            if chunk.count == Self.encryptedChunkSize {
                let before = counter
                do {
                    try open(last: false, sink)
                } catch where counter == before {
                    // Not a middle chunk: below it must open as the last one.
                }
                if counter != before {
                    // An authentic middle chunk at the end of the input: the file was cut after it.
                    throw AgeError(.payloadFailure, "the file is truncated (it ends without its last chunk)")
                }
            }
            try open(last: true, sink)
        } catch let error as AgeError {
            failed = error
            throw error
        }
    }

    /// Decrypts a whole buffer; `released` receives what was released before a failure.
    public static func decrypt(_ ciphertext: [UInt8], identities: [AgeIdentity]) throws -> [UInt8] {
        let decryptor = AgeDecryptor(identities: identities)
        var out: [UInt8] = []
        let sink: Sink = { out.append(contentsOf: $0) }
        try ciphertext.withUnsafeBytes { try decryptor.update($0, into: sink) }
        try decryptor.finish(into: sink)
        return out
    }

    private func consume(_ bytes: UnsafeRawBufferPointer, _ sink: Sink) throws {
        var offset = 0
        if header == nil {
            // Take bytes up to the end of the header only; never look past it before the MAC verified.
            while offset < bytes.count && header == nil {
                let byte = bytes[offset]
                headerBytes.append(byte)
                offset += 1
                if byte == 10, let length = AgeHeader.completeLength(in: headerBytes) {
                    precondition(length == headerBytes.count)
                    try openHeader()
                }
                if headerBytes.count > Self.maxHeaderBytes { throw AgeError(.headerFailure, "the header is larger than 1 MiB") }
            }
        }
        if payloadKey == nil && header != nil {
            let n = min(AgePrimitives.nonceSize - nonce.count, bytes.count - offset)
            nonce.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)]))
            offset += n
            if nonce.count == AgePrimitives.nonceSize, let fileKey {
                payloadKey = AgePrimitives.hkdf(fileKey, salt: nonce, info: "payload")
            }
        }
        guard payloadKey != nil else { return }
        while offset < bytes.count {
            if sawLastChunk { throw AgeError(.payloadFailure, "data follows the last chunk") }
            if chunk.count == Self.encryptedChunkSize {
                // A full chunk followed by more bytes is not the last one.
                try openFull(sink)
                continue
            }
            let n = min(Self.encryptedChunkSize - chunk.count, bytes.count - offset)
            chunk.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)]))
            offset += n
        }
    }

    /// A full chunk known to be followed by data. If it does not open as a middle chunk but
    /// does as a last one, it is released and the data after it is refused (what age does).
    private func openFull(_ sink: Sink) throws {
        let before = counter
        do {
            try open(last: false, sink)
        } catch where counter == before {
            try open(last: true, sink)
            throw AgeError(.payloadFailure, "data follows the last chunk")
        }
    }

    /// Opens the buffered chunk and releases its plaintext only after the tag verified.
    private func open(last: Bool, _ sink: Sink) throws {
        guard let payloadKey else { return }
        let plaintext: Data
        do {
            let box = try ChaChaPoly.SealedBox(
                nonce: AgePrimitives.streamNonce(counter, last: last),
                ciphertext: chunk[0..<(chunk.count - AgePrimitives.tagSize)],
                tag: chunk[(chunk.count - AgePrimitives.tagSize)...])
            plaintext = try ChaChaPoly.open(box, using: payloadKey)
        } catch {
            throw AgeError(.payloadFailure, "chunk \(counter) fails its authentication tag (the file was altered, truncated or is not whole)")
        }
        counter += 1
        chunk.removeAll(keepingCapacity: true)
        if last { sawLastChunk = true }
        plaintextBytes += UInt64(plaintext.count)
        try plaintext.withUnsafeBytes { try sink($0) }
    }

    private func openHeader() throws {
        let parsed = try AgeHeader.parse(headerBytes)
        try parsed.checkStanzaShapes()
        var found: [UInt8]?
        search: for stanza in parsed.stanzas where stanza.type == "X25519" {
            let share = Base64Unpadded.decode(stanza.arguments[1])!
            for identity in identities {
                let recipient = Array(identity.privateKey.publicKey.rawRepresentation)
                let key = try AgePrimitives.wrapKey(privateKey: identity.privateKey, peer: share, share: share, recipient: recipient)
                let box = try ChaChaPoly.SealedBox(nonce: AgePrimitives.zeroNonce, ciphertext: stanza.body[0..<16], tag: stanza.body[16...])
                if let fileKey = try? ChaChaPoly.open(box, using: key) {
                    found = Array(fileKey)
                    break search
                }
            }
        }
        guard let fileKey = found else {
            let recipients = parsed.x25519RecipientCount
            throw AgeError(.noMatch, "the file has \(recipients) X25519 recipient\(recipients == 1 ? "" : "s"), none for the \(identities.count) identit\(identities.count == 1 ? "y" : "ies") given")
        }
        let expected = AgePrimitives.headerMAC(fileKey: fileKey, macInput: parsed.macInput)
        guard constantTimeEqual(expected, parsed.mac) else {
            throw AgeError(.hmacFailure, "the header MAC does not match: the header was altered")
        }
        self.fileKey = fileKey
        header = parsed
    }

    private func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}
