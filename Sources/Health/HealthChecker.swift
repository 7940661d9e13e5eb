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
    /// Resolves the master through Sentinel when configured (the current master is the one
    /// Sentinel names, not a fixed host), then probes it: PING and INFO.
    func probeRedis() async -> ([RedisServerStatus], SentinelStatus?) {
        let settings = config.redis
        let timeout = config.probeTimeout.seconds
        var sentinelStatus: SentinelStatus?
        var masterAddress = settings.master
        if settings.usesSentinel {
            let view = await SentinelView.resolve(
                sentinels: settings.sentinels, masterName: settings.sentinelMasterName,
                password: settings.sentinelPassword, timeout: timeout)
            sentinelStatus = SentinelStatus(
                masterName: settings.sentinelMasterName,
                sentinels: view.reports.map {
                    SentinelNodeStatus(address: $0.sentinel, up: $0.up, reportedMaster: $0.master, error: $0.error)
                },
                master: view.master, agree: view.agreed, quorumOK: view.quorumOK,
                quorumMessage: view.upReports.compactMap { $0.quorum?.message }.first,
                knownSentinels: view.knownSentinels ?? 0, knownReplicas: view.knownReplicas ?? 0)
            if let master = view.master { masterAddress = master }
            else {
                // No Sentinel names a master: report the master as down under the configured
                // address, with the Sentinels' reasons.
                let reasons = view.reports.map { "\($0.sentinel): \($0.error ?? "no master named")" }.joined(separator: "; ")
                return ([RedisServerStatus(address: settings.master.description, role: "master", up: false,
                                           error: "no Sentinel names a master for \(settings.sentinelMasterName): \(reasons)")],
                        sentinelStatus)
            }
        }
        let master = await probeRedisServer(masterAddress, expectedRole: "master", timeout: timeout)
        return ([master], sentinelStatus)
    }

    func probeRedisServer(_ address: Endpoint, expectedRole: String, timeout: Double) async -> RedisServerStatus {
        let settings = config.redis
        let work: @Sendable () -> RedisServerStatus = {
            do {
                let connection = try RedisConnection(to: address, username: settings.username, password: settings.password, timeout: timeout)
                try connection.ping()
                let info = try connection.info("server")
                let role = try connection.role()
                return RedisServerStatus(address: address.description, role: expectedRole, up: true,
                                         reportedRole: role.name, version: info["redis_version"])
            } catch {
                return RedisServerStatus(address: address.description, role: expectedRole, up: false, error: "\(error)")
            }
        }
        // hiredis honours its own timeouts; the outer bound guards against anything else.
        return await withTimeout(.seconds(timeout * 2 + 1), work: work) {
            RedisServerStatus(address: address.description, role: expectedRole, up: false, error: "no answer within \(timeout) s")
        }
    }
}
