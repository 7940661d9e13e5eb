import ArgumentParser
import BackstopCore
import BackupJobs
import Foundation
import S3
import WalArchive

/// The point-in-time options of `restore postgres` (base backup + WAL archive).
struct PointInTimeOptionGroup: ParsableArguments {
    @Option(name: .customLong("data-dir"), help: ArgumentHelp("Restore a base backup + WAL into this new, empty data directory (point in time).", valueName: "dir"))
    var dataDir: String?

    @Option(name: .customLong("to-time"), help: ArgumentHelp("Recover to this time: RFC 3339 with a zone (2026-01-07T14:30:00Z, …+01:00).", valueName: "time"))
    var toTime: String?

    @Option(name: .customLong("to-lsn"), help: ArgumentHelp("Recover to this WAL position (0/5000A28).", valueName: "lsn"))
    var toLSN: String?

    @Option(name: .customLong("to-xid"), help: ArgumentHelp("Recover to this transaction id.", valueName: "xid"))
    var toXID: String?

    @Option(name: .customLong("to-name"), help: ArgumentHelp("Recover to this restore point (pg_create_restore_point).", valueName: "name"))
    var toName: String?

    @Flag(help: "Recover only to the end of the base backup (its first consistent point).")
    var immediate = false

    @Option(help: ArgumentHelp("recovery_target_timeline: a number (default: latest).", valueName: "n"))
    var timeline: UInt32?

    @Option(name: .customLong("target-action"), help: ArgumentHelp("At the target: promote (default), pause or shutdown.", valueName: "action"))
    var targetAction: String = "promote"

    @Option(name: .customLong("from-base"), help: ArgumentHelp("This base backup (wal_STAMP) instead of the newest before the target.", valueName: "name"))
    var fromBase: String?

    @Flag(help: "Start PostgreSQL on the restored directory, wait for recovery to end, report the LSN and time reached.")
    var start = false

    @Option(help: ArgumentHelp("Port for --start.", valueName: "port"))
    var port: Int?

    var isRequested: Bool { dataDir != nil }

    func validate(file: String?) throws {
        let targets = [toTime != nil, toLSN != nil, toXID != nil, toName != nil, immediate].filter { $0 }.count
        guard dataDir != nil else {
            if targets > 0 || fromBase != nil || start || timeline != nil {
                throw ValidationError("--to-time, --to-lsn, --to-xid, --to-name, --immediate, --from-base, --timeline and --start restore a base backup into a new data directory: add --data-dir DIR")
            }
            return
        }
        if file != nil { throw ValidationError("a point-in-time restore takes no FILE (it chooses the base backup; use --from-base wal_STAMP)") }
        if targets > 1 { throw ValidationError("give one target: --to-time, --to-lsn, --to-xid, --to-name, --immediate or --latest") }
        if let toTime, WallClock.parseRFC3339(toTime) == nil || !(toTime.hasSuffix("Z") || toTime.dropFirst(19).contains("+") || toTime.dropFirst(19).contains("-")) {
            throw ValidationError("--to-time \(toTime) is not RFC 3339 with a zone; accepted: 2026-01-07T14:30:00Z or 2026-01-07T14:30:00+01:00")
        }
        if let toLSN, LSN(toLSN) == nil { throw ValidationError("--to-lsn \(toLSN) is not an LSN; accepted: X/Y in hexadecimal, as pg_current_wal_lsn() prints it (0/5000A28)") }
        if let toXID, UInt64(toXID) == nil { throw ValidationError("--to-xid \(toXID) is not a transaction id; accepted: a whole number") }
        guard ["promote", "pause", "shutdown"].contains(targetAction) else {
            throw ValidationError("--target-action \(targetAction) is not accepted; accepted: promote, pause or shutdown")
        }
        if start, port == nil { throw ValidationError("--start needs --port N (a free port for the restored server)") }
        if let port, !(1...65535).contains(port) { throw ValidationError("--port \(port) is not a port; accepted: 1-65535") }
    }

    func target(latest: Bool) -> RecoveryTarget {
        if let toTime, let t = WallClock.parseRFC3339(toTime) { return .time(t, toTime) }
        if let toLSN, let lsn = LSN(toLSN) { return .lsn(lsn) }
        if let toXID { return .xid(toXID) }
        if let toName { return .name(toName) }
        if immediate || (fromBase != nil && !latest) { return .immediate }
        return .latest
    }
}

