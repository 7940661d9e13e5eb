import BackstopCore
import BackstopTestSupport
import BackupCatalog
import BackupJobs
import BackupPipeline
import Foundation
import Restore
import Testing

/// A database on the shared server with a backup taken and then changed: `backupState` is
/// what the dump holds, `currentState` what the database holds now.
struct PostgresRestoreScene {
    let server: PostgresServer
    let database: String
    let backupDir: String
    let dump: String
    let backupState: String
    let currentState: String

    static func make(_ prefix: String) throws -> PostgresRestoreScene {
        let server = try PostgresServer.shared
        let database = try server.createDatabase(PostgresServer.uniqueDatabaseName(prefix))
        try server.psql("""
            CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(10, 2));
            INSERT INTO items SELECT g, 'item ' || g, g * 1.25 FROM generate_series(1, 3000) g;
            CREATE TABLE notes (id serial PRIMARY KEY, body text);
            INSERT INTO notes (body) VALUES ('before the backup'), ('ünïcødé 😀');
            """, database: database)
        let backupDir = try TestEnvironment.makeTempDirectory("restore-pg")
        var env = server.environment(database: database)
        env["BACKUP_DIR"] = backupDir
        env["BACKUP_POSTGRES_BIN"] = server.binDirectory
        let settings = try PostgresJobSettings(environment: env, childEnvironment: env)
        let outcomes = try PostgresFullBackup(settings: settings, log: BackupLog(backupDir: backupDir, echo: false)).run()
        let dump = try #require(outcomes.first { $0.kind == .postgresFull && $0.success }?.path)
        let backupState = try state(server, database)
        // Change the database after the backup: rows added, changed, removed, a new table.
        try server.psql("""
            DELETE FROM items WHERE id > 2500;
            UPDATE items SET name = 'changed' WHERE id <= 10;
            INSERT INTO notes (body) VALUES ('after the backup');
            CREATE TABLE later (x int);
            INSERT INTO later VALUES (1), (2);
            """, database: database)
        let currentState = try state(server, database)
        #expect(backupState != currentState)
        return PostgresRestoreScene(server: server, database: database, backupDir: backupDir, dump: dump,
                                    backupState: backupState, currentState: currentState)
    }

    /// Schema and every row, as pg_dump prints them (comments with times removed).
    static func state(_ server: PostgresServer, _ database: String) throws -> String {
        let out = try TestProcesses.run(server.program("pg_dump"), ["--no-password", "--no-owner", "-d", database],
                                        environment: server.environment(database: database))
        return out.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.hasPrefix("-- Dumped") && !$0.hasPrefix("\\restrict") && !$0.hasPrefix("\\unrestrict") }
            .joined(separator: "\n")
    }

    var environment: [String: String] {
        var env = server.environment(database: database)
        env["BACKUP_DIR"] = backupDir
        env["BACKUP_POSTGRES_BIN"] = server.binDirectory
        return env
    }

    func restore(_ arguments: [String]) throws -> CommandResult {
        try BackstopBinary.run(["restore", "postgres"] + arguments, environment: environment)
    }

    /// Databases whose names start with this scene's database name.
    func databases() throws -> [String] {
        try server.psql("SELECT datname FROM pg_database WHERE starts_with(datname, '\(database)') ORDER BY 1")
            .split(separator: "\n").map(String.init)
    }

    func expectUnchanged(_ sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(try databases() == [database], sourceLocation: sourceLocation)
        #expect(try Self.state(server, database) == currentState, sourceLocation: sourceLocation)
        #expect(!FileSystem.exists(RestoreRecord.path(backupDir: backupDir)), sourceLocation: sourceLocation)
    }
}

