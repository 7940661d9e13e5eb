import ArgumentParser
import BackstopCore
import BackupCatalog
import BackupJobs
import Foundation

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

            Examples:
              backstop cleanup --dry-run
              backstop cleanup --json | jq '.backups[] | select(.action == "delete")'
            """
    )

    @Flag(help: "Print what would be deleted and why; delete nothing, write no inventory.")
    var dryRun = false

    @Flag(help: "Print a JSON object (backups with action and reasons, logs, errors).")
    var json = false

    @OptionGroup var options: BackupDirOption

    func run() async throws {
        let env = options.environment()
        let settings = try options.postgresSettings()
        let policy = try validated { try RetentionPolicy(environment: env) }
        let cleanup = BackupCleanup(backupDir: settings.backupDir, policy: policy,
                                    log: json ? nil : BackupLog(backupDir: settings.backupDir, echo: false))
        let dryRun = self.dryRun
        let report: BackupCleanup.Report
        do {
            report = try await Blocking.run { try cleanup.run(dryRun: dryRun) }
        } catch let held as FileLock.Held {
            throw ValidationError("\(held)")
        }
        if json {
            try printJSON(report)
        } else {
            printTable(report)
        }
        if !report.errors.isEmpty { throw ExitCode(1) }
    }

    private func printJSON(_ report: BackupCleanup.Report) throws {
        let backups: [[String: Any]] = report.plan.map { p in
            ["path": p.entry.path, "kind": p.entry.kind.rawValue, "target": p.entry.target,
             "started_at": WallClock.rfc3339(p.entry.startedAt), "state": p.entry.state.rawValue,
             "size_bytes": p.entry.sizeBytes, "action": p.decision.keep ? "keep" : "delete",
             "reasons": p.decision.reasons.map(\.description)]
        }
        let object: [String: Any] = ["dry_run": report.dryRun, "backups": backups, "logs_removed": report.removedLogs,
                                     "orphan_metas_removed": report.removedOrphans, "freed_bytes": report.freedBytes,
                                     "errors": report.errors]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        FileHandle.standardOutput.write(data + Data("\n".utf8))
    }

    private func printTable(_ report: BackupCleanup.Report) {
        var out = ""
        var rows = [["ACTION", "KIND", "TARGET", "FILE", "STARTED", "WHY"]]
        for p in report.plan {
            rows.append([p.decision.keep ? "keep" : (report.dryRun ? "would delete" : "deleted"), p.entry.kind.rawValue, p.entry.target,
                         p.entry.name + (p.entry.isDirectory ? "/" : ""), WallClock.rfc3339(p.entry.startedAt), p.decision.summary])
        }
        out += TextTable.render(rows)
        let verb = report.dryRun ? "would remove" : "removed"
        for path in report.removedLogs { out += "\(verb) old log \(path)\n" }
        for path in report.removedOrphans { out += "\(verb) orphaned \(path)\n" }
        for error in report.errors { out += "ERROR \(error)\n" }
        let deleted = report.plan.count(where: { !$0.decision.keep })
        out += "\(report.plan.count - deleted) kept, \(deleted) \(verb), \(HumanBytes.format(report.freedBytes)) \(report.dryRun ? "to free" : "freed")\n"
        if let inventory = report.inventory {
            out += "inventory: \(inventory.backupDir)/backup_inventory_\(WallClock.dayStamp(WallClock.now())).txt\n"
        }
        FileHandle.standardOutput.write(Data(out.utf8))
    }
}
