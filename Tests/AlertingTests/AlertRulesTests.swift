import Alerting
import Testing

/// Each rule, firing and not firing, on hand-made snapshots.
@Suite struct AlertRulesTests {
    let now = 1_800_000_000.0
    let rules = AlertRules()

    func names(_ alerts: [Alert]) -> [String] { alerts.map(\.name) }

    @Test func healthySnapshotFiresNothing() {
        let s = HealthSnapshot(
            time: now,
            postgres: [PostgresFacts(target: "psscript", up: true)],
            redis: [RedisFacts(address: "redis-master:6379", role: "master", up: true)],
            sentinel: SentinelFacts(masterName: "mymaster", sentinels: [SentinelNodeFacts(address: "s1:26379", up: true), SentinelNodeFacts(address: "s2:26379", up: true)],
                                    reportedMasters: ["10.0.0.1:6379", "10.0.0.1:6379"], quorumOK: true, knownSentinels: 2),
            disks: [DiskFacts(path: "/backups", totalBytes: 100, freeBytes: 50)],
            backups: [BackupFacts(kind: "postgres_full", target: "psscript", lastSuccess: now - 3600, lastAttempt: now - 3700, lastRunSucceeded: true)],
            s3: S3Facts(consecutiveFailures: 0),
            walArchive: WalArchiveFacts(lastSegmentTime: now - 60),
            restoreDrills: [RestoreDrillFacts(kind: "postgres_full", lastSuccess: now - 86400, lastRunSucceeded: true)])
        #expect(rules.evaluate(s).isEmpty)
    }

    @Test func backupStaleUsesTwiceTheIntervalPlusSlack() throws {
        // postgres_full: daily schedule → 48h30m.
        let limit = try #require(rules.thresholds.backupStaleAfter["postgres_full"])
        #expect(limit == .seconds(48 * 3600 + 1800))
        let fresh = BackupFacts(kind: "postgres_full", target: "psscript", lastSuccess: now - limit.seconds + 1)
        #expect(rules.evaluate(HealthSnapshot(time: now, backups: [fresh])).isEmpty)
        let stale = BackupFacts(kind: "postgres_full", target: "psscript", lastSuccess: now - limit.seconds - 1)
        let alerts = rules.evaluate(HealthSnapshot(time: now, backups: [stale]))
        #expect(names(alerts) == ["BackupStale"])
        #expect(alerts[0].labels == ["alertname": "BackupStale", "severity": "critical", "kind": "postgres_full", "target": "psscript"])
        #expect(alerts[0].summary.contains("2d"))
        #expect(alerts[0].annotations["description"]!.contains("ALERT_BACKUP_STALE_POSTGRES_FULL"))
        // redis: every 4h → 8h30m.
        let redis = BackupFacts(kind: "redis", target: "mymaster", lastSuccess: now - 9 * 3600)
        #expect(names(rules.evaluate(HealthSnapshot(time: now, backups: [redis]))) == ["BackupStale"])
    }

    @Test func backupStaleFiresWithoutAnyGoodBackupAndNotForKindsWithoutThreshold() {
        let never = BackupFacts(kind: "postgres_base", target: "psscript")
        let alerts = rules.evaluate(HealthSnapshot(time: now, backups: [never]))
        #expect(names(alerts) == ["BackupStale"])
        #expect(alerts[0].summary.contains("No good postgres_base backup"))
        var thresholds = AlertThresholds()
        thresholds.backupStaleAfter["postgres_base"] = nil // schedule disabled
        #expect(AlertRules(thresholds: thresholds).evaluate(HealthSnapshot(time: now, backups: [never])).isEmpty)
    }

