import ArgumentParser
import BackstopCore
import BackupCatalog
import BackupJobs
import Foundation
import RedisClient
import Restore
import S3

/// `backstop restore …`: guarded restores (checked file, confirmation, dry run, nothing lost).
struct RestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore a backup (checked first, confirmed, with a way back).",
        subcommands: [RestorePostgresCommand.self, RestoreRedisCommand.self]
    )
}

/// Asks for confirmation: on a terminal the operator types `name`; otherwise `--yes` is
/// required. Returns normally only when confirmed.
func confirmRestore(name: String, what: String, yes: Bool) throws {
    if yes { return }
    guard isatty(0) == 1 else {
        FileHandle.standardError.write(Data("backstop: refusing to restore without confirmation: standard input is not a terminal, so pass --yes to \(what). Nothing was changed.\n".utf8))
        throw ExitCode(1)
    }
    FileHandle.standardOutput.write(Data("This will \(what).\nType the name \(name) to continue: ".utf8))
    guard let answer = readLine(), answer.trimmingCharacters(in: .whitespaces) == name else {
        FileHandle.standardError.write(Data("backstop: not confirmed; nothing was changed.\n".utf8))
        throw ExitCode(1)
    }
}

/// The backups of one kind a restore without FILE offers: listed newest first (without
/// --latest), or the newest good one taken (with it).
struct RestorableBackups {
    let catalog: BackupCatalog
    let kind: BackupKind
    /// What they are called in the listing ("PostgreSQL dumps"), and how to restore one.
    let name: String, usage: String

    /// Where they are, for the messages.
    var folder: String { kind == .redis ? catalog.redisDir : catalog.postgresDir }
    /// Dumps name their database; Redis has the one target, which the listing leaves out.
    var showsTarget: Bool { kind != .redis }

    /// Prints the good ones, newest first, and how to restore one; or that there are none.
    func printList() {
        let entries = catalog.list(kinds: [kind]).filter { $0.isGood }
        if entries.isEmpty {
            print("no \(name) to restore in \(folder)")
            return
        }
        print("\(name) that can be restored, newest first:")
        for e in entries {
            print("  \(e.path)  \(showsTarget ? "\(e.target)  " : "")\(WallClock.rfc3339(e.startedAt))  \(HumanBytes.format(e.sizeBytes))\(e.state == .legacy ? "  (no checksum)" : "")")
        }
        print("restore one with: \(usage)")
    }

    /// The newest good one that `matches`; when there is none, `missing` goes to stderr (exit 1).
    func newest(missing: String, where matches: (CatalogEntry) -> Bool = { _ in true }) throws -> String {
        guard let newest = catalog.list(kinds: [kind]).first(where: { $0.isGood && matches($0) }) else {
            FileHandle.standardError.write(Data("backstop: \(missing)\n".utf8))
            throw ExitCode(1)
        }
        return newest.path
    }
}

func restoreFailed(_ error: any Error) -> ExitCode {
    FileHandle.standardError.write(Data("backstop: restore failed: \(error)\n".utf8))
    return ExitCode(1)
}

