import Alerting
import BackstopMetrics
import Testing

@Suite struct HealthSnapshotMetricsTests {
    @Test func snapshotFromTheRegistryDrivesTheSameRules() {
        let r = MetricsRegistry()
        Family.declareStandard(in: r)
        Family.declareSentinel(in: r)
        r.declare(AlertInputFamilies.walArchiveLastSegment, .gauge, help: "w")
        let now = 1_800_000_000.0
        r.set(Family.postgresUp, ["target": "psscript"], 0)
        r.set(Family.redisUp, ["address": "m:6379", "role": "master"], 1)
        r.set(Family.sentinelUp, ["sentinel": "s1:26379"], 1)
        r.set(Family.sentinelUp, ["sentinel": "s2:26379"], 0)
        r.set(Family.sentinelMasterOK, ["master_name": "mymaster"], 1)
        r.set(Family.sentinelQuorumOK, ["master_name": "mymaster"], 0)
        r.set(Family.sentinelKnownSentinels, ["master_name": "mymaster"], 2)
        r.set(Family.diskTotal, ["path": "/backups"], 1000)
        r.set(Family.diskFree, ["path": "/backups"], 100)
        r.set(Family.backupLastSuccess, ["kind": "postgres_full", "target": "psscript"], now - 3600)
        r.set(Family.backupLastAttempt, ["kind": "postgres_full", "target": "psscript"], now - 60)
        r.set(Family.backupLastRunSuccess, ["kind": "postgres_full", "target": "psscript"], 0)
        r.touch(Family.backupLastSuccess, ["kind": "redis", "target": "mymaster"]) // configured, never ran
        r.set(AlertInputFamilies.walArchiveLastSegment, [:], now - 30)

        let s = HealthSnapshot(time: now, metrics: r)
        #expect(s.postgres == [PostgresFacts(target: "psscript", up: false)])
        #expect(s.redis == [RedisFacts(address: "m:6379", role: "master", up: true)])
        #expect(s.sentinel?.masterName == "mymaster")
        #expect(s.sentinel?.quorumOK == false && s.sentinel?.knownSentinels == 2 && s.sentinel?.mastersAgree == true)
        #expect(s.disks == [DiskFacts(path: "/backups", totalBytes: 1000, freeBytes: 100)])
        #expect(s.backups.count == 2)
        #expect(s.backups[0] == BackupFacts(kind: "postgres_full", target: "psscript", lastSuccess: now - 3600, lastAttempt: now - 60, lastRunSucceeded: false))
        #expect(s.backups[1] == BackupFacts(kind: "redis", target: "mymaster"))
        #expect(s.walArchive?.lastSegmentTime == now - 30)

        let alerts = AlertRules().evaluate(s)
        let keys = alerts.map { "\($0.name)/\($0.labels["reason"] ?? $0.labels["kind"] ?? "")" }
        #expect(keys == ["BackupFailed/postgres_full", "BackupStale/redis", "DiskSpaceLow/", "PostgresDown/",
                         "RedisSentinelDegraded/quorum_lost", "RedisSentinelDegraded/sentinel_down"])
    }
}
