import AgeEncryption
import ArgumentParser
import BackstopCore
import BackupCatalog
import BackupJobs
import Foundation
import OffsiteCopies
import S3
import WalArchive

/// `backstop verify`: prove backups are readable and unchanged.
struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check backups: gzip streams, SHA-256 against the .meta, base backups with pg_verifybackup.",
        discussion: """
            Inflates every gzip stream to its end (CRC and length checked), compares the file's \
            SHA-256 with its .meta, and for base backups (wal_*/) checks each file and runs \
            pg_verifybackup against the backup manifest. Prints one line per backup; exits 1 \
            when any is bad. Without FILE arguments, --latest is assumed.

            Examples:
              backstop verify --latest
              backstop verify --all
              backstop verify --wal
              backstop verify --wal --remote --json
              backstop verify /backups/postgres/psscript_full_20260107_020000.sql.gz
            """
    )

    @Argument(help: ArgumentHelp("Backup files, base-backup folders or .meta files.", valueName: "file"))
    var files: [String] = []

    @Flag(help: "The newest backup of each kind and target.")
    var latest = false

    @Flag(help: "Every backup in the catalog, and the WAL archive when there is one.")
    var all = false

    @Flag(help: "The WAL archive: each segment's checksum, and the chain from the oldest base backup continuous per timeline (gaps named).")
    var wal = false

    @Flag(help: "With --wal: the bucket's copy of the archive (S3): its chain from the oldest base backup in the bucket, each object against its .meta and the upload markers.")
    var remote = false

    @Flag(help: "With --wal: print the result as JSON.")
    var json = false

    @OptionGroup var options: BackupDirOption

    func validate() throws {
        if (remote || json) && !wal { throw ValidationError("--remote and --json go with --wal (the WAL archive check)") }
        if remote && (all || latest || !files.isEmpty) { throw ValidationError("--wal --remote checks the bucket's WAL archive alone: no --all, --latest or FILE") }
        if all && latest { throw ValidationError("--all and --latest exclude each other") }
        if !files.isEmpty && (all || latest || wal) { throw ValidationError("give FILE arguments or --latest/--all/--wal, not both") }
    }

    func run() async throws {
        let settings = try options.postgresSettings()
        let catalog = BackupCatalog(backupDir: settings.backupDir)
        var walBad = false
        if remote {
            let s3 = try S3Config.required(options.environment(), to: "verify")
            let location = s3.destination + "/postgres/wal"
            let result: WalVerification.Result
            do {
                let backups = try await RemoteCatalog(settings: s3, backupDir: settings.backupDir).list(kinds: [.postgresBase]).backups
                result = try await RemoteWalArchive(settings: s3, backupDir: settings.backupDir).verify(bases: RemoteWalArchive.bases(backups))
            } catch {
                var failed = WalVerification.Result()
                failed.problems = ["reading \(location): \(s3.credentials.redact("\(error)"))"]
                try report(failed, location: location)
                throw ExitCode(1)
            }
            try report(result, location: location)
            if !result.ok { throw ExitCode(1) }
            return
        }
        if wal || all, wal || FileSystem.isDirectory(settings.backupDir + "/postgres/wal") {
            let backupDir = settings.backupDir
            let identities = try validated { try settings.encryption.loadIdentities() }
            let result = await Blocking.run { WalVerification(backupDir: backupDir, identities: identities).run() }
            if json {
                try report(result, location: backupDir + "/postgres/wal")
            } else {
                print(result.ok ? "OK   WAL archive: \(result.summary)" : "BAD  WAL archive: \(result.problems.joined(separator: "; "))")
            }
            walBad = !result.ok
            if wal && !all && !latest {
                if walBad { throw ExitCode(1) }
                return
            }
        }
        var entries: [CatalogEntry] = []
        if !files.isEmpty {
            for file in files {
                guard let entry = catalog.entry(at: file) else {
                    throw ValidationError("\(file) is not a backup (expected <db>_full_STAMP.sql.gz, globals_STAMP.sql.gz, wal_STAMP/ or redis_STAMP.rdb.gz that exists)")
                }
                entries.append(entry)
            }
        } else if all {
            entries = catalog.list()
        } else {
            entries = catalog.latestGood()
        }
        if entries.isEmpty {
            print("nothing to verify in \(settings.backupDir)")
            if walBad { throw ExitCode(1) }
            return
        }
        let verification = BackupVerification(settings: settings)
        let chosen = entries
        let results = await Blocking.run { chosen.map { verification.verify($0) } }
        for r in results {
            if r.ok {
                print("OK   \(r.entry.path): \(r.checked.joined(separator: ", "))")
            } else {
                print("BAD  \(r.entry.path): \(r.problems.joined(separator: "; "))")
            }
        }
        if walBad || results.contains(where: { !$0.ok }) { throw ExitCode(1) }
    }

    /// One WAL check's result: a line (OK/BAD) or, with --json, an object.
    private func report(_ result: WalVerification.Result, location: String) throws {
        guard json else {
            print(result.ok ? "OK   WAL archive \(result.summary)" : "BAD  WAL archive \(location): \(result.problems.joined(separator: "; "))")
            return
        }
        let gaps = result.problems.compactMap { p -> String? in
            guard p.hasPrefix("gap: ") else { return nil }
            return String(p.dropFirst(5).prefix { $0 != " " })
        }
        let object = WalJSON(location: location, ok: result.ok, summary: result.summary, problems: result.problems, gaps: gaps)
        FileHandle.standardOutput.write(Data(try JSONCoding.encode(object, newline: true)))
    }

    /// `verify --wal --json`: one WAL chain check (local or the bucket).
    struct WalJSON: Encodable {
        var location: String, ok: Bool, summary: String, problems: [String], gaps: [String]
    }
}
