import BackstopCore
import PostgresClient
import RedisClient

/// Runs one round of probes — PostgreSQL, the Redis master (the one Sentinel names when
/// Sentinel is configured), each Sentinel, the disk — concurrently, each bounded by the
/// probe timeout, so one frozen server never delays the others or the round.
public struct HealthChecker: Sendable {
    public let config: BackstopConfig

    public init(config: BackstopConfig) {
        self.config = config
    }

    public func check() async -> HealthReport {
        async let postgres = probePostgres()
        async let disk = probeDisk()
        async let redisAndSentinel = probeRedis()
        let (redis, sentinel) = await redisAndSentinel
        return HealthReport(checkedAt: WallClock.now(), postgres: await postgres, redis: redis, sentinel: sentinel, disk: await disk)
    }

    func probePostgres() async -> PostgresStatus {
        let result = await PostgresProbe.probe(database: config.postgres.database, timeout: config.probeTimeout)
        return PostgresStatus(
            target: config.postgres.database, server: config.postgres.displayHost, up: result.up,
            version: result.serverVersion, inRecovery: result.inRecovery, error: result.error)
    }

    func probeDisk() async -> DiskStatus {
        let path = config.backupDir
        return await withTimeout(config.probeTimeout, work: {
            do {
                let usage = try FileSystem.diskUsage(of: path)
                return DiskStatus(path: path, totalBytes: Double(usage.total), freeBytes: Double(usage.free))
            } catch {
                return DiskStatus(path: path, totalBytes: 0, freeBytes: 0, error: "\(error)")
            }
        }, onTimeout: {
            DiskStatus(path: path, totalBytes: 0, freeBytes: 0, error: "statvfs \(path) did not answer within \(config.probeTimeout.seconds) s")
        })
    }
}

extension HealthChecker {
    func probeRedis() async -> ([RedisServerStatus], SentinelStatus?) {
        ([], nil) // WIRING PENDING: replaced when RedisClient lands
    }
}
