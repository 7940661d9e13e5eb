import BackstopCore
import BackupCatalog
import Foundation

/// The files serve depends on that it found unreadable at start-up — a `.meta` (truncated,
/// not JSON, a newer format), a state file under `.state/` — named one by one so an operator
/// can look at them. Nothing is deleted or rewritten here: a backup whose `.meta` is
/// unreadable is kept by cleanup and skipped by restore, and a state file is replaced at its
/// next write.
public enum UnreadableFiles {
    /// One line per unreadable file, with what Backstop does about it.
    public static func report(backupDir: String) -> [String] {
        var lines: [String] = []
        for entry in BackupCatalog(backupDir: backupDir).list() where entry.metaUnreadable {
            lines.append("\(entry.path).meta cannot be read (truncated, not JSON or a newer format): the backup is kept by cleanup and not offered by restore until the file is fixed")
        }
        let state = backupDir + "/.state"
        for name in ((try? FileSystem.list(state)) ?? []).sorted() where name.hasSuffix(".json") && !name.hasPrefix(".") {
            let path = state + "/" + name
            guard let bytes = try? FileSystem.read(path) else { continue }
            if !JSONCoding.isWellFormed(bytes) {
                lines.append("\(path) is not valid JSON (truncated or damaged): read as empty, replaced at its next write")
            }
        }
        return lines
    }
}
