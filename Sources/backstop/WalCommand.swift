import AgeEncryption
import ArgumentParser
import BackstopCore
import BackupJobs
import Foundation
import WalArchive

/// `backstop wal push|fetch`: archive_command and restore_command for PostgreSQL.
struct WalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wal",
        abstract: "Continuous WAL archive: archive_command (push) and restore_command (fetch).",
        discussion: """
            The archive is $BACKUP_DIR/postgres/wal/: each segment, .history and .backup file \
            as NAME.gz (gzip, fsynced, renamed into place; segments as NAME.gz.age, gzip then age, \
            when BACKUP_ENCRYPTION_RECIPIENTS is set) with NAME.meta (SHA-256 of the .gz and \
            of the WAL bytes, when it was archived). `backstop serve` fills it with pg_receivewal \
            when BACKUP_WAL_ARCHIVE=true; sites that prefer archive_command use push instead.

            In postgresql.conf (the PostgreSQL container needs the backstop binary and the \
            backup folder mounted):
              archive_mode = on
              archive_command = 'backstop wal push --backup-dir /backups %p'
            and when recovering (backstop restore postgres writes this for you):
              restore_command = 'backstop wal fetch --backup-dir /backups %f %p'
            """,
        subcommands: [WalPushCommand.self, WalFetchCommand.self]
    )
}

/// `backstop wal push %p`.
struct WalPushCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "push",
        abstract: "Archive one WAL file (archive_command = 'backstop wal push --backup-dir DIR %p').",
        discussion: """
            Exit status, as PostgreSQL expects from archive_command: 0 when the file is archived \
            (also when the archive already holds the same name with the same bytes: PostgreSQL \
            retries after a crash), 1 when it is not — the archive holds DIFFERENT content under \
            that name (kept, never overwritten; PostgreSQL keeps the segment and retries), or the \
            file could not be read or written. PostgreSQL keeps the segment in pg_wal until push \
            succeeds.

            Examples:
              backstop wal push --backup-dir /backups pg_wal/000000010000000000000003
              backstop wal push --backup-dir /backups pg_wal/00000002.history
            """
    )

    @Argument(help: ArgumentHelp("The WAL file (%p: a path relative to the data directory).", valueName: "path"))
    var path: String

    @OptionGroup var options: BackupDirOption

    func validate() throws {
        let name = FileSystem.lastComponent(of: path)
        guard WalFileName(name) != nil, !name.hasSuffix(".partial") else {
            throw ValidationError("\(path) is not a WAL file (expected a 24-hex-digit segment, 0000000N.history or a .backup file name)")
        }
    }

    func run() async throws {
        let settings = try options.postgresSettings()
        let archive = WalArchive(backupDir: settings.backupDir, compressionLevel: settings.compressionLevel,
                                 recipients: settings.encryption.recipients)
        let (path, name) = (self.path, FileSystem.lastComponent(of: path))
        let log = BackupLog(backupDir: settings.backupDir, echo: false)
        do {
            let result = try await Blocking.run { try archive.store(path: path, name: name, source: "archive_command") }
            switch result {
            case .stored(let meta): log.info("wal push: \(name) archived (\(HumanBytes.format(meta.sizeBytes)) gzip\(meta.encryption == "age" ? " + age" : ""))")
            case .alreadyArchived: log.info("wal push: \(name) already archived with the same content")
            }
        } catch {
            log.error("wal push: \(name): \(error)")
            FileHandle.standardError.write(Data("backstop wal push: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

/// `backstop wal fetch %f %p`.
struct WalFetchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fetch",
        abstract: "Serve one WAL file to recovery (restore_command = 'backstop wal fetch --backup-dir DIR %f %p').",
        discussion: """
            Inflates NAME.gz (or decrypts and inflates NAME.gz.age, with --identity or \
            BACKUP_ENCRYPTION_IDENTITY_FILE) from the archive into PATH (temporary name, fsync, rename) and checks \
            it against its .meta. Exit status, as PostgreSQL expects from restore_command: 0 \
            when PATH holds the file; 1 when the archive does not have it (normal: recovery asks \
            for the next segment and for .history files until there are none); 2 when it is \
            there but damaged or cannot be written. Never a signal or a status above 125, which \
            would abort recovery.

            --partial serves a segment that is still being received (postgres/wal/.receiving/\
            NAME.partial) when no completed copy exists, so recovery reaches the newest \
            streamed commit.

            Examples:
              backstop wal fetch --backup-dir /backups 000000010000000000000003 pg_wal/RECOVERYXLOG
              backstop wal fetch --backup-dir /backups --partial %f %p
            """
    )

    @Argument(help: ArgumentHelp("The WAL file name (%f).", valueName: "name"))
    var name: String

    @Argument(help: ArgumentHelp("Where to write it (%p).", valueName: "path"))
    var path: String

    @Flag(help: "Serve the receiver's .partial when the segment is not complete yet.")
    var partial = false

    @Option(help: ArgumentHelp("Identity file for .gz.age segments; overrides BACKUP_ENCRYPTION_IDENTITY_FILE.", valueName: "path"))
    var identity: String?

    @OptionGroup var options: BackupDirOption

    func validate() throws {
        guard WalFileName(name) != nil, !name.hasSuffix(".partial") else {
            throw ValidationError("\(name) is not a WAL file name (expected a 24-hex-digit segment, 0000000N.history or a .backup file name)")
        }
    }

    func run() async throws {
        var settings = try options.postgresSettings()
        if let identity { settings.encryption.identityFile = identity }
        let (name, path, partial) = (self.name, self.path, self.partial)
        let log = BackupLog(backupDir: settings.backupDir, echo: false)
        let result: WalArchive.FetchResult
        do {
            // The key is read only when one is configured (.gz.age segments say so if it is missing).
            let archive = WalArchive(backupDir: settings.backupDir, identities: try settings.encryption.loadIdentities())
            result = try await Blocking.run { try archive.fetch(name: name, to: path, allowPartial: partial) }
        } catch {
            log.error("wal fetch: \(name): \(error)")
            FileHandle.standardError.write(Data("backstop wal fetch: \(error)\n".utf8))
            throw ExitCode(2)
        }
        switch result {
        case .fetched(let fromPartial):
            log.info("wal fetch: \(name) → \(path)\(fromPartial ? " (from the .partial being received)" : "")")
        case .missing:
            throw ExitCode(1)
        }
    }
}
