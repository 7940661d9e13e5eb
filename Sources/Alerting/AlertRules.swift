/// The one set of alert rules (DESIGN.md "Alerts"). Pure: the same snapshot and thresholds
/// always give the same alerts in the same order, so `backstop health`, the health loop, the
/// alerts file and the webhooks cannot disagree.
public struct AlertRules: Sendable {
    public var thresholds: AlertThresholds

    public init(thresholds: AlertThresholds = AlertThresholds()) {
        self.thresholds = thresholds
    }

    /// The alert names, as they also appear in `alerts/`.
    public static let names = [
        "BackupStale", "BackupFailed", "PostgresDown", "RedisDown", "RedisSentinelDegraded",
        "DiskSpaceLow", "S3UploadFailing", "WalArchiveStalled", "WalSlotRetentionHigh", "RestoreDrillFailed",
        "BackupNotEncrypted",
    ]

    /// Every alert firing for `snapshot`, ordered by name, then fingerprint.
    public func evaluate(_ snapshot: HealthSnapshot) -> [Alert] {
        var alerts: [Alert] = []
        alerts += backupStale(snapshot)
        alerts += backupFailed(snapshot)
        alerts += postgresDown(snapshot)
        alerts += redisDown(snapshot)
        alerts += sentinelDegraded(snapshot)
        alerts += diskSpaceLow(snapshot)
        alerts += s3UploadFailing(snapshot)
        alerts += walArchiveStalled(snapshot)
        alerts += walSlotRetentionHigh(snapshot)
        alerts += restoreDrillFailed(snapshot)
        alerts += backupNotEncrypted(snapshot)
        var seen = Set<String>()
        return alerts
            .filter { seen.insert($0.fingerprint).inserted }
            .sorted { ($0.name, $0.fingerprint) < ($1.name, $1.fingerprint) }
    }

    func backupStale(_ s: HealthSnapshot) -> [Alert] {
        s.backups.compactMap { b in
            guard let limit = thresholds.backupStaleAfter[b.kind] else { return nil }
            let variable = AlertThresholds.staleVariable(kind: b.kind)
            let look = "Check that `backstop serve` is running and the \(b.kind) job is scheduled (`backstop schedule`), "
                + "read $BACKUP_DIR/logs/backup.log for its last runs, and run the backup by hand to see the error. "
                + "The threshold (\(Human.duration(limit))) is set by \(variable)."
            let labels = ["kind": b.kind, "target": b.target]
            guard let last = b.lastSuccess else {
                return Alert(name: "BackupStale", severity: .critical, labels: labels,
                             summary: "No good \(b.kind) backup of \(b.target) on record",
                             description: "Backstop has no successful \(b.kind) backup of \(b.target) in its catalog. " + look)
            }
            let age = s.time - last
            guard age > limit.seconds else { return nil }
            return Alert(name: "BackupStale", severity: .critical, labels: labels,
                         summary: "Newest good \(b.kind) backup of \(b.target) is \(Human.duration(age)) old",
                         description: "The newest good \(b.kind) backup of \(b.target) finished at \(Human.time(last)), "
                             + "\(Human.duration(age)) ago, longer than the \(Human.duration(limit)) allowed. " + look)
        }
    }

    func backupFailed(_ s: HealthSnapshot) -> [Alert] {
        s.backups.compactMap { b in
            guard b.lastRunSucceeded == false else { return nil }
            let when = b.lastAttempt.map { " started at \(Human.time($0))" } ?? ""
            let error = b.lastError.map { " Error: \($0)." } ?? ""
            return Alert(name: "BackupFailed", severity: .warning, labels: ["kind": b.kind, "target": b.target],
                         summary: "The last \(b.kind) backup of \(b.target) failed",
                         description: "The newest \(b.kind) backup attempt of \(b.target)\(when) failed; no partial file was kept.\(error) "
                             + "Read $BACKUP_DIR/logs/backup.log for the full output, fix the cause, and run the backup by hand "
                             + "or wait for the next scheduled run. The alert resolves when a run succeeds.")
        }
    }

    func postgresDown(_ s: HealthSnapshot) -> [Alert] {
        s.postgres.compactMap { p in
            guard !p.up else { return nil }
            let at = p.address.map { " at \($0)" } ?? ""
            let error = p.error.map { " The probe said: \($0)." } ?? ""
            return Alert(name: "PostgresDown", severity: .critical, labels: ["target": p.target],
                         summary: "PostgreSQL database \(p.target) is unreachable",
                         description: "The health probe could not connect to or query database \(p.target)\(at).\(error) "
                             + "Check the postgres container (is it running, `pg_isready`, its log), the network and the credentials "
                             + "(PGHOST, PGPORT, PGUSER, PGPASSWORD/PGPASSFILE). Backups of this database fail while it is down.")
        }
    }

