import BackstopCore
import BackstopTestSupport
@testable import BackupCatalog
import BackupJobs
import Foundation
import Testing

/// The catalog index (`<folder>/.catalog-index`) is a cache: listings through it must always
/// equal a listing that reads every `.meta`, and cleanup must decide deletes on the files.
@Suite struct CatalogIndexTests {
    static let now = WallClock.now()

    /// `count` completed full dumps of `app`, a day apart, their files dated a day back (so
    /// they are not "racy" and get cached).
    static func makeCatalog(_ count: Int) throws -> (dir: String, paths: [String]) {
        let dir = try TestEnvironment.makeTempDirectory("catalog-index")
        var paths: [String] = []
        for i in 0..<count {
            let t = (now - Double(i + 1) * 86_400).rounded(.down)
            let path = try BackupCleanupTests.makeBackup(dir, kind: .postgresFull, target: "app", at: t)
            backdate(path)
            paths.append(path)
        }
        let redis = try BackupCleanupTests.makeBackup(dir, kind: .redis, target: "redis", at: (now - 3600).rounded(.down))
        backdate(redis)
        settle()
        return (dir, paths)
    }

    /// Waits until every file written so far is past the index's "racy" second.
    static func settle() { usleep(UInt32((CatalogIndex.racySeconds + 0.1) * 1_000_000)) }

    static func backdate(_ path: String) {
        BackupCleanupTests.setMTime(path, now - 86_400)
        BackupCleanupTests.setMTime(path + ".meta", now - 86_400)
    }

