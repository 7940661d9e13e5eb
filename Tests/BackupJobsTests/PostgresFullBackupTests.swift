import BackstopCore
import BackstopMetrics
import BackstopTestSupport
import BackupCatalog
import BackupJobs
import BackupPipeline
import Foundation
import Testing

@Suite struct PostgresFullBackupTests {
    @Test func roundTripThroughGunzipAndPsqlGivesTheSameSchemaAndRows() throws {
        let server = try PostgresServer.shared
        let source = try server.createDatabase(PostgresServer.uniqueDatabaseName("rich"))
        try server.psql(Fixtures.richSchema, database: source)
        let backupDir = try TestEnvironment.makeTempDirectory("full")
        let settings = try Fixtures.settings(server: server, database: source, backupDir: backupDir)
        let registry = MetricsRegistry()
        let outcomes = try PostgresFullBackup(settings: settings, log: BackupLog(backupDir: backupDir, echo: false), metrics: registry).run()
        #expect(outcomes.count == 2)
        #expect(outcomes.allSatisfy { $0.success }, "\(outcomes.compactMap { $0.message })")
        let dump = try #require(outcomes.first { $0.kind == .postgresFull })
        let path = try #require(dump.path)
        #expect(FileSystem.lastComponent(of: path).hasPrefix("\(source)_full_"))
        #expect(path.hasSuffix(".sql.gz"))

        // Restore with the plain tools, as the old scripts' users do.
        let restored = try server.createDatabase(PostgresServer.uniqueDatabaseName("restored"))
        var env = server.environment(database: restored)
        env["PATH"] = server.binDirectory + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        try TestProcesses.run("/bin/bash", ["-o", "pipefail", "-c", "gunzip -c '\(path)' | psql -X -q -v ON_ERROR_STOP=1 --no-password > /dev/null"], environment: env)
        let before = try Fixtures.dumpText(server: server, database: source)
        let after = try Fixtures.dumpText(server: server, database: restored)
        #expect(before.contains("COPY public.people"))
        #expect(before.contains("CREATE TRIGGER people_touch"))
        #expect(before == after)
        // Row-level spot checks on the restored side.
        #expect(try server.psql("SELECT count(*) FROM people", database: restored) == "2004")
        #expect(try server.psql("SELECT name FROM people WHERE mood = 'ünïcødé'", database: restored) == "李小龍")
        #expect(try server.psql("SELECT last_value FROM invoice_numbers", database: restored)
                == server.psql("SELECT last_value FROM invoice_numbers", database: source))
        #expect(try server.psql("SELECT count(*) FROM happy_people", database: restored) == server.psql("SELECT count(*) FROM happy_people", database: source))

        // The .meta describes the file.
        let meta = try #require(try BackupMeta.read(forData: path))
        let sha = try TestProcesses.run("/usr/bin/sha256sum", [path]).stdout.prefix(64)
        #expect(meta.sha256 == String(sha))
        #expect(meta.sizeBytes == dump.sizeBytes)
        #expect(meta.type == "full" && meta.database == source && meta.status == "completed")
        #expect(meta.file == FileSystem.lastComponent(of: path))
        #expect(meta.serverVersion?.hasPrefix("\(server.majorVersion)") == true)
        #expect(meta.compression == "gzip-\(CompressionSettings.defaultLevel)")
        // Globals carry the roles.
        let globals = try #require(outcomes.first { $0.kind == .postgresGlobals }?.path)
        let globalsText = try TestProcesses.run("/bin/sh", ["-c", "gunzip -c '\(globals)'"]).stdout
        #expect(globalsText.contains("CREATE ROLE \(server.passwordRole)"))