    func redisDown(_ s: HealthSnapshot) -> [Alert] {
        s.redis.compactMap { r in
            guard !r.up else { return nil }
            let isMaster = r.role == "master"
            let error = r.error.map { " The probe said: \($0)." } ?? ""
            return Alert(name: "RedisDown", severity: isMaster ? .critical : .warning, labels: ["address": r.address, "role": r.role],
                         summary: "Redis \(r.role) \(r.address) is unreachable",
                         description: "The health probe got no answer to PING from the Redis \(r.role) at \(r.address).\(error) "
                             + "Check the Redis container and its log, the network, and REDIS_PASSWORD. "
                             + (isMaster ? "With Sentinel, check whether a failover is under way (`redis-cli -p 26379 SENTINEL masters`). Redis snapshots fail while the master is down."
                                         : "The master keeps serving; the replica will resync when it is back."))
        }
    }

    func sentinelDegraded(_ s: HealthSnapshot) -> [Alert] {
        guard let sentinel = s.sentinel else { return [] }
        let master = sentinel.masterName
        var alerts: [Alert] = []
        for node in sentinel.sentinels where !node.up {
            let error = node.error.map { " The probe said: \($0)." } ?? ""
            alerts.append(Alert(
                name: "RedisSentinelDegraded", severity: .warning,
                labels: ["master_name": master, "reason": "sentinel_down", "sentinel": node.address],
                summary: "Redis Sentinel \(node.address) is unreachable",
                description: "Sentinel \(node.address), watching master \(master), did not answer.\(error) Fewer Sentinels make "
                    + "failover less likely to reach quorum. Check the sentinel container and its log, and REDIS_SENTINELS."))
        }
        if sentinel.quorumOK == false {
            alerts.append(Alert(
                name: "RedisSentinelDegraded", severity: .critical,
                labels: ["master_name": master, "reason": "quorum_lost"],
                summary: "Redis Sentinel quorum for \(master) is lost",
                description: "SENTINEL CKQUORUM \(master) failed: too few Sentinels can agree to fail over the master \(master). "
                    + "A master failure now means downtime. Bring the missing Sentinels back (`redis-cli -p 26379 SENTINEL ckquorum \(master)`)."))
        }
        if !sentinel.mastersAgree {
            let masters = Set(sentinel.reportedMasters).sorted().joined(separator: ", ")
            alerts.append(Alert(
                name: "RedisSentinelDegraded", severity: .critical,
                labels: ["master_name": master, "reason": "master_disagreement"],
                summary: "Redis Sentinels disagree on the master of \(master)",
                description: "The Sentinels name different masters for \(master)\(masters.isEmpty ? "" : ": \(masters)"). Either they name different "
                    + "masters (a split brain or an unfinished failover: writes may go to the wrong server) or the master they name does not answer. Compare `SENTINEL get-master-addr-by-name \(master)` "
                    + "on each Sentinel and `ROLE` on each Redis server."))
        }
        let expected = sentinel.sentinels.count
        if let known = sentinel.knownSentinels, known < expected {
            alerts.append(Alert(
                name: "RedisSentinelDegraded", severity: .warning,
                labels: ["master_name": master, "reason": "sentinels_missing"],
                summary: "Sentinel knows \(known) of \(expected) Sentinels for \(master)",
                description: "An answering Sentinel counts \(known) Sentinels watching \(master), but \(expected) are configured "
                    + "(REDIS_SENTINELS). A Sentinel is down or cannot reach the others (check `SENTINEL sentinels \(master)`)."))
        }
        return alerts
    }

    func diskSpaceLow(_ s: HealthSnapshot) -> [Alert] {
        s.disks.compactMap { d in
            guard d.totalBytes > 0 else { return nil }
            let free = d.freePercent
            let severity: Severity
            let level: Double
            if free < thresholds.diskFreeCriticalPercent {
                severity = .critical
                level = thresholds.diskFreeCriticalPercent
            } else if free < thresholds.diskFreeWarningPercent {
                severity = .warning
                level = thresholds.diskFreeWarningPercent
            } else {
                return nil
            }
            return Alert(name: "DiskSpaceLow", severity: severity, labels: ["path": d.path],
                         summary: "Only \(Human.oneDecimal(free))% free on the file system holding \(d.path)",
                         description: "\(Human.bytes(d.freeBytes)) of \(Human.bytes(d.totalBytes)) free (\(Human.oneDecimal(free))%), "
                             + "below the \(severity.rawValue) level of \(Human.oneDecimal(level))% (DISK_FREE_\(severity == .critical ? "CRITICAL" : "WARNING")_PERCENT). "
                             + "Backups fail when the disk fills. Check `backstop cleanup --dry-run` and BACKUP_RETENTION_DAYS, "
                             + "look for leftovers with `du -sh \(d.path)/*`, or grow the volume.")
        }
    }

    func s3UploadFailing(_ s: HealthSnapshot) -> [Alert] {
        guard let s3 = s.s3, s3.consecutiveFailures >= thresholds.s3FailuresBeforeAlert else { return [] }
        let dest = s3.destination.map { " to \($0)" } ?? ""
        let since = s3.lastSuccess.map { " The last upload that worked finished at \(Human.time($0))." } ?? " No upload has worked yet."
        let error = s3.lastError.map { " Last error: \($0)." } ?? ""
        return [Alert(name: "S3UploadFailing", severity: .warning,
                      summary: "\(s3.consecutiveFailures) S3 upload\(s3.consecutiveFailures == 1 ? "" : "s") in a row failed",
                      description: "Uploads\(dest) keep failing; the local backups are good and are retried on the next cycle, "
                          + "but there is no off-site copy.\(since)\(error) Check the endpoint, the bucket, the credentials "
                          + "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and the network.")]
    }

