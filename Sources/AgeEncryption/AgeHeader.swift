/// The parsed text header of an age v1 file. Parsing is strict, as the spec requires: exact
/// version line, LF line ends, stanza arguments of visible ASCII, body lines of exactly 64
/// columns ending with one shorter line, canonical base64 everywhere, and a `--- MAC` line of
/// 43 characters. Anything else is a header failure, before any key is tried.
public struct AgeHeader: Sendable {
    public struct Stanza: Sendable {
        public var arguments: [String]
        public var body: [UInt8]
        public var type: String { arguments[0] }
    }

    public static let versionLine = "age-encryption.org/v1"

    public var stanzas: [Stanza]
    /// The 32-byte header MAC.
    public var mac: [UInt8]
    /// The bytes the MAC covers: the header up to and including `---`.
    var macInput: [UInt8]
    /// Length of the whole header including the MAC line's LF (where the payload nonce starts).
    public var length: Int

    /// Returns the header's length if `bytes` holds a complete header (through the MAC line's
    /// LF), nil if more bytes are needed. Used to stream: the header is parsed only once whole.
    static func completeLength(in bytes: [UInt8]) -> Int? {
        var lineStart = 0
        var index = 0
        while index < bytes.count {
            if bytes[index] == 10 {
                if index - lineStart >= 3 && bytes[lineStart] == 45 && bytes[lineStart + 1] == 45 && bytes[lineStart + 2] == 45 {
                    return index + 1
                }
                lineStart = index + 1
            }
            index += 1
        }
        return nil
    }

    /// Parses a complete header (as delimited by `completeLength`).
    static func parse(_ bytes: [UInt8]) throws -> AgeHeader {
        func fail(_ why: String) -> AgeError { AgeError(.headerFailure, why) }
        var lines: [ArraySlice<UInt8>] = []
        var start = 0
        for (index, byte) in bytes.enumerated() where byte == 10 {
            lines.append(bytes[start..<index])
            start = index + 1
        }
        guard start == bytes.count, !lines.isEmpty else { throw fail("the header is incomplete") }
        guard Array(lines[0]) == Array(versionLine.utf8) else {
            throw fail("the first line is not \(versionLine) (unsupported version or not an age file)")
        }
        var stanzas: [Stanza] = []
        var position = 1
        var offset = lines[0].count + 1
        while position < lines.count {
            let line = Array(lines[position])
            if line.starts(with: Array("--- ".utf8)) {
                guard position == lines.count - 1 else { throw fail("data after the MAC line") }
                let encoded = line.dropFirst(4)
                guard encoded.count == 43, let mac = Base64Unpadded.decode(encoded), mac.count == 32 else {
                    throw fail("the header MAC is not 43 canonical base64 characters")
                }
                guard !stanzas.isEmpty else { throw fail("the header has no recipient stanza") }
                return AgeHeader(stanzas: stanzas, mac: mac, macInput: Array(bytes[0..<(offset + 3)]), length: bytes.count)
            }
            guard line.starts(with: Array("-> ".utf8)) else { throw fail("line \(position + 1) starts neither a stanza (\"-> \") nor the MAC (\"--- \")") }
            let arguments = line.dropFirst(3).split(separator: 32, omittingEmptySubsequences: false)
            guard !arguments.isEmpty, !(arguments.count == 1 && arguments[0].isEmpty) else { throw fail("a stanza has no arguments") }
            for argument in arguments {
                guard !argument.isEmpty else { throw fail("a stanza has an empty argument") }
                guard argument.allSatisfy({ $0 >= 33 && $0 <= 126 }) else { throw fail("a stanza argument holds a character outside visible ASCII") }
            }
            offset += line.count + 1
            position += 1
            var body: [UInt8] = []
            var ended = false
            while position < lines.count {
                let bodyLine = lines[position]
                guard bodyLine.count <= 64 else { throw fail("a stanza body line is longer than 64 columns") }
                guard bodyLine.allSatisfy(Base64Unpadded.isAlphabet) else { throw fail("a stanza body line holds a character outside base64") }
                body += bodyLine
                offset += bodyLine.count + 1
                position += 1
                if bodyLine.count < 64 {
                    ended = true
                    break
                }
            }
            guard ended else { throw fail("a stanza does not end with a short body line") }
            guard let decoded = Base64Unpadded.decode(body) else { throw fail("a stanza body is not canonical base64") }
            stanzas.append(Stanza(arguments: arguments.map { String(decoding: $0, as: UTF8.self) }, body: decoded))
        }
        throw fail("the header has no MAC line")
    }

    /// Reads just the header of an age file (no key needed): what `verify` checks when the
    /// identity is not on this machine. Throws a header failure for a malformed or truncated one.
    public static func read(from bytes: [UInt8]) throws -> AgeHeader {
        guard let length = completeLength(in: bytes) else { throw AgeError(.headerFailure, "the header is truncated") }
        var header = try parse(Array(bytes[0..<length]))
        header.length = length
        try header.checkStanzaShapes()
        return header
    }

    /// Shapes every implementation must enforce, whether or not a stanza is for us.
    func checkStanzaShapes() throws {
        for stanza in stanzas {
            switch stanza.type {
            case "X25519":
                guard stanza.arguments.count == 2 else { throw AgeError(.headerFailure, "an X25519 stanza must have exactly one argument") }
                guard let share = Base64Unpadded.decode(stanza.arguments[1]), share.count == 32 else {
                    throw AgeError(.headerFailure, "an X25519 stanza's share is not 32 canonical base64 bytes")
                }
                guard stanza.body.count == 32 else { throw AgeError(.headerFailure, "an X25519 stanza's wrapped file key is not 32 bytes") }
            case "scrypt":
                guard stanzas.count == 1 else { throw AgeError(.headerFailure, "an scrypt stanza must be the only stanza") }
            default:
                continue
            }
        }
    }

    /// How many stanzas of each kind: `X25519` recipients are what Backstop writes.
    public var x25519RecipientCount: Int { stanzas.filter { $0.type == "X25519" }.count }
}
