import AgeEncryption
import Testing

@Suite struct AgeEncodingTests {
    @Test func base64RoundTripsEveryLength() {
        for length in 0..<70 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            let text = Base64Unpadded.encode(bytes)
            #expect(!text.contains("="))
            #expect(Base64Unpadded.decode(text) == bytes)
        }
    }

    @Test func base64KnownValues() {
        #expect(Base64Unpadded.encode(Array("foobar".utf8)) == "Zm9vYmFy")
        #expect(Base64Unpadded.encode(Array("fooba".utf8)) == "Zm9vYmE")
        #expect(Base64Unpadded.encode(Array("f".utf8)) == "Zg")
        #expect(Base64Unpadded.decode("Zm9vYg") == Array("foob".utf8))
    }

    @Test func base64RefusesNonCanonicalForms() {
        #expect(Base64Unpadded.decode("Zg==") == nil, "padding")
        #expect(Base64Unpadded.decode("Zh") == nil, "non-zero leftover bits")
        #expect(Base64Unpadded.decode("Zm9vYmF") == nil, "non-zero leftover bits (2 bytes)")
        #expect(Base64Unpadded.decode("Z") == nil, "4n+1 characters")
        #expect(Base64Unpadded.decode("Zm9v-mFy") == nil, "URL alphabet")
        #expect(Base64Unpadded.decode("Zm9v YmFy") == nil, "space")
        #expect(Base64Unpadded.decode("Zm9vYmFy\r") == nil, "CR")
    }

    @Test func bech32BIP173Vectors() throws {
        let valid = ["A12UEL5L", "a12uel5l", "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
                     "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w"]
        for text in valid {
            let decoded = try #require(Bech32.decode(text), "\(text)")
            #expect(Bech32.encode(hrp: decoded.hrp, data: decoded.data) == text.lowercased())
        }
        let invalid = ["A12uEL5L" /* mixed case */, "a12uel5m" /* checksum */, "1pzry9x0s0muk" /* empty hrp */,
                       "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxx", "a1b2c3d" /* 'b' not in charset */]
        for text in invalid { #expect(Bech32.decode(text) == nil, "\(text)") }
        // BIP 173's 90-character limit does not apply to age (its post-quantum keys are longer).
        #expect(Bech32.decode("an84characterslonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1569pvx") != nil)
    }

    @Test func keysAgreeWithAgeKeygenFormat() throws {
        // From the CCTV kit: this identity's recipient, as `age-keygen -y` prints it.
        let identity = try AgeIdentity(parsing: "AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0")
        #expect(identity.encoded == "AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0")
        let recipient = try AgeRecipient(parsing: identity.recipient.encoded)
        #expect(recipient == identity.recipient)
        #expect(recipient.encoded.hasPrefix("age1"))
        #expect(recipient.fingerprint.count == 16)
        #expect(throws: AgeError.self) { try AgeRecipient(parsing: identity.encoded) }
        #expect(throws: AgeError.self) { try AgeIdentity(parsing: recipient.encoded) }
        #expect(throws: AgeError.self) { try AgeRecipient(parsing: "age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq") }
        // The identity's text never appears in its description (logs).
        #expect(!"\(identity)".contains("SECRET"))
    }
}