    @Test func backupFailedFiresOnlyWhenTheLastRunFailed() {
        let failed = BackupFacts(kind: "redis", target: "mymaster", lastSuccess: now - 60, lastAttempt: now - 30, lastRunSucceeded: false, lastError: "BGSAVE refused")
        let alerts = rules.evaluate(HealthSnapshot(time: now, backups: [failed]))
        #expect(names(alerts) == ["BackupFailed"])
        #expect(alerts[0].severity == .warning)
        #expect(alerts[0].labels["kind"] == "redis" && alerts[0].labels["target"] == "mymaster")
        #expect(alerts[0].annotations["description"]!.contains("BGSAVE refused"))
        var ok = failed
        ok.lastRunSucceeded = true
        #expect(rules.evaluate(HealthSnapshot(time: now, backups: [ok])).isEmpty)
        ok.lastRunSucceeded = nil
        #expect(rules.evaluate(HealthSnapshot(time: now, backups: [ok])).isEmpty)
    }

    @Test func postgresDown() {
        let down = rules.evaluate(HealthSnapshot(time: now, postgres: [PostgresFacts(target: "psscript", up: false, address: "postgres:5432", error: "connection refused")]))
        #expect(names(down) == ["PostgresDown"])
        #expect(down[0].labels == ["alertname": "PostgresDown", "severity": "critical", "target": "psscript"])
        #expect(down[0].annotations["description"]!.contains("postgres:5432"))
        #expect(rules.evaluate(HealthSnapshot(time: now, postgres: [PostgresFacts(target: "psscript", up: true)])).isEmpty)
    }

    @Test func redisDownIsCriticalForTheMasterOnly() {
        let s = HealthSnapshot(time: now, redis: [
            RedisFacts(address: "m:6379", role: "master", up: false),
            RedisFacts(address: "r:6379", role: "replica", up: false),
            RedisFacts(address: "r2:6379", role: "replica", up: true),
        ])
        let alerts = rules.evaluate(s)
        #expect(names(alerts) == ["RedisDown", "RedisDown"])
        let byAddress = Dictionary(uniqueKeysWithValues: alerts.map { ($0.labels["address"]!, $0) })
        #expect(byAddress["m:6379"]?.severity == .critical)
        #expect(byAddress["r:6379"]?.severity == .warning)
        #expect(byAddress["r:6379"]?.labels["role"] == "replica")
        #expect(rules.evaluate(HealthSnapshot(time: now, redis: [RedisFacts(address: "m:6379", role: "master", up: true)])).isEmpty)
    }

    @Test func sentinelDegradedReasons() {
        let nodes = [SentinelNodeFacts(address: "s1:26379", up: true), SentinelNodeFacts(address: "s2:26379", up: false), SentinelNodeFacts(address: "s3:26379", up: true)]
        let healthy = SentinelFacts(masterName: "mymaster", sentinels: nodes.map { var n = $0; n.up = true; return n },
                                    reportedMasters: ["a:6379"], quorumOK: true, knownSentinels: 3)
        #expect(rules.evaluate(HealthSnapshot(time: now, sentinel: healthy)).isEmpty)

        let oneDown = SentinelFacts(masterName: "mymaster", sentinels: nodes, reportedMasters: ["a:6379"], quorumOK: true, knownSentinels: 3)
        let a = rules.evaluate(HealthSnapshot(time: now, sentinel: oneDown))
        #expect(a.count == 1)
        #expect(a[0].labels == ["alertname": "RedisSentinelDegraded", "severity": "warning", "master_name": "mymaster", "reason": "sentinel_down", "sentinel": "s2:26379"])

        let noQuorum = SentinelFacts(masterName: "mymaster", sentinels: healthy.sentinels, reportedMasters: ["a:6379"], quorumOK: false, knownSentinels: 3)
        let q = rules.evaluate(HealthSnapshot(time: now, sentinel: noQuorum))
        #expect(q.map { $0.labels["reason"] } == ["quorum_lost"])
        #expect(q[0].severity == .critical)

        let split = SentinelFacts(masterName: "mymaster", sentinels: healthy.sentinels, reportedMasters: ["a:6379", "b:6379"], quorumOK: true, knownSentinels: 3)
        let d = rules.evaluate(HealthSnapshot(time: now, sentinel: split))
        #expect(d.map { $0.labels["reason"] } == ["master_disagreement"])
        #expect(d[0].annotations["description"]!.contains("a:6379, b:6379"))

        let missing = SentinelFacts(masterName: "mymaster", sentinels: healthy.sentinels, reportedMasters: ["a:6379"], quorumOK: true, knownSentinels: 2)
        #expect(rules.evaluate(HealthSnapshot(time: now, sentinel: missing)).map { $0.labels["reason"] } == ["sentinels_missing"])
    }

