import ArgumentParser
import BackstopCore
import BackupJobs
import Foundation
import Restore

/// `backstop drill`: restore the newest backups into scratch copies and check them.
struct DrillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drill",
        abstract: "Prove the newest backups restore: load them into scratch copies, check, remove.",
        discussion: """
            PostgreSQL: the newest good dump of each database in BACKUP_POSTGRES_DATABASES is \
            loaded into a scratch database backstop_drill_STAMP_PID on the same server (psql with \
            ON_ERROR_STOP, in-process gunzip), its tables and row counts are checked, and it is \
            dropped. Redis: the newest good snapshot is loaded by a scratch redis-server \
            (BACKUP_REDIS_SERVER, default redis-server on PATH) on a free loopback port, its key \
            counts per database are compared with the .meta, and it is stopped. Nothing else is \
            touched. Each success is recorded in $BACKUP_DIR/.state/restores.json \
            (backstop_restore_drill_last_success_timestamp_seconds and \
            backstop_restore_drill_duration_seconds — the measured recovery time). Exits 1 when \
            any drill fails.

            Examples:
              backstop drill
              backstop drill --postgres
            """
    )

    @Flag(help: "Only the PostgreSQL drill.")
    var postgres = false

    @Flag(help: "Only the Redis drill.")
    var redis = false

    @OptionGroup var options: BackupDirOption

    func run() async throws {
        let settings = try options.postgresSettings()
        let env = options.environment()
        let drill = RestoreDrill(settings: settings, redisServer: RestoreDrill.redisServer(environment: env), log: BackupLog(backupDir: settings.backupDir))
        let (doPostgres, doRedis) = (postgres || !redis, redis || !postgres)
        let results = await Blocking.run { drill.run(postgres: doPostgres, redis: doRedis) }
        if results.contains(where: { !$0.success }) { throw ExitCode(1) }
    }
}
