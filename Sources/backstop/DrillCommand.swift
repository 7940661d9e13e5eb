import ArgumentParser
import BackstopCore
import BackupJobs
import Foundation
import Restore
import WalArchive

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

            --pitr: point in time, from the base backups and the WAL archive. A marker row \
            (postgres.backstop_drill) and a restore point are written on the primary, the newest \
            base backup plus WAL is restored to that point in a scratch data directory under \
            $BACKUP_DIR/.state/, started on a free loopback port, the marker checked, the server \
            stopped and the directory removed; recorded as kind postgres_pitr.

            Examples:
              backstop drill
              backstop drill --postgres
              backstop drill --pitr
            """
    )

    @Flag(help: "Only the PostgreSQL drill.")
    var postgres = false

    @Flag(help: "Only the Redis drill.")
    var redis = false

    @Flag(help: "Only the point-in-time drill (base backup + WAL archive to a restore point).")
    var pitr = false

    @OptionGroup var options: BackupDirOption

    /// Stops cleanly on SIGTERM/SIGINT (exit 143/130): see `SignalStop`.
    func run() async throws {
        try await SignalStop.run { try await self.perform() }
    }

    private func perform() async throws {
        let settings = try options.postgresSettings()
        if pitr {
            var drill = PitrDrill(jobSettings: settings, backstopPath: URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path,
                                  log: BackupLog(backupDir: settings.backupDir))
            drill.receiveDirectory = try validated { try WalArchiveSettings.receiveDirectory(environment: options.environment()) }
            let configured = drill
            let result = await Blocking.run { configured.run() }
            try? RestoreRecord.recordDrill(kind: PitrDrill.kind, at: WallClock.now(), seconds: result.seconds,
                                           error: result.success ? nil : result.message, backupDir: settings.backupDir)
            if !result.success { throw ExitCode(1) }
            return
        }
        let env = options.environment()
        // SIGTERM/SIGINT cancel this task; the drill (on a blocking thread) sees it through
        // `cancellation`, reports `interrupted` and records nothing (SignalStop: exit 143/130).
        let cancellation = JobCancellation()
        let drill = RestoreDrill(settings: settings, redisServer: RestoreDrill.redisServer(environment: env), log: BackupLog(backupDir: settings.backupDir),
                                 cancellation: cancellation)
        let (doPostgres, doRedis) = (postgres || !redis, redis || !postgres)
        let results = await withTaskCancellationHandler {
            await Blocking.run { drill.run(postgres: doPostgres, redis: doRedis) }
        } onCancel: {
            cancellation.cancel()
        }
        if cancellation.isCancelled || results.contains(where: { !$0.success }) { throw ExitCode(1) }
    }
}
