import BackstopCore
import BackupJobs
import PostgresClient

/// Statements a restore runs on the server (create, rename, drop, terminate sessions) over
/// libpq: values are bound as parameters (`PQexecParams`), identifiers quoted by libpq's
/// `PQescapeIdentifier`, and the connection settings and password come from the same
/// variables the client programs get (`PostgresJobSettings.libpqParameters`), never argv.
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

    /// One connection for a few statements (a terminate and the rename right after it).
    public func session<T>(database: String? = nil, _ body: (Session) throws -> T) throws -> T {
        let connection: PostgresConnection
        do {
            // DDL on a large database takes as long as it takes: no statement timeout.
            connection = try PostgresConnection(database: database ?? maintenanceDatabase, timeout: .seconds(10), statementTimeout: .zero,
                                                applicationName: "backstop restore", extra: settings.libpqParameters)
        } catch {
            throw RestoreError("could not connect to PostgreSQL: \(error)", nothingChanged: true)
        }
        defer { connection.close() }
        return try body(Session(connection: connection))
    }

    /// A statement on its own connection.
    public func execute(_ sql: String, _ parameters: [String] = [], database: String? = nil) throws {
        try session(database: database) { try $0.execute(sql, parameters) }
    }

    public func databaseExists(_ name: String) throws -> Bool {
        try session { try $0.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]).count == 1 }
    }

    public func databaseOwner(_ name: String) throws -> String? {
        try session { try $0.query("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", [name]).first?.first ?? nil }
    }

    public func roles() throws -> Set<String> {
        Set(try session { try $0.query("SELECT rolname FROM pg_roles").compactMap { $0.first ?? nil } })
    }

    public func tablespaces() throws -> Set<String> {
        Set(try session { try $0.query("SELECT spcname FROM pg_tablespace").compactMap { $0.first ?? nil } })
    }

    /// A double-quoted identifier (inner quotes doubled), for commands printed for a person
    /// to paste (rollback hints); statements Backstop runs use `Session.identifier`.
    public static func identifier(_ name: String) -> String {
        "\"" + name.replacingAll("\"", with: "\"\"") + "\""
    }

    /// A single-quoted literal (standard_conforming_strings, the default since 9.1), for
    /// printed commands only.
    public static func literal(_ text: String) -> String {
        "'" + text.replacingAll("'", with: "''") + "'"
    }

    /// One open connection. Not Sendable (its `PostgresConnection` belongs to the thread
    /// running `session`).
    public struct Session {
        let connection: PostgresConnection

        /// Rows as text; `parameters` bound to `$1`, `$2`…
        public func query(_ sql: String, _ parameters: [String] = []) throws -> [[String?]] {
            do {
                return try connection.query(sql, parameters)
            } catch {
                throw RestoreError("\(sql) failed: \(error)", nothingChanged: false)
            }
        }

        public func execute(_ sql: String, _ parameters: [String] = []) throws {
            _ = try query(sql, parameters)
        }

        /// libpq's quoting of an identifier (`"my db"`).
        public func identifier(_ name: String) throws -> String {
            do {
                return try connection.quoteIdentifier(name)
            } catch {
                throw RestoreError("\(error)", nothingChanged: false)
            }
        }

        /// Ends every other session on `database` (so it can be renamed or dropped).
        public func terminateSessions(_ database: String) throws {
            try execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", [database])
        }
    }
}

extension String {
    func replacingAll(_ what: Character, with replacement: String) -> String {
        var out = ""
        for c in self { if c == what { out += replacement } else { out.append(c) } }
        return out
    }
}