@Suite struct PostgresRestoreTests {
    @Test func withoutFileListsTheDumpsNewestFirstAndExitsZero() throws {
        let scene = try PostgresRestoreScene.make("rs_list")
        // A second, newer dump of the same database.
        let older = scene.dump
        sleep(1)
        var env = scene.environment
        env["BACKUP_POSTGRES_DATABASES"] = scene.database
        let settings = try PostgresJobSettings(environment: env, childEnvironment: env)
        let newer = try #require(try PostgresFullBackup(settings: settings, log: BackupLog(backupDir: scene.backupDir, echo: false)).run()
            .first { $0.kind == .postgresFull }?.path)
        let result = try scene.restore([])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        let newerLine = try #require(lines.firstIndex { $0.contains(newer) })
        let olderLine = try #require(lines.firstIndex { $0.contains(older) })
        #expect(newerLine < olderLine)
        #expect(!result.stdout.contains("globals_"))
        try scene.expectUnchanged()
    }

    @Test func withoutYesAndWithoutATerminalChangesNothing() throws {
        let scene = try PostgresRestoreScene.make("rs_noyes")
        let result = try scene.restore([scene.dump])
        #expect(result.status != 0)
        #expect(result.stderr.contains("--yes"), "\(result.stderr)")
        try scene.expectUnchanged()
        let latest = try scene.restore(["--latest"])
        #expect(latest.status != 0)
        try scene.expectUnchanged()
    }

    @Test func dryRunPrintsTheStepsAndChangesNothing() throws {
        let scene = try PostgresRestoreScene.make("rs_dry")
        for extra in [[String](), ["--in-place"], ["--drop-previous", "--with-globals"]] {
            let result = try scene.restore([scene.dump, "--dry-run", "--yes"] + extra)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("dry run"))
            if extra.contains("--in-place") {
                #expect(result.stdout.contains("safety dump"))
                #expect(result.stdout.contains("DROP DATABASE \(scene.database)"))
            } else {
                #expect(result.stdout.contains("CREATE DATABASE \(scene.database)_restore_"))
                #expect(result.stdout.contains("RENAME TO \(scene.database)_pre_restore_"))
            }
            if extra.contains("--with-globals") { #expect(result.stdout.contains("globals_")) }
            try scene.expectUnchanged()
        }
        // No safety dump was written either.
        #expect(BackupCatalog(backupDir: scene.backupDir).list(kinds: [.postgresFull]).count == 1)
    }

    @Test func aFlippedByteIsRefusedBeforeAnythingIsTouched() throws {
        let scene = try PostgresRestoreScene.make("rs_flip")
        let original = try FileSystem.read(scene.dump)
        // One byte in the compressed data (gzip or CRC error), one in the header's mtime
        // (inflates fine: only the SHA-256 against the .meta can catch it).
        for offset in [original.count / 2, 5] {
            var bytes = original
            bytes[offset] ^= 0x01
            try Data(bytes).write(to: URL(fileURLWithPath: scene.dump))
            let result = try scene.restore([scene.dump, "--yes"])
            #expect(result.status != 0)
            #expect(result.stderr.contains(offset == 5 ? "SHA-256" : "damaged"), "\(result.stderr)")
            #expect(result.stderr.contains("Nothing was changed"))
            try scene.expectUnchanged()
            let inPlace = try scene.restore([scene.dump, "--yes", "--in-place"])
            #expect(inPlace.status != 0)
            try scene.expectUnchanged()
            #expect(BackupCatalog(backupDir: scene.backupDir).list(kinds: [.postgresFull]).count == 1, "no safety dump for a refused file")
        }
    }

    @Test func aPathOutsideTheBackupFolderNeedsAllowOutside() throws {
        let scene = try PostgresRestoreScene.make("rs_out")
        let elsewhere = try TestEnvironment.makeTempDirectory("elsewhere") + "/" + FileSystem.lastComponent(of: scene.dump)
        try FileManager.default.copyItem(atPath: scene.dump, toPath: elsewhere)
        try FileManager.default.copyItem(atPath: scene.dump + ".meta", toPath: elsewhere + ".meta")
        let refused = try scene.restore([elsewhere, "--yes"])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("--allow-outside"), "\(refused.stderr)")
        // A path that climbs out through ".." is refused too.
        let climbing = try scene.restore([scene.backupDir + "/postgres/../../" + FileSystem.lastComponent(of: (elsewhere as NSString).deletingLastPathComponent) + "/" + FileSystem.lastComponent(of: elsewhere), "--yes"])
        #expect(climbing.status != 0)
        try scene.expectUnchanged()
        let allowed = try scene.restore([elsewhere, "--yes", "--allow-outside", "--drop-previous"])
        #expect(allowed.status == 0, "\(allowed.stderr)")
        #expect(try PostgresRestoreScene.state(scene.server, scene.database) == scene.backupState)
    }

    @Test func aDumpThatFailsHalfWayLeavesTheTargetExactlyAsItWas() throws {
        let scene = try PostgresRestoreScene.make("rs_half")
        // The real dump with a broken statement in the middle (after the first table's rows).
        let text = try TestProcesses.run("/bin/sh", ["-c", "gunzip -c '\(scene.dump)'"]).stdout
        let cut = try #require(text.range(of: "\\.\n"))
        let broken = String(text[..<cut.upperBound]) + "\nINSERT INTO no_such_table VALUES (1);\n" + String(text[cut.upperBound...])
        let stamp = "20200101_000000"
        let path = scene.backupDir + "/postgres/\(scene.database)_full_\(stamp).sql.gz"
        let writer = try BackupFileWriter(destination: path, compressionLevel: 6)
        let bytes = Array(broken.utf8)
        try bytes.withUnsafeBytes { try writer.write($0) }
        let written = try writer.finish()
        let meta = BackupMeta(kind: .postgresFull, target: scene.database, file: FileSystem.lastComponent(of: path),
                              startedAt: 1_577_836_800, finishedAt: 1_577_836_801, sizeBytes: written.sizeBytes,
                              sha256: written.sha256, compression: "gzip-6", serverVersion: nil)
        try meta.write(forData: path)

        // In one transaction (the default) and statement by statement (the rows before the
        // broken statement are committed in the copy, which must be dropped).
        for extra in [[String](), ["--no-single-transaction"]] {
            let result = try scene.restore([path, "--yes"] + extra)
            #expect(result.status != 0)
            #expect(result.stderr.contains("no_such_table"), "\(result.stderr)")
            #expect(result.stderr.contains("was not touched"))
            try scene.expectUnchanged()
        }
    }

    @Test func afterARestoreTheTargetHoldsTheBackupAndPreRestoreWhatWasThere() throws {
        let scene = try PostgresRestoreScene.make("rs_ok")
        // A client connected to the target is ended, not waited for.
        let sleeper = try TestProcesses.spawn(scene.server.program("psql"), ["-X", "-c", "SELECT pg_sleep(600)"],
                                              logFile: scene.backupDir + "/sleeper.log",
                                              environment: scene.server.environment(database: scene.database))
        try TestEnvironment.waitUntil(timeout: 10, "the sleeping session") {
            try scene.server.psql("SELECT count(*) FROM pg_stat_activity WHERE datname = '\(scene.database)' AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()") == "1"
        }
        let result = try scene.restore([scene.dump, "--yes"])
        #expect(result.status == 0, "\(result.stderr)\n\(result.stdout)")
        #expect(try PostgresRestoreScene.state(scene.server, scene.database) == scene.backupState)
        let dbs = try scene.databases()
        #expect(dbs.count == 2)
        let previous = try #require(dbs.first { $0.hasPrefix(scene.database + "_pre_restore_") })
        #expect(try PostgresRestoreScene.state(scene.server, previous) == scene.currentState)
        #expect(!dbs.contains { $0.contains("_restore_") && !$0.contains("_pre_restore_") })
        #expect(result.stdout.contains("to roll back"))
        #expect(result.stdout.contains(previous))
        // The restore is recorded for the metrics.
        let record = RestoreRecord.load(backupDir: scene.backupDir)
        #expect((record.lastSuccess["postgres_full"] ?? 0) > WallClock.now() - 600)
        _ = kill(sleeper, SIGTERM)

        // The printed rollback works.
        let rollback = try #require(result.stdout.split(separator: "\n").first { $0.contains("psql -X -d postgres -c 'ALTER") })
        var env = scene.server.environment(database: "postgres")
        env["PATH"] = scene.server.binDirectory + ":/usr/bin:/bin"
        try TestProcesses.run("/bin/sh", ["-c", String(rollback)], environment: env)
        #expect(try PostgresRestoreScene.state(scene.server, scene.database) == scene.currentState)
    }

    @Test func dropPreviousLeavesOnlyTheRestoredDatabase() throws {
        let scene = try PostgresRestoreScene.make("rs_drop")
        let result = try scene.restore(["--latest", "--database", scene.database, "--yes", "--drop-previous"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try scene.databases() == [scene.database])
        #expect(try PostgresRestoreScene.state(scene.server, scene.database) == scene.backupState)
    }

    @Test func inPlaceTakesASafetyDumpFirstThenReloads() throws {
        let scene = try PostgresRestoreScene.make("rs_inplace")
        sleep(1) // the safety dump must not share the backup's second
        let result = try scene.restore([scene.dump, "--yes", "--in-place"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try scene.databases() == [scene.database])
        #expect(try PostgresRestoreScene.state(scene.server, scene.database) == scene.backupState)
        // The safety dump is a normal, listed, verifiable backup holding the previous contents.
        let dumps = BackupCatalog(backupDir: scene.backupDir).list(kinds: [.postgresFull])
        #expect(dumps.count == 2)
        let safety = try #require(dumps.first { $0.path != scene.dump })
        #expect(safety.state == .complete)
        #expect(result.stdout.contains(safety.path))
        let check = try scene.server.createDatabase(PostgresServer.uniqueDatabaseName("rs_safety"))
        var env = scene.server.environment(database: check)
        env["PATH"] = scene.server.binDirectory + ":/usr/bin:/bin"
        try TestProcesses.run("/bin/bash", ["-o", "pipefail", "-c", "gunzip -c '\(safety.path)' | psql -X -q -v ON_ERROR_STOP=1 >/dev/null"], environment: env)
        #expect(try PostgresRestoreScene.state(scene.server, check) == scene.currentState)
    }

    @Test func withGlobalsRecreatesMissingRolesAndKeepsExistingOnes() throws {
        let scene = try PostgresRestoreScene.make("rs_glob")
        let role = "r_" + scene.database
        // The role exists when the backup is taken, owns a table, and is gone before the restore.
        try scene.server.psql("CREATE ROLE \(role) LOGIN CONNECTION LIMIT 7;")
        var env = scene.environment
        env["BACKUP_POSTGRES_DATABASES"] = scene.database
        try scene.server.psql("ALTER TABLE notes OWNER TO \(role);", database: scene.database)
        sleep(1)
        let settings = try PostgresJobSettings(environment: env, childEnvironment: env)
        let dump = try #require(try PostgresFullBackup(settings: settings, log: BackupLog(backupDir: scene.backupDir, echo: false)).run()
            .first { $0.kind == .postgresFull }?.path)
        try scene.server.psql("ALTER TABLE notes OWNER TO postgres;", database: scene.database)
        try scene.server.psql("DROP ROLE \(role);")
        // An existing role whose settings differ from the backup's keeps its current ones.
        try scene.server.psql("ALTER ROLE \(scene.server.passwordRole) CONNECTION LIMIT 3;")
        defer { _ = try? scene.server.psql("ALTER ROLE \(scene.server.passwordRole) CONNECTION LIMIT -1;") }

        let result = try scene.restore([dump, "--yes", "--with-globals", "--drop-previous"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try scene.server.psql("SELECT rolconnlimit FROM pg_roles WHERE rolname = '\(role)'") == "7")
        #expect(try scene.server.psql("SELECT tableowner FROM pg_tables WHERE tablename = 'notes'", database: scene.database) == role)
        #expect(try scene.server.psql("SELECT rolconnlimit FROM pg_roles WHERE rolname = '\(scene.server.passwordRole)'") == "3")
        #expect(result.stdout.contains("skipping existing"))
        _ = try? scene.server.psql("REASSIGN OWNED BY \(role) TO postgres;", database: scene.database)
    }
}

@Suite struct GlobalsFilterTests {
    @Test func leavesOutExistingRolesAndTablespacesOnly() {
        let script = #"""
        SET default_transaction_read_only = off;
        CREATE ROLE app;
        ALTER ROLE app WITH NOSUPERUSER LOGIN PASSWORD 'x';
        CREATE ROLE "Odd ""Name""";
        ALTER ROLE "Odd ""Name""" WITH LOGIN;
        CREATE ROLE postgres;
        ALTER ROLE postgres WITH SUPERUSER;
        ALTER ROLE postgres SET search_path TO x;
        CREATE TABLESPACE fast OWNER postgres LOCATION '/x';
        CREATE TABLESPACE slow OWNER postgres LOCATION '/y';
        GRANT app TO postgres;
        """#
        let result = GlobalsFilter.filter(script, existingRoles: ["postgres", "Odd \"Name\""], existingTablespaces: ["fast"])
        #expect(result.script == """
        SET default_transaction_read_only = off;
        CREATE ROLE app;
        ALTER ROLE app WITH NOSUPERUSER LOGIN PASSWORD 'x';
        CREATE TABLESPACE slow OWNER postgres LOCATION '/y';
        GRANT app TO postgres;
        """)
        #expect(result.skipped == ["role Odd \"Name\"", "role postgres", "tablespace fast"])
    }

    @Test func identifiersAreQuotedSafely() {
        #expect(PostgresAdmin.identifier("a\"b") == "\"a\"\"b\"")
        #expect(PostgresAdmin.literal("it's") == "'it''s'")
    }
}
