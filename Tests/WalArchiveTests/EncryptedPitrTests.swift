import AgeEncryption
import BackstopCore
import BackstopTestSupport
import BackupCatalog
import BackupJobs
import BackupPipeline
import Foundation
import Testing
import WalArchive
#if canImport(Glibc)
import Glibc
#endif

/// Encrypted base backups and WAL end to end against a real PostgreSQL: the base backup is
/// one `base.tar.gz.age` stock `age` opens; archive_command turns encryption on mid-archive,
/// so one chain holds `.gz` and `.gz.age` segments; verify, `wal fetch`, a point-in-time
/// restore and `drill --pitr` read it with the key only, and say so without it.
@Suite(.serialized) struct EncryptedPitrTests {
    static let marker = "pitr-plaintext-c41d"

    @Test func encryptedBaseAndMixedChainRestoreOnlyWithTheKey() throws {
        let archiving = try ArchivingServer("agepitr")
        defer { archiving.shutdown() }
        let (server, backupDir) = (archiving.server, archiving.backupDir)
        let identity = AgeIdentity.generate()
        let keyDir = try TestEnvironment.makeTempDirectory("agepitr-key")
        let keyFile = try WalTestSupport.writeKey(identity, in: keyDir)
        let wrongKey = try WalTestSupport.writeKey(AgeIdentity.generate(), in: keyDir, name: "other.txt")
        try server.psql("CREATE TABLE t(id serial, note text);")
        var env = server.environment
        env["BACKUP_POSTGRES_BIN"] = server.binDirectory
        env["BACKUP_ENCRYPTION_RECIPIENTS"] = identity.recipient.encoded
        var keyed = env
        keyed["BACKUP_ENCRYPTION_IDENTITY_FILE"] = keyFile

        // The base backup: one encrypted tar, nothing plain beside it.
        let backup = try BackstopBinary.run(["backup", "postgres", "incremental", "--backup-dir", backupDir], environment: env)
        #expect(backup.status == 0, "\(backup.stdout)\(backup.stderr)")
        let base = try #require(BackupCatalog(backupDir: backupDir).list(kinds: [.postgresBase]).first)
        #expect(try FileSystem.list(base.path).sorted() == [PostgresBaseBackup.encryptedTarName])
        let meta = try #require(try BackupMeta.read(forData: base.path))
        #expect(meta.encryption == "age" && meta.recipients == identity.recipient.fingerprint)
        let tar = base.path + "/" + PostgresBaseBackup.encryptedTarName
        let stored = try #require(meta.files?.first)
        #expect(stored.name == PostgresBaseBackup.encryptedTarName)
        #expect(try FileDigest.sha256(path: tar).sha256 == stored.sha256)
        #expect(meta.startLSN?.contains("/") == true && meta.timeline == 1)
        // Stock age opens it: data directory, its WAL and the manifest in one tar.
        let age = try TestEnvironment.binary("age", package: "age")
        let listing = try TestProcesses.run("/bin/sh", ["-c", "'\(age)' -d -i '\(keyFile)' '\(tar)' | tar -tzf -"])
        let members = Set(listing.stdout.split(separator: "\n").map(String.init))
        #expect(members.contains("backup_manifest") && members.contains("PG_VERSION") && members.contains("global/pg_control"), "\(members.prefix(20))")
        #expect(members.contains { $0.hasPrefix("pg_wal/0000000100000000") }, "the WAL the backup needs is inside")

        // verify: without the key the stored checksum and header; with it, the manifest in memory.
        let keyless = try BackstopBinary.run(["verify", base.path, "--backup-dir", backupDir], environment: env)
        #expect(keyless.status == 0, "\(keyless.stdout)\(keyless.stderr)")
        #expect(keyless.stdout.contains("needs the key"), "\(keyless.stdout)")
        let full = try BackstopBinary.run(["verify", base.path, "--backup-dir", backupDir], environment: keyed)
        #expect(full.status == 0, "\(full.stdout)\(full.stderr)")
        #expect(full.stdout.contains("files match backup_manifest"), "\(full.stdout)")

        // WAL archived plain, then encryption is turned on: one chain, both kinds.
        try server.psql("INSERT INTO t(note) VALUES ('plain-era');")
        let plainSegment = try server.psql("SELECT pg_walfile_name(pg_current_wal_insert_lsn());")
        try server.psql("SELECT pg_switch_wal();")
        let archive = WalArchive(backupDir: backupDir)
        try WalTestSupport.waitForFile(archive.metaPath(plainSegment))
        try WalTestSupport.encryptArchive(server, backupDir: backupDir, recipients: identity.recipient.encoded)
        try server.psql("INSERT INTO t(note) SELECT '\(Self.marker)-' || g FROM generate_series(1, 300) g;")
        let secretSegment = try server.psql("SELECT pg_walfile_name(pg_current_wal_insert_lsn());")
        try server.psql("SELECT pg_switch_wal();")
        try WalTestSupport.waitForFile(archive.metaPath(secretSegment))
        #expect(archive.dataPath(plainSegment).hasSuffix(".gz"))
        #expect(archive.dataPath(secretSegment).hasSuffix(".gz.age"))
        let segmentMeta = try #require(archive.meta(secretSegment))
        #expect(segmentMeta.encryption == "age" && segmentMeta.recipients == identity.recipient.fingerprint)
        // Stock age + gunzip give the WAL bytes the .meta recorded.
        let walHash = try TestProcesses.run("/bin/sh", ["-c", "'\(age)' -d -i '\(keyFile)' '\(archive.dataPath(secretSegment))' | gunzip | sha256sum"])
        #expect(walHash.stdout.hasPrefix(segmentMeta.walSHA256), "\(walHash.stdout)")

        // No row of the data set anywhere in the backup folder (temporary and state folders too).
        let plain = try TestEnvironment.filesContaining(Self.marker, in: backupDir)
        #expect(plain.isEmpty, "plaintext found in: \(plain)")

        // verify --wal: checksums and headers without the key (and it says so), content with it.
        let walKeyless = try BackstopBinary.run(["verify", "--wal", "--backup-dir", backupDir], environment: env)
        #expect(walKeyless.status == 0, "\(walKeyless.stdout)\(walKeyless.stderr)")
        #expect(walKeyless.stdout.contains("BACKUP_ENCRYPTION_IDENTITY_FILE"), "\(walKeyless.stdout)")
        let walFull = try BackstopBinary.run(["verify", "--wal", "--backup-dir", backupDir], environment: keyed)
        #expect(walFull.status == 0, "\(walFull.stdout)\(walFull.stderr)")
        #expect(!walFull.stdout.contains("NOT checked"), "\(walFull.stdout)")

        // wal fetch: without the key it fails naming the variable (exit 2, nothing written); with it, the bytes.
        let scratch = try TestEnvironment.makeTempDirectory("agepitr-restores")
        _ = chmod(scratch, 0o755)
        let noKeyFetch = try BackstopBinary.run(["wal", "fetch", "--backup-dir", backupDir, secretSegment, scratch + "/seg"], environment: env)
        #expect(noKeyFetch.status == 2, "\(noKeyFetch.stderr)")
        #expect(noKeyFetch.stderr.contains("BACKUP_ENCRYPTION_IDENTITY_FILE"), "\(noKeyFetch.stderr)")
        #expect(!FileSystem.exists(scratch + "/seg"))
        let fetched = try BackstopBinary.run(["wal", "fetch", "--backup-dir", backupDir, "--identity", keyFile, secretSegment, scratch + "/seg"], environment: env)
        #expect(fetched.status == 0, "\(fetched.stderr)")
        #expect(try FileDigest.sha256(path: scratch + "/seg").sha256 == segmentMeta.walSHA256)
        unlink(scratch + "/seg")

        // A restore without the key, or with another one, is refused with nothing written.
        let restoreArgs = ["restore", "postgres", "--backup-dir", backupDir, "--latest", "--yes", "--start"]
        let noKey = try BackstopBinary.run(restoreArgs + ["--data-dir", scratch + "/nokey", "--port", String(try TestEnvironment.freePort())], environment: env)
        #expect(noKey.status != 0)
        #expect(noKey.stderr.contains("BACKUP_ENCRYPTION_IDENTITY_FILE") && noKey.stderr.contains("Nothing was changed"), "\(noKey.stderr)")
        #expect(!FileSystem.exists(scratch + "/nokey"))
        var wrongEnv = env
        wrongEnv["BACKUP_ENCRYPTION_IDENTITY_FILE"] = wrongKey
        let wrong = try BackstopBinary.run(restoreArgs + ["--data-dir", scratch + "/wrong", "--port", String(try TestEnvironment.freePort())], environment: wrongEnv)
        #expect(wrong.status != 0)
        #expect(wrong.stderr.contains("cannot be decrypted") && wrong.stderr.contains("Nothing was changed"), "\(wrong.stderr)")
        #expect(!FileSystem.exists(scratch + "/wrong"))

        // With the key: decrypted into the target only, pg_verifybackup there, every row back.
        let restorePort = try TestEnvironment.freePort()
        let restored = try BackstopBinary.run(restoreArgs + ["--data-dir", scratch + "/latest", "--port", String(restorePort)], environment: keyed)
        if restored.status == 0 { archiving.restoredDataDirectories.append(scratch + "/latest") }
        #expect(restored.status == 0, "\(restored.stderr)\(restored.stdout)")
        #expect(restored.stdout.contains("pg_verifybackup"), "\(restored.stdout)")
        let count = try TestProcesses.run(server.program("psql"), ["-X", "-A", "-t", "-h", "127.0.0.1", "-p", String(try WalTestSupport.port(of: scratch + "/latest")), "-U", "postgres",
                                                                   "-d", "postgres", "-c", "SELECT count(*) FILTER (WHERE note = 'plain-era') || '/' || count(*) FILTER (WHERE note LIKE '\(Self.marker)-%') FROM t"])
        #expect(count.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "1/300")
        // Nothing plain was left in the backup folder by the restore either.
        let after = try TestEnvironment.filesContaining(Self.marker, in: backupDir)
        #expect(after.isEmpty, "plaintext found in: \(after)")

        // drill --pitr reads the same chain with the key.
        let drill = try BackstopBinary.run(["drill", "--pitr", "--backup-dir", backupDir], environment: keyed)
        #expect(drill.status == 0, "\(drill.stdout)\(drill.stderr)")
        #expect(drill.stdout.contains("drill pitr: success"), "\(drill.stdout)")
        let drillNoKey = try BackstopBinary.run(["drill", "--pitr", "--backup-dir", backupDir], environment: env)
        #expect(drillNoKey.status != 0)
        #expect((drillNoKey.stdout + drillNoKey.stderr).contains("BACKUP_ENCRYPTION_IDENTITY_FILE"), "\(drillNoKey.stdout)\(drillNoKey.stderr)")

        // A flipped byte in the base backup: verify (with or without the key) and restore refuse it.
        var bytes = try FileSystem.read(tar)
        bytes[bytes.count / 2] ^= 0x10
        try Data(bytes).write(to: URL(fileURLWithPath: tar))
        #expect(try BackstopBinary.run(["verify", base.path, "--backup-dir", backupDir], environment: keyed).status != 0)
        #expect(try BackstopBinary.run(["verify", base.path, "--backup-dir", backupDir], environment: env).status != 0)
        let damaged = try BackstopBinary.run(restoreArgs + ["--data-dir", scratch + "/damaged", "--port", String(try TestEnvironment.freePort())], environment: keyed)
        #expect(damaged.status != 0, "\(damaged.stdout)")
        #expect(!FileSystem.exists(scratch + "/damaged"), "what was unpacked is removed")
    }

