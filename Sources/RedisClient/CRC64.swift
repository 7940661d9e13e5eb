/// The CRC-64 Redis appends to RDB files: the "Jones" polynomial 0xad93d23594c935a9,
/// reflected input and output, initial value 0, no final xor.
/// `CRC64.checksum("123456789")` is 0xe9c6d914c4b8d9ca.
///
/// Slice-by-8 tables, so checking a multi-gigabyte snapshot while it streams costs little
/// next to gzip.
public struct CRC64: Sendable {
    /// The running value; feed bytes with `update`.
    public private(set) var value: UInt64 = 0

    public init() {}

    /// The polynomial in reflected (LSB-first) form.
    static let reflectedPolynomial: UInt64 = 0x95ac9329ac4bc9b5

    /// table[k * 256 + b]: the CRC of byte b followed by k zero bytes (slice-by-8).
    static let table: [UInt64] = {
        var first = [UInt64](repeating: 0, count: 256)
        for byte in 0..<256 {
            var crc = UInt64(byte)
            for _ in 0..<8 {
                crc = crc & 1 == 1 ? (crc >> 1) ^ reflectedPolynomial : crc >> 1
            }
            first[byte] = crc
        }
        var table = first
        for k in 1..<8 {
            for byte in 0..<256 {
                let previous = table[(k - 1) * 256 + byte]
                table.append((previous >> 8) ^ first[Int(previous & 0xff)])
            }
        }
        return table
    }()

    /// Adds `bytes` to the checksum.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard var pointer = bytes.baseAddress else { return }
        var count = bytes.count
        var crc = value
        Self.table.withUnsafeBufferPointer { table in
            let t = table.baseAddress!
            while count >= 8 {
                crc ^= UInt64(littleEndian: pointer.loadUnaligned(as: UInt64.self))
                crc = t[7 * 256 + Int(crc & 0xff)] ^ t[6 * 256 + Int((crc >> 8) & 0xff)]
                    ^ t[5 * 256 + Int((crc >> 16) & 0xff)] ^ t[4 * 256 + Int((crc >> 24) & 0xff)]
                    ^ t[3 * 256 + Int((crc >> 32) & 0xff)] ^ t[2 * 256 + Int((crc >> 40) & 0xff)]
                    ^ t[1 * 256 + Int((crc >> 48) & 0xff)] ^ t[Int(crc >> 56)]
                pointer += 8
                count -= 8
            }
            while count > 0 {
                crc = t[Int((crc ^ UInt64(pointer.load(as: UInt8.self))) & 0xff)] ^ (crc >> 8)
                pointer += 1
                count -= 1
            }
        }
        value = crc
    }

    /// Adds a byte array (tests and small inputs).
    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The CRC-64 of `bytes`.
    public static func checksum(_ bytes: [UInt8]) -> UInt64 {
        var crc = CRC64()
        crc.update(bytes)
        return crc.value
    }

    /// The CRC-64 of a string's UTF-8 bytes.
    public static func checksum(_ text: String) -> UInt64 { checksum(Array(text.utf8)) }

    /// Bit-at-a-time reference implementation, used by the tests to check the tables.
    public static func reference(_ bytes: [UInt8]) -> UInt64 {
        var crc: UInt64 = 0
        for byte in bytes {
            crc ^= UInt64(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ reflectedPolynomial : crc >> 1 }
        }
        return crc
    }
}