/// `backstop restore postgres`.
struct RestorePostgresCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "postgres",
        abstract: "Restore a PostgreSQL dump (<db>_full_STAMP.sql.gz) into a database.",
        discussion: """
            Without FILE or --latest, lists the dumps that can be restored, newest first.

            Before anything is touched the file is checked: it exists, lies under BACKUP_DIR \
            (unless --allow-outside), its gzip stream is whole and its SHA-256 matches the .meta. \
            Then the operator confirms by typing the database name (or passes --yes when not on \
            a terminal).

            Default: the dump is loaded into a new database <db>_restore_STAMP (psql with \
            ON_ERROR_STOP, fed by in-process gunzip). Only when it loaded completely are the \
            sessions on <db> ended, <db> renamed to <db>_pre_restore_STAMP and the new one renamed \
            to <db>; the command prints how to roll back. If loading fails, <db> is untouched and \
            the half-loaded copy dropped. --in-place (no room for two copies): safety dump of <db> \
            first, then end sessions, drop, create, load.

            FILE may be an s3://BUCKET/KEY address (as backstop list --remote prints it) in \
            BACKUP_S3_BUCKET: the dump and its .meta are downloaded into a private folder \
            $BACKUP_DIR/.restore-download/, checked the same way, restored as a local file and \
            removed afterwards. A dry run reads only the .meta from the bucket.

            Examples:
              backstop restore postgres
              backstop restore postgres --latest --dry-run
              backstop restore postgres s3://backups/postgres/app_full_20260107_020000.sql.gz --dry-run
              backstop restore postgres /backups/postgres/app_full_20260107_020000.sql.gz --yes
              backstop restore postgres --latest --database app --with-globals --drop-previous --yes

            Point in time (base backup + WAL archive, into a new data directory):
              backstop restore postgres --data-dir /var/lib/postgresql/restore --to-time 2026-01-07T14:30:00+01:00 --dry-run
              backstop restore postgres --data-dir /restore --to-lsn 0/5000A28 --start --port 5433 --yes
              backstop restore postgres --data-dir /restore --latest --yes
              backstop restore postgres --data-dir /restore --from-base wal_20260107_020000 --immediate --yes
            --data-dir must be empty or absent (move an old one away first). The newest base backup \
            before the target is chosen and the WAL chain from it proved continuous before anything \
            is written; recovery.signal and the recovery_target_* settings go into \
            postgresql.auto.conf. Without --start the command prints how to start the server.
            """
    )

    @Argument(help: ArgumentHelp("The dump to restore, a path or an s3://bucket/key address (omit to list them).", valueName: "file"))
    var file: String?

    @Flag(help: "The newest good dump of the database (--database, else the configured one).")
    var latest = false

    @Option(help: ArgumentHelp("The database to replace (default: the one the dump was taken from).", valueName: "name"))
    var database: String?

    @Flag(help: "Do not ask for confirmation (required when not on a terminal).")
    var yes = false

    @Flag(name: .customLong("dry-run"), help: "Print every step and change nothing.")
    var dryRun = false

    @Flag(name: .customLong("in-place"), help: "Safety dump, then drop and reload the database itself (no second copy).")
    var inPlace = false

    @Flag(name: .customLong("drop-previous"), help: "Drop <db>_pre_restore_STAMP once the restore succeeded.")
    var dropPrevious = false

    @Flag(name: .customLong("with-globals"), help: "Apply roles and tablespaces from the matching globals_ file first (existing ones are kept).")
    var withGlobals = false

    @Flag(name: .customLong("allow-outside"), help: "Accept a file outside BACKUP_DIR.")
    var allowOutside = false

    @Flag(name: .customLong("no-single-transaction"), help: "Commit statement by statement (for dumps with more tables than the lock table holds).")
    var noSingleTransaction = false

    @OptionGroup var pointInTime: PointInTimeOptionGroup

    @OptionGroup var options: BackupDirOption

    func validate() throws {
        try pointInTime.validate(file: file)
        if file != nil && latest { throw ValidationError("give FILE or --latest, not both") }
        if inPlace && dropPrevious { throw ValidationError("--drop-previous has no meaning with --in-place (there is no previous copy)") }
    }

    /// Stops cleanly on SIGTERM/SIGINT (exit 143/130): see `SignalStop`.
    func run() async throws {
        try await SignalStop.run { try await self.perform() }
    }

    private func perform() async throws {
        if pointInTime.isRequested {
            return try await runPointInTime()
        }
        let settings = try options.postgresSettings()
        let catalog = BackupCatalog(backupDir: settings.backupDir)
        var path = file
        let remote = try file.flatMap { $0.hasPrefix("s3://") ? $0 : nil }.map {
            try RemoteRestoreSource($0, environment: options.environment(), backupDir: settings.backupDir, kind: .postgresFull)
        }
        defer { remote?.remove() }
        let restorable = RestorableBackups(catalog: catalog, kind: .postgresFull, name: "PostgreSQL dumps",
                                           usage: "backstop restore postgres FILE [--database NAME] [--dry-run]")
        if path == nil && !latest {
            restorable.printList()
            return
        }
        if path == nil {
            let want = database ?? settings.databases.first ?? ""
            path = try restorable.newest(missing: "no good dump of \(want) in \(catalog.postgresDir)") { $0.target == want }
        }
        let (allowOutside, withGlobals, backupDir) = (self.allowOutside, self.withGlobals, settings.backupDir)
        var preview: (RestoreSource.Checked, RestoreSource.Checked?)?
        if let remote {
            let globalsName = PostgresRestore.globalsPath(forDump: remote.localPath).map { FileSystem.lastComponent(of: $0) } ?? ""
            do {
                if dryRun {
                    // Only the .meta files are read: nothing is downloaded for a dry run.
                    preview = (try await remote.preview(kind: .postgresFull),
                               withGlobals ? try await remote.preview(name: globalsName, kind: .postgresGlobals) : nil)
                } else {
                    path = try await remote.download(extra: withGlobals ? [globalsName] : [])
                }
            } catch {
                throw restoreFailed(error)
            }
        }
        let file = path ?? ""
        let checked: RestoreSource.Checked
        let globals: RestoreSource.Checked?
        if let preview {
            (checked, globals) = preview
        } else {
            do {
                (checked, globals) = try await Blocking.run {
                    let checked = try RestoreSource.check(path: file, backupDir: backupDir, kind: .postgresFull, allowOutside: allowOutside)
                    var globals: RestoreSource.Checked?
                    if withGlobals {
                        guard let g = PostgresRestore.globalsPath(forDump: checked.entry.path), FileSystem.exists(g) else {
                            throw RestoreError("--with-globals: no globals file from the same run beside \(checked.entry.path)", nothingChanged: true)
                        }
                        globals = try RestoreSource.check(path: g, backupDir: backupDir, kind: .postgresGlobals, allowOutside: allowOutside)
                    }
                    return (checked, globals)
                }
            } catch {
                throw restoreFailed(error)
            }
        }
        if let warning = checked.warning { print("warning: \(warning)") }
        var restoreOptions = PostgresRestoreOptions(target: database ?? checked.entry.target)
        restoreOptions.inPlace = inPlace
        restoreOptions.dropPrevious = dropPrevious
        restoreOptions.withGlobals = withGlobals
        restoreOptions.singleTransaction = !noSingleTransaction
        let log = BackupLog(backupDir: settings.backupDir, echo: !dryRun)
        let restore: PostgresRestore
        let targetExists: Bool
        do {
            restore = try PostgresRestore(settings: settings, source: checked, globals: globals, options: restoreOptions,
                                          say: { log.info("restore postgres: \($0)") })
            let target = restoreOptions.target
            targetExists = try await Blocking.run { try PostgresAdmin(settings: settings).databaseExists(target) }
        } catch {
            throw restoreFailed(error)
        }
        var steps = restore.plan(targetExists: targetExists)
        if let remote { steps = remote.dryRunSteps(steps, checked: checked) }
        if dryRun {
            print("dry run: restore \(remote?.address.description ?? checked.entry.path) into \(restoreOptions.target)\(targetExists ? "" : " (does not exist yet)"); nothing will be changed\(remote == nil ? "" : " (only the .meta was read from the bucket)"). The steps:")
            for (i, step) in steps.enumerated() { print("  \(i + 1). \(step)") }
            return
        }
        try confirmRestore(name: restoreOptions.target, what: "replace the database \(restoreOptions.target) with \(checked.entry.path)\(inPlace ? " IN PLACE (drop, then reload)" : "")", yes: yes)
        log.info("restore postgres: \(checked.entry.path) → \(restoreOptions.target) started")
        do {
            let result = try await Blocking.run { try restore.run() }
            log.info("restore postgres: \(result.target) restored from \(checked.entry.path) in \(String(format: "%.1f", result.seconds)) s")
            if let previous = result.previousDatabase { print("the previous contents are kept in \(previous)") }
            if let safety = result.safetyBackup { print("safety dump of the previous contents: \(safety)") }
            if !result.rollback.isEmpty {
                print("to roll back:")
                for line in result.rollback { print("  \(line)") }
            }
        } catch {
            log.error("restore postgres: \(error)")
            throw restoreFailed(error)
        }
    }
}

