import ArgumentParser
import BackstopCore
import BackupCatalog
import BackupJobs
import OffsiteCopies
import Foundation
import S3

/// `backstop cleanup`: retention (age + daily/weekly/monthly), old logs, inventory.
struct CleanupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cleanup",
        abstract: "Delete backups no retention rule keeps, old rotated logs, and write the inventory.",
        discussion: """
            Per kind and target, a good backup is kept when ANY rule keeps it (all in UTC):
              newest    the newest good backup, always
              age       started within BACKUP_RETENTION_DAYS days (30)
              daily     newest of each of the BACKUP_KEEP_DAILY (7) latest days with a backup
              weekly    newest of each of the BACKUP_KEEP_WEEKLY (4) latest ISO weeks with a backup
              monthly   newest of each of the BACKUP_KEEP_MONTHLY (12) latest months with a backup
            Incomplete backups (no completed .meta) older than a day are removed, a backup \
            together with its .meta (a base backup with its whole wal_* folder). Rotated files \
            in $BACKUP_DIR/logs older than BACKUP_RETENTION_DAYS go too (backup.log and \
            health.log stay). Afterwards $BACKUP_DIR/backup_inventory_YYYYMMDD.txt and .json \
            are written.

            With S3 on (BACKUP_S3_BUCKET), the same rules apply to the copies in the bucket, \
            per kind and target, after the local cleanup (a remote failure is reported and \
            makes the exit status 1, but never stops the local cleanup): a backup goes with its \
            .meta, the newest good remote backup of each kind and target always stays, data \
            objects without a .meta older than a day are removed. The inventory then lists the \
            remote copies too and is uploaded under reports/.

            Examples:
              backstop cleanup --dry-run
              backstop cleanup --json | jq '.backups[] | select(.action == "delete")'
              backstop cleanup --json | jq '.remote.backups[] | select(.action == "delete") | .path'
            """
    )

    @Flag(help: "Print what would be deleted and why; delete nothing, write no inventory.")
    var dryRun = false

    @Flag(help: "Print a JSON object (backups with action and reasons, logs, errors).")
    var json = false

    @OptionGroup var options: BackupDirOption

    /// Stops cleanly on SIGTERM/SIGINT (exit 143/130): see `SignalStop`.
    func run() async throws {
        MemoryRelease.tuneForBatch()
        try await SignalStop.run { try await self.perform() }
    }

    private func perform() async throws {
        let env = options.environment()
        let settings = try options.postgresSettings()
        let policy = try validated { try RetentionPolicy(environment: env) }
        let s3 = try S3Config.optional(env)
        let outcome: CleanupRun.Outcome
        do {
            outcome = try await CleanupRun.run(backupDir: settings.backupDir, policy: policy, s3: s3, dryRun: dryRun,
                                               log: json ? nil : BackupLog(backupDir: settings.backupDir, echo: false), metrics: nil)
        } catch let held as FileLock.Held {
            throw ValidationError("\(held)")
        }
        if json {
            try printJSON(outcome)
        } else {
            try printTable(outcome.local)
            if !outcome.wal.removed.isEmpty {
                print("WAL archive: \(outcome.wal.removed.count) segments before \(outcome.wal.keepFrom ?? "?") \(dryRun ? "would be removed" : "removed") (no kept base backup needs them), \(HumanBytes.format(outcome.wal.freedBytes))")
            }
            if !outcome.wal.notUploaded.isEmpty {
                print("WAL archive: \(outcome.wal.notUploaded.count) segments no kept base backup needs are kept until they are in S3 (the next WAL upload sends them)")
            }
            if let remote = outcome.remote { printRemote(remote, outcome: outcome) }
            if let wal = outcome.remoteWal, !wal.removed.isEmpty {
                print("WAL archive in S3: \(wal.removed.count) files before \(wal.keepFrom ?? "?") \(dryRun ? "would be removed" : "removed") (no base backup kept in the bucket needs them), \(HumanBytes.format(wal.freedBytes))")
            }
        }
        let failed = !outcome.local.errors.isEmpty || !outcome.remoteErrors.isEmpty
        keepUntilExit(outcome)
        if failed { throw ExitCode(1) }
    }

    private func printJSON(_ outcome: CleanupRun.Outcome) throws {
        let report = outcome.local
        let backups = report.plan.map { p in
            JSONReport.Backup(path: p.entry.path, kind: p.entry.kind.rawValue, target: p.entry.target,
                              started_at: WallClock.rfc3339(p.entry.startedAt), state: p.entry.state.rawValue,
                              size_bytes: p.entry.sizeBytes, action: p.decision.keep ? "keep" : "delete",
                              reasons: p.decision.reasons.map(\.description))
        }
        let remote = outcome.remote.map { remote in
            JSONReport.Remote(
                location: remote.destination,
                backups: remote.plan.map { p in
                    JSONReport.Backup(path: p.backup.entry.path, kind: p.backup.entry.kind.rawValue, target: p.backup.entry.target,
                                      started_at: WallClock.rfc3339(p.backup.entry.startedAt), state: p.backup.entry.state.rawValue,
                                      size_bytes: p.backup.storedBytes, action: p.decision.keep ? "keep" : "delete",
                                      reasons: p.decision.reasons.map(\.description))
                },
                orphan_metas_removed: remote.removedOrphans, archived: remote.archived, reports_removed: remote.removedReports,
                freed_bytes: remote.freedBytes, errors: outcome.remoteErrors, inventory_uploaded: outcome.uploadedReports,
                wal_removed: outcome.remoteWal?.removed ?? [])
        }
        let object = JSONReport(dry_run: report.dryRun, backups: backups, logs_removed: report.removedLogs,
                                inventories_removed: report.removedInventories, orphan_metas_removed: report.removedOrphans,
                                freed_bytes: report.freedBytes, errors: report.errors, wal_removed: outcome.wal.removed,
                                wal_kept_not_uploaded: outcome.wal.notUploaded, remote: remote)
        FileHandle.standardOutput.write(Data(try JSONCoding.encode(object, newline: true)))
    }

    /// `cleanup --json`: what was (or would be) kept and deleted, here and in S3 (`remote`
    /// only when S3 is configured).
    struct JSONReport: Encodable {
        struct Backup: Encodable {
            var path: String, kind: String, target: String, started_at: String, state: String, size_bytes: UInt64
            var action: String, reasons: [String]
        }
        struct Remote: Encodable {
            var location: String, backups: [Backup], orphan_metas_removed: [String], archived: [String], reports_removed: [String]
            var freed_bytes: UInt64, errors: [String], inventory_uploaded: [String], wal_removed: [String]
        }
        var dry_run: Bool, backups: [Backup], logs_removed: [String], inventories_removed: [String], orphan_metas_removed: [String]
        var freed_bytes: UInt64, errors: [String], wal_removed: [String], wal_kept_not_uploaded: [String]
        var remote: Remote?
    }

    private func printTable(_ report: BackupCleanup.Report) throws {
        let plan = report.plan, dryRun = report.dryRun
        let table = TextTable.built(header: ["ACTION", "KIND", "TARGET", "FILE", "STARTED", "WHY"], count: plan.count) { i, table in
            // Read in place (a copy of each plan entry retains all its strings).
            plan.withUnsafeBufferPointer { buffer in
                let e = buffer.baseAddress! + i
                table.add(e.pointee.decision.keep ? "keep" : (dryRun ? "would delete" : "deleted"))
                table.add(e.pointee.entry.kind.rawValue)
                table.add(e.pointee.entry.target)
                table.add(e.pointee.entry.name + (e.pointee.entry.isDirectory ? "/" : ""))
                table.add(WallClock.rfc3339(e.pointee.entry.startedAt))
                table.add(e.pointee.decision.summary)
            }
        }
        // The table, then the lines after it.
        try TextTable.print(table, what: "the cleanup report")
        keepUntilExit(table)
        var out = ""
        let verb = report.dryRun ? "would remove" : "removed"
        for path in report.removedLogs { out += "\(verb) old log \(path)\n" }
        for path in report.removedInventories { out += "\(verb) old inventory \(path)\n" }
        for path in report.removedOrphans { out += "\(verb) orphaned \(path)\n" }
        for error in report.errors { out += "ERROR \(error)\n" }
        let deleted = report.plan.count(where: { !$0.decision.keep })
        out += "\(report.plan.count - deleted) kept, \(deleted) \(verb), \(HumanBytes.format(report.freedBytes)) \(report.dryRun ? "to free" : "freed")\n"
        if let inventory = report.inventory {
            out += "inventory: \(inventory.backupDir)/backup_inventory_\(WallClock.dayStamp(WallClock.now())).txt\n"
        }
        FileHandle.standardOutput.write(Data(out.utf8))
    }

    private func printRemote(_ remote: RemoteCleanup.Report, outcome: CleanupRun.Outcome) {
        var out = "\nremote copies in \(remote.destination):\n"
        if remote.kept == nil && remote.plan.isEmpty && !remote.errors.isEmpty {
            out += "not cleaned: the bucket could not be listed\n"
        } else {
            var rows = [["ACTION", "KIND", "TARGET", "KEY", "STARTED", "WHY"]]
            for p in remote.plan {
                rows.append([p.decision.keep ? "keep" : (remote.dryRun ? "would delete" : "deleted"), p.backup.entry.kind.rawValue,
                             p.backup.entry.target, p.backup.key + (p.backup.entry.isDirectory ? "/" : ""),
                             WallClock.rfc3339(p.backup.entry.startedAt), p.decision.summary])
            }
            out += TextTable.render(rows)
        }
        let verb = remote.dryRun ? "would remove" : "removed"
        for address in remote.removedOrphans { out += "\(verb) orphaned \(address)\n" }
        for address in remote.removedReports { out += "\(verb) old inventory \(address)\n" }
        for address in remote.archived { out += "\(remote.dryRun ? "would archive" : "archived") \(address) to BACKUP_S3_ARCHIVE_STORAGE_CLASS (yearly keeper of a finished year)\n" }
        for error in outcome.remoteErrors { out += "ERROR \(error)\n" }
        let deleted = remote.plan.count(where: { !$0.decision.keep })
        out += "remote: \(remote.plan.count - deleted) kept, \(deleted) \(verb), \(HumanBytes.format(remote.freedBytes)) \(remote.dryRun ? "to free" : "freed")\n"
        for address in outcome.uploadedReports { out += "inventory uploaded: \(address)\n" }
        FileHandle.standardOutput.write(Data(out.utf8))
    }
}
