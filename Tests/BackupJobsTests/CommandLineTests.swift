import BackstopCore
import BackstopTestSupport
import BackupCatalog
import Foundation
import Testing

/// The built `backstop` binary, run as an operator would.
@Suite struct BackupCommandLineTests {
    private func backstop() throws -> String {
        if let path = ProcessInfo.processInfo.environment["BACKSTOP_BINARY"], !path.isEmpty { return path }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("backstop").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        throw TestSupportError("the backstop binary was not found beside the tests; run `swift build` first")
    }

    @Test func backupListVerifyEndToEnd() throws {
        let server = try PostgresServer.shared
        let db = try server.createDatabase(PostgresServer.uniqueDatabaseName("cli"))
        try server.psql(Fixtures.bulk(megabytes: 1), database: db)
        let backupDir = try TestEnvironment.makeTempDirectory("cli")
        var env = server.environment(database: db)
        env["BACKUP_DIR"] = backupDir
        env["BACKUP_POSTGRES_BIN"] = server.binDirectory
        let binary = try backstop()

        let full = try TestProcesses.run(binary, ["backup", "postgres", "full"], environment: env, check: false)
        #expect(full.status == 0, "\(full.stdout)\(full.stderr)")
        #expect(full.stdout.contains("success"))
        let base = try TestProcesses.run(binary, ["backup", "postgres", "incremental"], environment: env, check: false)
        #expect(base.status == 0, "\(base.stdout)\(base.stderr)")

        let list = try TestProcesses.run(binary, ["list", "postgres", "--json"], environment: env)
        let array = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
        #expect(array.count == 3)
        #expect(Set(array.compactMap { $0["kind"] as? String }) == ["postgres_full", "postgres_globals", "postgres_base"])
        for key in ["path", "kind", "target", "size_bytes", "sha256", "started_at", "finished_at"] {
            #expect(array.allSatisfy { $0[key] != nil }, "\(key) missing")
        }
        let table = try TestProcesses.run(binary, ["list"], environment: env)
        #expect(table.stdout.contains("KIND") && table.stdout.contains("\(db)_full_"))

        let verify = try TestProcesses.run(binary, ["verify", "--all"], environment: env, check: false)
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        #expect(verify.stdout.contains("pg_verifybackup ok"))

        // Damage the dump: verify says which file and exits 1.
        let dump = try #require(array.first { $0["kind"] as? String == "postgres_full" }?["path"] as? String)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: dump)))
        bytes[bytes.count / 2] ^= 0x08
        try Data(bytes).write(to: URL(fileURLWithPath: dump))
        let bad = try TestProcesses.run(binary, ["verify", dump], environment: env, check: false)
        #expect(bad.status == 1)
        #expect(bad.stdout.contains("BAD  \(dump)"))

        // A held lock: the second run says who holds it and exits 75.
        let lock = try FileLock(path: backupDir + "/.locks/postgres_full.lock", purpose: "test holder")
        defer { lock.release() }
        let second = try TestProcesses.run(binary, ["backup", "postgres", "full"], environment: env, check: false)
        #expect(second.status == 75)
        #expect(second.stdout.contains("test holder"))

        // Bad input is a usage error naming the variable.
        var badEnv = env
        badEnv["BACKUP_COMPRESSION_LEVEL"] = "11"
        let usage = try TestProcesses.run(binary, ["backup", "postgres", "full"], environment: badEnv, check: false)
        #expect(usage.status == 64)
        #expect(usage.stderr.contains("BACKUP_COMPRESSION_LEVEL"))
        let mode = try TestProcesses.run(binary, ["backup", "postgres", "everything"], environment: env, check: false)
        #expect(mode.status == 64)
    }

    @Test func aKilledRunLeavesNothingAndTheNextRunCleansUp() throws {
        let server = try PostgresServer.shared
        let (db, backupDir, holder) = try Fixtures.lockedBulkDatabase(server, prefix: "killed", folder: "cli-killed")
        defer { holder.release() }
        var env = server.environment(database: db)
        env["BACKUP_DIR"] = backupDir
        env["BACKUP_POSTGRES_BIN"] = server.binDirectory
        let binary = try backstop()
        let pid = try TestProcesses.spawn(binary, ["backup", "postgres", "full"], logFile: backupDir + "/run.log", environment: env)
        try holder.waitForBlockedDump(server: server, database: db)
        #expect(Fixtures.files(in: backupDir + "/postgres").contains { $0.hasPrefix(".\(db)_full_") && $0.hasSuffix(".partial") })
        kill(pid, SIGKILL)
        TestProcesses.unregister(pid: pid)
        usleep(200_000)
        #expect(!Fixtures.files(in: backupDir + "/postgres").contains { !$0.hasPrefix(".") })
        let list = try TestProcesses.run(binary, ["list", "--json"], environment: env)
        let listed = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [Any])
        #expect(listed.isEmpty)
        // The next run removes the leftover and writes a good backup.
        holder.release()
        let next = try TestProcesses.run(binary, ["backup", "postgres", "full"], environment: env, check: false)
        #expect(next.status == 0, "\(next.stdout)\(next.stderr)")
        #expect(!Fixtures.files(in: backupDir + "/postgres").contains { $0.hasPrefix(".") })
        #expect(BackupCatalog(backupDir: backupDir).list(kinds: [.postgresFull]).map(\.state) == [.complete])
    }
}
