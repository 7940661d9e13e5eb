import AgeEncryption
import BackstopCore
import BackstopTestSupport
import BackupCatalog
import BackupJobs
import Foundation
import Testing

/// Encrypted PostgreSQL dumps end to end against the shared real server: backup, stock `age`,
/// verify, restore, and refusals (flipped byte, truncation, wrong key) that change nothing.
@Suite struct EncryptedRestoreTests {
    static let marker = "plaintext-row-7f3a9c"

    struct Scene {
        var server: PostgresServer
        var database: String
        var backupDir: String
        var dump: String
        var keyFile: String
        var identity: AgeIdentity
        var backupState: String
        var currentState: String

        var environment: [String: String] {
            var env = server.environment(database: database)
            env["BACKUP_DIR"] = backupDir
            env["BACKUP_POSTGRES_BIN"] = server.binDirectory
            env["BACKUP_ENCRYPTION_RECIPIENTS"] = identity.recipient.encoded
            return env
        }

        func run(_ arguments: [String], identityFile: String?) throws -> CommandResult {
            var env = environment
            if let identityFile { env["BACKUP_ENCRYPTION_IDENTITY_FILE"] = identityFile }
            return try BackstopBinary.run(arguments, environment: env)
        }

        func expectUnchanged(_ sourceLocation: SourceLocation = #_sourceLocation) throws {
            #expect(try PostgresRestoreScene.state(server, database) == currentState, sourceLocation: sourceLocation)
            let names = try server.psql("SELECT datname FROM pg_database WHERE starts_with(datname, '\(database)') ORDER BY 1")
            #expect(names == database, sourceLocation: sourceLocation)
        }
    }

    static func writeKey(_ identity: AgeIdentity, in dir: String, name: String = "key.txt") throws -> String {
        let path = dir + "/" + name
        try Data("# test key\n\(identity.encoded)\n".utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o600)
        return path
    }

    static func make(_ prefix: String) throws -> Scene {
        let server = try PostgresServer.shared
        let database = try server.createDatabase(PostgresServer.uniqueDatabaseName(prefix))
        try server.psql("""
            CREATE TABLE items (id int PRIMARY KEY, name text);
            INSERT INTO items SELECT g, '\(marker)-' || g FROM generate_series(1, 5000) g;
            """, database: database)
        let backupDir = try TestEnvironment.makeTempDirectory("restore-age")
        let keyDir = try TestEnvironment.makeTempDirectory("restore-age-key")
        let identity = AgeIdentity.generate()
        var scene = Scene(server: server, database: database, backupDir: backupDir, dump: "", keyFile: try writeKey(identity, in: keyDir),
                          identity: identity, backupState: "", currentState: "")
        let settings = try PostgresJobSettings(environment: scene.environment, childEnvironment: scene.environment)
        let outcomes = try PostgresFullBackup(settings: settings, log: BackupLog(backupDir: backupDir, echo: false)).run()
        let allWritten = outcomes.allSatisfy { $0.success }
        #expect(allWritten)
        scene.dump = try #require(outcomes.first { $0.kind == .postgresFull }?.path)
        scene.backupState = try PostgresRestoreScene.state(server, database)
        try server.psql("DELETE FROM items WHERE id > 100; INSERT INTO items VALUES (99999, 'after');", database: database)
        scene.currentState = try PostgresRestoreScene.state(server, database)
        return scene
    }