    func walArchiveStalled(_ s: HealthSnapshot) -> [Alert] {
        guard let wal = s.walArchive else { return [] }
        let limit = thresholds.walArchiveStaleAfter
        let path = wal.path.map { " in \($0)" } ?? ""
        let look = "Check that pg_receivewal runs (the Backstop log), the replication slot (`SELECT * FROM pg_replication_slots`) "
            + "and that PostgreSQL switches segments on an idle server (archive_timeout). "
            + "Point-in-time recovery stops at the newest archived segment. Threshold: ALERT_WAL_ARCHIVE_STALE_AFTER (\(Human.duration(limit)))."
        guard let last = wal.lastSegmentTime else {
            return [Alert(name: "WalArchiveStalled", severity: .critical,
                          summary: "No WAL segment has been archived",
                          description: "The WAL archive\(path) holds no complete segment. " + look)]
        }
        let age = s.time - last
        guard age > limit.seconds else { return [] }
        return [Alert(name: "WalArchiveStalled", severity: .critical,
                      summary: "No WAL segment archived for \(Human.duration(age))",
                      description: "The newest complete WAL segment\(path) arrived at \(Human.time(last)), \(Human.duration(age)) ago. " + look)]
    }

    func walSlotRetentionHigh(_ s: HealthSnapshot) -> [Alert] {
        guard let wal = s.walArchive else { return [] }
        let limit = thresholds.walSlotRetainedBytes
        return wal.slotRetainedBytes.sorted { $0.key < $1.key }.compactMap { (slot, bytes) -> Alert? in
            guard bytes > limit else { return nil }
            return Alert(name: "WalSlotRetentionHigh", severity: .warning, labels: ["slot": slot],
                         summary: "Replication slot \(slot) holds back \(Human.bytes(UInt64(bytes))) of WAL",
                         description: "PostgreSQL keeps every WAL segment since the slot's restart LSN: \(Human.bytes(UInt64(bytes))), above "
                             + "\(Human.bytes(UInt64(limit))) (ALERT_WAL_SLOT_RETAINED_BYTES). The primary's disk fills if nothing drains the slot. "
                             + "Check that pg_receivewal runs (backstop_wal_receiver_up), drop a slot nobody uses "
                             + "(SELECT pg_drop_replication_slot('\(slot)')), and bound the damage with max_slot_wal_keep_size.")
        }
    }

    /// Per kind, as `backstop_backup_encrypted{kind}` in Prometheus: encryption is configured
    /// but the newest good backup of a target of that kind is plain gzip.
    func backupNotEncrypted(_ s: HealthSnapshot) -> [Alert] {
        guard s.encryptionConfigured else { return [] }
        let plain = s.backups.filter { $0.encrypted == false }
        return Dictionary(grouping: plain, by: \.kind).sorted { $0.key < $1.key }.map { kind, backups in
            let targets = backups.map(\.target).sorted().joined(separator: ", ")
            return Alert(name: "BackupNotEncrypted", severity: .warning, labels: ["kind": kind],
                         summary: "The newest \(kind) backup is not encrypted",
                         description: "BACKUP_ENCRYPTION_RECIPIENTS is set, but the newest good \(kind) backup of \(targets) is plain gzip: "
                             + "anyone who can read the backup folder or the bucket reads it. Check that every process that writes backups "
                             + "(serve, cron lines, the old scripts) has BACKUP_ENCRYPTION_RECIPIENTS, then run the backup again. "
                             + "The alert resolves when an encrypted backup is the newest.")
        }
    }

    func restoreDrillFailed(_ s: HealthSnapshot) -> [Alert] {
        s.restoreDrills.compactMap { d in
            let error = d.lastError.map { " Error: \($0)." } ?? ""
            if d.lastRunSucceeded == false {
                return Alert(name: "RestoreDrillFailed", severity: .warning, labels: ["kind": d.kind],
                             summary: "The last \(d.kind) restore drill failed",
                             description: "The newest \(d.kind) restore drill\(d.lastAttempt.map { " (finished \(Human.time($0)))" } ?? "") failed: "
                                 + "the backups may not restore when needed.\(error) Read $BACKUP_DIR/logs/backup.log and try a restore by hand into a scratch database.")
            }
            if let last = d.lastSuccess, s.time - last > thresholds.restoreDrillMaxAge.seconds {
                return Alert(name: "RestoreDrillFailed", severity: .warning, labels: ["kind": d.kind],
                             summary: "No good \(d.kind) restore drill for \(Human.duration(s.time - last))",
                             description: "The newest good \(d.kind) restore drill finished at \(Human.time(last)), longer ago than "
                                 + "ALERT_RESTORE_DRILL_MAX_AGE (\(Human.duration(thresholds.restoreDrillMaxAge))). Check that drills are scheduled and running.")
            }
            return nil
        }
    }
}
