import BackstopCore
import BackstopTestSupport
import BackupCatalog
import BackupJobs
import Foundation
import Synchronization
import Testing

/// `PGPASSFILE`, as the old scripts' users set it up: a password role, a pgpass file, no
/// PGPASSWORD. The dump must succeed through the file alone, and the password must show up in
/// no child's argv, no log line and no `.meta`.
@Suite struct PassfileTests {
    /// Every command line seen under /proc while the watcher runs (polled every millisecond).
    final class ArgvWatcher: Sendable {
        private let seen = Mutex<[String]>([])
        private let running = Atomic<Bool>(true)
        private let finished = Atomic<Bool>(false)

        func start() {
            Thread.detachNewThread { [self] in
                while running.load(ordering: .relaxed) {
                    for pid in (try? FileSystem.list("/proc")) ?? [] where pid.allSatisfy(\.isNumber) {
                        guard let bytes = try? FileSystem.read("/proc/\(pid)/cmdline"), !bytes.isEmpty else { continue }
                        let line = String(decoding: bytes.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
                        if line.contains("pg_dump") { seen.withLock { $0.append(line) } }
                    }
                    usleep(1000)
                }
                finished.store(true, ordering: .releasing)
            }
        }

        func stop() -> [String] {
            running.store(false, ordering: .relaxed)
            while !finished.load(ordering: .acquiring) { usleep(1000) }
            return seen.withLock { $0 }
        }
    }

    @Test func aDumpAuthenticatesThroughPGPASSFILEWithoutPGPASSWORD() throws {
        let server = try PostgresServer.shared
        let db = try server.createDatabase(PostgresServer.uniqueDatabaseName("passfile"))
        try server.psql(Fixtures.bulk(megabytes: 8), database: db)
        let backupDir = try TestEnvironment.makeTempDirectory("full-passfile")
        #expect(ProcessInfo.processInfo.environment["PGPASSWORD"] == nil, "the test process must not carry PGPASSWORD")

        // A wrong password in the file fails: the file is what authenticates.
        let wrongFile = backupDir + "/wrong.pgpass"
        try "\(server.host):\(server.port):*:\(server.passwordRole):not-the-password\n".write(toFile: wrongFile, atomically: true, encoding: .utf8)
        chmod(wrongFile, 0o600)
        let wrong = try Fixtures.settings(server: server, database: db, backupDir: backupDir,
                                          extra: ["PGUSER": server.passwordRole, "PGPASSFILE": wrongFile])
        let refused = try PostgresFullBackup(settings: wrong, log: BackupLog(backupDir: backupDir, echo: false)).run()
        #expect(!refused.isEmpty && refused.allSatisfy { !$0.success })
        #expect(BackupCatalog(backupDir: backupDir).list().filter(\.isGood).isEmpty)

        // The right one (escaped as libpq wants: \ and : preceded by \).
        let passfile = backupDir + "/good.pgpass"
        let escaped = server.password.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: ":", with: "\\:")
        try "\(server.host):\(server.port):*:\(server.passwordRole):\(escaped)\n".write(toFile: passfile, atomically: true, encoding: .utf8)
        chmod(passfile, 0o600)
        let settings = try Fixtures.settings(server: server, database: db, backupDir: backupDir,
                                             extra: ["PGUSER": server.passwordRole, "PGPASSFILE": passfile])
        let watcher = ArgvWatcher()
        watcher.start()
        let outcomes = try PostgresFullBackup(settings: settings, log: BackupLog(backupDir: backupDir, echo: false)).run()
        let argvs = watcher.stop()
        #expect(outcomes.count == 2 && outcomes.allSatisfy { $0.success }, "\(outcomes.compactMap { $0.message })")
        let dump = try #require(outcomes.first { $0.kind == .postgresFull }?.path)
        #expect(BackupCatalog(backupDir: backupDir).entry(at: dump)?.isGood == true)

        // The watcher saw the children (so the argv check below can fail) and no password in them.
        #expect(argvs.contains { $0.contains(db) }, "no pg_dump command line was seen: \(argvs.prefix(3))")
        #expect(!argvs.contains { $0.contains(server.password) })
        let log = try String(contentsOfFile: backupDir + "/logs/backup.log", encoding: .utf8)
        #expect(!log.contains(server.password))
        let meta = try String(contentsOfFile: dump + ".meta", encoding: .utf8)
        #expect(!meta.contains(server.password))
    }
}
