import BackstopCore
import BackstopTestSupport
import BackupPipeline
import Foundation
import Testing
import WalArchive

/// `backstop wal push` as PostgreSQL's archive_command and `backstop wal fetch` as
/// restore_command, against a real server, with the exit statuses PostgreSQL relies on.
@Suite(.serialized) struct WalPushFetchTests {
    @Test func archiveCommandArchivesAndFetchServesTheSameBytes() throws {
        let archiving = try ArchivingServer("walpush")
        defer { archiving.shutdown() }
        let (server, backupDir) = (archiving.server, archiving.backupDir)
        try server.psql("CREATE TABLE t(x int); INSERT INTO t SELECT generate_series(1, 10000);")
        let segment = try server.psql("SELECT pg_walfile_name(pg_current_wal_lsn());")
        try server.psql("SELECT pg_switch_wal();")
        let archive = WalArchive(backupDir: backupDir)
        try WalTestSupport.waitForFile(archive.metaPath(segment))
        let meta = try #require(archive.meta(segment))
        #expect(meta.source == "archive_command")
        #expect(meta.walBytes == 16 << 20)
        #expect(meta.sizeBytes < meta.walBytes / 4, "a mostly empty segment compresses well")
        #expect(try FileDigest.sha256(path: archive.dataPath(segment)).sha256 == meta.sha256)

        // restore_command: the segment comes back byte for byte.
        let scratch = try TestEnvironment.makeTempDirectory("walfetch")
        let out = scratch + "/RECOVERYXLOG"
        let fetched = try BackstopBinary.run(["wal", "fetch", "--backup-dir", backupDir, segment, out])
        #expect(fetched.status == 0, "\(fetched.stderr)")
        #expect(try FileDigest.sha256(path: out).sha256 == meta.walSHA256)
        let original = server.dataDirectory + "/pg_wal/" + segment
        if FileSystem.exists(original) { #expect(try FileSystem.read(original) == (try FileSystem.read(out))) }

        // A second push of the same segment (PostgreSQL retries after a crash) succeeds.
        let copy = scratch + "/" + segment
        #expect(rename(out, copy) == 0)
        let again = try BackstopBinary.run(["wal", "push", "--backup-dir", backupDir, copy])
        #expect(again.status == 0, "\(again.stderr)")

        // Different content under an archived name fails, and the archived copy is kept.
        var bytes = try FileSystem.read(copy)
        bytes[100] ^= 0xff
        try Data(bytes).write(to: URL(fileURLWithPath: copy))
        let clash = try BackstopBinary.run(["wal", "push", "--backup-dir", backupDir, copy])
        #expect(clash.status == 1)
        #expect(clash.stderr.contains("already archived with different content"))
        #expect(archive.meta(segment)?.walSHA256 == meta.walSHA256)

        // A segment the archive does not have: exit 1 (recovery moves on), nothing written.
        let missing = try BackstopBinary.run(["wal", "fetch", "--backup-dir", backupDir, "0000000100000000000000FE", scratch + "/X"])
        #expect(missing.status == 1)
        #expect(!FileSystem.exists(scratch + "/X"))
        // A history file nobody wrote: the same.
        #expect(try BackstopBinary.run(["wal", "fetch", "--backup-dir", backupDir, "00000009.history", scratch + "/H"]).status == 1)
        // A damaged archive copy: exit 2 (below 126: PostgreSQL does not abort), nothing left at PATH.
        var gz = try FileSystem.read(archive.dataPath(segment))
        gz[gz.count / 2] ^= 0x55
        try Data(gz).write(to: URL(fileURLWithPath: archive.dataPath(segment)))
        let damaged = try BackstopBinary.run(["wal", "fetch", "--backup-dir", backupDir, segment, scratch + "/D"])
        #expect(damaged.status == 2)
        #expect(!FileSystem.exists(scratch + "/D"))
        // A name that is no WAL file is refused before any path is built from it.
        let bad = try BackstopBinary.run(["wal", "fetch", "--backup-dir", backupDir, "../../etc/passwd", scratch + "/P"])
        #expect(bad.status != 0 && bad.status < 126)
        #expect(bad.stderr.contains("not a WAL file name"))
        // The server kept archiving without a failure.
        #expect(try server.psql("SELECT failed_count FROM pg_stat_archiver;") == "0")
    }
}
