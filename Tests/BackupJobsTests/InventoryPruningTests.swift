import BackstopCore
import BackupCatalog
import BackupJobs
import Foundation
import Testing

/// Daily inventory reports no longer pile up: cleanup removes those of days past
/// BACKUP_RETENTION_DAYS (by the day in the name), keeps the recent ones and today's new one.
@Suite struct InventoryPruningTests {
    @Test func cleanupRemovesInventoriesPastRetentionAndKeepsRecentOnes() throws {
        var template = Array((NSTemporaryDirectory() + "backstop-inventory-XXXXXX").utf8CString)
        let dir = String(cString: try #require(mkdtemp(&template)))
        let now = try #require(WallClock.parseFileStamp("20261201_120000"))
        let old = ["backup_inventory_20261020.txt", "backup_inventory_20261020.json", "backup_inventory_20261030.txt"]
        let recent = ["backup_inventory_20261101.txt", "backup_inventory_20261130.json"]
        let unrelated = ["backup_inventory_notes.txt", "backup_inventory_2026.txt"]
        for name in old + recent + unrelated { try "x\n".write(toFile: dir + "/" + name, atomically: true, encoding: .utf8) }

        let policy = RetentionPolicy(retentionDays: 30)
        let dry = try BackupCleanup(backupDir: dir, policy: policy).run(dryRun: true, now: now)
        #expect(Set(dry.removedInventories.map { FileSystem.lastComponent(of: $0) }) == Set(old))
        #expect(old.allSatisfy { FileSystem.exists(dir + "/" + $0) }, "a dry run removes nothing")

        let report = try BackupCleanup(backupDir: dir, policy: policy).run(dryRun: false, now: now)
        #expect(report.errors.isEmpty, "\(report.errors)")
        let left = Set(try FileSystem.list(dir))
        #expect(old.allSatisfy { !left.contains($0) })
        #expect(Set(recent + unrelated).isSubset(of: left))
        #expect(left.contains("backup_inventory_20261201.txt"), "today's inventory is written")
    }
}
