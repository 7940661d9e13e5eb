import Foundation

/// A timeline history file (`0000000N.history`): one line per ancestor timeline,
/// `parentTLI<TAB>switchpoint<TAB>reason`, oldest first. Timeline N began where its parent
/// (the last line) switched; the chain check follows these to know which timeline a segment
/// number must come from.
public struct TimelineHistory: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        /// The ancestor timeline.
        public var timeline: UInt32
        /// Where that timeline ended and its child began.
        public var switchpoint: LSN
    }

    /// The timeline this file describes.
    public var timeline: UInt32
    /// Its ancestors, oldest first.
    public var ancestors: [Entry]

    public init(timeline: UInt32, ancestors: [Entry]) {
        self.timeline = timeline
        self.ancestors = ancestors
    }

    /// Parses the file's text. Comment lines (`#`) and blank lines are skipped, as PostgreSQL does.
    public init(timeline: UInt32, text: String) throws {
        self.timeline = timeline
        var entries: [Entry] = []
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            guard fields.count >= 2, let tli = UInt32(fields[0]), let lsn = LSN(fields[1]) else {
                throw WalArchiveError("\(historyFileName(timeline: timeline)): cannot read the line \"\(line)\" (expected: parent timeline, switch point LSN, reason)")
            }
            entries.append(Entry(timeline: tli, switchpoint: lsn))
        }
        ancestors = entries
    }

    /// The timelines from the oldest ancestor to this one, each with the range of positions it
    /// covers: `begin` (where its parent switched; 0 for the first) and `end` (its switch
    /// point; nil for this timeline, which has not ended).
    public var path: [TimelineSpan] {
        var spans: [TimelineSpan] = []
        var begin = LSN(0)
        for entry in ancestors {
            spans.append(TimelineSpan(timeline: entry.timeline, begin: begin, end: entry.switchpoint))
            begin = entry.switchpoint
        }
        spans.append(TimelineSpan(timeline: timeline, begin: begin, end: nil))
        return spans
    }
}

/// One timeline's stretch of WAL on the way to a target timeline.
public struct TimelineSpan: Sendable, Equatable {
    public var timeline: UInt32
    public var begin: LSN
    public var end: LSN?
}
