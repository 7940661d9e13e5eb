import Foundation

/// The kernel's process table (/proc), for the tests' checks on children and descendants.
public enum ProcessTable {
    /// Every process whose parent is `parent`: its pid and command name (`comm`, as `ps` shows it).
    public static func children(of parent: Int32) -> [(pid: Int32, command: String)] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
            guard let pid = Int32(entry),
                  let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { return nil }
            // After the command: state, then the parent's pid.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 1, Int32(fields[1]) == parent else { return nil }
            return (pid, String(stat[stat.index(after: open)..<close]))
        }
    }

    /// A process's command line as the kernel shows it (empty once it is gone).
    public static func commandLine(of pid: Int32) -> [String] {
        let raw = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))) ?? Data()
        return raw.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }
}
