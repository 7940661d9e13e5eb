/// What a file name in the WAL archive (or in a `restore_command`'s `%f`) stands for.
/// Anything else is refused: `%f` is never used to build a path before it parsed as one of these.
public enum WalFileName: Hashable, Sendable {
    /// `000000010000000000000003`: a completed segment.
    case segment(WalSegment)
    /// `000000010000000000000003.partial`: a segment still being written (pg_receivewal), or
    /// the last segment of a timeline a promotion left behind.
    case partial(WalSegment)
    /// `00000002.history`: the timelines a timeline descends from, with their switch points.
    case history(timeline: UInt32)
    /// `000000010000000000000002.00000028.backup`: the backup history file a base backup
    /// leaves in the archive (archive_command only).
    case backupHistory(WalSegment, offset: UInt32)

    public init?(_ name: some StringProtocol, segmentSize: UInt64 = WalSegment.defaultSize) {
        let text = String(name)
        if let segment = WalSegment(name: text, segmentSize: segmentSize) {
            self = .segment(segment)
        } else if text.hasSuffix(".partial"), let segment = WalSegment(name: text.dropLast(8), segmentSize: segmentSize) {
            self = .partial(segment)
        } else if text.count == 16, text.hasSuffix(".history"), text.prefix(8).allSatisfy(\.isUppercaseHexDigit),
                  let tli = UInt32(text.prefix(8), radix: 16), tli > 0 {
            self = .history(timeline: tli)
        } else if text.count == 40, text.hasSuffix(".backup"), let segment = WalSegment(name: text.prefix(24), segmentSize: segmentSize),
                  text.dropFirst(24).first == ".", let offset = UInt32(text.dropFirst(25).prefix(8), radix: 16),
                  text.dropFirst(25).prefix(8).allSatisfy(\.isUppercaseHexDigit) {
            self = .backupHistory(segment, offset: offset)
        } else {
            return nil
        }
    }

    public var name: String {
        switch self {
        case .segment(let s): s.name
        case .partial(let s): s.name + ".partial"
        case .history(let tli): historyFileName(timeline: tli)
        case .backupHistory(let s, let offset): s.name + "." + hex8(UInt64(offset)) + ".backup"
        }
    }
}
