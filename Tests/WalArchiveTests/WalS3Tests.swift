import BackstopCore
import BackstopTestSupport
import BackupJobs
import BackupPipeline
import Foundation
import Testing
import WalArchive
#if canImport(Glibc)
import Glibc
#endif

/// The WAL archive's copy in S3, end to end against a real PostgreSQL (archive_command) and
/// moto_server: upload with markers, verify of the bucket's chain, wal fetch falling back to
/// the bucket, a point-in-time restore from the bucket alone, a gap in the bucket refused
/// naming the segment, and local retention keeping what is not uploaded.
@Suite(.serialized) struct WalS3Tests {
    private func json(_ text: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] ?? [:]
    }

    @Test func uploadVerifyFetchRestoreFromTheBucketAndRetention() async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        try moto.createBucket("walbucket")
        let archiving = try ArchivingServer("wals3")
        defer { archiving.shutdown() }
        let (server, backupDir) = (archiving.server, archiving.backupDir)
        let env = server.environment.merging(moto.backstopEnvironment(bucket: "walbucket")) { $1 }
        try server.psql("CREATE TABLE t(id serial, note text);")
        let base = try BackstopBinary.run(["backup", "postgres", "incremental", "--backup-dir", backupDir], environment: env)
        #expect(base.status == 0, "\(base.stderr)")

        let (beforeSegment, target, lastSegment) = try archiving.writeAroundATargetTime()
        let archive = WalArchive(backupDir: backupDir)

        // One upload round: every archived file goes, each with its marker; a second round has nothing to do.
        let upload = try BackstopBinary.run(["wal", "upload", "--json", "--backup-dir", backupDir], environment: env)
        #expect(upload.status == 0, "\(upload.stderr)\(upload.stdout)")
        let uploaded = try json(upload.stdout)
        #expect((uploaded["uploaded"] as? [String] ?? []).contains(beforeSegment))
        #expect(uploaded["pending"] as? Int == 0)
        let keys = try moto.keys(bucket: "walbucket")
        for name in [beforeSegment, lastSegment] {
            #expect(keys.contains("postgres/wal/\(name).gz") && keys.contains("postgres/wal/\(name).meta"), "\(keys)")
            let marker = try #require(WalUploadMarker.read(name, in: archive))
            #expect(marker.sha256 == archive.meta(name)?.sha256)
        }
        // (The server may archive a new segment in between, which goes then; nothing goes twice.)
        let again = try json(try BackstopBinary.run(["wal", "upload", "--json", "--backup-dir", backupDir], environment: env).stdout)
        let firstRound = Set(uploaded["uploaded"] as? [String] ?? [])
        let secondRound = try #require(again["uploaded"] as? [String], "\(again)")
        #expect(firstRound.isDisjoint(with: secondRound), "uploaded twice: \(firstRound.intersection(secondRound))")
        let state = try json(String(contentsOfFile: backupDir + "/.state/s3_wal_uploads.json", encoding: .utf8))
        #expect(state["consecutive_failures"] as? Int == 0 && (state["last_segment"] as? Double ?? 0) > 0)

        // The bucket's chain is whole.
        let verify = try BackstopBinary.run(["verify", "--wal", "--remote", "--json", "--backup-dir", backupDir], environment: env)
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        #expect(try json(verify.stdout)["ok"] as? Bool == true)

        // wal fetch: the local copy gone, the bucket serves it byte for byte; absent everywhere is exit 1.
        let scratch = try TestEnvironment.makeTempDirectory("wals3-scratch")
        _ = chmod(scratch, 0o755)
        let walSHA = try #require(archive.meta(beforeSegment)).walSHA256
        let aside = scratch + "/aside"
        #expect(rename(archive.directory, aside) == 0)
        let fetched = try BackstopBinary.run(["wal", "fetch", "--backup-dir", backupDir, beforeSegment, scratch + "/RECOVERYXLOG"], environment: env)
        #expect(fetched.status == 0, "\(fetched.stderr)")
        #expect(try FileDigest.sha256(path: scratch + "/RECOVERYXLOG").sha256 == walSHA)
        let missing = try BackstopBinary.run(["wal", "fetch", "--backup-dir", backupDir, "0000000100000000000000FE", scratch + "/X"], environment: env)
        #expect(missing.status == 1, "\(missing.stderr)")
        #expect(!FileSystem.exists(scratch + "/X"))

        // Restore from the bucket alone: the local base backups and WAL are gone.
        let postgresDir = backupDir + "/postgres"
        let bases = try FileManager.default.contentsOfDirectory(atPath: postgresDir).filter { $0.hasPrefix("wal_") }
        try FileManager.default.createDirectory(atPath: scratch + "/bases", withIntermediateDirectories: true)
        for name in bases { #expect(rename(postgresDir + "/" + name, scratch + "/bases/" + name) == 0) }
        let port = try TestEnvironment.freePort()
        let restored = try BackstopBinary.run(["restore", "postgres", "--backup-dir", backupDir, "--data-dir", scratch + "/timed", "--yes",
                                               "--to-time", WallClock.rfc3339(target), "--start", "--port", String(port)], environment: env)
        if restored.status == 0 { archiving.restoredDataDirectories.append(scratch + "/timed") }
        #expect(restored.status == 0, "\(restored.stderr)\(restored.stdout)")
        let rows = try TestProcesses.run(server.program("psql"), ["-X", "-A", "-t", "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-d", "postgres",
                                                                 "-c", "SELECT string_agg(note, ',' ORDER BY id) FROM t"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(rows == "before")
        let leftDownloads = FileSystem.exists(backupDir + "/.restore-download")
            ? try FileManager.default.contentsOfDirectory(atPath: backupDir + "/.restore-download") : []
        #expect(leftDownloads.isEmpty)

        // A segment gone from the middle of the bucket: verify names it, the restore refuses with nothing written.
        try moto.aws(["s3api", "delete-object", "--bucket", "walbucket", "--key", "postgres/wal/\(beforeSegment).gz"])
        try moto.aws(["s3api", "delete-object", "--bucket", "walbucket", "--key", "postgres/wal/\(beforeSegment).meta"])
        let gap = try BackstopBinary.run(["verify", "--wal", "--remote", "--json", "--backup-dir", backupDir], environment: env)
        #expect(gap.status == 1)
        #expect((try json(gap.stdout)["gaps"] as? [String] ?? []).contains(beforeSegment), "\(gap.stdout)")
        let refused = try BackstopBinary.run(["restore", "postgres", "--backup-dir", backupDir, "--data-dir", scratch + "/gap", "--yes",
                                              "--to-time", WallClock.rfc3339(target)], environment: env)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains(beforeSegment) && refused.stderr.contains("Nothing was changed"), "\(refused.stderr)")
        #expect(!FileSystem.exists(scratch + "/gap"))

        // Local retention with S3 on: a segment no kept base backup needs goes only once uploaded.
        #expect(rename(aside, archive.directory) == 0)
        for name in bases { #expect(rename(scratch + "/bases/" + name, postgresDir + "/" + name) == 0) }
        sleep(1)
        let second = try BackstopBinary.run(["backup", "postgres", "incremental", "--backup-dir", backupDir], environment: server.environment)
        #expect(second.status == 0, "\(second.stderr)")
        for name in bases { try FileManager.default.removeItem(atPath: postgresDir + "/" + name) }
        WalUploadMarker.remove(beforeSegment, in: archive)
        let kept = WalRetention(backupDir: backupDir, requireUploaded: true).run(dryRun: false, log: nil)
        #expect(kept.notUploaded.contains(beforeSegment), "\(kept)")
        #expect(!kept.removed.isEmpty && !kept.removed.contains(beforeSegment))
        #expect(archive.meta(beforeSegment) != nil)
        #expect(kept.removed.allSatisfy { archive.meta($0) == nil && WalUploadMarker.read($0, in: archive) == nil })
        // The same decision without S3 removes it.
        let plain = WalRetention(backupDir: backupDir).run(dryRun: true, log: nil)
        #expect(plain.removed.contains(beforeSegment))
    }
}
