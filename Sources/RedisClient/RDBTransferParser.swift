/// The replica's side of a full sync, as a pure state machine: bytes read from the socket
/// go in, RDB payload bytes come out through a callback, and nothing here does I/O — so
/// every framing case is tested without a server.
///
/// What a master sends after `SYNC`:
/// - while it prepares the snapshot, bare `\n` keepalives (one a second);
/// - possibly a status line (`+FULLRESYNC …` after PSYNC), skipped;
/// - an error line (`-NOAUTH …`, `-ERR …`, `-NOPERM …`) when it refuses;
/// - then the payload, framed either as `$<length>\r\n` followed by exactly that many
///   bytes (disk-based sync), or as `$EOF:<40-byte mark>\r\n` followed by the payload and
///   the same 40-byte mark (diskless sync). The mark is held back and stripped, never
///   passed on as payload. Like Redis's own replica code, the end is recognised when a read
///   ends with the mark; the RDB checksum behind this parser catches the (astronomically
///   unlikely) case of a value that contains the mark at a read boundary.
///
/// Bytes after the payload (the replication stream a master may continue with) are ignored.
public struct RDBTransferParser: Sendable {
    /// How the payload is delimited.
    public enum Framing: Sendable, Equatable, CustomStringConvertible {
        /// `$<length>`: disk-based sync.
        case length(Int64)
        /// `$EOF:<mark>`: diskless sync.
        case eofMark

        public var description: String {
            switch self {
            case .length(let count): return "length-prefixed (\(count) bytes)"
            case .eofMark: return "diskless (EOF mark)"
            }
        }
    }

    /// Why the transfer failed.
    public enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        /// The server answered with an error line instead of a snapshot.
        case refused(String)
        /// A line before the payload that is neither keepalive, status, error nor framing.
        case malformed(String)
        /// The connection closed before the payload was complete.
        case truncated(framing: Framing?, payloadBytes: Int64)

        public var description: String {
            switch self {
            case .refused(let message):
                return "the server refused to send a snapshot: \(message)"
            case .malformed(let line):
                return "unexpected reply before the snapshot: \(line)"
            case .truncated(nil, _):
                return "the connection closed before the snapshot began"
            case .truncated(.length(let expected)?, let received):
                return "the connection closed after \(received) of \(expected) snapshot bytes"
            case .truncated(.eofMark?, let received):
                return "the connection closed after \(received) snapshot bytes, before the end mark of a diskless transfer"
            }
        }
    }

    private enum State: Sendable {
        case preamble
        case length(remaining: Int64)
        case eofMark([UInt8])
        case done
    }

    /// The mark's length in the `$EOF:` framing (Redis's run-id size).
    public static let markLength = 40
    /// A preamble line longer than this is garbage, not Redis.
    static let maximumLineLength = 1024

    private var state: State = .preamble
    private var line: [UInt8] = []
    /// Diskless mode: the last bytes received, not yet passed on (they may be the mark).
    private var held: [UInt8] = []

    /// The framing, once the header line has been read.
    public private(set) var framing: Framing?
    /// Newline keepalives seen before the payload.
    public private(set) var keepalives = 0
    /// Payload bytes passed on so far.
    public private(set) var payloadBytes: Int64 = 0
    /// True once the whole payload has been passed on.
    public var isComplete: Bool {
        if case .done = state { return true }
        return false
    }

    public init() {}

    /// Feeds the bytes of one read. Payload bytes are handed to `payload` (valid only during
    /// the call). Returns `true` once the payload is complete; later bytes are ignored.
    @discardableResult
    public mutating func feed(_ bytes: UnsafeRawBufferPointer,
                              payload: (UnsafeRawBufferPointer) throws -> Void) throws -> Bool {
        var offset = 0
        while offset < bytes.count {
            switch state {
            case .done:
                return true
            case .preamble:
                let byte = bytes[offset]
                offset += 1
                if byte == UInt8(ascii: "\n") {
                    var text = line
                    line = []
                    if text.last == UInt8(ascii: "\r") { text.removeLast() }
                    try handle(line: text, payload: payload)
                } else {
                    line.append(byte)
                    if line.count > Self.maximumLineLength {
                        throw Failure.malformed(Self.printable(line) + "…")
                    }
                }
            case .length(let remaining):
                let count = Int(min(remaining, Int64(bytes.count - offset)))
                try payload(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)]))
                offset += count
                payloadBytes += Int64(count)
                state = remaining - Int64(count) == 0 ? .done : .length(remaining: remaining - Int64(count))
            case .eofMark(let mark):
                let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
                offset = bytes.count
                let total = held.count + rest.count
                let emit = max(0, total - Self.markLength)
                let fromHeld = min(held.count, emit)
                let fromRest = emit - fromHeld
                if fromHeld > 0 { try held.withUnsafeBytes { try payload(UnsafeRawBufferPointer(rebasing: $0[0..<fromHeld])) } }
                if fromRest > 0 { try payload(UnsafeRawBufferPointer(rebasing: rest[0..<fromRest])) }
                payloadBytes += Int64(emit)
                held = Array(held[fromHeld...]) + Array(rest[fromRest...])
                if held == mark {
                    held = []
                    state = .done
                }
            }
        }
        return isComplete
    }

    /// Feeds a byte array (tests); returns the payload bytes it produced.
    public mutating func feed(_ bytes: [UInt8]) throws -> [UInt8] {
        var out: [UInt8] = []
        try bytes.withUnsafeBytes { raw in
            _ = try feed(raw) { out.append(contentsOf: $0) }
        }
        return out
    }

    /// The connection has closed: succeeds only when the payload was complete.
    public func finish() throws {
        guard isComplete else { throw Failure.truncated(framing: framing, payloadBytes: payloadBytes) }
    }

    private mutating func handle(line text: [UInt8], payload: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard let first = text.first else {
            keepalives += 1
            return
        }
        switch first {
        case UInt8(ascii: "-"):
            throw Failure.refused(Self.printable(Array(text.dropFirst())))
        case UInt8(ascii: "+"):
            return // +FULLRESYNC <replid> <offset> after PSYNC: not part of the payload.
        case UInt8(ascii: "$"):
            let body = Array(text.dropFirst())
            let eofPrefix = Array("EOF:".utf8)
            if body.starts(with: eofPrefix) {
                let mark = Array(body.dropFirst(eofPrefix.count))
                guard mark.count == Self.markLength else {
                    throw Failure.malformed("diskless framing with a \(mark.count)-byte mark instead of \(Self.markLength)")
                }
                framing = .eofMark
                state = .eofMark(mark)
            } else if let length = Int64(String(decoding: body, as: UTF8.self)), length >= 0 {
                framing = .length(length)
                state = length == 0 ? .done : .length(remaining: length)
            } else {
                throw Failure.malformed(Self.printable(text))
            }
        default:
            throw Failure.malformed(Self.printable(text))
        }
    }

    private static func printable(_ bytes: [UInt8]) -> String {
        let shown = bytes.prefix(200).map { $0 >= 0x20 && $0 < 0x7f ? Character(UnicodeScalar($0)) : "?" }
        return String(shown)
    }
}
