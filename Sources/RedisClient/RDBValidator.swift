/// Checks an RDB file while it streams past, without holding it: the header (`REDIS` and a
/// four-digit version) as soon as its nine bytes have arrived, and at the end the EOF opcode
/// (0xFF) and the CRC-64 of everything before the last eight bytes, which hold the checksum
/// little-endian.
///
/// Why: a snapshot is only a backup if it is whole. A stream cut part-way, or corrupted on
/// the way, fails here and the backup attempt fails with it.
///
/// A stored checksum of 0 means the server runs with `rdbchecksum no`: the file is then
/// reported as `.disabled` ("unchecked"), never as verified.
public struct RDBValidator: Sendable {
    /// What the checksum check concluded.
    public enum Checksum: Sendable, Equatable {
        /// The stored CRC-64 matched the computed one.
        case verified(UInt64)
        /// The server wrote no checksum (`rdbchecksum no`, or an RDB older than version 5).
        case disabled
    }

    /// A whole, checked file.
    public struct Summary: Sendable, Equatable {
        public var rdbVersion: Int
        public var bytes: Int64
        public var checksum: Checksum
    }

    /// Why a stream is not a good RDB file.
    public enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        case badMagic([UInt8])
        case badVersion([UInt8])
        case tooShort(Int64)
        case missingEOFOpcode(UInt8)
        case checksumMismatch(stored: UInt64, computed: UInt64)

        public var description: String {
            switch self {
            case .badMagic(let bytes):
                return "the snapshot does not start with the RDB magic REDIS (starts with \(Self.show(bytes)))"
            case .badVersion(let bytes):
                return "the RDB header has no four-digit version (\(Self.show(bytes)))"
            case .tooShort(let count):
                return "the snapshot ended after \(count) bytes, before a complete RDB file"
            case .missingEOFOpcode(let byte):
                return "the RDB file does not end with the EOF opcode 0xFF before its checksum (found 0x\(String(byte, radix: 16))): it is truncated"
            case .checksumMismatch(let stored, let computed):
                return "the RDB checksum does not match (stored 0x\(String(stored, radix: 16)), computed 0x\(String(computed, radix: 16))): the snapshot is corrupt or truncated"
            }
        }

        private static func show(_ bytes: [UInt8]) -> String {
            let printable = bytes.allSatisfy { $0 >= 0x20 && $0 < 0x7f }
            if printable { return "\"" + String(decoding: bytes, as: UTF8.self) + "\"" }
            return bytes.map { String($0, radix: 16) }.joined(separator: " ")
        }
    }

    private static let magic = Array("REDIS".utf8)

    /// The RDB version, known once the header has streamed past.
    public private(set) var rdbVersion: Int?
    /// Bytes seen so far.
    public private(set) var bytes: Int64 = 0
    private var header: [UInt8] = []
    private var crc = CRC64()
    /// The last (up to) eight bytes, not yet in the CRC: they may be the checksum.
    private var held: [UInt8] = []
    /// The last byte added to the CRC (the EOF opcode once the stream is complete).
    private var lastCounted: UInt8?

    public init() {}

    /// Feeds the next chunk. Throws as soon as the header is wrong.
    public mutating func update(_ chunk: UnsafeRawBufferPointer) throws {
        guard !chunk.isEmpty else { return }
        bytes += Int64(chunk.count)
        if header.count < 9 {
            let needed = min(9 - header.count, chunk.count)
            header.append(contentsOf: chunk[0..<needed])
            try checkHeader()
        }
        if chunk.count >= 8 {
            if !held.isEmpty {
                held.withUnsafeBytes { crc.update($0) }
                lastCounted = held.last
            }
            let countedEnd = chunk.count - 8
            if countedEnd > 0 {
                crc.update(UnsafeRawBufferPointer(rebasing: chunk[0..<countedEnd]))
                lastCounted = chunk[countedEnd - 1]
            }
            held = Array(chunk[countedEnd...])
        } else {
            held.append(contentsOf: chunk)
            let excess = held.count - 8
            if excess > 0 {
                held.withUnsafeBytes { crc.update(UnsafeRawBufferPointer(rebasing: $0[0..<excess])) }
                lastCounted = held[excess - 1]
                held.removeFirst(excess)
            }
        }
    }

    /// Feeds a byte array (tests).
    public mutating func update(_ chunk: [UInt8]) throws {
        try chunk.withUnsafeBytes { try update($0) }
    }

    /// Checks the end of the file once the stream is over.
    public func finish() throws -> Summary {
        guard let rdbVersion, bytes >= 9 + 1 + 8, held.count == 8, let lastCounted else {
            throw Failure.tooShort(bytes)
        }
        // RDB files before version 5 carry no checksum: the last byte is the EOF opcode.
        if rdbVersion < 5 {
            guard held.last == 0xff else { throw Failure.missingEOFOpcode(held.last ?? 0) }
            return Summary(rdbVersion: rdbVersion, bytes: bytes, checksum: .disabled)
        }
        guard lastCounted == 0xff else { throw Failure.missingEOFOpcode(lastCounted) }
        var stored: UInt64 = 0
        for (index, byte) in held.enumerated() { stored |= UInt64(byte) << (8 * UInt64(index)) }
        if stored == 0 { return Summary(rdbVersion: rdbVersion, bytes: bytes, checksum: .disabled) }
        guard stored == crc.value else { throw Failure.checksumMismatch(stored: stored, computed: crc.value) }
        return Summary(rdbVersion: rdbVersion, bytes: bytes, checksum: .verified(stored))
    }

    private mutating func checkHeader() throws {
        let magicSeen = min(header.count, 5)
        guard Array(header[0..<magicSeen]) == Array(Self.magic[0..<magicSeen]) else { throw Failure.badMagic(header) }
        guard header.count == 9 else { return }
        let digits = header[5..<9]
        guard digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let version = Int(String(decoding: digits, as: UTF8.self)) else {
            throw Failure.badVersion(Array(header))
        }
        rdbVersion = version
    }
}
