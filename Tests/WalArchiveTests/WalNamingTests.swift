import Testing
@testable import WalArchive

@Suite struct WalNamingTests {
    @Test func lsnParsesAndPrintsLikePostgres() throws {
        let lsn = try #require(LSN("16/B374D848"))
        #expect(lsn.value == 0x16_B374_D848)
        #expect(lsn.description == "16/B374D848")
        #expect(LSN("0/0")?.value == 0)
        #expect(LSN("0/3000028")?.description == "0/3000028")
        for bad in ["", "16", "16/", "/1", "1/2/3", "G/1", "123456789/0", " 1/0"] { #expect(LSN(bad) == nil, "\(bad)") }
        #expect(LSN.distance(from: LSN(10), to: LSN(30)) == 20)
        #expect(LSN.distance(from: LSN(30), to: LSN(10)) == 0)
    }

    @Test func segmentNamesFollowTheSegmentSize() throws {
        // 16 MiB: 256 segments per 4 GiB "log"; 0/3000028 is in segment 3.
        let s = WalSegment(timeline: 1, lsn: try #require(LSN("0/3000028")))
        #expect(s.name == "000000010000000000000003")
        #expect(s.startLSN.description == "0/3000000")
        let last = try #require(WalSegment(name: "0000000100000000000000FF"))
        #expect(last.next.name == "000000010000000100000000")
        #expect(WalSegment(name: "000000020000001600000000")?.number == 0x16 * 256)
        // 64 MiB segments: 64 per log, so the low part never reaches 0x40.
        let big: UInt64 = 64 << 20
        #expect(WalSegment(timeline: 3, lsn: try #require(LSN("1/C0000000")), segmentSize: big).name == "000000030000000100000030")
        #expect(WalSegment(name: "000000010000000000000040", segmentSize: big) == nil)
        #expect(WalSegment(name: "000000010000000000000040") != nil)
        for bad in ["00000001000000000000000", "00000001000000000000000g", "000000010000000000000003 ", "000000000000000000000003"] {
            #expect(WalSegment(name: bad) == nil, "\(bad)")
        }
    }

    @Test func fileNamesAreClassified() {
        #expect(WalFileName("000000010000000000000003") == .segment(WalSegment(timeline: 1, number: 3)))
        #expect(WalFileName("000000010000000000000003.partial") == .partial(WalSegment(timeline: 1, number: 3)))
        #expect(WalFileName("00000002.history") == .history(timeline: 2))
        #expect(WalFileName("000000010000000000000002.00000028.backup") == .backupHistory(WalSegment(timeline: 1, number: 2), offset: 0x28))
        for bad in ["../../etc/passwd", "00000002.History", "0000000g.history", "RECOVERYXLOG", "000000010000000000000003.gz", ""] {
            #expect(WalFileName(bad) == nil, "\(bad)")
        }
        #expect(WalFileName("000000010000000000000002.00000028.backup")?.name == "000000010000000000000002.00000028.backup")
    }

    @Test func historyFilesGiveTheTimelinePath() throws {
        let text = "1\t0/3000000\tno recovery target specified\n\n# comment\n2\t0/5000A28\tbefore 2026-01-01 00:00:00+00\n"
        let history = try TimelineHistory(timeline: 3, text: text)
        #expect(history.ancestors.map(\.timeline) == [1, 2])
        #expect(history.path == [
            TimelineSpan(timeline: 1, begin: LSN(0), end: LSN("0/3000000")),
            TimelineSpan(timeline: 2, begin: LSN("0/3000000")!, end: LSN("0/5000A28")),
            TimelineSpan(timeline: 3, begin: LSN("0/5000A28")!, end: nil),
        ])
        #expect(throws: WalArchiveError.self) { try TimelineHistory(timeline: 2, text: "1 nonsense\n") }
    }
}
