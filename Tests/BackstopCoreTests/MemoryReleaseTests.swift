#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import BackstopCore
import Foundation
import Testing

/// `MemoryRelease.release()` hands clean file-backed pages to the kernel's reclaim; everything
/// must keep working afterwards (the pages are read back), and written data must keep its
/// values (copied pages are never reclaimed).
@Suite(.serialized) struct MemoryReleaseTests {
    nonisolated(unsafe) static var written = [1, 2, 3]

    private static func rssFileKB() -> Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        for line in status.split(separator: "\n") where line.hasPrefix("RssFile:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0
        }
        return 0
    }

    @Test func releaseDropsCleanFilePagesAndCodeStillRuns() throws {
        #if os(Linux)
        Self.written.append(4)
        let before = Self.rssFileKB()
        let released = MemoryRelease.release()
        let after = Self.rssFileKB()
        #expect(released > 0)
        #expect(after < before, "RssFile \(before) kB before, \(after) kB after")
        // Code, read-only data and written data all still there.
        #expect(Self.written == [1, 2, 3, 4])
        #expect(String(describing: 12.5) == "12.5")
        let json = try JSONSerialization.jsonObject(with: Data(#"{"a":[1,2]}"#.utf8)) as? [String: [Int]]
        #expect(json == ["a": [1, 2]])
        #expect(MemoryRelease.release() >= 0)
        #endif
    }

    @Test func arenaCapLeavesTheOperatorsChoiceAlone() {
        #if canImport(Glibc)
        setenv("MALLOC_ARENA_MAX", "4", 1)
        #expect(MemoryRelease.limitArenas(2) == 0)
        unsetenv("MALLOC_ARENA_MAX")
        #expect(MemoryRelease.limitArenas(2) == 2)
        #endif
    }
}
