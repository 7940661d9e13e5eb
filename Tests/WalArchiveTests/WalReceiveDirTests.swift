import AgeEncryption
import BackstopCore
import BackstopTestSupport
import BackupCatalog
import BackupJobs
import Foundation
import Testing
import WalArchive
#if canImport(Glibc)
import Glibc
#endif

/// BACKUP_WAL_RECEIVE_DIR: pg_receivewal's plain `.partial` outside the backup volume while
/// the archive is encrypted, against a real PostgreSQL streaming to a real pg_receivewal; and
/// the README's by-hand restore (stock `age`, `tar`, `gunzip`, no backstop) of the encrypted
/// base backup and `.gz.age` segments it leaves.
@Suite(.serialized) struct WalReceiveDirTests {
    static let marker = "recvdir-plaintext-5be1"

    @Test func receiveDirSettingIsAbsoluteAndWarnsInsideAnEncryptedBackupDir() throws {
        #expect { try WalArchiveSettings(environment: ["BACKUP_WAL_RECEIVE_DIR": "spool/wal"]) } throws: {
            "\($0)".contains("BACKUP_WAL_RECEIVE_DIR") && "\($0)".contains("absolute")
        }
        let unset = try WalArchiveSettings(environment: ["BACKUP_WAL_ARCHIVE": "receivewal"])
        #expect(unset.receiveDirectory == nil)
        #expect(unset.receiveDirectory(backupDir: "/backups") == "/backups/postgres/wal/.receiving")
        let set = try WalArchiveSettings(environment: ["BACKUP_WAL_ARCHIVE": "receivewal", "BACKUP_WAL_RECEIVE_DIR": " /var/spool/backstop-wal/ "])
        #expect(set.receiveDirectory == "/var/spool/backstop-wal")
        #expect(WalArchive(backupDir: "/backups", receiveDirectory: set.receiveDirectory).stagingDirectory == "/var/spool/backstop-wal")

