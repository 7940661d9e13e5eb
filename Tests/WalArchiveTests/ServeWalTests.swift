import BackstopCore
import BackstopMetrics
import BackstopTestSupport
import Foundation
import Testing
import WalArchive
#if canImport(Glibc)
import Glibc
#endif

/// `backstop serve` with BACKUP_WAL_ARCHIVE=receivewal: the receiver runs as one of serve's
/// services, the archive's families are on /metrics, and SIGTERM leaves no pg_receivewal behind.
@Suite(.serialized) struct ServeWalTests {
    /// serve receiving WAL over `slot` into `backupDir`'s archive, metrics on `port`, health
    /// every second, no job scheduled, Redis unreachable.
    private static func receivingServe(backupDir: String, port: Int, slot: String) -> [String: String] {
        ["BACKUP_DIR": backupDir, "METRICS_LISTEN": "127.0.0.1:\(port)", "HEALTH_CHECK_INTERVAL": "1s",
         "BACKUP_WAL_ARCHIVE": "receivewal", "BACKUP_WAL_SLOT": slot,
         "REDIS_HOST": "127.0.0.1", "REDIS_PORT": "1",
         "BACKUP_SCHEDULE_FULL": "", "BACKUP_SCHEDULE_INCREMENTAL": "", "BACKUP_SCHEDULE_REDIS": "",
         "BACKUP_SCHEDULE_CLEANUP": "", "BACKUP_SCHEDULE_DRILL": ""]
    }

    @Test func serveStreamsWalExportsItsMetricsAndStopsTheReceiver() throws {
        let server = try PostgresServer.start(name: "servewal")
        defer { server.shutdown() }
        let dir = try TestEnvironment.makeTempDirectory("servewal")
        let port = try TestEnvironment.freePort()
        var env = server.environment
        env.merge(Self.receivingServe(backupDir: dir, port: port, slot: "serve_slot")) { $1 }
        let pid = try BackstopBinary.spawn(["serve"], environment: env, logFile: dir + "/serve.log")
        var reaped = false
        defer { if !reaped { kill(pid, SIGKILL) } }
        let url = "http://127.0.0.1:\(port)/metrics"
        try TestEnvironment.waitUntil(timeout: 20, "serve listening") { TestEnvironment.isListening(port: port) }
        try TestHTTP.waitFor(url, timeout: 30, "backstop_wal_receiver_up 1") { metricValue($0, Family.walReceiverUp.name) == 1 }
        #expect(try server.psql("SELECT count(*) FROM pg_stat_replication WHERE application_name = 'serve_slot';") == "1")
        let segment = try server.psql("SELECT pg_walfile_name(pg_current_wal_lsn());")
        try server.psql("CREATE TABLE t AS SELECT generate_series(1, 1000) x; SELECT pg_switch_wal();")
        let archive = WalArchive(backupDir: dir)
        try WalTestSupport.waitForFile(archive.metaPath(segment))
        let body = try TestHTTP.waitFor(url, timeout: 40, "the newest segment and the slot on /metrics") { text in
            (metricValue(text, Family.walArchiveLastSegment.name) ?? 0) > 0 && metricValue(text, Family.replicationSlotRetained.name, "slot=\"serve_slot\"") != nil
        }
        #expect(metricValue(body, Family.walReceiverRestarts.name) == 0)
        #expect(body.contains("# TYPE backstop_wal_receiver_restarts_total counter"))
        #expect(metricValue(body, Family.walArchiveLagBytes.name) != nil)

        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        reaped = true
        TestProcesses.unregister(pid: pid)
        #expect(status == 0)
        #expect(try server.psql("SELECT count(*) FROM pg_stat_replication;") == "0", "no pg_receivewal outlives serve")
    }

    /// With S3 on, serve's upload loop (every 15 s) puts a completed segment in the bucket by
    /// itself, with its .meta and the local marker, and /metrics says nothing is pending.
    @Test func serveUploadsArchivedSegmentsToTheBucket() async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        try moto.createBucket("servewal")
        let server = try PostgresServer.start(name: "servewals3")
        defer { server.shutdown() }
        let dir = try TestEnvironment.makeTempDirectory("servewals3")
        let port = try TestEnvironment.freePort()
        var env = server.environment.merging(moto.backstopEnvironment(bucket: "servewal")) { $1 }
        env.merge(Self.receivingServe(backupDir: dir, port: port, slot: "serve_s3_slot")) { $1 }
        let pid = try BackstopBinary.spawn(["serve"], environment: env, logFile: dir + "/serve.log")
        defer { kill(pid, SIGKILL) }
        let url = "http://127.0.0.1:\(port)/metrics"
        try TestEnvironment.waitUntil(timeout: 20, "serve listening") { TestEnvironment.isListening(port: port) }
        try TestHTTP.waitFor(url, timeout: 30, "backstop_wal_receiver_up 1") { metricValue($0, Family.walReceiverUp.name) == 1 }
        let segment = try server.psql("SELECT pg_walfile_name(pg_current_wal_lsn());")
        try server.psql("CREATE TABLE t AS SELECT generate_series(1, 1000) x; SELECT pg_switch_wal();")
        let archive = WalArchive(backupDir: dir)
        try WalTestSupport.waitForFile(archive.metaPath(segment))
        let archivedAt = MonotonicClock.seconds()
        try TestEnvironment.waitUntil(timeout: 40, "\(segment) in the bucket") {
            WalUploadMarker.read(segment, in: archive) != nil
        }
        print("serve: \(segment) in the bucket \(String(format: "%.1f", MonotonicClock.seconds() - archivedAt)) s after it was archived")
        let keys = try moto.keys(bucket: "servewal")
        #expect(keys.contains("postgres/wal/\(segment).gz") && keys.contains("postgres/wal/\(segment).meta"), "\(keys)")
        #expect(WalUploadMarker.read(segment, in: archive)?.sha256 == archive.meta(segment)?.sha256)
        let body = try TestHTTP.waitFor(url, timeout: 30, "the S3 copy on /metrics") { text in
            (metricValue(text, Family.walS3LastSegment.name) ?? 0) > 0
        }
        #expect(metricValue(body, Family.walS3Pending.name) != nil)
    }
}
