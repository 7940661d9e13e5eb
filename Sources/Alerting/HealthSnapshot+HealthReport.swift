import Health

extension HealthSnapshot {
    /// The snapshot for one round of the health loop. The probes give PostgreSQL, Redis,
    /// Sentinel and the disk (with their errors for the descriptions); the rest comes from
    /// the catalog and the jobs, for example `BackupFacts.all(from: registry)`.
    public init(report: HealthReport, backups: [BackupFacts] = [], s3: S3Facts? = nil,
                walArchive: WalArchiveFacts? = nil, restoreDrills: [RestoreDrillFacts] = []) {
        let postgres = [PostgresFacts(target: report.postgres.target, up: report.postgres.up,
                                      address: report.postgres.server, error: report.postgres.error)]
        let redis = report.redis.map { RedisFacts(address: $0.address, role: $0.role, up: $0.up, error: $0.error) }
        var sentinel: SentinelFacts?
        if let s = report.sentinel {
            let anyUp = s.sentinels.contains(where: \.up)
            let reported = s.sentinels.filter(\.up).compactMap { $0.reportedMaster?.description }
            sentinel = SentinelFacts(
                masterName: s.masterName,
                sentinels: s.sentinels.map { SentinelNodeFacts(address: $0.address.description, up: $0.up, error: $0.error) },
                reportedMasters: reported,
                quorumOK: anyUp ? s.quorumOK : nil,
                knownSentinels: anyUp ? s.knownSentinels : nil)
        }
        var disks: [DiskFacts] = []
        if report.disk.error == nil, report.disk.totalBytes > 0 {
            disks.append(DiskFacts(path: report.disk.path, totalBytes: UInt64(report.disk.totalBytes), freeBytes: UInt64(max(0, report.disk.freeBytes))))
        }
        self.init(time: report.checkedAt, postgres: postgres, redis: redis, sentinel: sentinel, disks: disks,
                  backups: backups, s3: s3, walArchive: walArchive, restoreDrills: restoreDrills)
    }
}
