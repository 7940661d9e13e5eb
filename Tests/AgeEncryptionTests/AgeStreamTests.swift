import AgeEncryption
import Testing

@Suite struct AgeStreamTests {
    private func bytes(_ count: Int, seed: UInt64 = 1) -> [UInt8] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15
        return (0..<count).map { _ in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return UInt8(truncatingIfNeeded: state)
        }
    }

    /// Feeds `input` in uneven slices so chunk boundaries fall anywhere.
    private func decryptInPieces(_ input: [UInt8], _ identities: [AgeIdentity]) throws -> [UInt8] {
        let decryptor = AgeDecryptor(identities: identities)
        var out: [UInt8] = []
        var offset = 0, step = 1
        try input.withUnsafeBytes { raw in
            while offset < raw.count {
                let n = min(step, raw.count - offset)
                try decryptor.update(UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + n)])) { out.append(contentsOf: $0) }
                offset += n
                step = step * 7 % 90_001 + 1
            }
        }
        try decryptor.finish { out.append(contentsOf: $0) }
        return out
    }

    @Test(arguments: [0, 1, 65_535, 65_536, 65_537, 3 * 65_536, 200_000])
    func roundTrip(size: Int) throws {
        let identity = AgeIdentity.generate()
        let other = AgeIdentity.generate()
        let plaintext = bytes(size, seed: UInt64(size) + 3)
        let file = try AgeEncryptor.encrypt(plaintext, to: [other.recipient, identity.recipient])
        let chunks = max(1, (size + 65_535) / 65_536)
        #expect(try decryptInPieces(file, [identity]) == plaintext)
        #expect(try AgeDecryptor.decrypt(file, identities: [other]) == plaintext)
        // Header + 16-byte nonce + one tag per chunk.
        #expect(file.count > size + chunks * 16 + 16)
        #expect(file.count < size + chunks * 16 + 16 + 400)
    }

    @Test func wrongKeySaysNoMatch() throws {
        let file = try AgeEncryptor.encrypt(bytes(1000), to: [AgeIdentity.generate().recipient])
        let error = try #require(throws: AgeError.self) { try AgeDecryptor.decrypt(file, identities: [AgeIdentity.generate()]) }
        #expect(error.kind == .noMatch)
    }

    @Test func everyFlippedByteIsRefusedWithoutReleasingAlteredBytes() throws {
        let identity = AgeIdentity.generate()
        let plaintext = bytes(2 * 65_536 + 100, seed: 8)
        let file = try AgeEncryptor.encrypt(plaintext, to: [identity.recipient])
        // Every header byte, and a spread of payload positions in each chunk and tag.
        var positions = Array(0..<300)
        positions += stride(from: 300, to: file.count, by: 997).map { $0 }
        positions += [file.count - 1, file.count - 17, file.count - 16]
        for position in positions where position < file.count {
            var damaged = file
            damaged[position] ^= 0x01
            let decryptor = AgeDecryptor(identities: [identity])
            var released: [UInt8] = []
            var failed = false
            do {
                try damaged.withUnsafeBytes { try decryptor.update($0) { released.append(contentsOf: $0) } }
                try decryptor.finish { released.append(contentsOf: $0) }
            } catch is AgeError {
                failed = true
            }
            #expect(failed, "flipping byte \(position) went unnoticed")
            // Whatever was released before the failure is an authentic prefix.
            #expect(Array(plaintext.prefix(released.count)) == released, "byte \(position): altered plaintext released")
        }
    }

    @Test func truncationAnywhereIsRefused() throws {
        let identity = AgeIdentity.generate()
        let plaintext = bytes(65_536 * 2, seed: 5)
        let file = try AgeEncryptor.encrypt(plaintext, to: [identity.recipient])
        for length in [0, 10, 100, 150, 180, 200, 65_000, 65_536 + 200, file.count - 16, file.count - 1] where length < file.count {
            #expect(throws: AgeError.self, "truncated to \(length)") {
                try AgeDecryptor.decrypt(Array(file.prefix(length)), identities: [identity])
            }
        }
        let trailing = try #require(throws: AgeError.self) { try AgeDecryptor.decrypt(file + [0], identities: [identity]) }
        #expect(trailing.kind == .payloadFailure)
    }

    @Test func headerIsReadableWithoutTheKey() throws {
        let a = AgeIdentity.generate(), b = AgeIdentity.generate()
        let file = try AgeEncryptor.encrypt(bytes(10), to: [a.recipient, b.recipient])
        let header = try AgeHeader.read(from: file)
        #expect(header.x25519RecipientCount == 2)
        #expect(throws: AgeError.self) { try AgeHeader.read(from: Array(file.prefix(50))) }
    }
}
