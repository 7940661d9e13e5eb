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
    @Test func serveStreamsWalExportsItsMetricsAndStopsTheReceiver() throws {
        let server = try PostgresServer.start(name: "servewal")
        defer { server.shutdown() }
        let dir = try TestEnvironment.makeTempDirectory("servewal")
        let port = try TestEnvironment.freePort()
        var env = server.environment
        env.merge(["BACKUP_DIR": dir, "METRICS_LISTEN": "127.0.0.1:\(port)", "HEALTH_CHECK_INTERVAL": "1s",
                   "BACKUP_WAL_ARCHIVE": "receivewal", "BACKUP_WAL_SLOT": "serve_slot",
                   "REDIS_HOST": "127.0.0.1", "REDIS_PORT": "1",
                   "BACKUP_SCHEDULE_FULL": "", "BACKUP_SCHEDULE_INCREMENTAL": "", "BACKUP_SCHEDULE_REDIS": "",
                   "BACKUP_SCHEDULE_CLEANUP": "", "BACKUP_SCHEDULE_DRILL": ""]) { $1 }
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
}