    static func indexCount(_ folder: String) -> Int {
        let fd = open(folder, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        return CatalogIndex.load(folder: fd).count
    }

    /// The cached listing equals the listing from the files.
    static func expectAgrees(_ dir: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let cached = BackupCatalog(backupDir: dir).list()
        let direct = BackupCatalog(backupDir: dir, usesIndex: false).list()
        #expect(cached == direct, sourceLocation: sourceLocation)
    }

    @Test func everyFieldOfAMetaSurvivesTheIndex() throws {
        var meta = BackupMeta(kind: .postgresBase, target: "cluster", file: "/b/postgres/wal_20260101_000000", startedAt: 1_767_225_600,
                              finishedAt: 1_767_225_690.25, sizeBytes: 123_456_789, sha256: String(repeating: "c", count: 64),
                              compression: "gzip:6", serverVersion: "15.20")
        meta.uncompressedBytes = 999
        meta.startLSN = "0/2000028"
        meta.endLSN = "0/2000100"
        meta.timeline = 3
        meta.files = [.init(name: "base.tar.gz", sizeBytes: 10, sha256: "d"), .init(name: "backup_manifest", sizeBytes: 2, sha256: "e")]
        meta.redisVersion = "7.0.15"
        meta.rdbVersion = 11
        meta.master = "mymaster"
        meta.source = "127.0.0.1:6380"
        meta.sourceRole = "replica"
        meta.keys = ["db0": 5, "db3": 1]
        meta.expires = ["db0": 2]
        meta.method = "replication"
        meta.rdbChecksum = "verified"
        meta.encryption = "age"
        meta.recipients = "0123456789abcdef,fedcba9876543210"
        meta.database = "caf\u{E9} \"quoted\""
        // A field added to BackupMeta must be set above (and so be checked by the round trip).
        for child in Mirror(reflecting: meta).children {
            let value = Mirror(reflecting: child.value)
            #expect(!(value.displayStyle == .optional && value.children.isEmpty), "BackupMeta.\(child.label ?? "?") is not set in this test")
        }
        var w = ByteWriter()
        MetaBinaryCodec.encode(meta, into: &w)
        let decoded = w.bytes.withUnsafeBufferPointer { buffer -> BackupMeta? in
            var r = ByteReader(buffer)
            return MetaBinaryCodec.decode(&r)
        }
        #expect(decoded == meta)
        // Truncated anywhere: not a meta (the file is read instead), never a wrong one.
        for cut in stride(from: 0, to: w.bytes.count, by: 7) {
            let partial = Array(w.bytes[0..<cut])
            let d = partial.withUnsafeBufferPointer { buffer -> BackupMeta? in
                var r = ByteReader(buffer)
                return MetaBinaryCodec.decode(&r)
            }
            #expect(d == nil, "decoded from \(cut) of \(w.bytes.count) bytes")
        }
    }

    @Test func theIndexNeverHidesANewRemovedOrChangedBackup() throws {
        let (dir, paths) = try Self.makeCatalog(40)
        let postgres = dir + "/postgres"
        #expect(Self.indexCount(postgres) == 0)
        Self.expectAgrees(dir)
        // The first full listing wrote the index, with every .meta of the folder.
        #expect(Self.indexCount(postgres) == 40)
        #expect(Self.indexCount(dir + "/redis") == 1)

        // A new backup appears at once.
        let new = try BackupCleanupTests.makeBackup(dir, kind: .postgresFull, target: "app", at: Self.now.rounded(.down) - 60)
        #expect(BackupCatalog(backupDir: dir).list().first?.path == new)
        Self.expectAgrees(dir)

        // A removed backup disappears at once.
        try FileManager.default.removeItem(atPath: paths[5])
        try FileManager.default.removeItem(atPath: paths[5] + ".meta")
        #expect(!BackupCatalog(backupDir: dir).list().contains { $0.path == paths[5] })
        Self.expectAgrees(dir)

        // A .meta rewritten in place, same size, its modification time put back: the change
        // time (and for an atomic rewrite the inode) still tells.
        let metaPath = paths[3] + ".meta"
        let original = try String(contentsOfFile: metaPath, encoding: .utf8)
        let changed = original.replacingOccurrences(of: "\"completed\"", with: "\"failed!!!\"")
        #expect(changed.utf8.count == original.utf8.count)
        let fd = open(metaPath, O_WRONLY)
        _ = changed.withCString { write(fd, $0, strlen($0)) }
        close(fd)
        BackupCleanupTests.setMTime(metaPath, Self.now - 86_400)
        #expect(BackupCatalog(backupDir: dir).list().first { $0.path == paths[3] }?.state == .incomplete)
        Self.expectAgrees(dir)

        // A .meta replaced atomically (a new checksum) and a .meta removed (data left).
        var meta = try #require(try BackupMeta.read(forData: paths[7]))
        meta.sha256 = String(repeating: "f", count: 64)
        try meta.write(forData: paths[7])
        BackupCleanupTests.setMTime(paths[7] + ".meta", Self.now - 86_400)
        try FileManager.default.removeItem(atPath: paths[9] + ".meta")
        let listed = BackupCatalog(backupDir: dir).list()
        #expect(listed.first { $0.path == paths[7] }?.meta?.sha256 == String(repeating: "f", count: 64))
        #expect(listed.first { $0.path == paths[9] }?.state == .incomplete)
        Self.expectAgrees(dir)

        // A damaged index is ignored and rebuilt.
        Self.settle()
        try AtomicFile.write(Array(repeating: 0xFF, count: 100), to: postgres + "/" + CatalogIndex.fileName)
        Self.expectAgrees(dir)
        #expect(Self.indexCount(postgres) == 39)  // 40 + 1 new − 1 removed − 1 without .meta
    }

    @Test func aFilteredListingLeavesTheOtherKindsCached() throws {
        let (dir, _) = try Self.makeCatalog(10)
        _ = try BackupCleanupTests.makeBackup(dir, kind: .postgresGlobals, target: "globals", at: Self.now.rounded(.down) - 7200)
        Self.expectAgrees(dir)
        let before = Self.indexCount(dir + "/postgres")
        #expect(BackupCatalog(backupDir: dir).list(kinds: [.postgresFull]).count == 10)
        #expect(Self.indexCount(dir + "/postgres") == before)
    }

    @Test func cleanupDecidesDeletesOnTheFilesNotTheIndex() throws {
        let (dir, paths) = try Self.makeCatalog(5)
        Self.expectAgrees(dir)
        // Forge the index: with the files' own stamps, it claims the newest dump is three
        // years old and the oldest is an incomplete leftover, both of which cleanup would delete.
        let postgres = dir + "/postgres"
        var records: [CatalogIndex.Record] = []
        for (i, path) in paths.enumerated() {
            var st = stat()
            #expect(stat(path + ".meta", &st) == 0)
            var meta = try #require(try BackupMeta.read(forData: path))
            if i == 0 { meta.startedAt = WallClock.rfc3339(Self.now - 3 * 365 * 86_400) }
            if i == 4 { meta.status = "running" }
            records.append(.init(name: FileSystem.lastComponent(of: path) + ".meta", stamp: CatalogIndex.Stamp(st), meta: meta))
        }
        CatalogIndex.write(records, folderPath: postgres)
        let cleanup = BackupCleanup(backupDir: dir, policy: RetentionPolicy(retentionDays: 1, keepDaily: 1, keepWeekly: 0, keepMonthly: 0))
        let planned = cleanup.plan(now: Self.now)
        #expect(planned.contains { $0.entry.path == paths[0] && !$0.decision.keep })  // the forged index is what the plan saw
        let report = try cleanup.run(dryRun: false, now: Self.now)
        // The real newest dump is still there (the files say it is the newest), and so is the
        // oldest (completed on disk, not a leftover).
        #expect(FileSystem.exists(paths[0]) && FileSystem.exists(paths[0] + ".meta"))
        #expect(report.errors.contains { $0.contains(paths[0]) && $0.contains("changed") })
        #expect(report.errors.contains { $0.contains(paths[4]) && $0.contains("changed") })
        // The other, unforged, old dumps went as the rules say.
        #expect(!FileSystem.exists(paths[2]) && !FileSystem.exists(paths[2] + ".meta"))
        Self.expectAgrees(dir)
    }

    @Test func jsonListingIsWhatJSONSerializationPrinted() throws {
        var meta = BackupMeta(kind: .postgresFull, target: "a\"b\\c\td/e\u{1}", file: "x", startedAt: 1_767_225_600, finishedAt: 1_767_225_660,
                              sizeBytes: 42, sha256: String(repeating: "a", count: 64), compression: nil, serverVersion: nil)
        meta.encryption = "age"
        meta.recipients = "0123456789abcdef,fedcba9876543210"
        let entries = [
            CatalogEntry(path: "/b/postgres/caf\u{E9}_full_20260101_000000.sql.gz", name: "n", kind: .postgresFull, target: "a\"b\\c\td/e\u{1}",
                         startedAt: 1_767_225_600, finishedAt: 1_767_225_660, sizeBytes: 42, meta: meta, state: .complete, isDirectory: false),
            CatalogEntry(path: "/b/redis/redis_20260101_000000.rdb.gz", name: "r", kind: .redis, target: "redis", startedAt: 1_767_225_000,
                         finishedAt: nil, sizeBytes: 0, meta: nil, state: .incomplete, isDirectory: false),
        ]
        for remote in [false, true] {
            let objects: [[String: Any]] = entries.map { e in
                var o: [String: Any] = ["path": e.path, "kind": e.kind.rawValue, "target": e.target, "size_bytes": e.sizeBytes,
                                        "started_at": WallClock.rfc3339(e.startedAt),
                                        "state": e.metaUnreadable ? "meta_unreadable" : e.state.rawValue]
                o["sha256"] = e.meta?.sha256 ?? NSNull()
                o["encryption"] = e.meta?.encryption ?? NSNull()
                o["recipients"] = e.meta?.recipients.map { $0.split(separator: ",").map(String.init) } ?? NSNull()
                o["finished_at"] = e.finishedAt.map { WallClock.rfc3339($0) } ?? NSNull()
                if remote {
                    o["location"] = "s3"
                    o["storage_class"] = NSNull()
                }
                return o
            }
            for list in [objects, []] {
                let expected = try JSONSerialization.data(withJSONObject: list, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
                    + Data("\n".utf8)
                let written = CatalogJSON.listing(list.isEmpty ? [] : entries, remote: remote)
                #expect(String(decoding: written, as: UTF8.self) == String(decoding: expected, as: UTF8.self))
            }
        }
    }
}
