import AgeEncryption
import ArgumentParser
import BackstopCore
import BackupJobs
import Foundation
import OffsiteCopies
import S3
import WalArchive

/// `backstop wal push|fetch`: archive_command and restore_command for PostgreSQL.
struct WalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wal",
        abstract: "Continuous WAL archive: archive_command (push), restore_command (fetch), the copy in S3 (upload).",
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

            With BACKUP_S3_BUCKET set, serve uploads new archived files to the bucket under \
            postgres/wal/ every 15 s (`backstop wal upload` does one round by hand), fetch falls \
            back to the bucket for a file the local archive lacks, and local retention keeps \
            every file until it is in the bucket.
            """,
        subcommands: [WalPushCommand.self, WalFetchCommand.self, WalUploadCommand.self]
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
            it against its .meta. With BACKUP_S3_BUCKET set, a file the local archive lacks (or \
            holds damaged) is fetched from the bucket (postgres/wal/NAME.gz or NAME.gz.age, checked against the \
            bucket's NAME.meta). Exit status, as PostgreSQL expects from restore_command: 0 \
            when PATH holds the file; 1 when neither the archive nor the bucket has it (normal: \
            recovery asks for the next segment and for .history files until there are none); 2 \
            when it is there but damaged, cannot be written, or the bucket cannot be read. Never a signal or a status above 125, which \
            would abort recovery.

            --partial serves a segment that is still being received (NAME.partial in \
            --receive-dir, else BACKUP_WAL_RECEIVE_DIR, else postgres/wal/.receiving/) when no \
            completed copy exists, so recovery reaches the newest streamed commit.

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

    @Option(help: ArgumentHelp("Where pg_receivewal writes the .partial (--partial); overrides BACKUP_WAL_RECEIVE_DIR.", valueName: "path"))
    var receiveDir: String?

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
        func fail(_ error: Any) -> ExitCode {
            log.error("wal fetch: \(name): \(error)")
            FileHandle.standardError.write(Data("backstop wal fetch: \(error)\n".utf8))
            return ExitCode(2)
        }
        // The key is read only when one is configured (a .gz.age segment says so if it is missing).
        let identities: [AgeIdentity]?
        do { identities = try settings.encryption.loadIdentities() } catch { throw fail(error) }
        var receiveEnvironment = options.environment()
        if let receiveDir { receiveEnvironment["BACKUP_WAL_RECEIVE_DIR"] = receiveDir }
        let receiveDirectory: String?
        do { receiveDirectory = try WalArchiveSettings.receiveDirectory(environment: receiveEnvironment) } catch { throw fail(error) }
        let archive = WalArchive(backupDir: settings.backupDir, identities: identities, receiveDirectory: receiveDirectory)
        var localProblem: (any Error)?
        do {
            let result = try await Blocking.run { try archive.fetch(name: name, to: path, allowPartial: partial) }
            if case .fetched(let fromPartial) = result {
                log.info("wal fetch: \(name) → \(path)\(fromPartial ? " (from the .partial being received)" : "")")
                return
            }
        } catch {
            // A damaged local copy: the bucket's may be good.
            localProblem = error
        }
        // Not here (or damaged): the bucket, when S3 is configured.
        let s3: S3Settings?
        do { s3 = try S3Settings(environment: options.environment()) } catch { throw fail(error) }
        guard let s3 else {
            if let localProblem { throw fail(localProblem) }
            throw ExitCode(1)
        }
        let remote = RemoteWalArchive(settings: s3, backupDir: settings.backupDir)
        do {
            switch try await remote.fetch(name: name, to: path, identities: identities) {
            case .fetched:
                log.info("wal fetch: \(name) → \(path) (from \(remote.address(name)))")
            case .missing:
                if let localProblem { throw fail(localProblem) }
                throw ExitCode(1)
            }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            throw fail(s3.credentials.redact("\(error)"))
        }
    }
}

/// `backstop wal upload`: one round of what serve does every 15 s.
struct WalUploadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upload",
        abstract: "Upload the archived WAL files not yet in S3 (postgres/wal/ in the bucket).",
        discussion: """
            Each completed segment, .history and .backup file of $BACKUP_DIR/postgres/wal/ \
            without an upload marker goes to BACKUP_S3_BUCKET under postgres/wal/NAME.gz, then \
            its NAME.meta; the marker (postgres/wal/.s3/NAME.json, with the SHA-256) is written \
            once S3 confirmed both, so a run stopped halfway resumes with exactly what is \
            missing. The outcome is recorded in $BACKUP_DIR/.state/s3_wal_uploads.json \
            (S3UploadFailing reads it). Exits 1 when an upload failed, or when S3 is not \
            configured.

            Examples:
              backstop wal upload
              backstop wal upload --json
            """
    )

    @Flag(help: "Print the result as JSON.")
    var json = false

    @OptionGroup var options: BackupDirOption

    func run() async throws {
        let settings = try options.postgresSettings()
        let s3 = try S3Config.required(options.environment(), to: "upload WAL to")
        let uploader = WalUploader(settings: s3, backupDir: settings.backupDir)
        let log = BackupLog(backupDir: settings.backupDir, echo: false)
        let result: WalUploader.Result
        do {
            result = try await uploader.uploadPending()
        } catch let held as FileLock.Held {
            FileHandle.standardError.write(Data("backstop wal upload: another WAL upload is running (\(held.holder.isEmpty ? held.path : held.holder)); it uploads what is pending\n".utf8))
            throw ExitCode(1)
        }
        if !result.uploaded.isEmpty { log.info("wal upload: \(result.uploaded.count) files to \(s3.destination)/postgres/wal") }
        if let error = result.error { log.error("wal upload: \(result.failed ?? "?"): \(error)") }
        if json {
            let object = UploadJSON(destination: s3.destination + "/postgres/wal", uploaded: result.uploaded, pending: result.pending,
                                    last_segment_archived_at: .init(result.lastSegment > 0 ? WallClock.rfc3339(result.lastSegment) : nil),
                                    error: .init(result.error), failed: .init(result.failed))
            FileHandle.standardOutput.write(Data(try JSONCoding.encode(object, newline: true)))
        } else {
            print("uploaded \(result.uploaded.count) WAL file\(result.uploaded.count == 1 ? "" : "s") to \(s3.destination)/postgres/wal; \(result.pending) pending")
            if let error = result.error { print("FAILED \(result.failed ?? "?"): \(error)") }
        }
        if result.error != nil { throw ExitCode(1) }
    }

    /// `wal upload --json`: one upload run (absent values are `null`, every key present).
    struct UploadJSON: Encodable {
        var destination: String, uploaded: [String], pending: Int
        var last_segment_archived_at: JSONCoding.OrNull<String>, error: JSONCoding.OrNull<String>, failed: JSONCoding.OrNull<String>
    }
}
