/// Makes a `pg_dumpall --globals-only` script safe to apply to a server that already has some
/// of its roles and tablespaces: the statements creating or altering an existing role
/// (`CREATE ROLE x;`, `ALTER ROLE x …;`) and creating an existing tablespace are left out, so
/// the server's current roles — their passwords included — stay as they are, and the script
/// runs under ON_ERROR_STOP without tripping on duplicates. A plain state-free text filter
/// (pg_dumpall writes one statement per line), tested without a server.
public enum GlobalsFilter {
    public struct Result: Sendable, Equatable {
        public var script: String
        /// The roles and tablespaces whose statements were left out.
        public var skipped: [String]
    }

    public static func filter(_ script: String, existingRoles: Set<String>, existingTablespaces: Set<String>) -> Result {
        var kept: [Substring] = []
        var skipped: [String] = []
        for line in script.split(separator: "\n", omittingEmptySubsequences: false) {
            if let name = name(after: "CREATE ROLE ", in: line) ?? name(after: "ALTER ROLE ", in: line),
               existingRoles.contains(name) {
                if line.hasPrefix("CREATE") { skipped.append("role \(name)") }
                continue
            }
            if let name = name(after: "CREATE TABLESPACE ", in: line), existingTablespaces.contains(name) {
                skipped.append("tablespace \(name)")
                continue
            }
            kept.append(line)
        }
        return Result(script: kept.joined(separator: "\n"), skipped: skipped)
    }

    /// The identifier right after `prefix` (unquoted, or double-quoted with "" inside).
    static func name(after prefix: String, in line: Substring) -> String? {
        guard line.hasPrefix(prefix) else { return nil }
        let rest = line.dropFirst(prefix.count)
        if rest.first == "\"" {
            var name = ""
            var i = rest.index(after: rest.startIndex)
            while i < rest.endIndex {
                let c = rest[i]
                if c == "\"" {
                    let next = rest.index(after: i)
                    if next < rest.endIndex, rest[next] == "\"" {
                        name.append("\"")
                        i = rest.index(after: next)
                        continue
                    }
                    return name
                }
                name.append(c)
                i = rest.index(after: i)
            }
            return nil
        }
        let name = rest.prefix { $0 != " " && $0 != ";" }
        return name.isEmpty ? nil : String(name)
    }
}
