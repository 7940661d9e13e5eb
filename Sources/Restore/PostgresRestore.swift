#if canImport(Glibc)
import Glibc
#endif
import BackstopCore
import BackupCatalog
import BackupJobs
import Foundation

/// What `backstop restore postgres` was asked to do.
public struct PostgresRestoreOptions: Sendable {
    /// The database to replace (default: the one the dump was taken from).
    public var target: String
    /// Drop, create and load the target itself (after a safety dump) instead of loading a copy
    /// beside it: for servers without room for two copies.
    public var inPlace = false
    /// Drop the `<db>_pre_restore_<stamp>` copy once the restore succeeded.
    public var dropPrevious = false
    /// Apply roles and tablespaces from the matching `globals_` file first.
    public var withGlobals = false
    /// Load the dump in one transaction (`psql -1`): one commit instead of one per
    /// statement, and a failed load leaves nothing. Off for dumps with so many tables that
    /// one transaction would exhaust the lock table (max_locks_per_transaction).
    public var singleTransaction = true

    public init(target: String) { self.target = target }
}

/// What a finished restore left behind.
public struct PostgresRestoreResult: Sendable {
    public var target: String
    /// The previous contents, renamed (nil with --in-place, --drop-previous, or a new target).
    public var previousDatabase: String?
    /// The safety dump taken before an in-place restore.
    public var safetyBackup: String?
    /// How to undo the restore, as commands an operator can paste.
    public var rollback: [String]
    public var seconds: Double
}

/// A guarded PostgreSQL restore of one plain-SQL dump (`<db>_full_STAMP.sql.gz`).
///
/// Default flow (nothing is lost, downtime is the length of two renames): load the dump into a
/// new database `<db>_restore_<stamp>` through `psql -v ON_ERROR_STOP=1` fed by in-process
/// gunzip; only when it loaded completely, end the sessions on the target, rename the target
/// to `<db>_pre_restore_<stamp>` and the loaded copy to the target's name. When loading fails
/// the target was never touched and the half-loaded copy is dropped.
///
/// `inPlace`: a safety dump of the target first (a normal, listed backup), then end sessions,
/// drop, create, load — the old scripts' flow.
///
/// The backup file must have passed `RestoreSource.check` (the caller does it before asking
/// for confirmation). Blocking: run on a thread that may block.
public struct PostgresRestore: Sendable {
    public let settings: PostgresJobSettings
    public let source: RestoreSource.Checked
    /// The checked globals file (with `withGlobals`).
    public let globals: RestoreSource.Checked?
    public let options: PostgresRestoreOptions
    /// The stamp in the names of the databases this run creates.
    public let stamp: String
    /// Where progress lines go (the command prints and logs them).
    public let say: @Sendable (String) -> Void

    public init(settings: PostgresJobSettings, source: RestoreSource.Checked, globals: RestoreSource.Checked?,
                options: PostgresRestoreOptions, stamp: String = WallClock.fileStamp(WallClock.now()),
                say: @escaping @Sendable (String) -> Void) throws {
        self.settings = settings
        self.source = source
        self.globals = globals
        self.options = options
        self.stamp = stamp
        self.say = say
        // PostgreSQL truncates identifiers to 63 bytes: a truncated name could collide.
        if !options.inPlace, preRestoreName.utf8.count > 63 {
            throw RestoreError("the database name \(options.target) is too long for \(preRestoreName) (PostgreSQL names are at most 63 bytes); use --in-place", nothingChanged: true)
        }
    }

    public var restoreName: String { "\(options.target)_restore_\(stamp)" }
    public var preRestoreName: String { "\(options.target)_pre_restore_\(stamp)" }

    /// The globals file that belongs to a dump: the same run's `globals_STAMP.sql.gz`.
    public static func globalsPath(forDump path: String) -> String? {
        let name = FileSystem.lastComponent(of: path)
        guard let (_, _, stamp) = BackupCatalog.classify(name) else { return nil }
        let folder = String(path.dropLast(name.count))
        return folder + "globals_\(stamp).sql.gz"
    }

