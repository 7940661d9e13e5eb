import BackstopCore
import Foundation
import Testing

@Suite("Files on disk")
struct FilesTests {
    func tempDir() throws -> String {
        let path = NSTemporaryDirectory() + "backstop-core-\(UUID().uuidString)"
        try FileSystem.createDirectory(path)
        return path
    }

    @Test("atomic write leaves the final file and no temporary")
    func atomicWrite() throws {
        let dir = try tempDir()
        try AtomicFile.write("first", to: dir + "/a.json")
        try AtomicFile.write("second", to: dir + "/a.json")
        #expect(String(decoding: try FileSystem.read(dir + "/a.json"), as: UTF8.self) == "second")
        #expect(try FileSystem.list(dir) == ["a.json"])
    }

    @Test("a second lock on the same job fails and names the holder")
    func lockConflict() throws {
        let dir = try tempDir()
        let first = try FileLock(path: dir + "/locks/full.lock", purpose: "backup postgres full")
        do {
            _ = try FileLock(path: dir + "/locks/full.lock", purpose: "backup postgres full")
            Issue.record("second lock was granted")
        } catch let held as FileLock.Held {
            #expect(held.description.contains("pid \(getpid())"))
            #expect(held.description.contains("backup postgres full"))
        }
        first.release()
        let again = try FileLock(path: dir + "/locks/full.lock", purpose: "again")
        again.release()
    }

    @Test("timestamps round-trip in the scripts' file-name format and RFC 3339")
    func stamps() {
        let t = 1_767_751_200.0 // 2026-01-07T02:00:00Z
        #expect(WallClock.fileStamp(t) == "20260107_020000")
        #expect(WallClock.parseFileStamp("20260107_020000") == t)
        #expect(WallClock.rfc3339(t) == "2026-01-07T02:00:00Z")
        #expect(WallClock.parseRFC3339("2026-01-07T03:00:00+01:00") == t)
        #expect(WallClock.parseRFC3339("2026-01-07T02:00:00.500Z") == t + 0.5)
        #expect(WallClock.parseFileStamp("2026010_020000") == nil)
        #expect(WallClock.parseFileStamp("20261307_020000") == nil)
    }
}
