import BackstopCore
import BackstopTestSupport
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `serve` SIGKILLed while its WAL receiver (pg_receivewal over the `backstop` slot) streams.
extension ProcessFaultTests {
    /// Pids of the pg_receivewal processes in /proc writing into `staging`.
    static func receivewalProcesses(_ staging: String) -> [Int32] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init).filter { pid in
            let cmdline = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
            return processAlive(pid) && cmdline.contains("pg_receivewal") && cmdline.contains(staging)
        }
    }

    @Test func sigkillDuringPgReceivewalLeavesNoChildAndTheArchiveNoGap() throws {
        let pg = try PostgresServer.start(name: "walkill")
        defer { pg.shutdown() }
        let backupDir = try TestEnvironment.makeTempDirectory("sigkill-wal") + "/backups"
        let archiveDir = backupDir + "/postgres/wal"
        let staging = archiveDir + "/.receiving"
        var env = pg.environment
        env["BACKUP_DIR"] = backupDir
        env["BACKUP_WAL_ARCHIVE"] = "receivewal"
        func streaming() -> Bool {
            (try? pg.psql("SELECT count(*) FROM pg_stat_replication WHERE application_name = 'backstop'")) == "1"
        }
        let wal = WalSegments(pg: pg, archiveDir: archiveDir)
        func switchWal() throws -> String { try wal.switchWal() }
        func archived(_ name: String) -> Bool { wal.archived(name) }

        let serve = try ServeUnderTest(environment: env, backupDir: backupDir)
        defer { serve.stop() }
        try TestEnvironment.waitUntil(timeout: 30, "pg_receivewal streaming (log \(serve.log))") { streaming() }
        try pg.psql("CREATE TABLE t(x int);")
        let base = try BackstopBinary.run(["backup", "postgres", "incremental"], environment: env)
        #expect(base.status == 0, "\(base.stderr)")
        var written = [try switchWal(), try switchWal()]
        try TestEnvironment.waitUntil(timeout: 60, "segments \(written) archived") { written.allSatisfy(archived) }

        // Rows into the current segment, written by pg_receivewal into its .partial (write_lsn:
        // it fsyncs only at a segment's end), then the kill.
        try pg.psql("INSERT INTO t SELECT generate_series(1, 5000);")
        let lsn = try pg.psql("SELECT pg_current_wal_lsn()")
        try TestEnvironment.waitUntil(timeout: 30, "pg_receivewal to write \(lsn)") {
            (try? pg.psql("SELECT write_lsn >= '\(lsn)' FROM pg_stat_replication WHERE application_name = 'backstop'")) == "t"
        }
        let current = try pg.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
        let partial = current + ".partial"
        #expect(FileManager.default.fileExists(atPath: staging + "/" + partial), "no \(partial) in \(staging)")
        let receivers = Self.receivewalProcesses(staging)
        #expect(receivers.count == 1 && receivers.allSatisfy { SlowPrograms.descendants(of: serve.pid).contains($0) },
                "pg_receivewal under serve: \(receivers)")
        serve.kill(SIGKILL)
        try serve.waitForExit()
        try TestEnvironment.waitUntil(timeout: 5, "pg_receivewal \(receivers) to die with serve") { Self.receivewalProcesses(staging).isEmpty }
        #expect(FileManager.default.fileExists(atPath: staging + "/" + partial), "the .partial was not kept")
        #expect(!archived(current), "\(current) archived while still partial")

        // WAL written while nothing receives (the slot keeps it), then the segment finished on
        // the server: its bytes are what the archive must end up holding.
        written.append(try switchWal())
        #expect(written.last == current)
        let serverCopy = String(try TestProcesses.run("/usr/bin/sha256sum", [pg.dataDirectory + "/pg_wal/" + current]).stdout.prefix(64))

        let again = try ServeUnderTest(environment: env, backupDir: backupDir)
        defer { again.stop() }
        let restarted = Date()
        try TestEnvironment.waitUntil(timeout: 30, "pg_receivewal streaming again (log \(again.log))") { streaming() }
        let resumedAfter = Date().timeIntervalSince(restarted)
        written.append(try switchWal())
        try TestEnvironment.waitUntil(timeout: 60, "segments \(written) archived") { written.allSatisfy(archived) }
        let inflated = try TestProcesses.run("/bin/sh", ["-c", "gunzip -c '\(archiveDir)/\(current).gz' | sha256sum"]).stdout
        #expect(String(inflated.prefix(64)) == serverCopy, "the archived \(current) differs from the server's segment")
        #expect(!FileManager.default.fileExists(atPath: staging + "/" + partial), "the finished segment's .partial is still there")
        // The staged copy goes once the archived one is durable (just after its .meta).
        try TestEnvironment.waitUntil(timeout: 10, "completed segments to leave \(staging)") {
            ((try? FileManager.default.contentsOfDirectory(atPath: staging)) ?? []).filter { !$0.hasPrefix(".") }.allSatisfy { $0.hasSuffix(".partial") }
        }
        #expect(Self.receivewalProcesses(staging).count == 1, "\(Self.receivewalProcesses(staging))")
        let verify = try BackstopBinary.run(["verify", "--wal"], environment: ["BACKUP_DIR": backupDir])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        again.stop()
        #expect(Self.receivewalProcesses(staging).isEmpty)
        ReliabilityReport.record(
            fault: "`serve` SIGKILLed while `pg_receivewal` streams (WAL receiver, slot `backstop`)",
            did: "`pg_receivewal` died with it (PR_SET_PDEATHSIG; none left in /proc); its `.partial` kept and not archived; the next `serve` streamed again \(String(format: "%.1f", resumedAfter)) s after it listened, resuming the `.partial` over the slot, and archived that segment only once complete, byte-identical to the server's; `verify --wal` passes (checksums, chain from the base backup)",
            lost: "nothing: the \(written.count) segments switched before, during and after the kill all archived, no gap")
    }
}
