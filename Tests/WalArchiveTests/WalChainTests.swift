import Testing
@testable import WalArchive

/// The chain check on archive listings built in memory (the on-disk side is covered by the
/// tests against PostgreSQL).
@Suite struct WalChainTests {
    private func contents(_ names: [String], partials: [String] = []) -> WalArchiveContents {
        var c = WalArchiveContents()
        for n in names {
            c.files.append(.init(name: WalFileName(n)!, meta: WalArchiveMeta(name: n, file: n + ".gz", sizeBytes: 1, sha256: "", walBytes: 16 << 20, walSHA256: "", archivedAt: 0, source: "test")))
        }
        c.partials = partials
        return c
    }

    @Test func continuousChainOnOneTimeline() {
        let chain = WalChain(contents: contents(["000000010000000000000002", "000000010000000000000003", "000000010000000000000004"]), histories: [:])
        let report = chain.check(from: LSN("0/2000028")!, timeline: 1)
        #expect(report.isContinuous)
        #expect(report.segments.map(\.name) == ["000000010000000000000002", "000000010000000000000003", "000000010000000000000004"])
    }

    @Test func aMissingMiddleSegmentIsNamed() {
        let chain = WalChain(contents: contents(["000000010000000000000002", "000000010000000000000004", "000000010000000000000005"]), histories: [:])
        let report = chain.check(from: LSN("0/2000028")!, timeline: 1)
        #expect(report.missing == ["000000010000000000000003"])
        #expect(!report.isContinuous)
        // Up to segment 2 only, there is no gap.
        #expect(chain.check(from: LSN("0/2000028")!, timeline: 1, through: 2).isContinuous)
    }

    @Test func timelineSwitchIsFollowedThroughTheHistory() throws {
        // Timeline 2 began at 0/4000100: segment 4 exists on both, the child's copy is read.
        let names = ["000000010000000000000002", "000000010000000000000003", "000000010000000000000004",
                     "00000002.history", "000000020000000000000004", "000000020000000000000005"]
        let history = try TimelineHistory(timeline: 2, text: "1\t0/4000100\tno recovery target specified\n")
        let chain = WalChain(contents: contents(names), histories: [2: history])
        #expect(chain.newestTimeline == 2)
        let report = chain.check(from: LSN("0/2000028")!, timeline: 1)
        #expect(report.isContinuous, "\(report)")
        #expect(report.segments.map(\.name) == ["000000010000000000000002", "000000010000000000000003",
                                               "000000020000000000000004", "000000020000000000000005"])
        // Without the history, timeline 2 cannot be followed.
        let blind = WalChain(contents: contents(names), histories: [:]).check(from: LSN("0/2000028")!, timeline: 1)
        #expect(blind.problems.first?.contains("00000002.history is missing") == true)
        // Staying on timeline 1 works without it.
        #expect(WalChain(contents: contents(names), histories: [:]).check(from: LSN("0/2000028")!, timeline: 1, target: 1).isContinuous)
    }

    @Test func partialStandsForTheLastSegmentOnlyWhenAllowed() {
        let chain = WalChain(contents: contents(["000000010000000000000002"]), histories: [:])
        #expect(chain.check(from: LSN("0/2000028")!, timeline: 1, allowPartial: false).segments.count == 1)
        let partialChain = WalChain(contents: contents(["000000010000000000000002"], partials: ["000000010000000000000003.partial"]), histories: [:])
        let report = partialChain.check(from: LSN("0/2000028")!, timeline: 1, allowPartial: true)
        #expect(report.isContinuous)
        #expect(report.partial == "000000010000000000000003.partial")
        // A partial further on does not hide the gap before it.
        let gapped = WalChain(contents: contents(["000000010000000000000002"], partials: ["000000010000000000000005.partial"]), histories: [:])
        #expect(gapped.check(from: LSN("0/2000028")!, timeline: 1, allowPartial: true).missing == ["000000010000000000000003", "000000010000000000000004"])
    }
}
