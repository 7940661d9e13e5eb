/// Proves that the archive holds every segment a recovery from a base backup needs: from the
/// segment of the backup's start LSN on its timeline, along the timeline path of the target
/// (the `.history` files), to the last segment wanted. Segment `n` may come from any timeline
/// of the path whose span covers it — the newest first, as PostgreSQL's recovery reads them:
/// the segment holding a switch point exists on both timelines, the child's copy preferred.
public struct WalChain: Sendable {
    public struct Report: Sendable, Equatable {
        /// The timelines walked, oldest first, cut to start at the backup.
        public var path: [TimelineSpan]
        /// The segments recovery would read, in order.
        public var segments: [WalSegment]
        /// Names of the segments that are missing (the gaps), in order.
        public var missing: [String]
        /// A `.partial` that stands in for the last segment (the one being received).
        public var partial: String?
        /// Problems that are not a single segment (a missing `.history`, a timeline that does
        /// not descend from the backup's).
        public var problems: [String]

        public var isContinuous: Bool { missing.isEmpty && problems.isEmpty }
        /// The newest segment reached (nil when none).
        public var last: WalSegment? { segments.last }
    }

    public let contents: WalArchiveContents
    public let histories: [UInt32: TimelineHistory]
    public let segmentSize: UInt64

    public init(contents: WalArchiveContents, histories: [UInt32: TimelineHistory], segmentSize: UInt64 = WalSegment.defaultSize) {
        self.contents = contents
        self.histories = histories
        self.segmentSize = segmentSize
    }

    /// Reads the `.history` files of `archive` (unreadable ones are reported by `check`).
    public static func load(_ archive: WalArchive) -> WalChain {
        let contents = archive.contents()
        var histories: [UInt32: TimelineHistory] = [:]
        for file in contents.files {
            if case .history(let tli) = file.name, let history = try? archive.history(timeline: tli) { histories[tli] = history }
        }
        let size = contents.segments.first.map { $0.meta.walBytes > 0 ? $0.meta.walBytes : WalSegment.defaultSize } ?? WalSegment.defaultSize
        return WalChain(contents: contents, histories: histories, segmentSize: size)
    }

    /// The newest timeline in the archive (segments or history files).
    public var newestTimeline: UInt32 {
        let fromSegments = contents.segments.map(\.segment.timeline).max() ?? 1
        return max(fromSegments, histories.keys.max() ?? 1)
    }

    /// Timelines that have segments in the archive.
    public var timelines: [UInt32] { Array(Set(contents.segments.map(\.segment.timeline))).sorted() }

    /// The span path to `timeline` (oldest first), or nil with the reason.
    public func path(to timeline: UInt32) -> (path: [TimelineSpan]?, problem: String?) {
        if let history = histories[timeline] { return (history.path, nil) }
        if timeline == 1 { return ([TimelineSpan(timeline: 1, begin: LSN(0), end: nil)], nil) }
        return (nil, "\(historyFileName(timeline: timeline)) is missing from the archive: the timeline \(timeline) cannot be followed")
    }

    /// Checks the chain from `start` on `timeline` to the segment numbered `through` (nil: the
    /// newest archived segment on the path) on `target` (nil: the newest timeline).
    /// `allowPartial` lets the receiver's `.partial` stand for the last segment.
    public func check(from start: LSN, timeline: UInt32, target: UInt32? = nil, through: UInt64? = nil,
                      allowPartial: Bool = false) -> Report {
        var report = Report(path: [], segments: [], missing: [], partial: nil, problems: [])
        let goal = target ?? max(newestTimeline, timeline)
        let (found, problem) = path(to: goal)
        guard var spans = found else {
            report.problems.append(problem ?? "timeline \(goal) cannot be followed")
            return report
        }
        guard let baseIndex = spans.firstIndex(where: { $0.timeline == timeline }) else {
            report.problems.append("timeline \(goal) does not descend from timeline \(timeline) of the base backup (its history: \(spans.map { "\($0.timeline)" }.joined(separator: " → ")))")
            return report
        }
        spans = Array(spans[baseIndex...])
        if let end = spans[0].end, end < start {
            report.problems.append("the base backup starts at \(start) on timeline \(timeline), after that timeline ended at \(end)")
            return report
        }
        spans[0].begin = max(spans[0].begin, start)
        report.path = spans
        var present: [WalSegment: Bool] = [:]
        for (segment, _) in contents.segments { present[WalSegment(timeline: segment.timeline, number: segment.number, segmentSize: segmentSize)] = true }
        let partials = Set(contents.partials.compactMap { WalSegment(name: $0.dropLast(8), segmentSize: segmentSize) })
        let first = start.segmentNumber(segmentSize: segmentSize)
        let pathTimelines = Set(spans.map(\.timeline))
        func covers(_ span: TimelineSpan, _ n: UInt64) -> Bool {
            span.begin.segmentNumber(segmentSize: segmentSize) <= n
                && (span.end.map { n <= $0.segmentNumber(segmentSize: segmentSize) } ?? true)
        }
        let newestOnPath = contents.segments.map(\.segment).filter { s in
            pathTimelines.contains(s.timeline) && spans.contains { $0.timeline == s.timeline && covers($0, s.number) }
        }.map(\.number).max()
        let partialOnPath = partials.filter { p in spans.contains { $0.timeline == p.timeline && covers($0, p.number) } }.map(\.number).max()
        var last = through ?? newestOnPath ?? first
        if through == nil, allowPartial, let p = partialOnPath, p > last { last = p }
        guard last >= first else { return report }
        for n in first...last {
            let candidates = spans.reversed().filter { covers($0, n) }
            if let hit = candidates.first(where: { present[WalSegment(timeline: $0.timeline, number: n, segmentSize: segmentSize)] == true }) {
                report.segments.append(WalSegment(timeline: hit.timeline, number: n, segmentSize: segmentSize))
            } else if n == last, allowPartial,
                      let hit = candidates.first(where: { partials.contains(WalSegment(timeline: $0.timeline, number: n, segmentSize: segmentSize)) }) {
                let segment = WalSegment(timeline: hit.timeline, number: n, segmentSize: segmentSize)
                report.partial = segment.name + ".partial"
                report.segments.append(segment)
            } else {
                let owner = candidates.first?.timeline ?? spans.last!.timeline
                report.missing.append(WalSegment(timeline: owner, number: n, segmentSize: segmentSize).name)
            }
        }
        return report
    }
}