    @Test func diskSpaceLowWarningThenCritical() {
        func eval(free: UInt64) -> [Alert] {
            rules.evaluate(HealthSnapshot(time: now, disks: [DiskFacts(path: "/backups", totalBytes: 1000, freeBytes: free)]))
        }
        #expect(eval(free: 150).isEmpty) // exactly 15 %: not below
        let warning = eval(free: 149)
        #expect(names(warning) == ["DiskSpaceLow"])
        #expect(warning[0].severity == .warning)
        #expect(warning[0].labels["path"] == "/backups")
        #expect(eval(free: 50).isEmpty == false && eval(free: 50)[0].severity == .warning) // exactly 5 %
        let critical = eval(free: 49)
        #expect(critical.count == 1 && critical[0].severity == .critical)
        #expect(critical[0].annotations["description"]!.contains("DISK_FREE_CRITICAL_PERCENT"))
        // Configured levels are honoured.
        let custom = AlertRules(thresholds: AlertThresholds(diskFreeWarningPercent: 40, diskFreeCriticalPercent: 20))
        #expect(custom.evaluate(HealthSnapshot(time: now, disks: [DiskFacts(path: "/b", totalBytes: 100, freeBytes: 30)]))[0].severity == .warning)
    }

    @Test func s3UploadFailing() {
        #expect(rules.evaluate(HealthSnapshot(time: now, s3: S3Facts(consecutiveFailures: 0, lastSuccess: now))).isEmpty)
        let failing = rules.evaluate(HealthSnapshot(time: now, s3: S3Facts(consecutiveFailures: 3, lastFailure: now - 10, lastError: "connect timeout")))
        #expect(names(failing) == ["S3UploadFailing"])
        #expect(failing[0].summary.contains("3 S3 uploads"))
        let patient = AlertRules(thresholds: AlertThresholds(s3FailuresBeforeAlert: 5))
        #expect(patient.evaluate(HealthSnapshot(time: now, s3: S3Facts(consecutiveFailures: 4))).isEmpty)
        #expect(rules.evaluate(HealthSnapshot(time: now, s3: nil)).isEmpty)
    }

    @Test func walArchiveStalled() {
        #expect(rules.evaluate(HealthSnapshot(time: now, walArchive: WalArchiveFacts(lastSegmentTime: now - 3599))).isEmpty)
        let stalled = rules.evaluate(HealthSnapshot(time: now, walArchive: WalArchiveFacts(lastSegmentTime: now - 7200, path: "/backups/postgres/wal")))
        #expect(names(stalled) == ["WalArchiveStalled"])
        #expect(stalled[0].severity == .critical)
        #expect(names(rules.evaluate(HealthSnapshot(time: now, walArchive: WalArchiveFacts(lastSegmentTime: nil)))) == ["WalArchiveStalled"])
        #expect(rules.evaluate(HealthSnapshot(time: now, walArchive: nil)).isEmpty)
    }