extension RestorePostgresCommand {
    /// `restore postgres --data-dir DIR …`: plan (chain proved), consent, unpack, settings, start.
    func runPointInTime() async throws {
        let settings = try options.postgresSettings()
        let group = pointInTime
        var opts = PointInTimeOptions(target: group.target(latest: latest), dataDirectory: group.dataDir ?? "",
                                      backstopPath: URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path)
        opts.timeline = group.timeline
        opts.action = group.targetAction
        opts.fromBase = group.fromBase
        opts.receiveDirectory = try validated { try WalArchiveSettings.receiveDirectory(environment: options.environment()) }
        let log = BackupLog(backupDir: settings.backupDir, echo: !dryRun)
        // SIGTERM/SIGINT cancel this task; the unpacking and the recovery server (on blocking
        // threads) see it through `cancellation`: the server is stopped, the new data directory
        // removed, nothing recorded (SignalStop: exit 143/130).
        let cancellation = JobCancellation()
        var configured = PointInTimeRestore(jobSettings: settings, options: opts, say: { log.info("restore postgres pitr: \($0)") })
        configured.cancellation = cancellation
        let restore = configured
        var plan: PointInTimeRestore.Plan
        // The bucket, when the local base backups or WAL cannot reach the target (gone with the disk).
        var remote: RemotePointInTimeSource?
        do {
            plan = try await Blocking.run { try restore.plan() }
        } catch let localError {
            guard let s3 = try S3Config.optional(options.environment()) else {
                log.error("restore postgres pitr: refused: \(localError)")
                throw restoreFailed(localError)
            }
            do {
                log.info("restore postgres pitr: the local archive cannot serve it (\(localError)); planning from \(s3.destination)")
                let source = try await RemotePointInTimeSource(settings: s3, backupDir: settings.backupDir)
                plan = try restore.plan(from: source.source)
                remote = source
            } catch {
                let text = "\(s3.credentials.redact("\(error)")) (locally: \(localError))"
                log.error("restore postgres pitr: refused: \(text)")
                throw restoreFailed(WalArchiveError(text))
            }
        }
        if dryRun {
            print("dry run: point-in-time restore into \(opts.dataDirectory); nothing will be changed. The steps:")
            let steps = (remote?.dryRunSteps(plan) ?? []) + restore.describe(plan)
            for (i, step) in steps.enumerated() { print("  \(i + 1). \(step)") }
            return
        }
        try confirmRestore(name: FileSystem.lastComponent(of: opts.dataDirectory), what: "restore \(plan.basePath) and WAL into \(opts.dataDirectory)", yes: yes)
        log.info("restore postgres pitr: \(plan.basePath) + \(plan.chain.segments.count) WAL segments → \(opts.dataDirectory) started")
        let existedBefore = FileSystem.exists(opts.dataDirectory)
        do {
            defer { remote?.remove() }
            if let remote {
                plan = try await remote.download(plan)
                log.info("restore postgres pitr: downloaded the base backup into \(plan.basePath)")
            }
            let chosen = plan
            try await withTaskCancellationHandler {
                try await Blocking.run { try restore.run(chosen) }
            } onCancel: {
                cancellation.cancel()
            }
        } catch {
            log.error("restore postgres pitr: \(error)")
            throw restoreFailed(error)
        }
        guard group.start, let port = group.port else {
            print("restored into \(opts.dataDirectory). Start it with:")
            print("  chown -R postgres:postgres \(opts.dataDirectory)  # when restored as root")
            print("  pg_ctl -D \(opts.dataDirectory) -o '-p PORT -c archive_mode=off' start")
            print("recovery replays WAL through restore_command and stops at the target (\(opts.action)).")
            return
        }
        var starter = RecoveryStart(jobSettings: settings, dataDirectory: opts.dataDirectory, port: port, say: { log.info("restore postgres pitr: \($0)") })
        starter.fetchFile = remote?.fetchFile(backstopPath: opts.backstopPath, jobSettings: settings)
        starter.cancellation = cancellation
        do {
            let (action, chosen, started) = (opts.action, plan, starter)
            let reached = try await withTaskCancellationHandler {
                try await Blocking.run { try started.run(chosen, action: action) }
            } onCancel: {
                cancellation.cancel()
            }
            log.info("restore postgres pitr: recovery ended at LSN \(reached.lsn), last transaction \(reached.lastTransaction.isEmpty ? "(none replayed)" : reached.lastTransaction)\(reached.inRecovery ? " (paused, still in recovery)" : ", promoted")")
            print("PostgreSQL runs on 127.0.0.1:\(port) from \(opts.dataDirectory) (stop it with pg_ctl -D \(opts.dataDirectory) stop)")
        } catch let stopped as RecoveryStopped {
            // The half-recovered copy is nobody's: the folder goes back to how it was found.
            restore.discard(existedBefore: existedBefore)
            let text = "\(stopped); \(opts.dataDirectory) \(existedBefore ? "emptied" : "removed") (it was \(existedBefore ? "empty" : "absent") before). Nothing was recorded"
            log.error("restore postgres pitr: \(text)")
            throw restoreFailed(WalArchiveError(text))
        } catch {
            log.error("restore postgres pitr: \(error)")
            throw restoreFailed(error)
        }
    }
}
