import BackstopCore
import BackstopMetrics

extension HealthReport {
    /// Writes this report into the registry: the up gauges, the Sentinel families, the current
    /// master, the disk figures and the check timestamp. Families whose label values change
    /// (addresses) are replaced whole so no stale series lingers.
    public func apply(to registry: MetricsRegistry) {
        registry.replace(Family.postgresUp, with: [(["target": postgres.target], postgres.up ? 1 : 0)])
        registry.replace(Family.redisUp, with: redis.map { (["address": $0.address, "role": $0.role], $0.up ? 1 : 0) })
        if let sentinel {
            let name = ["master_name": sentinel.masterName]
            registry.replace(Family.sentinelUp, with: sentinel.sentinels.map { (["sentinel": $0.address.description], $0.up ? 1 : 0) })
            let masterReachable = redis.first(where: { $0.role == "master" })?.up ?? false
            registry.set(Family.sentinelMasterOK, name, sentinel.agree && sentinel.master != nil && masterReachable ? 1 : 0)
            registry.set(Family.sentinelQuorumOK, name, sentinel.quorumOK ? 1 : 0)
            registry.set(Family.sentinelKnownSentinels, name, Double(sentinel.knownSentinels))
            registry.set(Family.sentinelKnownReplicas, name, Double(sentinel.knownReplicas))
            if let master = sentinel.master {
                registry.replace(Family.redisMasterInfo, with: [(["master_name": sentinel.masterName, "address": master.description], 1)])
            } else {
                registry.replace(Family.redisMasterInfo, with: [])
            }
        }
        if disk.error == nil {
            registry.replace(Family.diskTotal, with: [(["path": disk.path], disk.totalBytes)])
            registry.replace(Family.diskFree, with: [(["path": disk.path], disk.freeBytes)])
        }
        registry.set(Family.healthCheckLast, [:], checkedAt)
    }
}