    @Test func restoreDrillFailed() {
        let failed = rules.evaluate(HealthSnapshot(time: now, restoreDrills: [RestoreDrillFacts(kind: "postgres_full", lastSuccess: now - 86400 * 2, lastRunSucceeded: false)]))
        #expect(names(failed) == ["RestoreDrillFailed"])
        #expect(failed[0].labels["kind"] == "postgres_full")
        let old = rules.evaluate(HealthSnapshot(time: now, restoreDrills: [RestoreDrillFacts(kind: "redis", lastSuccess: now - 86400 * 9, lastRunSucceeded: true)]))
        #expect(names(old) == ["RestoreDrillFailed"])
        #expect(rules.evaluate(HealthSnapshot(time: now, restoreDrills: [RestoreDrillFacts(kind: "redis", lastSuccess: now - 86400 * 7, lastRunSucceeded: true)])).isEmpty)
        #expect(rules.evaluate(HealthSnapshot(time: now, restoreDrills: [RestoreDrillFacts(kind: "redis")])).isEmpty)
    }

    @Test func evaluationIsDeterministicAndOrdered() {
        let s = HealthSnapshot(time: now,
                               postgres: [PostgresFacts(target: "b", up: false), PostgresFacts(target: "a", up: false)],
                               redis: [RedisFacts(address: "m:6379", role: "master", up: false)],
                               disks: [DiskFacts(path: "/backups", totalBytes: 100, freeBytes: 1)])
        let first = rules.evaluate(s)
        #expect(first == rules.evaluate(s))
        #expect(names(first) == ["DiskSpaceLow", "PostgresDown", "PostgresDown", "RedisDown"])
        for alert in first {
            #expect(!alert.summary.isEmpty)
            #expect(!(alert.annotations["description"] ?? "").isEmpty)
            #expect(["warning", "critical"].contains(alert.labels["severity"]))
        }
    }

    @Test func backupNotEncryptedFiresPerKindOnlyWhenEncryptionIsConfigured() {
        let now = 1_800_000_000.0
        var snapshot = HealthSnapshot(time: now, backups: [
            BackupFacts(kind: "postgres_full", target: "app", lastSuccess: now - 60, encrypted: false),
            BackupFacts(kind: "postgres_full", target: "globals", lastSuccess: now - 60, encrypted: true),
            BackupFacts(kind: "redis", target: "mymaster", lastSuccess: now - 60, encrypted: true),
            BackupFacts(kind: "postgres_base", target: "psscript"),
        ])
        #expect(AlertRules().evaluate(snapshot).filter { $0.name == "BackupNotEncrypted" }.isEmpty, "fired without encryption configured")
        snapshot.encryptionConfigured = true
        let alerts = AlertRules().evaluate(snapshot).filter { $0.name == "BackupNotEncrypted" }
        #expect(alerts.map { $0.labels["kind"] } == ["postgres_full"])
        #expect(alerts.first?.annotations["description"]?.contains("app") == true)
    }

    @Test func walSlotRetentionHighFiresPerSlotAboveTheThreshold() throws {
        let rules = AlertRules(thresholds: AlertThresholds())
        let now = 1_800_000_000.0
        let facts = WalArchiveFacts(lastSegmentTime: now - 10, slotRetainedBytes: ["backstop": 11 * 1024 * 1024 * 1024, "other": 1024])
        let alerts = rules.evaluate(HealthSnapshot(time: now, walArchive: facts))
        #expect(alerts.map(\.name) == ["WalSlotRetentionHigh"])
        #expect(alerts.first?.labels["slot"] == "backstop")
        #expect(alerts.first?.annotations["description"]?.contains("max_slot_wal_keep_size") == true)
        var lower = try AlertThresholds(environment: ["ALERT_WAL_SLOT_RETAINED_BYTES": "1000"], scheduleIntervals: [:],
                                        diskFreeWarningPercent: 15, diskFreeCriticalPercent: 5)
        #expect(lower.walSlotRetainedBytes == 1000)
        lower.walSlotRetainedBytes = 1000
        #expect(AlertRules(thresholds: lower).evaluate(HealthSnapshot(time: now, walArchive: facts)).count == 2)
        #expect(throws: (any Error).self) {
            try AlertThresholds(environment: ["ALERT_WAL_SLOT_RETAINED_BYTES": "lots"], scheduleIntervals: [:], diskFreeWarningPercent: 15, diskFreeCriticalPercent: 5)
        }
    }
}
