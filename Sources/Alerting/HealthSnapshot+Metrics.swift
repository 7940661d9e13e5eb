import BackstopMetrics

/// Families of the metrics contract that `Family` does not name yet.
public enum AlertInputFamilies {
    public static let walArchiveLastSegment = "backstop_wal_archive_last_segment_timestamp_seconds"
    public static let restoreDrillLastSuccess = "backstop_restore_drill_last_success_timestamp_seconds"
}

extension HealthSnapshot {
    /// A snapshot read from the metrics the health loop and the jobs already publish, so the
    /// evaluator sees exactly what `/metrics` (and the Prometheus rules in `alerts/`) see.
    /// What metrics cannot carry — probe errors, S3 failure streaks, restore-drill failures,
    /// the addresses Sentinels reported — the caller adds to the result.
    ///
    /// Read: backstop_postgres_up{target}, backstop_redis_up{address,role},
    /// backstop_redis_sentinel_up{sentinel} with …_master_ok / …_quorum_ok /
    /// …_known_sentinels{master_name}, backstop_disk_{total,free}_bytes{path},
    /// backstop_backup_last_{success_timestamp_seconds,attempt_timestamp_seconds,run_success}{kind,target}
    /// (0 = never), backstop_wal_archive_last_segment_timestamp_seconds,
    /// backstop_restore_drill_last_{success,attempt}_timestamp_seconds{kind} and …_last_run_success{kind}.
    public init(time: Double, metrics: MetricsRegistry) {
        func values(_ family: String) -> [(labels: Labels, value: Double)] { metrics.series(family) }
        let postgres = values(Family.postgresUp).map { PostgresFacts(target: $0.labels["target"] ?? "", up: $0.value >= 1) }
        let redis = values(Family.redisUp).map { RedisFacts(address: $0.labels["address"] ?? "", role: $0.labels["role"] ?? "", up: $0.value >= 1) }

        var sentinel: SentinelFacts?
        let nodes = values(Family.sentinelUp).map { SentinelNodeFacts(address: $0.labels["sentinel"] ?? "", up: $0.value >= 1) }
        if !nodes.isEmpty {
            let masterOK = values(Family.sentinelMasterOK).first
            let name = masterOK?.labels["master_name"] ?? values(Family.sentinelQuorumOK).first?.labels["master_name"] ?? ""
            let byName: (String) -> Double? = { family in
                values(family).first { $0.labels["master_name"] == name }?.value
            }
            let anyUp = nodes.contains(where: \.up)
            sentinel = SentinelFacts(
                masterName: name, sentinels: nodes, reportedMasters: [],
                quorumOK: anyUp ? byName(Family.sentinelQuorumOK).map { $0 >= 1 } : nil,
                knownSentinels: anyUp ? byName(Family.sentinelKnownSentinels).map { Int($0) } : nil,
                // master_ok is also 0 when the master is merely down (RedisDown covers that):
                // count it as disagreement only while the master answers.
                mastersAgree: !anyUp || masterOK.map { $0.value >= 1 } ?? true || redis.contains { $0.role == "master" && !$0.up })
        }

        var totals: [String: Double] = [:]
        for s in values(Family.diskTotal) { totals[s.labels["path"] ?? ""] = s.value }
        let disks = values(Family.diskFree).compactMap { s -> DiskFacts? in
            let path = s.labels["path"] ?? ""
            guard let total = totals[path], total > 0 else { return nil }
            return DiskFacts(path: path, totalBytes: UInt64(total), freeBytes: UInt64(max(0, s.value)))
        }

        self.init(time: time, postgres: postgres, redis: redis, sentinel: sentinel, disks: disks,
                  backups: BackupFacts.all(from: metrics), walArchive: WalArchiveFacts.from(metrics),
                  restoreDrills: RestoreDrillFacts.all(from: metrics))
    }
}

extension BackupFacts {
    /// Every kind and target of the backstop_backup_last_* families (a 0 timestamp = never),
    /// in first-seen order: the catalog's view as the jobs publish it.
    public static func all(from metrics: MetricsRegistry) -> [BackupFacts] {
        func timestamp(_ v: Double?) -> Double? { v.flatMap { $0 > 0 ? $0 : nil } }
        struct Key: Hashable { var kind: String; var target: String }
        var order: [Key] = []
        var success: [Key: Double] = [:], attempt: [Key: Double] = [:], runOK: [Key: Double] = [:]
        func collect(_ family: String, into map: inout [Key: Double]) {
            for s in metrics.series(family) {
                let key = Key(kind: s.labels["kind"] ?? "", target: s.labels["target"] ?? "")
                if !order.contains(key) { order.append(key) }
                map[key] = s.value
            }
        }
        collect(Family.backupLastSuccess, into: &success)
        collect(Family.backupLastAttempt, into: &attempt)
        collect(Family.backupLastRunSuccess, into: &runOK)
        return order.map { key in
            let lastAttempt = timestamp(attempt[key])
            return BackupFacts(kind: key.kind, target: key.target, lastSuccess: timestamp(success[key]), lastAttempt: lastAttempt,
                               lastRunSucceeded: lastAttempt == nil ? nil : runOK[key].map { $0 >= 1 })
        }
    }
}

extension WalArchiveFacts {
    /// From backstop_wal_archive_last_segment_timestamp_seconds; nil when the family has no
    /// sample (WAL archiving not configured).
    public static func from(_ metrics: MetricsRegistry) -> WalArchiveFacts? {
        let slots = Dictionary(metrics.series("backstop_replication_slot_retained_bytes").compactMap { s in s.labels["slot"].map { ($0, s.value) } }) { a, _ in a }
        return metrics.series(AlertInputFamilies.walArchiveLastSegment).first.map {
            WalArchiveFacts(lastSegmentTime: $0.value > 0 ? $0.value : nil, slotRetainedBytes: slots)
        }
    }
}

extension RestoreDrillFacts {
    /// From backstop_restore_drill_last_success_timestamp_seconds{kind},
    /// …_last_attempt_timestamp_seconds{kind} and …_last_run_success{kind} (0 = never).
    public static func all(from metrics: MetricsRegistry) -> [RestoreDrillFacts] {
        var attempts: [String: Double] = [:], runOK: [String: Double] = [:]
        for s in metrics.series(Family.restoreDrillLastAttempt) { attempts[s.labels["kind"] ?? ""] = s.value }
        for s in metrics.series(Family.restoreDrillLastRunSuccess) { runOK[s.labels["kind"] ?? ""] = s.value }
        return metrics.series(AlertInputFamilies.restoreDrillLastSuccess).map {
            let kind = $0.labels["kind"] ?? ""
            let attempt = attempts[kind].flatMap { $0 > 0 ? $0 : nil }
            return RestoreDrillFacts(kind: kind, lastSuccess: $0.value > 0 ? $0.value : nil, lastAttempt: attempt,
                                     lastRunSucceeded: attempt == nil ? nil : runOK[kind].map { $0 >= 1 })
        }
    }
}