/// `backstop restore redis`.
struct RestoreRedisCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redis",
        abstract: "Restore a Redis snapshot (redis_STAMP.rdb.gz) into the running master, without restarting it.",
        discussion: """
            Without FILE or --latest, lists the snapshots that can be restored, newest first.

            The file is checked first (under BACKUP_DIR unless --allow-outside, gzip stream \
            whole, SHA-256 equal to the .meta, RDB version readable by the target's Redis), then \
            the operator confirms by typing the master's name (the Sentinel master name, or \
            host:port), or passes --yes when not on a terminal.

            Method replication (default): Backstop listens on a port and serves the snapshot as \
            a master; the target is told REPLICAOF <advertise-address> <port>, loads it, and is \
            told REPLICAOF NO ONE. Same process, no restart; its replicas resync from it. With \
            Sentinel (REDIS_SENTINELS), down-after-milliseconds is raised during the load and set \
            back afterwards. The target must be able to connect to --advertise-address (default: \
            this host's address toward the target).

            Method file (the old scripts' way): needs REDIS_DATA_DIR (Redis's data folder as \
            Backstop sees it) and REDIS_RESTART_COMMAND (run by /bin/sh, restarts Redis). Automatic \
            saves are paused and AOF turned off (CONFIG REWRITE) so the restart loads the RDB \
            written into the data folder; both are set back once Redis has loaded it.

            Afterwards the key counts per database are compared with the .meta.

            FILE may be an s3://BUCKET/KEY address in BACKUP_S3_BUCKET (see backstop list \
            --remote): downloaded with its .meta into $BACKUP_DIR/.restore-download/, checked, \
            restored as a local file, removed afterwards; a dry run reads only the .meta and the \
            first 64 KiB (for the RDB version check).

            Examples:
              backstop restore redis
              backstop restore redis --latest --dry-run
              backstop restore redis /backups/redis/redis_20260107_020000.rdb.gz --advertise-address 10.0.0.5 --port 16379 --yes
            """
    )

    enum Method: String, ExpressibleByArgument, CaseIterable {
        case replication, file
    }

    @Argument(help: ArgumentHelp("The snapshot to restore, a path or an s3://bucket/key address (omit to list them).", valueName: "file"))
    var file: String?

    @Flag(help: "The newest good snapshot.")
    var latest = false

    @Flag(help: "Do not ask for confirmation (required when not on a terminal).")
    var yes = false

    @Flag(name: .customLong("dry-run"), help: "Print every step and change nothing.")
    var dryRun = false

    @Option(help: "replication (default) or file.")
    var method: Method = .replication

    @Option(name: .customLong("advertise-address"), help: ArgumentHelp("The address the target connects back to.", valueName: "host"))
    var advertiseAddress: String?

    @Option(name: .customLong("listen-address"), help: ArgumentHelp("The address to listen on (default: the advertised one; 0.0.0.0 when --advertise-address is given).", valueName: "ip"))
    var listenAddress: String?

    @Option(help: ArgumentHelp("The port to serve the snapshot on (default: any free port).", valueName: "port"))
    var port: Int = 0

    @Option(help: ArgumentHelp("Seconds the target may take to load the snapshot.", valueName: "seconds"))
    var timeout: Double = 3600

    @Option(name: .customLong("max-rate"), help: ArgumentHelp("At most this many bytes a second of the snapshot to the target or into its data folder (512k, 10M; default: no limit).", valueName: "bytes"))
    var maxRate: String?

    @Flag(name: .customLong("allow-outside"), help: "Accept a file outside BACKUP_DIR.")
    var allowOutside = false

    @OptionGroup var options: BackupDirOption

    func validate() throws {
        if file != nil && latest { throw ValidationError("give FILE or --latest, not both") }
        if !(0...65535).contains(port) { throw ValidationError("--port must be 0-65535") }
        if let maxRate, (ValueParsers.byteSize(maxRate) ?? 0) < 1024 {
            throw ValidationError("--max-rate \(maxRate) is not accepted; accepted: bytes a second, at least 1024, with an optional K, M or G (512k, 10M)")
        }
    }

    /// Stops cleanly on SIGTERM/SIGINT (exit 143/130): see `SignalStop`.
    func run() async throws {
        try await SignalStop.run { try await self.perform() }
    }

    private func perform() async throws {
        let env = options.environment()
        let config = try validated { try BackstopConfig(environment: env) }
        let backupDir = config.backupDir
        let catalog = BackupCatalog(backupDir: backupDir)
        var path = file
        let remote = try file.flatMap { $0.hasPrefix("s3://") ? $0 : nil }.map {
            try RemoteRestoreSource($0, environment: env, backupDir: backupDir, kind: .redis)
        }
        defer { remote?.remove() }
        let restorable = RestorableBackups(catalog: catalog, kind: .redis, name: "Redis snapshots", usage: "backstop restore redis FILE [--dry-run]")
        if path == nil && !latest {
            restorable.printList()
            return
        }
        if path == nil {
            path = try restorable.newest(missing: "no good Redis snapshot in \(catalog.redisDir)")
        }
        var preview: RestoreSource.Checked?
        if let remote {
            do {
                if dryRun {
                    // The .meta, and the first 64 KiB for the RDB version check; not the snapshot.
                    preview = try await remote.preview(kind: .redis)
                    try await remote.downloadHead()
                } else {
                    path = try await remote.download()
                }
            } catch {
                throw restoreFailed(error)
            }
        }
        let file = path ?? ""
        let allowOutside = self.allowOutside
        let redis = config.redis
        let checked: RestoreSource.Checked
        let target: Endpoint
        do {
            if let preview {
                checked = preview
            } else {
                checked = try await Blocking.run {
                    try RestoreSource.check(path: file, backupDir: backupDir, kind: .redis, allowOutside: allowOutside)
                }
            }
            if redis.usesSentinel {
                target = try await SentinelView.resolveMaster(sentinels: redis.sentinels, masterName: redis.sentinelMasterName,
                                                              password: redis.sentinelPassword, timeout: 5).master
            } else {
                target = redis.master
            }
        } catch {
            throw restoreFailed(error)
        }
        if let warning = checked.warning { print("warning: \(warning)") }
        let dataDirectory = env["REDIS_DATA_DIR"].flatMap { $0.isEmpty ? nil : $0 }
        let restartCommand = env["REDIS_RESTART_COMMAND"].flatMap { $0.isEmpty ? nil : $0 }
        if method == .file, dataDirectory == nil || restartCommand == nil {
            FileHandle.standardError.write(Data("backstop: --method file needs REDIS_DATA_DIR (Redis's data folder as Backstop sees it) and REDIS_RESTART_COMMAND (a shell command that restarts Redis). Nothing was changed.\n".utf8))
            throw ExitCode(1)
        }
        var restoreOptions = RedisRestoreOptions()
        restoreOptions.advertiseAddress = advertiseAddress
        restoreOptions.listenAddress = listenAddress
        restoreOptions.port = port
        restoreOptions.timeout = timeout
        restoreOptions.maxRate = maxRate.flatMap { ValueParsers.byteSize($0) }
        let log = BackupLog(backupDir: backupDir, echo: !dryRun)
        let jobSettings = try validated { try RedisJobSettings(environment: env) }
        // SIGTERM/SIGINT cancel this task; the restore (on a blocking thread) sees it through
        // `cancellation` and, before the target has the whole snapshot, leaves it as it was.
        let cancellation = JobCancellation()
        let restore = RedisRestore(redis: redis, target: target, source: checked, backupDir: backupDir, options: restoreOptions,
                                   safetySnapshot: jobSettings, cancellation: cancellation, say: { log.info("restore redis: \($0)") })
        let facts: RedisTargetFacts
        do {
            facts = try await Blocking.run { try restore.inspect() }
        } catch {
            throw restoreFailed(error)
        }
        let fileRestore = method == .file
            ? RedisFileRestore(base: restore, dataDirectory: dataDirectory ?? "", restartCommand: restartCommand ?? "") : nil
        if dryRun {
            var steps = fileRestore?.plan(facts: facts) ?? restore.plan(facts: facts)
            if let remote { steps = remote.dryRunSteps(steps, checked: checked) }
            print("dry run: restore \(remote?.address.description ?? checked.entry.path) into \(target) (method \(method.rawValue)); nothing will be changed\(remote == nil ? "" : " (only the .meta and the snapshot's first 64 KiB, for its RDB version, were read from the bucket)"). The steps:")
            for (i, step) in steps.enumerated() { print("  \(i + 1). \(step)") }
            return
        }
        let name = redis.usesSentinel ? redis.sentinelMasterName : target.description
        try confirmRestore(name: name, what: "replace ALL data of the Redis master \(target) with \(checked.entry.path)", yes: yes)
        log.info("restore redis: \(checked.entry.path) → \(target) started (Redis \(facts.redisVersion), process \(facts.processID))")
        do {
            let result = try await withTaskCancellationHandler {
                try await Blocking.run { try fileRestore?.run() ?? restore.run() }
            } onCancel: {
                cancellation.cancel()
            }
            if let safety = result.safetySnapshot { print("safety snapshot of the replaced data: \(safety) (restore it to undo)") }
            log.info("restore redis: \(target) restored from \(checked.entry.path) in \(String(format: "%.1f", result.seconds)) s; process \(result.processIDAfter) (before: \(result.processIDBefore)); keys: \(result.keyspace.keys.sorted().map { "db\($0)=\(result.keyspace[$0]?.keys ?? 0)" }.joined(separator: " "))")
            if result.expected == nil {
                print("note: the .meta records no key counts; nothing to compare")
            } else if result.mismatches.isEmpty {
                print("key counts per database match the .meta")
            } else {
                print("WARNING: key counts differ from the .meta: \(result.mismatches.joined(separator: "; "))")
                throw ExitCode(3)
            }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            log.error("restore redis: \(error)")
            throw restoreFailed(error)
        }
    }
}