    /// Every step, in order, as the dry run prints it.
    public func plan(targetExists: Bool) -> [String] {
        let file = source.entry.path
        let t = options.target
        var steps: [String] = ["checked \(file): gzip stream whole, SHA-256 \(source.verification.sha256) \(source.warning == nil ? "matches the .meta" : "(no checksum in the .meta)")"]
        if let globals {
            steps.append("apply roles and tablespaces from \(globals.entry.path), skipping those that already exist")
        }
        if options.inPlace {
            if targetExists {
                steps.append("safety dump of \(t) (backstop backup postgres full of \(t), a normal listed backup under \(settings.postgresDir))")
                steps.append("end every session on \(t) (pg_terminate_backend)")
                steps.append("DROP DATABASE \(t)")
            }
            steps.append("CREATE DATABASE \(t) (template0, same owner and encoding)")
            steps.append("load \(file) into \(t): in-process gunzip → psql -X -q -v ON_ERROR_STOP=1\(options.singleTransaction ? " --single-transaction" : "")")
        } else {
            steps.append("CREATE DATABASE \(restoreName) (template0\(targetExists ? ", owner and encoding of \(t)" : ""))")
            steps.append("load \(file) into \(restoreName): in-process gunzip → psql -X -q -v ON_ERROR_STOP=1\(options.singleTransaction ? " --single-transaction" : "") (on failure: drop \(restoreName), \(t) untouched)")
            if targetExists {
                steps.append("end every session on \(t) (pg_terminate_backend)")
                steps.append("ALTER DATABASE \(t) RENAME TO \(preRestoreName)")
            }
            steps.append("ALTER DATABASE \(restoreName) RENAME TO \(t)")
            if targetExists && options.dropPrevious { steps.append("DROP DATABASE \(preRestoreName) (--drop-previous)") }
        }
        steps.append("record the restore in \(RestoreRecord.path(backupDir: settings.backupDir)) (backstop_restore_last_success_timestamp_seconds{kind=\"postgres_full\"})")
        return steps
    }

