import ArgumentParser
import BackstopCore
import BackupCatalog
import BackupJobs
import Foundation
import S3

/// `backstop list`: the catalog, newest first.
struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the backups in BACKUP_DIR, newest first.",
        discussion: """
            Shows kind, target, file, size, start time, age and checksum state of every backup \
            under $BACKUP_DIR/postgres and $BACKUP_DIR/redis. CHECKSUM is `sha256` for backups \
            with a checksummed .meta, `legacy` for backups made by the old scripts, and \
            `INCOMPLETE` for files without a completed .meta (not usable as backups), `META UNREADABLE` \
            for a .meta that is truncated, not JSON or of a newer format (named on stderr; kept by cleanup). KEY is \
            `-` for plain gzip backups and `age:FP[,FP…]` for encrypted ones: the fingerprints \
            (16 hex digits of the SHA-256 of each age1… recipient) of the keys that decrypt it, \
            so after a key rotation you know which identity an old backup needs.

            --remote lists the copies in the S3 bucket instead (BACKUP_S3_BUCKET, under \
            BACKUP_S3_PREFIX), with the same columns; FILE is the s3:// address that \
            `backstop restore postgres|redis` accepts. A data object without its .meta is \
            INCOMPLETE.

            Examples:
              backstop list
              backstop list postgres
              backstop list --json | jq '.[0].path'
              backstop list --remote postgres
            """
    )

    enum Scope: String, ExpressibleByArgument, CaseIterable {
        case postgres, redis
    }

    @Argument(help: ArgumentHelp("Only postgres or only redis backups.", valueName: "postgres|redis"))
    var scope: Scope?

    @Flag(help: "Print a JSON array (path, kind, target, size_bytes, sha256, started_at, finished_at, state).")
    var json = false

    @Flag(help: "List the copies in the S3 bucket (BACKUP_S3_BUCKET) instead of BACKUP_DIR.")
    var remote = false

    @OptionGroup var options: BackupDirOption

    func run() async throws {
        MemoryRelease.tuneForBatch()
        let settings = try options.postgresSettings()
        let catalog = BackupCatalog(backupDir: settings.backupDir)
        let kinds: Set<BackupKind>? = scope.map { $0 == .redis ? [.redis] : [.postgresFull, .postgresGlobals, .postgresBase] }
        let entries: [CatalogEntry]
        var location = settings.backupDir
        var storageClasses: [String: String] = [:]
        if remote {
            let s3 = try S3Config.required(options.environment(), to: "list remotely")
            location = s3.destination
            do {
                let backups = try await RemoteCatalog(settings: s3, backupDir: settings.backupDir).list(kinds: kinds).backups
                entries = backups.map(\.entry)
                if json { for b in backups { storageClasses[b.entry.path] = b.storageClass } }
            } catch {
                FileHandle.standardError.write(Data("backstop: cannot list \(s3.destination): \(error)\n".utf8))
                throw ExitCode(1)
            }
        } else {
            entries = catalog.list(kinds: kinds)
        }
        let now = WallClock.now()
        if json {
            try StandardOutput.write("the listing") { sink in
                CatalogJSON.write(entries, remote: remote, storageClasses: storageClasses, to: sink)
            }
            keepUntilExit(entries)
            return
        }
        if entries.isEmpty {
            print("no backups in \(location)\(scope.map { "/" + $0.rawValue } ?? "")")
            return
        }
        let fullPaths = remote
        let table = TextTable.built(header: ["KIND", "TARGET", "FILE", "SIZE", "STARTED", "AGE", "CHECKSUM", "KEY"], count: entries.count) { i, table in
            // Read in place (a copy of each entry retains all its strings).
            entries.withUnsafeBufferPointer { buffer in
                let e = buffer.baseAddress! + i
                table.add(e.pointee.kind.rawValue)
                table.add(e.pointee.target)
                table.add((fullPaths ? e.pointee.path : e.pointee.name) + (e.pointee.isDirectory ? "/" : ""))
                table.add(HumanBytes.format(e.pointee.sizeBytes))
                table.add(WallClock.rfc3339(e.pointee.startedAt))
                table.add(Age.format(now - e.pointee.startedAt))
                table.add(e.pointee.metaUnreadable ? "META UNREADABLE"
                              : e.pointee.state == .complete ? "sha256" : (e.pointee.state == .legacy ? "legacy" : "INCOMPLETE"))
                table.add(e.pointee.meta?.encryption == "age" ? "age:" + (e.pointee.meta?.recipients ?? "?") : "-")
            }
        }
        // Named on stderr, so a person sees which file to look at (stdout stays the table).
        for e in entries where e.metaUnreadable {
            FileHandle.standardError.write(Data("backstop: \(e.path).meta cannot be read (truncated, not JSON or a newer format); the backup is kept and not used until it is fixed\n".utf8))
        }
        try TextTable.print(table, what: "the listing")
        keepUntilExit((entries, table))
    }
}

enum Age {
    static func format(_ seconds: Double) -> String {
        let s = Int(max(0, seconds))
        if s < 120 { return "\(s)s" }
        if s < 7200 { return "\(s / 60)m" }
        if s < 172_800 { return "\(s / 3600)h" }
        return "\(s / 86400)d"
    }
}
