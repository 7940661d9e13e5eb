/// A PostgreSQL log sequence number: a byte position in the WAL stream, written `X/Y` (two
/// hexadecimal halves of a 64-bit value, as `pg_current_wal_lsn()` prints it).
///
/// Kept as plain arithmetic so the archive, the chain check and the metrics agree on which
/// segment holds which position without asking the server.
public struct LSN: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var value: UInt64

    public init(_ value: UInt64) { self.value = value }

    /// Parses `16/B374D848`; nil for anything else (no spaces, both halves 1–8 hex digits).
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, (1...8).contains(parts[0].count), (1...8).contains(parts[1].count),
              let high = UInt32(parts[0], radix: 16), let low = UInt32(parts[1], radix: 16) else { return nil }
        value = UInt64(high) << 32 | UInt64(low)
    }

    public var description: String {
        String(UInt32(truncatingIfNeeded: value >> 32), radix: 16, uppercase: true) + "/"
            + String(UInt32(truncatingIfNeeded: value), radix: 16, uppercase: true)
    }

    /// The number of the segment holding this position (`value / segmentSize`).
    public func segmentNumber(segmentSize: UInt64) -> UInt64 { value / segmentSize }

    public static func < (a: LSN, b: LSN) -> Bool { a.value < b.value }

    /// Bytes from `b` to `a` (0 when `a` is not after `b`).
    public static func distance(from b: LSN, to a: LSN) -> UInt64 { a.value > b.value ? a.value - b.value : 0 }
}
