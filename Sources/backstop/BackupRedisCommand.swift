import ArgumentParser
import BackstopCore
import BackupJobs
import Foundation

/// `backstop backup redis`.
struct BackupRedisCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redis",
        abstract: "Back up Redis: one RDB snapshot of the current master (or a replica).",
        discussion: """
            Writes $BACKUP_DIR/redis/redis_YYYYMMDD_HHMMSS.rdb.gz and its .meta (size, SHA-256, \
            Redis and RDB version, master, source and its role, keys per database, method). \
            The server is the master the Sentinels in REDIS_SENTINELS name for \
            REDIS_SENTINEL_MASTER, else REDIS_HOST:REDIS_PORT; REDIS_USERNAME and REDIS_PASSWORD \
            authenticate (from the environment only, never the command line).

            BACKUP_REDIS_METHOD=replication (default) asks for the snapshot over the replication \
            protocol, as `redis-cli --rdb` does, and streams it straight into gzip: no shared \
            volume needed. BACKUP_REDIS_METHOD=bgsave runs BGSAVE, waits for it by INFO \
            persistence and reads the RDB file from REDIS_DATA_DIR. Either way the RDB header \
            and its CRC-64 are checked before the file counts as a backup.

            BACKUP_REDIS_SOURCE=replica (or --from-replica) takes the snapshot from a replica in \
            sync (one the Sentinels know, or BACKUP_REDIS_REPLICA=host:port), sparing the master. \
            A failed attempt (a failover, a cut connection) is retried BACKUP_REDIS_RETRIES times \
            (default 2) after BACKUP_REDIS_RETRY_DELAY (default 2s), asking Sentinel for the \
            master again. A run that fails leaves no file behind and exits 1; when another run \
            holds the lock it exits 75. With BACKUP_S3_BUCKET set, every good backup not yet in \
            S3 is uploaded afterwards (a failed upload is logged, retried next time, and never \
            changes the exit status). Restore: `gunzip -c FILE > dump.rdb` into Redis's dir.

            Examples:
              backstop backup redis
              BACKUP_REDIS_METHOD=bgsave REDIS_DATA_DIR=/data backstop backup redis
              backstop backup redis --from-replica --backup-dir /srv/backups
            """
    )

    @Flag(name: .customLong("from-replica"), help: "Take the snapshot from a replica in sync (overrides BACKUP_REDIS_SOURCE).")
    var fromReplica = false

    @Option(name: .customLong("method"), help: ArgumentHelp("replication or bgsave (overrides BACKUP_REDIS_METHOD).", valueName: "method"))
    var method: String?

    @OptionGroup var options: BackupDirOption

    /// Stops cleanly on SIGTERM/SIGINT (exit 143/130): see `SignalStop`.
    func run() async throws {
        try await SignalStop.run { try await self.perform() }
    }

    private func perform() async throws {
        var env = options.environment()
        if fromReplica { env["BACKUP_REDIS_SOURCE"] = "replica" }
        if let method { env["BACKUP_REDIS_METHOD"] = method }
        let settings = try validated { try RedisJobSettings(environment: env) }
        let s3 = try S3Config.optional(env)
        let log = BackupLog(backupDir: settings.backupDir)
        try await runBackupJob("backup redis", log: log, backupDir: settings.backupDir, s3: s3) {
            try await BackupJobRunner(log: log).redis(settings: settings)
        }
    }
}
