/// One WAL segment: a timeline and a segment number. Its file name is 24 hex digits —
/// timeline, then the segment number split into the "log" (high 32 bits of the LSN) and the
/// segment within it — which depends on the segment size (`wal_segment_size`, 16 MiB unless
/// the cluster was initialised with `--wal-segsize`).
public struct WalSegment: Hashable, Comparable, Sendable, CustomStringConvertible {
    public static let defaultSize: UInt64 = 16 * 1024 * 1024

    public var timeline: UInt32
    public var number: UInt64
    public var segmentSize: UInt64

    public init(timeline: UInt32, number: UInt64, segmentSize: UInt64 = WalSegment.defaultSize) {
        self.timeline = timeline
        self.number = number
        self.segmentSize = segmentSize
    }

    /// The segment holding `lsn` on `timeline`.
    public init(timeline: UInt32, lsn: LSN, segmentSize: UInt64 = WalSegment.defaultSize) {
        self.init(timeline: timeline, number: lsn.segmentNumber(segmentSize: segmentSize), segmentSize: segmentSize)
    }

    /// Parses a 24-hex-digit segment name (uppercase, as PostgreSQL writes them).
    public init?(name: some StringProtocol, segmentSize: UInt64 = WalSegment.defaultSize) {
        guard name.count == 24, name.allSatisfy(\.isUppercaseHexDigit) else { return nil }
        let chars = Array(name)
        guard let tli = UInt32(String(chars[0..<8]), radix: 16), let log = UInt32(String(chars[8..<16]), radix: 16),
              let seg = UInt32(String(chars[16..<24]), radix: 16), tli > 0 else { return nil }
        let perLog = WalSegment.segmentsPerLog(segmentSize)
        guard UInt64(seg) < perLog else { return nil }
        self.init(timeline: tli, number: UInt64(log) * perLog + UInt64(seg), segmentSize: segmentSize)
    }

    /// Segments per 4 GiB "log" file number.
    public static func segmentsPerLog(_ segmentSize: UInt64) -> UInt64 { 0x1_0000_0000 / segmentSize }

    public var name: String {
        let perLog = WalSegment.segmentsPerLog(segmentSize)
        return hex8(UInt64(timeline)) + hex8(number / perLog) + hex8(number % perLog)
    }

    public var description: String { name }

    /// The first position in this segment.
    public var startLSN: LSN { LSN(number * segmentSize) }

    /// The segment after this one on the same timeline.
    public var next: WalSegment { WalSegment(timeline: timeline, number: number + 1, segmentSize: segmentSize) }

    public static func < (a: WalSegment, b: WalSegment) -> Bool {
        (a.number, a.timeline) < (b.number, b.timeline)
    }
}

/// The name of a timeline's history file: `0000000N.history`.
public func historyFileName(timeline: UInt32) -> String { hex8(UInt64(timeline)) + ".history" }

func hex8(_ value: UInt64) -> String {
    let digits = String(value, radix: 16, uppercase: true)
    return String(repeating: "0", count: max(0, 8 - digits.count)) + digits
}

extension Character {
    var isUppercaseHexDigit: Bool { ("0"..."9").contains(self) || ("A"..."F").contains(self) }
}
