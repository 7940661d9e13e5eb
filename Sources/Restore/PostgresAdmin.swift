import BackstopCore
import BackupJobs

/// Statements a restore runs on the server (create, rename, drop, terminate sessions) through
/// `psql -c` as a child program: the connection settings and password reach it only through
/// the environment, exactly as for pg_dump.
///
/// Blocking: run on a thread that may block.
public struct PostgresAdmin: Sendable {
    public let settings: PostgresJobSettings
    /// The database to connect to for statements about other databases.
    public let maintenanceDatabase: String

    public init(settings: PostgresJobSettings, maintenanceDatabase: String = "postgres") {
        self.settings = settings
        self.maintenanceDatabase = maintenanceDatabase
    }

    /// Runs each statement in its own `-c` (so CREATE/DROP DATABASE are not in a transaction
    /// block); returns psql's unaligned, tuples-only output.
    @discardableResult
    public func run(_ statements: [String], database: String? = nil) throws -> String {
        var args = ["-X", "-A", "-t", "-q", "--no-password", "-v", "ON_ERROR_STOP=1", "-d", database ?? maintenanceDatabase]
        for s in statements { args += ["-c", s] }
        do {
            return try ChildProcess.output(settings.program("psql"), args, environment: settings.childEnvironment,
                                           scratchDirectory: settings.stateDir)
        } catch {
            throw RestoreError("\(statements.joined(separator: "; ")) failed: \(error)", nothingChanged: false)
        }
    }

    public func databaseExists(_ name: String) throws -> Bool {
        try run(["SELECT 1 FROM pg_database WHERE datname = \(Self.literal(name))"]) == "1"
    }

    public func databaseOwner(_ name: String) throws -> String? {
        let owner = try run(["SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = \(Self.literal(name))"])
        return owner.isEmpty ? nil : owner
    }

    public func roles() throws -> Set<String> {
        Set(try run(["SELECT rolname FROM pg_roles"]).split(separator: "\n").map(String.init))
    }

    public func tablespaces() throws -> Set<String> {
        Set(try run(["SELECT spcname FROM pg_tablespace"]).split(separator: "\n").map(String.init))
    }

    /// Ends every other session on `database` (so it can be renamed or dropped).
    public static func terminateSessions(_ database: String) -> String {
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = \(literal(database)) AND pid <> pg_backend_pid()"
    }

    /// A double-quoted identifier (inner quotes doubled): any name is safe in SQL text.
    public static func identifier(_ name: String) -> String {
        "\"" + name.replacingAll("\"", with: "\"\"") + "\""
    }

    /// A single-quoted literal (standard_conforming_strings, the default since 9.1).
    public static func literal(_ text: String) -> String {
        "'" + text.replacingAll("'", with: "''") + "'"
    }
}

extension String {
    func replacingAll(_ what: Character, with replacement: String) -> String {
        var out = ""
        for c in self { if c == what { out += replacement } else { out.append(c) } }
        return out
    }
}