    @Test func encryptedDumpRestoresAndNoPlaintextIsOnDisk() throws {
        let scene = try Self.make("rs_age")
        #expect(scene.dump.hasSuffix(".sql.gz.age"))
        let meta = try #require(try BackupMeta.read(forData: scene.dump))
        #expect(meta.encryption == "age")
        #expect(meta.recipients == scene.identity.recipient.fingerprint)
        // grep the whole backup folder: no row of the data set, in any file.
        let holders = try TestEnvironment.filesContaining(Self.marker, in: scene.backupDir)
        #expect(holders.isEmpty, "plaintext found in: \(holders)")
        // Stock age + gunzip read the real dump.
        let age = try TestEnvironment.binary("age", package: "age")
        let plain = try TestProcesses.run("/bin/sh", ["-c", "'\(age)' -d -i '\(scene.keyFile)' '\(scene.dump)' | gunzip | grep -c '\(Self.marker)-4999'"])
        #expect(plain.stdout == "1\n")
        // backstop list names the key.
        let list = try scene.run(["list"], identityFile: nil)
        #expect(list.stdout.contains("age:" + scene.identity.recipient.fingerprint), "\(list.stdout)")
        // verify: without the key it says what it could not check; with it, the full check.
        let partial = try scene.run(["verify", scene.dump], identityFile: nil)
        #expect(partial.status == 0, "\(partial.stdout)\(partial.stderr)")
        #expect(partial.stdout.contains("needs the key"))
        let full = try scene.run(["verify", scene.dump], identityFile: scene.keyFile)
        #expect(full.status == 0, "\(full.stdout)\(full.stderr)")
        #expect(full.stdout.contains("every age chunk authenticated"))
        // backstop decrypt: atomic -o, the same bytes stock age gives; a wrong key leaves no file.
        let outDir = try TestEnvironment.makeTempDirectory("decrypt-out")
        let decrypted = try scene.run(["decrypt", scene.dump, "-o", outDir + "/dump.sql.gz"], identityFile: scene.keyFile)
        #expect(decrypted.status == 0, "\(decrypted.stderr)")
        let viaAge = try TestProcesses.run("/bin/sh", ["-c", "'\(age)' -d -i '\(scene.keyFile)' '\(scene.dump)' | cmp - '\(outDir)/dump.sql.gz' && echo same"])
        #expect(viaAge.stdout == "same\n")
        let otherKey = try Self.writeKey(AgeIdentity.generate(), in: outDir, name: "other.txt")
        let refused = try scene.run(["decrypt", scene.dump, "-o", outDir + "/wrong.sql.gz"], identityFile: otherKey)
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("another key"), "\(refused.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: outDir).sorted() == ["dump.sql.gz", "other.txt"])
        // restore reads through the decrypter.
        let restored = try scene.run(["restore", "postgres", scene.dump, "--yes", "--drop-previous"], identityFile: scene.keyFile)
        #expect(restored.status == 0, "\(restored.stderr)\n\(restored.stdout)")
        #expect(try PostgresRestoreScene.state(scene.server, scene.database) == scene.backupState)
    }

    @Test func damagedTruncatedOrWrongKeyIsRefusedAndNothingChanges() throws {
        let scene = try Self.make("rs_age_bad")
        let original = try FileSystem.read(scene.dump)
        let wrongKey = try Self.writeKey(AgeIdentity.generate(), in: FileSystem.directory(of: scene.keyFile), name: "other.txt")
        let wrong = try scene.run(["restore", "postgres", scene.dump, "--yes"], identityFile: wrongKey)
        #expect(wrong.status != 0)
        #expect(wrong.stderr.contains("another key"), "\(wrong.stderr)")
        try scene.expectUnchanged()
        let noKey = try scene.run(["restore", "postgres", scene.dump, "--yes"], identityFile: nil)
        #expect(noKey.status != 0)
        #expect(noKey.stderr.contains("BACKUP_ENCRYPTION_IDENTITY_FILE"), "\(noKey.stderr)")
        try scene.expectUnchanged()
        // A flipped byte in the header, the first chunk, the middle and the last tag; a truncation.
        var damaged: [[UInt8]] = []
        for offset in [30, 200, original.count / 2, original.count - 1] {
            var bytes = original
            bytes[offset] ^= 0x01
            damaged.append(bytes)
        }
        damaged.append(Array(original.prefix(original.count - 100)))
        for bytes in damaged {
            try Data(bytes).write(to: URL(fileURLWithPath: scene.dump))
            let verify = try scene.run(["verify", scene.dump], identityFile: scene.keyFile)
            #expect(verify.status != 0, "\(verify.stdout)")
            let result = try scene.run(["restore", "postgres", scene.dump, "--yes"], identityFile: scene.keyFile)
            #expect(result.status != 0)
            #expect(result.stderr.contains("Nothing was changed"), "\(result.stderr)")
            try scene.expectUnchanged()
        }
    }
}