    /// Every backup kind with encryption on (dump, globals, Redis snapshot, base backup, WAL
    /// through archive_command), uploaded to moto_server: a marker that is in the rows, a role
    /// name and the Redis values is in no file of the backup folder (temporary and state
    /// folders included) and in no object of the bucket.
    @Test func everyKindEncryptedNothingPlainOnDiskOrInTheBucket() async throws {
        let marker = "grep-plaintext-e93b"
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        try moto.createBucket("agegrep")
        let redis = try StandaloneRedis()
        defer { redis.stop() }
        let server = try PostgresServer.start(name: "agegrep")
        defer { server.shutdown() }
        let backupDir = try WalTestSupport.backupDirectory("agegrep")
        let identity = AgeIdentity.generate()
        let recipient = identity.recipient.encoded
        try server.psql("ALTER SYSTEM SET archive_mode = on;\nALTER SYSTEM SET archive_command = '\(try WalTestSupport.archiveCommand(backupDir: backupDir, recipients: recipient))';")
        try server.stop()
        try server.start()
        try server.psql("""
            CREATE ROLE "\(marker)-role";
            CREATE TABLE items(id int PRIMARY KEY, name text);
            INSERT INTO items SELECT g, '\(marker)-' || g FROM generate_series(1, 2000) g;
            """)
        for i in 0..<200 { _ = try redis.cli(["SET", "k:\(i)", "\(marker) \(i)"]) }
        var env = server.environment
        env["BACKUP_DIR"] = backupDir
        env["BACKUP_POSTGRES_BIN"] = server.binDirectory
        env["BACKUP_ENCRYPTION_RECIPIENTS"] = recipient
        env["REDIS_HOST"] = "127.0.0.1"
        env["REDIS_PORT"] = String(redis.port)
        env.merge(moto.backstopEnvironment(bucket: "agegrep")) { $1 }
        for command in [["backup", "postgres", "full"], ["backup", "postgres", "incremental"], ["backup", "redis"]] {
            let run = try BackstopBinary.run(command, environment: env)
            #expect(run.status == 0, "\(command): \(run.stdout)\(run.stderr)")
        }
        // WAL holding the rows, archived encrypted, then uploaded.
        try server.psql("UPDATE items SET name = name || '-again';")
        let segment = try server.psql("SELECT pg_walfile_name(pg_current_wal_insert_lsn());")
        try server.psql("SELECT pg_switch_wal();")
        let archive = WalArchive(backupDir: backupDir)
        try WalTestSupport.waitForFile(archive.metaPath(segment))
        #expect(archive.dataPath(segment).hasSuffix(".gz.age"))
        let upload = try BackstopBinary.run(["wal", "upload"], environment: env)
        #expect(upload.status == 0, "\(upload.stdout)\(upload.stderr)")

        // Every kind is stored encrypted, and the status (backstop_backup_encrypted{kind}) says so.
        let statuses = BackupStatus.load(backupDir: backupDir)
        // (globals share the postgres_full kind label, every status of a kind must be encrypted)
        for kind in ["postgres_full", "postgres_base", "redis"] {
            let ofKind = statuses.filter { $0.kind == kind }
            #expect(!ofKind.isEmpty && ofKind.allSatisfy(\.encrypted), "\(kind): \(statuses)")
        }
        let plain = try TestEnvironment.filesContaining(marker, in: backupDir)
        #expect(plain.isEmpty, "plaintext found in: \(plain)")
        // Every object in the bucket, downloaded and searched.
        let keys = try moto.keys(bucket: "agegrep")
        #expect(keys.contains { $0.hasSuffix("/" + PostgresBaseBackup.encryptedTarName) }, "\(keys)")
        #expect(keys.contains("postgres/wal/\(segment).gz.age"), "\(keys)")
        #expect(keys.contains { $0.hasPrefix("redis/") && $0.hasSuffix(".rdb.gz.age") }, "\(keys)")
        #expect(keys.contains { $0.hasPrefix("postgres/globals_") && $0.hasSuffix(".sql.gz.age") }, "\(keys)")
        let objects = try TestEnvironment.makeTempDirectory("agegrep-objects")
        for (index, key) in keys.enumerated() { try moto.download(bucket: "agegrep", key: key, to: objects + "/\(index)") }
        #expect(try FileSystem.list(objects).count == keys.count)
        let remote = try TestEnvironment.filesContaining(marker, in: objects)
        #expect(remote.isEmpty, "plaintext found in objects: \(remote)")
        // The marker is findable once decrypted: the search can fail.
        let keyFile = try WalTestSupport.writeKey(identity, in: objects)
        let age = try TestEnvironment.binary("age", package: "age")
        let walIndex = try #require(keys.firstIndex(of: "postgres/wal/\(segment).gz.age"))
        let found = try TestProcesses.run("/bin/sh", ["-c", "'\(age)' -d -i '\(keyFile)' '\(objects)/\(walIndex)' | gunzip | grep -a -c '\(marker)'"], check: false)
        #expect(found.stdout != "0\n" && found.status == 0, "\(found.stdout)\(found.stderr)")
    }
}