    /// Runs the restore.
    public func run() throws -> PostgresRestoreResult {
        let admin = PostgresAdmin(settings: settings)
        let started = MonotonicClock.seconds()
        let t = options.target
        let targetExists = try admin.databaseExists(t)
        var createClause = " TEMPLATE template0"
        if targetExists {
            // The new database gets the old one's owner, encoding and collation.
            createClause = try admin.session { db in
                let sql = "SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database WHERE datname = $1"
                guard let row = try db.query(sql, [t]).first, row.count == 4,
                      let owner = row[0], let encoding = row[1], let collate = row[2], let ctype = row[3] else { return createClause }
                // CREATE DATABASE takes no parameters: names through PQescapeIdentifier, values as
                // literals from pg_database itself (encoding and locale names).
                return createClause + " OWNER \(try db.identifier(owner)) ENCODING \(PostgresAdmin.literal(encoding))"
                    + " LC_COLLATE \(PostgresAdmin.literal(collate)) LC_CTYPE \(PostgresAdmin.literal(ctype))"
            }
        }
        if let globals { try applyGlobals(globals, admin: admin) }
        var result = PostgresRestoreResult(target: t, previousDatabase: nil, safetyBackup: nil, rollback: [], seconds: 0)
        let q = PostgresAdmin.identifier
        if options.inPlace {
            if targetExists {
                say("safety dump of \(t) …")
                var dumpSettings = settings
                dumpSettings.databases = [t]
                let outcomes = try PostgresFullBackup(settings: dumpSettings, log: BackupLog(backupDir: settings.backupDir, echo: false)).run()
                guard let dump = outcomes.first(where: { $0.kind == .postgresFull }), dump.success, let path = dump.path else {
                    let why = outcomes.compactMap(\.message).joined(separator: "; ")
                    throw RestoreError("the safety dump of \(t) failed (\(why)); nothing was changed", nothingChanged: true)
                }
                result.safetyBackup = path
                say("safety dump written: \(path)")
                say("ending sessions on \(t) and dropping it …")
                try admin.session { db in
                    try db.terminateSessions(t)
                    try db.execute("DROP DATABASE \(try db.identifier(t))")
                }
            }
            try admin.session { db in try db.execute("CREATE DATABASE \(try db.identifier(t))\(createClause)") }
            say("loading \(source.entry.path) into \(t) …")
            do {
                try load(into: t)
            } catch {
                let undo = result.safetyBackup.map { " Restore the safety dump: backstop restore postgres \($0) --in-place --yes" } ?? ""
                throw RestoreError("loading into \(t) failed, \(t) is INCOMPLETE: \(error).\(undo)", nothingChanged: false)
            }
            if let safety = result.safetyBackup {
                result.rollback = ["backstop restore postgres \(safety) --database \(t) --yes"]
            }
        } else {
            let restore = restoreName
            say("creating \(restore) …")
            try admin.session { db in try db.execute("CREATE DATABASE \(try db.identifier(restore))\(createClause)") }
            say("loading \(source.entry.path) into \(restore) …")
            do {
                try load(into: restore)
            } catch {
                var message = "loading the dump failed: \(error). \(t) was not touched"
                if let dropError = dropScratch(restore, admin: admin) {
                    message += "; dropping the half-loaded \(restore) failed too (\(dropError)): it is NOT a restored copy, drop it by hand: psql -X -d postgres -c 'DROP DATABASE \(q(restore))'"
                } else {
                    message += "; the half-loaded \(restore) was dropped"
                }
                throw RestoreError(message, nothingChanged: true)
            }
            if targetExists {
                say("switching: ending sessions on \(t), renaming it to \(preRestoreName) …")
                try renameTarget(admin: admin)
            }
            do {
                try admin.session { db in try db.execute("ALTER DATABASE \(try db.identifier(restore)) RENAME TO \(try db.identifier(t))") }
            } catch {
                if targetExists {
                    // Put the original back under its name before reporting.
                    _ = try? admin.session { db in try db.execute("ALTER DATABASE \(try db.identifier(preRestoreName)) RENAME TO \(try db.identifier(t))") }
                }
                throw RestoreError("renaming \(restore) to \(t) failed: \(error); \(t) was put back; the restored copy is \(restore)", nothingChanged: false)
            }
            if targetExists {
                if options.dropPrevious {
                    say("dropping \(preRestoreName) (--drop-previous) …")
                    try admin.session { db in
                        try db.terminateSessions(preRestoreName)
                        try db.execute("DROP DATABASE \(try db.identifier(preRestoreName))")
                    }
                } else {
                    result.previousDatabase = preRestoreName
                    result.rollback = [
                        "psql -X -d postgres -c 'ALTER DATABASE \(q(t)) RENAME TO \(q(t + "_restored_" + stamp))' -c 'ALTER DATABASE \(q(preRestoreName)) RENAME TO \(q(t))'",
                        "(when the restore is accepted: psql -X -d postgres -c 'DROP DATABASE \(q(preRestoreName))')",
                    ]
                }
            }
        }
        let finished = WallClock.now()
        do {
            try RestoreRecord.recordSuccess(kind: BackupKind.postgresFull.rawValue, at: finished, backupDir: settings.backupDir)
        } catch {
            say("warning: the restore succeeded but recording it in \(RestoreRecord.path(backupDir: settings.backupDir)) failed: \(error)")
        }
        result.seconds = MonotonicClock.seconds() - started
        return result
    }

    /// Drops the half-loaded scratch database after a failed load; nil when it is gone. A load
    /// cut by a server restart fails while the server is still down, so the drop is tried
    /// again for up to `patience` seconds (the server coming back) before it gives up.
    func dropScratch(_ name: String, admin: PostgresAdmin, patience: Double = 60) -> (any Error)? {
        let deadline = MonotonicClock.seconds() + patience
        var announced = false
        while true {
            do {
                try admin.session { db in
                    try db.terminateSessions(name)
                    try db.execute("DROP DATABASE IF EXISTS \(try db.identifier(name))")
                }
                return nil
            } catch {
                if MonotonicClock.seconds() >= deadline { return error }
                if !announced {
                    say("dropping the half-loaded \(name) failed (\(error)); trying again for up to \(Int(patience)) s")
                    announced = true
                }
                usleep(1_000_000)
            }
        }
    }

