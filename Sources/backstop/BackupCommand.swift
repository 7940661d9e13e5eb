import ArgumentParser
import BackstopCore
import BackupCatalog
import BackupJobs
import OffsiteCopies
import S3
import Foundation

/// `backstop backup …`: run one backup job now (the scheduler runs the same jobs).
struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Run a backup now.",
        subcommands: [BackupPostgresCommand.self, BackupRedisCommand.self]
    )
}

/// Where backups go; shared by backup, list and verify.
struct BackupDirOption: ParsableArguments {
    @Option(name: .customLong("backup-dir"), help: ArgumentHelp("Folder holding backups and logs.", discussion: "Overrides BACKUP_DIR (default /backups).", valueName: "path"))
    var backupDir: String?

    func environment() -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        if let backupDir { env["BACKUP_DIR"] = backupDir }
        return env
    }

    func postgresSettings() throws -> PostgresJobSettings {
        do {
            return try PostgresJobSettings(environment: environment())
        } catch {
            throw ValidationError("\(error)")
        }
    }
}

/// `backstop backup postgres full|incremental`.
struct BackupPostgresCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "postgres",
        abstract: "Back up PostgreSQL: logical dumps (full) or a physical base backup (incremental).",
        discussion: """
            full         pg_dump (plain SQL) of each database in BACKUP_POSTGRES_DATABASES \
            (comma-separated; default PGDATABASE, then psscript) to \
            $BACKUP_DIR/postgres/<db>_full_YYYYMMDD_HHMMSS.sql.gz, plus roles and tablespaces \
            (pg_dumpall --globals-only) to globals_YYYYMMDD_HHMMSS.sql.gz. Restore with \
            `gunzip -c FILE | psql`.
            incremental  pg_basebackup (tar, WAL included, manifest) to \
            $BACKUP_DIR/postgres/wal_YYYYMMDD_HHMMSS/.

            Every file gets a .meta (size, SHA-256, times, server version). The connection comes \
            from PGHOST, PGPORT, PGUSER and PGPASSWORD or PGPASSFILE (passed to pg_dump through \
            the environment, never the command line). BACKUP_COMPRESSION_LEVEL (1-9) sets the \
            gzip level. With BACKUP_S3_BUCKET set, every good backup not yet in S3 is uploaded \
            afterwards; a failed upload is logged and retried next time, and never changes the \
            exit status. A run that fails leaves no file behind and exits 1; when another run of \
            the same job holds its lock, this one exits 75 and says who holds it.

            Examples:
              backstop backup postgres full
              BACKUP_POSTGRES_DATABASES=app,auth backstop backup postgres full --backup-dir /srv/backups
              backstop backup postgres incremental
            """
    )

    enum Mode: String, ExpressibleByArgument, CaseIterable {
        case full, incremental
    }

    @Argument(help: ArgumentHelp("full or incremental.", valueName: "mode"))
    var mode: Mode

    @OptionGroup var options: BackupDirOption

    /// Stops cleanly on SIGTERM/SIGINT (exit 143/130): see `SignalStop`.
    func run() async throws {
        try await SignalStop.run { try await self.perform() }
    }

    private func perform() async throws {
        let settings = try options.postgresSettings()
        let s3 = try S3Config.optional(options.environment())
        let log = BackupLog(backupDir: settings.backupDir)
        let runner = BackupJobRunner(log: log)
        try await runBackupJob("backup postgres \(mode.rawValue)", log: log, backupDir: settings.backupDir, s3: s3) {
            switch mode {
            case .full: try await runner.postgresFull(settings: settings)
            case .incremental: try await runner.postgresBase(settings: settings)
            }
        }
    }
}

/// How every `backstop backup …` runs its job: a held lock is exit 75 (not started); with
/// BACKUP_S3_BUCKET set, what is pending is uploaded after the job whatever its outcome (the
/// upload's own outcome never changes the exit status); a failed job is exit 1, naming the log.
func runBackupJob(_ name: String, log: BackupLog, backupDir: String, s3: S3Settings?, _ job: () async throws -> Void) async throws {
    var failure: String?
    do {
        try await job()
    } catch let held as FileLock.Held {
        log.error("\(name): not started: \(held)")
        throw ExitCode(75)
    } catch let error as BackupJobError {
        failure = error.description
    }
    if let s3 {
        await OffsiteUploads(settings: s3, backupDir: backupDir, log: log, metrics: nil).afterJob(name)
        // A signal during the upload: the stopped upload is logged; exit 143/130, not 0.
        try Task.checkCancellation()
    }
    if let failure {
        FileHandle.standardError.write(Data("backstop: \(failure); see \(log.file)\n".utf8))
        throw ExitCode(1)
    }
}