        // Catalog, verification and metrics see it.
        let entries = BackupCatalog(backupDir: backupDir).list()
        #expect(entries.map(\.path).contains(path))
        #expect(entries.allSatisfy { $0.state == .complete })
        #expect(BackupVerification(settings: settings).verify(try #require(entries.first { $0.path == path })).ok)
        #expect(registry.value(Family.backupRuns, ["kind": "postgres_full", "target": source, "result": "success"]) == 1)
        #expect(registry.value(Family.backupLastSize, ["kind": "postgres_full", "target": source]) == Double(dump.sizeBytes))
        #expect(Fixtures.files(in: backupDir + "/logs") == ["backup.log"])
    }

    @Test func missingDatabaseLeavesNothingThatLooksLikeABackup() throws {
        let server = try PostgresServer.shared
        let backupDir = try TestEnvironment.makeTempDirectory("full-missing")
        let settings = try Fixtures.settings(server: server, database: "no_such_db_here", backupDir: backupDir)
        let outcomes = try PostgresFullBackup(settings: settings, log: BackupLog(backupDir: backupDir, echo: false)).run()
        let failed = try #require(outcomes.first { $0.kind == .postgresFull })
        #expect(!failed.success)
        #expect(failed.message?.contains("no_such_db_here") == true)
        #expect(failed.message?.contains("pg_dump exited") == true)
        #expect(!Fixtures.files(in: backupDir + "/postgres").contains { $0.contains("no_such_db_here") })
        #expect(!Fixtures.files(in: backupDir + "/postgres").contains { $0.hasPrefix(".") })
        #expect(BackupCatalog(backupDir: backupDir).list(kinds: [.postgresFull]).isEmpty)
        // The failure survives a restart: a fresh registry loaded from disk says so.
        let registry = MetricsRegistry()
        BackupMetrics.load(into: registry, backupDir: backupDir, expected: BackupMetrics.expected(postgres: settings))
        let labels = ["kind": "postgres_full", "target": "no_such_db_here"]
        #expect(registry.value(Family.backupLastRunSuccess, labels) == 0)
        #expect(registry.value(Family.backupLastSuccess, labels) == 0)
        #expect((registry.value(Family.backupLastAttempt, labels) ?? 0) >= failed.startedAt.rounded(.down))
        let log = try String(contentsOfFile: backupDir + "/logs/backup.log", encoding: .utf8)
        #expect(log.contains("FAILED"))
    }

    @Test func connectionLostPartWayLeavesNothing() throws {
        let server = try PostgresServer.shared
        let (db, backupDir, holder) = try Fixtures.lockedBulkDatabase(server, prefix: "cut", folder: "full-cut")
        let settings = try Fixtures.settings(server: server, database: db, backupDir: backupDir)
        defer { holder.release() }
        // Terminate pg_dump's session while it is in the middle of its run.
        let killer = Thread {
            do {
                try holder.waitForBlockedDump(server: server, database: db)
                _ = try server.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '\(db)' AND application_name = 'pg_dump'")
            } catch {
                holder.release()
            }
        }
        killer.start()
        let outcomes = try PostgresFullBackup(settings: settings, log: BackupLog(backupDir: backupDir, echo: false)).run()
        let dump = try #require(outcomes.first { $0.kind == .postgresFull })
        #expect(!dump.success)
        #expect(dump.message?.contains("pg_dump exited") == true)
        #expect(dump.message?.contains("terminat") == true, "\(dump.message ?? "")")
        #expect(!Fixtures.files(in: backupDir + "/postgres").contains { $0.contains(db) })
        #expect(AttemptsRecord.load(backupDir: backupDir).attempts["postgres_full/\(db)"]?.success == false)
    }

    @Test func serverStoppedPartWayLeavesNothing() throws {
        // Its own server: this test stops it.
        let server = try PostgresServer.start(name: "stopped")
        defer { server.shutdown() }
        try server.psql(Fixtures.bulk(megabytes: 1))
        let backupDir = try TestEnvironment.makeTempDirectory("full-stopped")
        let settings = try Fixtures.settings(server: server, database: "postgres", backupDir: backupDir)
        let holder = try TableLockHolder(server: server, database: "postgres", table: "bulk", logDirectory: backupDir)
        defer { holder.release() }
        let stopper = Thread {
            _ = try? holder.waitForBlockedDump(server: server, database: "postgres")
            server.shutdown()
        }
        stopper.start()
        let outcomes = try PostgresFullBackup(settings: settings, log: BackupLog(backupDir: backupDir, echo: false)).run()
        let dump = try #require(outcomes.first { $0.kind == .postgresFull })
        #expect(!dump.success)
        #expect(outcomes.allSatisfy { !$0.success })
        #expect(Fixtures.files(in: backupDir + "/postgres").isEmpty)
        #expect(BackupCatalog(backupDir: backupDir).list().isEmpty)
    }

    @Test func cancellingTheTaskStopsPgDumpAndLeavesNothing() async throws {
        let server = try PostgresServer.shared
        let (db, backupDir, holder) = try Fixtures.lockedBulkDatabase(server, prefix: "cancel", folder: "full-cancel")
        let settings = try Fixtures.settings(server: server, database: db, backupDir: backupDir)
        defer { holder.release() }
        let registry = MetricsRegistry()
        let task = Task {
            try await BackupJobRunner.postgresFull(settings: settings, log: BackupLog(backupDir: backupDir, echo: false), metrics: registry)
        }
        // Poll on the blocking queue: a sleeping cooperative thread could starve the job's task.
        try await Blocking.run { try holder.waitForBlockedDump(server: server, database: db) }
        #expect(Fixtures.files(in: backupDir + "/postgres").contains { $0.hasPrefix(".\(db)_full_") && $0.hasSuffix(".partial") })
        task.cancel()
        let result = await task.result
        let error = #expect(throws: BackupCancelled.self) { try result.get() }
        #expect(error?.description.contains("cancelled") == true)
        #expect(Fixtures.files(in: backupDir + "/postgres").isEmpty)
        // Interrupted, not failed: counted as such, and the last finished attempt (none) stands.
        #expect(registry.value(Family.backupRuns, ["kind": "postgres_full", "target": db, "result": "interrupted"]) == 1)
        #expect(registry.value(Family.backupRuns, ["kind": "postgres_full", "target": db, "result": "failure"]) == nil)
        #expect(registry.value(Family.backupRuns, ["kind": "postgres_full", "target": "globals", "result": "success"]) == nil)
        let attempts = AttemptsRecord.load(backupDir: backupDir)
        #expect(attempts.interrupted["postgres_full/\(db)"]?.interrupted == true)
        #expect(attempts.interrupted["postgres_globals/globals"]?.interrupted == true)
        #expect(attempts.attempts["postgres_full/\(db)"] == nil)
    }

    @Test func fullDiskLeavesNothing() throws {
        let server = try PostgresServer.shared
        let db = try server.createDatabase(PostgresServer.uniqueDatabaseName("diskfull"))
        try server.psql(Fixtures.bulk(megabytes: 4), database: db)
        // BACKUP_DIR on a tiny file system of its own, almost full.
        let backupDir = try TestEnvironment.makeTempDirectory("full-diskfull")
        let mount = try TestProcesses.run("/bin/mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", backupDir], check: false)
        guard mount.status == 0 else {
            throw TestSupportError("this test mounts a 2 MB tmpfs and needs root (mount exited \(mount.status): \(mount.stderr))")
        }
        defer { _ = try? TestProcesses.run("/bin/umount", ["-l", backupDir], check: false) }
        try FileSystem.createDirectory(backupDir + "/postgres")
        try FileSystem.createDirectory(backupDir + "/logs")
        let free = try FileSystem.diskUsage(of: backupDir).free
        try TestProcesses.run("/bin/dd", ["if=/dev/zero", "of=\(backupDir)/filler", "bs=4096", "count=\(max(0, Int(free) - 96 * 1024) / 4096)"])
        let settings = try Fixtures.settings(server: server, database: db, backupDir: backupDir)
        let outcomes = try PostgresFullBackup(settings: settings, log: BackupLog(backupDir: backupDir, echo: false)).run()
        let dump = try #require(outcomes.first { $0.kind == .postgresFull })
        #expect(!dump.success)
        #expect(dump.message?.contains("No space left on device") == true, "\(dump.message ?? "")")
        #expect(!Fixtures.files(in: backupDir + "/postgres").contains { $0.contains(db) })
        #expect(BackupCatalog(backupDir: backupDir).list(kinds: [.postgresFull]).isEmpty)
    }

    @Test func aSecondRunSaysWhoHoldsTheLock() throws {
        let server = try PostgresServer.shared
        let backupDir = try TestEnvironment.makeTempDirectory("full-lock")
        let settings = try Fixtures.settings(server: server, database: "postgres", backupDir: backupDir)
        let held = try FileLock(path: backupDir + "/.locks/postgres_full.lock", purpose: "backup postgres full (test)")
        defer { held.release() }
        let error = #expect(throws: FileLock.Held.self) {
            _ = try PostgresFullBackup(settings: settings, log: BackupLog(backupDir: backupDir, echo: false)).run()
        }
        #expect(error?.holder.contains("pid \(getpid())") == true)
        #expect(error?.description.contains("another run holds the lock") == true)
        #expect(Fixtures.files(in: backupDir + "/postgres").isEmpty)
    }

    @Test func passwordTravelsThroughTheEnvironment() throws {
        let server = try PostgresServer.shared
        let backupDir = try TestEnvironment.makeTempDirectory("full-pw")
        let withoutPassword = try Fixtures.settings(server: server, database: "postgres", backupDir: backupDir,
                                                    extra: ["PGUSER": server.passwordRole, "PGPASSWORD": ""])
        let failed = try PostgresFullBackup(settings: withoutPassword, log: BackupLog(backupDir: backupDir, echo: false)).run()
        #expect(failed.allSatisfy { !$0.success })
        #expect(failed.allSatisfy { !($0.message ?? "").contains(server.password) })
        let withPassword = try Fixtures.settings(server: server, database: "postgres", backupDir: backupDir,
                                                 extra: ["PGUSER": server.passwordRole, "PGPASSWORD": server.password])
        let outcomes = try PostgresFullBackup(settings: withPassword, log: BackupLog(backupDir: backupDir, echo: false)).run()
        #expect(outcomes.allSatisfy { $0.success }, "\(outcomes.compactMap { $0.message })")
        let log = try String(contentsOfFile: backupDir + "/logs/backup.log", encoding: .utf8)
        #expect(!log.contains(server.password))
    }

    @Test func verifyCatchesAFlippedByteAndATruncatedDump() throws {
        let server = try PostgresServer.shared
        let db = try server.createDatabase(PostgresServer.uniqueDatabaseName("verify"))
        try server.psql(Fixtures.bulk(megabytes: 2), database: db)
        let backupDir = try TestEnvironment.makeTempDirectory("full-verify")
        let settings = try Fixtures.settings(server: server, database: db, backupDir: backupDir)
        let outcomes = try PostgresFullBackup(settings: settings, log: BackupLog(backupDir: backupDir, echo: false)).run()
        let path = try #require(outcomes.first { $0.kind == .postgresFull }?.path)
        let catalog = BackupCatalog(backupDir: backupDir)
        let verification = BackupVerification(settings: settings)
        #expect(verification.verify(try #require(catalog.entry(at: path))).ok)

        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let original = bytes
        bytes[bytes.count / 2] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let flipped = verification.verify(try #require(catalog.entry(at: path)))
        #expect(!flipped.ok)

        try Data(original.prefix(original.count - 100)).write(to: URL(fileURLWithPath: path))
        let truncated = verification.verify(try #require(catalog.entry(at: path)))
        #expect(!truncated.ok)
        #expect(truncated.problems.joined().contains("truncated"))

        // A file with no .meta is never taken for a backup.
        try Data(original).write(to: URL(fileURLWithPath: path))
        unlink(BackupMeta.path(for: path))
        let orphan = try #require(catalog.entry(at: path))
        #expect(orphan.state == .incomplete)
        #expect(!verification.verify(orphan).ok)
    }
}
