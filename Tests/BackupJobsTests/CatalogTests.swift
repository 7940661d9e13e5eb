import BackstopCore
import BackstopMetrics
import BackstopTestSupport
import BackupCatalog
import BackupJobs
import Foundation
import Testing

@Suite struct CatalogTests {
    @Test func namesAreClassified() {
        #expect(BackupCatalog.classify("psscript_full_20260107_020000.sql.gz")! == (.postgresFull, "psscript", "20260107_020000"))
        // The search for "_full_" agrees with Foundation's backwards range(of:).
        for name in ["a_full_b_full_20260107_020000.sql.gz", "_full_", "_full_x", "x_full", "", "_ful", "caf\u{E9}_full_20260107_020000.sql.gz",
                     "e\u{301}_full__full_.sql.gz", "\u{1F600}_full_\u{1F600}"] {
            let expected = name.range(of: "_full_", options: .backwards)
            #expect(BackupCatalog.lastRange(of: "_full_", in: name) == expected, "\(name)")
        }
        #expect(BackupCatalog.classify("my_full_app_full_20260107_020000.sql.gz")! == (.postgresFull, "my_full_app", "20260107_020000"))
        #expect(BackupCatalog.classify("my_app_full_20260107_020000.sql.gz")! == (.postgresFull, "my_app", "20260107_020000"))
        #expect(BackupCatalog.classify("globals_20260107_020000.sql.gz")! == (.postgresGlobals, "globals", "20260107_020000"))
        #expect(BackupCatalog.classify("wal_20260107_020000")! == (.postgresBase, "", "20260107_020000"))
        #expect(BackupCatalog.classify("redis_20260107_040000.rdb.gz")! == (.redis, "redis", "20260107_040000"))
        #expect(BackupCatalog.classify("psscript_full_2026010_020000.sql.gz") == nil)
        #expect(BackupCatalog.classify("notes.txt") == nil)
        #expect(BackupCatalog.classify("_full_20260107_020000.sql.gz") == nil)
        #expect(BackupCatalog.classify("wal") == nil)
    }

    @Test func humanSizesLookLikeTheScripts() {
        #expect(HumanSize.format(512) == "512")
        #expect(HumanSize.format(150 * 1024 * 1024) == "150M")
        #expect(HumanSize.format(1536) == "1.5K")
    }

    @Test func metaKeepsTheScriptFieldsAndRoundTrips() throws {
        var meta = BackupMeta(kind: .postgresFull, target: "psscript", file: "psscript_full_20260107_020000.sql.gz",
                              startedAt: 1_767_751_200, finishedAt: 1_767_751_212.5, sizeBytes: 157_286_400,
                              sha256: String(repeating: "ab", count: 32), compression: "gzip-6", serverVersion: "15.20")
        meta.uncompressedBytes = 900_000_000
        let json = String(decoding: try meta.encoded(), as: UTF8.self)
        for field in ["\"timestamp\" : \"20260107_020000\"", "\"type\" : \"full\"", "\"database\" : \"psscript\"", "\"size\" : \"150M\"",
                      "\"file\" : \"psscript_full_20260107_020000.sql.gz\"", "\"status\" : \"completed\"", "\"size_bytes\" : 157286400",
                      "\"duration_seconds\" : 12.5", "\"started_at\" : \"2026-01-07T02:00:00Z\"", "\"server_version\" : \"15.20\""] {
            #expect(json.contains(field), "\(field) missing in \(json)")
        }
        #expect(try BackupMeta.decode(try meta.encoded()) == meta)
        // The old scripts' .meta still decodes.
        let old = #"{"timestamp": "20260107_020000", "type": "full", "database": "psscript", "size": "150M", "file": "psscript_full_20260107_020000.sql.gz", "status": "completed"}"#
        let legacy = try BackupMeta.decode(Array(old.utf8))
        #expect(legacy.isCompleted && legacy.sha256 == nil)
    }

    @Test func listingIsNewestFirstAndIgnoresPartials() throws {
        let dir = try TestEnvironment.makeTempDirectory("catalog")
        try FileSystem.createDirectory(dir + "/postgres")
        try FileSystem.createDirectory(dir + "/redis")
        func touch(_ path: String) { _ = FileManager.default.createFile(atPath: dir + "/" + path, contents: Data("x".utf8)) }
        touch("postgres/psscript_full_20260101_020000.sql.gz")
        touch("postgres/psscript_full_20260103_020000.sql.gz")
        touch("postgres/.psscript_full_20260104_020000.sql.gz.partial")
        touch("redis/redis_20260102_040000.rdb.gz")
        touch("postgres/random.txt")
        let old = #"{"timestamp": "20260101_020000", "type": "full", "database": "psscript", "size": "1", "file": "psscript_full_20260101_020000.sql.gz", "status": "completed"}"#
        try old.write(toFile: dir + "/postgres/psscript_full_20260101_020000.sql.gz.meta", atomically: false, encoding: .utf8)
        let entries = BackupCatalog(backupDir: dir).list()
        #expect(entries.map(\.name) == ["psscript_full_20260103_020000.sql.gz", "redis_20260102_040000.rdb.gz", "psscript_full_20260101_020000.sql.gz"])
        #expect(entries.map(\.state) == [.incomplete, .incomplete, .legacy])
        #expect(BackupCatalog(backupDir: dir).list(kinds: [.redis]).count == 1)
        // Only the legacy one (completed .meta) counts as good for metrics.
        let registry = MetricsRegistry()
        BackupMetrics.load(into: registry, backupDir: dir)
        let labels = ["kind": "postgres_full", "target": "psscript"]
        #expect(registry.value(Family.backupLastSuccess, labels) == WallClock.parseFileStamp("20260101_020000"))
        #expect(registry.value(Family.backupLastRunSuccess, labels) == 1)
    }

    @Test func recordedRunsFeedTheMetrics() throws {
        let registry = MetricsRegistry()
        let ok = BackupOutcome(kind: .postgresBase, target: "psscript", path: "/x", success: true, startedAt: 100, finishedAt: 130,
                               sizeBytes: 4096, sha256: nil, message: nil)
        BackupMetrics.record(ok, into: registry)
        var failed = ok
        failed.success = false
        failed.startedAt = 200
        failed.finishedAt = 203
        BackupMetrics.record(failed, into: registry)
        let labels = ["kind": "postgres_base", "target": "psscript"]
        #expect(registry.value(Family.backupRuns, labels.merging(["result": "success"]) { $1 }) == 1)
        #expect(registry.value(Family.backupRuns, labels.merging(["result": "failure"]) { $1 }) == 1)
        #expect(registry.value(Family.backupLastSuccess, labels) == 130)
        #expect(registry.value(Family.backupLastAttempt, labels) == 200)
        #expect(registry.value(Family.backupLastRunSuccess, labels) == 0)
        #expect(registry.value(Family.backupLastDuration, labels) == 3)
        #expect(registry.value(Family.backupLastSize, labels) == 4096)
        let text = String(decoding: registry.render(now: 1000), as: UTF8.self)
        #expect(text.contains("backstop_backup_duration_seconds_count{kind=\"postgres_base\"} 2"))
    }
}