        // The default, inside BACKUP_DIR, with encryption on: the warning names both paths and the setting.
        let warning = try #require(unset.plaintextReceiveWarning(backupDir: "/backups", encrypting: true))
        #expect(warning.contains("/backups/postgres/wal/.receiving") && warning.contains("BACKUP_DIR /backups")
                && warning.contains("BACKUP_WAL_RECEIVE_DIR"), "\(warning)")
        #expect(unset.plaintextReceiveWarning(backupDir: "/backups", encrypting: false) == nil, "nothing to protect without encryption")
        #expect(set.plaintextReceiveWarning(backupDir: "/backups", encrypting: true) == nil)
        let inside = try WalArchiveSettings(environment: ["BACKUP_WAL_ARCHIVE": "receivewal", "BACKUP_WAL_RECEIVE_DIR": "/backups/spool"])
        #expect(inside.plaintextReceiveWarning(backupDir: "/backups", encrypting: true) != nil)
        let sibling = try WalArchiveSettings(environment: ["BACKUP_WAL_ARCHIVE": "receivewal", "BACKUP_WAL_RECEIVE_DIR": "/backups-spool"])
        #expect(sibling.plaintextReceiveWarning(backupDir: "/backups", encrypting: true) == nil, "a sibling folder is not inside")
        let push = try WalArchiveSettings(environment: ["BACKUP_WAL_ARCHIVE": "push"])
        #expect(push.plaintextReceiveWarning(backupDir: "/backups", encrypting: true) == nil, "no pg_receivewal, no .partial")
    }

    @Test func partialStaysOutsideTheEncryptedBackupDirAndStockAgeRestoresByHand() throws {
        let server = try PostgresServer.start(name: "recvdir")
        var restoredDir: String?
        defer {
            if let restoredDir {
                _ = try? TestProcesses.run(server.program("pg_ctl"), ["-D", restoredDir, "-m", "immediate", "-w", "stop"],
                                           asUser: TestEnvironment.isRoot ? "postgres" : nil, check: false)
            }
            server.shutdown()
        }
        let backupDir = try WalTestSupport.backupDirectory("recvdir")
        // Another filesystem (tmpfs) than BACKUP_DIR: archiving cannot be a rename(2).
        let receiveDir = try TestEnvironment.makeTempDirectory("recvdir-receiving", in: "/dev/shm")
        defer { try? FileManager.default.removeItem(atPath: receiveDir) }
        let identity = AgeIdentity.generate()
        let keyDir = try TestEnvironment.makeTempDirectory("recvdir-key")
        let keyFile = try WalTestSupport.writeKey(identity, in: keyDir)
        var env = server.environment
        env["BACKUP_DIR"] = backupDir
        env["BACKUP_POSTGRES_BIN"] = server.binDirectory
        env["BACKUP_WAL_ARCHIVE"] = "receivewal"
        env["BACKUP_WAL_RECEIVE_DIR"] = receiveDir
        env["BACKUP_ENCRYPTION_RECIPIENTS"] = identity.recipient.encoded
        let jobSettings = try PostgresJobSettings(environment: env, childEnvironment: server.environment)
        let settings = try WalArchiveSettings(environment: env)
        #expect(settings.receiveDirectory == receiveDir)
        #expect(settings.plaintextReceiveWarning(backupDir: backupDir, encrypting: true) == nil)
        let log = BackupLog(backupDir: backupDir, echo: false)
        let receiver = WalReceiver(settings: settings, jobSettings: jobSettings, log: log, metrics: nil)
        #expect(receiver.archive.stagingDirectory == receiveDir)
        let thread = Thread { receiver.run() }
        thread.start()
        defer { receiver.stop() }
        try TestEnvironment.waitUntil(timeout: 30, "pg_receivewal streaming") {
            (try? server.psql("SELECT count(*) FROM pg_stat_replication WHERE application_name = 'backstop';")) == "1"
        }
        try server.psql("CREATE TABLE t(id serial, note text);")
        let base = try PostgresBaseBackup(settings: jobSettings, log: log).run()
        #expect(base.success, "\(base.message ?? "")")
        let basePath = try #require(base.path)
        let tar = basePath + "/" + PostgresBaseBackup.encryptedTarName
        #expect(FileSystem.exists(tar))

        // A committed row, streamed into the .partial in the receive folder only.
        try server.psql("INSERT INTO t(note) VALUES ('\(Self.marker)');")
        // The insert position (pg_current_wal_lsn is the write position, behind it with synchronous_commit off).
        let segment = try server.psql("SELECT pg_walfile_name(pg_current_wal_insert_lsn());")
        let partial = receiveDir + "/" + segment + ".partial"
        let needle = Data(Self.marker.utf8)
        do {
            try TestEnvironment.waitUntil(timeout: 30, "the marker streamed into \(partial)") {
                FileSystem.exists(partial) && (try? Data(FileSystem.read(partial)))?.range(of: needle) != nil
            }
        } catch {
            let listing = (try? FileSystem.list(receiveDir)) ?? []
            let holders = (try? TestEnvironment.filesContaining(Self.marker, in: receiveDir, backupDir, server.dataDirectory)) ?? []
            Issue.record("\(error); receive folder: \(listing); marker in: \(holders); lsn \(try server.psql("SELECT pg_current_wal_lsn(), pg_current_wal_flush_lsn()"))")
            throw error
        }
        let whileReceiving = try TestEnvironment.filesContaining(Self.marker, in: backupDir)
        #expect(whileReceiving.isEmpty, "plaintext WAL under BACKUP_DIR: \(whileReceiving)")
        #expect(!FileSystem.exists(backupDir + "/postgres/wal/.receiving"), "nothing is received inside BACKUP_DIR")

        // The chain, `wal fetch --partial` and the restore plan read the partial from the receive folder.
        let meta = try #require(try BackupMeta.read(forData: basePath))
        let start = try #require(LSN(meta.startLSN ?? ""))
        let chain = WalChain.load(receiver.archive)
        #expect(chain.contents.partials == [segment + ".partial"], "\(chain.contents.partials)")
        #expect(chain.check(from: start, timeline: 1, allowPartial: true).partial == segment + ".partial")
        #expect(WalChain.load(WalArchive(backupDir: backupDir)).contents.partials.isEmpty, "the default folder is not where it is")
        var options = PointInTimeOptions(target: .latest, dataDirectory: keyDir + "/unused", backstopPath: try BackstopBinary.path())
        options.receiveDirectory = receiveDir
        var keyed = jobSettings
        keyed.encryption.identityFile = keyFile
        let plan = try PointInTimeRestore(jobSettings: keyed, options: options, say: { _ in }).plan()
        #expect(plan.chain.partial == segment + ".partial")
        #expect(plan.settings.contains { $0.contains("--partial --receive-dir \(receiveDir) %f %p") }, "\(plan.settings)")
        let scratch = try TestEnvironment.makeTempDirectory("recvdir-scratch")
        var fetchEnv = server.environment
        fetchEnv["BACKUP_ENCRYPTION_IDENTITY_FILE"] = keyFile
        let fetched = try BackstopBinary.run(["wal", "fetch", "--backup-dir", backupDir, "--partial", "--receive-dir", receiveDir, segment, scratch + "/seg"],
                                             environment: fetchEnv)
        #expect(fetched.status == 0, "\(fetched.stderr)")
        #expect((try? Data(FileSystem.read(scratch + "/seg")))?.range(of: needle) != nil)
        let elsewhere = try BackstopBinary.run(["wal", "fetch", "--backup-dir", backupDir, "--partial", segment, scratch + "/none"], environment: fetchEnv)
        #expect(elsewhere.status == 1, "without the setting the partial is not found: \(elsewhere.stderr)")

        // Completed: copied across filesystems into the archive, encrypted; stock age + gunzip read the row.
        try server.psql("SELECT pg_switch_wal();")
        let archive = receiver.archive
        try TestEnvironment.waitUntil(timeout: 60, "\(segment) archived") { archive.meta(segment) != nil }
        #expect(archive.dataPath(segment).hasSuffix(".gz.age"))
        #expect(!FileSystem.exists(receiveDir + "/" + segment) && !FileSystem.exists(partial), "the staged copy is removed once archived")
        let age = try TestEnvironment.binary("age", package: "age")
        let found = try TestProcesses.run("/bin/sh", ["-c", "'\(age)' -d -i '\(keyFile)' '\(archive.dataPath(segment))' | gunzip | grep -a -c '\(Self.marker)'"], check: false)
        #expect(found.status == 0 && found.stdout != "0\n", "\(found.stdout)\(found.stderr)")
        let afterSwitch = try TestEnvironment.filesContaining(Self.marker, in: backupDir)
        #expect(afterSwitch.isEmpty, "plaintext under BACKUP_DIR: \(afterSwitch)")
        receiver.stop()
        try TestEnvironment.waitUntil(timeout: 20, "receiver stopped") { receiver.childPID == 0 && thread.isFinished }

        // The README's by-hand restore: only the key, age, tar and gunzip.
        if TestEnvironment.isRoot {
            // The restore machine's copy belongs to the server's user (restore_command runs as postgres).
            _ = try TestProcesses.run("/bin/chown", ["-R", "postgres:postgres", backupDir, keyDir])
        }
        let dataDir = scratch + "/byhand"
        try FileSystem.createDirectory(dataDir, mode: 0o700)
        _ = try TestProcesses.run("/bin/sh", ["-c", "'\(age)' -d -i '\(keyFile)' '\(tar)' | tar -xzf - -C '\(dataDir)'"])
        let walDir = backupDir + "/postgres/wal"
        let restoreCommand = "test -f \(walDir)/%f.gz.age && \(age) -d -i \(keyFile) \(walDir)/%f.gz.age | gunzip > %p || gunzip -c \(walDir)/%f.gz > %p"
        try FileSystem.appendLine("restore_command = '\(restoreCommand)'", to: dataDir + "/postgresql.auto.conf")
        try AtomicFile.write("", to: dataDir + "/recovery.signal", mode: 0o600)
        if TestEnvironment.isRoot { _ = try TestProcesses.run("/bin/chown", ["-R", "postgres:postgres", scratch]) }
        _ = chmod(scratch, 0o755)
        let port = try TestEnvironment.freePort()
        let started = try TestProcesses.run(server.program("pg_ctl"), ["-D", dataDir, "-l", scratch + "/byhand.log", "-w", "-t", "120", "-o",
                                                                       "-p \(port) -c listen_addresses=127.0.0.1 -c unix_socket_directories=/tmp -c archive_mode=off", "start"],
                                            asUser: TestEnvironment.isRoot ? "postgres" : nil, check: false)
        restoredDir = dataDir
        let serverLog = (try? String(contentsOfFile: scratch + "/byhand.log", encoding: .utf8)) ?? ""
        #expect(started.status == 0, "\(started.stderr)\(serverLog)")
        let psql = [server.program("psql"), "-X", "-A", "-t", "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-d", "postgres", "-c"]
        try TestEnvironment.waitUntil(timeout: 60, "recovery of the by-hand restore ended") {
            (try? TestProcesses.run(psql[0], Array(psql.dropFirst()) + ["SELECT pg_is_in_recovery()"], check: false))?.stdout.hasPrefix("f") == true
        }
        let rows = try TestProcesses.run(psql[0], Array(psql.dropFirst()) + ["SELECT count(*) FROM t WHERE note = '\(Self.marker)'"])
        #expect(rows.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "1", "\(rows.stdout)\(rows.stderr)")
        let replayed = (try? String(contentsOfFile: scratch + "/byhand.log", encoding: .utf8)) ?? ""
        #expect(replayed.contains("restored log file \"\(segment)\" from archive"), "the row came through restore_command: \(replayed)")
    }
}