    /// Ends the sessions on the target and renames it; a client that reconnects between the
    /// two statements makes the rename fail, so it is tried a few times.
    private func renameTarget(admin: PostgresAdmin) throws {
        var lastError: (any Error)?
        for attempt in 1...10 {
            do {
                // One connection: the rename follows the terminate at once.
                try admin.session { db in
                    try db.terminateSessions(options.target)
                    try db.execute("ALTER DATABASE \(try db.identifier(options.target)) RENAME TO \(try db.identifier(preRestoreName))")
                }
                return
            } catch {
                lastError = error
                usleep(UInt32(100_000 * attempt))
            }
        }
        throw RestoreError("could not rename \(options.target) (clients keep reconnecting?): \(lastError.map { "\($0)" } ?? ""); \(options.target) is unchanged, the restored copy is \(restoreName)", nothingChanged: false)
    }

    /// Streams the dump through in-process gunzip into `psql -v ON_ERROR_STOP=1`.
    func load(into database: String) throws {
        try PostgresLoader.load(path: source.entry.path, into: database, settings: settings, singleTransaction: options.singleTransaction)
    }

    private func applyGlobals(_ globals: RestoreSource.Checked, admin: PostgresAdmin) throws {
        let text = String(decoding: try GunzipStream().readAll(path: globals.entry.path), as: UTF8.self)
        let filtered = GlobalsFilter.filter(text, existingRoles: try admin.roles(), existingTablespaces: try admin.tablespaces())
        if !filtered.skipped.isEmpty { say("globals: skipping existing \(filtered.skipped.joined(separator: ", "))") }
        let child = try ChildProcess(executable: settings.program("psql"),
                                     arguments: ["-X", "-q", "-v", "ON_ERROR_STOP=1", "--no-password", "-d", admin.maintenanceDatabase],
                                     environment: settings.childEnvironment, captureStdout: false, stdinPipe: true,
                                     scratchDirectory: settings.stateDir)
        signal(SIGPIPE, SIG_IGN)
        try? FileSystem.writeAll(fd: child.stdinFD, Array(filtered.script.utf8), path: "psql stdin")
        child.closeStdin()
        let status = try child.wait()
        guard status == 0 else {
            throw RestoreError("applying \(globals.entry.path) failed (psql status \(status)): \(child.stderrText(limit: 2000)); no database was changed", nothingChanged: false)
        }
        say("globals applied from \(globals.entry.path)")
    }
}

/// Loads a plain-SQL dump into a database: in-process gunzip (zlib, bounded memory) writing
/// into the stdin of `psql -X -q -v ON_ERROR_STOP=1`. Blocking.
public enum PostgresLoader {
    public static func load(path: String, into database: String, settings: PostgresJobSettings, singleTransaction: Bool = true) throws {
        signal(SIGPIPE, SIG_IGN) // a psql that stops on an error must give EPIPE, not kill us
        let child = try ChildProcess(executable: settings.program("psql"),
                                     arguments: ["-X", "-q", "-v", "ON_ERROR_STOP=1", "--no-password", "-d", database]
                                        + (singleTransaction ? ["--single-transaction", "-f", "-"] : []),
                                     environment: settings.childEnvironment, captureStdout: false, stdinPipe: true,
                                     scratchDirectory: settings.stateDir)
        var copyError: (any Error)?
        do {
            try GunzipStream().copy(path: path, to: child.stdinFD, named: "psql's stdin (a pipe)")
        } catch let failure as GunzipStream.Failure where failure.readerGone {
            // psql stopped on its own; its exit status and stderr say why.
        } catch {
            copyError = error
            child.terminate() // never let psql commit what was read of a broken stream
        }
        child.closeStdin()
        let status = try child.wait()
        if let copyError { throw RestoreError("reading \(path) failed: \(copyError)", nothingChanged: false) }
        guard status == 0 else {
            let stderr = child.stderrText(limit: 2000)
            // psql's exit status 2: the connection to the server went bad (a restart, a crash).
            let why = status == 2 ? "psql lost its connection to PostgreSQL (exit status 2)" : "psql exited with status \(status)"
            throw RestoreError("\(why)\(stderr.isEmpty ? "" : ": \(stderr)")", nothingChanged: false)
        }
    }
}
