import Alerting
import BackstopCore
import BackstopMetrics
import BackstopState
import BackstopTestSupport
import BackupJobs
import Foundation
import Health
import Scheduling
import Testing

/// The state store against real files and a real Redis: what it reads from the disk, what it
/// publishes, what the rules and the metrics see of it.
@Suite("state store", .serialized)
struct StateStoreTests {
    static let expected = [BackupMetrics.Expected(kind: "redis", target: "127.0.0.1:6390")]

    /// A probe round against servers that are not there (fast: connection refused).
    static func deadReport(backupDir: String) async throws -> HealthReport {
        let config = try BackstopConfig(environment: [
            "BACKUP_DIR": backupDir, "PGHOST": "127.0.0.1", "PGPORT": "1", "REDIS_HOST": "127.0.0.1", "REDIS_PORT": "1",
            "HEALTH_PROBE_TIMEOUT": "2s",
        ])
        return await HealthChecker(config: config).check()
    }

    static func outcome(success: Bool, at time: Double, message: String? = nil) -> BackupOutcome {
        BackupOutcome(kind: .redis, target: "127.0.0.1:6390", path: nil, success: success, startedAt: time - 3, finishedAt: time,
                      sizeBytes: success ? 1234 : 0, sha256: nil, message: message)
    }

    @Test("a backup written by another process shows after the next refresh, and a change is published")
    func refreshSeesOtherProcesses() async throws {
        let redis = try StandaloneRedis()
        defer { redis.stop() }
        let dir = try TestEnvironment.makeTempDirectory("state-refresh")
        let target = "127.0.0.1:\(redis.port)"
        let store = await StateStore.open(backupDir: dir, expected: [.init(kind: "redis", target: target)], s3Destination: nil, metrics: nil)
        #expect(await store.current.backups.map(\.lastSuccess) == [0])
        #expect(await store.lastSuccess(job: "redis") == .never, "no backup yet: the scheduler must catch up")
        let changes = await store.changes()

        // `backstop backup redis`, as a cron line or a person at a terminal runs it.
        let run = try BackstopBinary.run(["backup", "redis"], environment: [
            "BACKUP_DIR": dir, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(redis.port),
        ])
        #expect(run.status == 0, "backup redis: \(run.stdout)\(run.stderr)")

        await store.refreshFromDisk()
        let status = try #require(await store.current.backups.first { $0.target == target })
        #expect(status.lastSuccess > Date().timeIntervalSince1970 - 60)
        #expect(status.lastRunSucceeded && status.lastSizeBytes > 0)
        var iterator = changes.makeAsyncIterator()
        #expect(await iterator.next() == .backups)
        guard case let .at(date) = await store.lastSuccess(job: "redis") else {
            Issue.record("catch-up still thinks the job never ran")
            return
        }
        #expect(abs(date.timeIntervalSince1970 - status.lastSuccess) < 0.001)

        // Nothing new on disk: no change.
        await store.refreshFromDisk()
        await store.recordWalArchive(nil)
        #expect(await iterator.next() == .walArchive, "a second refresh with nothing new published a change")
    }

    @Test("a failed run is a BackupFailed with its reason, from the store and from a reopened store alike")
    func failedRunAlerts() async throws {
        let dir = try TestEnvironment.makeTempDirectory("state-failed")
        let registry = MetricsRegistry()
        let store = await StateStore.open(backupDir: dir, expected: Self.expected, s3Destination: nil, metrics: registry)
        #expect(await store.snapshot() == nil, "no snapshot before the first probe round")
        let report = try await Self.deadReport(backupDir: dir)
        await store.recordHealth(report)
        let now = WallClock.now()
        await store.recordBackups([Self.outcome(success: true, at: now - 600), Self.outcome(success: false, at: now, message: "NOAUTH Authentication required")])
        let alerts = AlertRules().evaluate(try #require(await store.snapshot(at: now)))
        let failed = try #require(alerts.first { $0.name == "BackupFailed" })
        #expect(failed.labels["kind"] == "redis")
        #expect(failed.annotations["description"]?.contains("NOAUTH") == true, "\(failed.annotations)")

        // The metrics are the state's rendering: the failure and the earlier success.
        let text = String(decoding: registry.render(now: now), as: UTF8.self)
        let labels = "kind=\"redis\",target=\"127.0.0.1:6390\""
        #expect(metricValue(text, "backstop_backup_last_run_success", labels) == 0)
        #expect(metricValue(text, "backstop_backup_last_success_timestamp_seconds", labels) == now - 600)
        #expect(metricValue(text, "backstop_backup_last_size_bytes", labels) == 1234)
        #expect(metricValue(text, "backstop_backup_runs_total", labels + ",result=\"failure\"") == 1)
        #expect(metricValue(text, "backstop_backup_runs_total", labels + ",result=\"success\"") == 1)
    }

    @Test("statuses loaded from the disk equal the statuses the runs produced")
    func diskAndMemoryAgree() async throws {
        let redis = try StandaloneRedis()
        defer { redis.stop() }
        let dir = try TestEnvironment.makeTempDirectory("state-agree")
        let target = "127.0.0.1:\(redis.port)"
        let settings = try RedisJobSettings(environment: ["BACKUP_DIR": dir, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(redis.port)])
        let store = await StateStore.open(backupDir: dir, expected: BackupMetrics.expected(redis: settings), s3Destination: nil, metrics: nil)
        let runner = BackupJobRunner(log: BackupLog(backupDir: dir, echo: false), record: { await store.recordBackups($0) })
        try await runner.redis(settings: settings)
        let inMemory = await store.current.backups
        let reopened = await StateStore.open(backupDir: dir, expected: BackupMetrics.expected(redis: settings), s3Destination: nil, metrics: nil)
        let fromDisk = await reopened.current.backups
        #expect(inMemory.map(\.target) == [target])
        #expect(inMemory.count == fromDisk.count)
        for (a, b) in zip(inMemory, fromDisk) {
            #expect(a.kind == b.kind && a.target == b.target && a.lastRunSucceeded == b.lastRunSucceeded && a.lastSizeBytes == b.lastSizeBytes)
            // `.meta` keeps whole seconds (RFC 3339 without a fraction).
            #expect(abs(a.lastSuccess - b.lastSuccess) < 1 && abs(a.lastAttempt - b.lastAttempt) < 1, "\(a) vs \(b)")
        }
    }
}
