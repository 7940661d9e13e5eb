#if canImport(Glibc)
import Glibc
#endif
import BackstopCore
import CLibPQ

/// A failed libpq call: what was attempted, against which server, and libpq's own message
/// (libpq never echoes a password).
public struct PostgresError: Error, CustomStringConvertible, Sendable {
    public var operation: String
    public var server: String
    public var message: String
    /// The SQLSTATE when the server sent one.
    public var sqlState: String?

    public var description: String {
        "PostgreSQL \(operation) on \(server) failed: \(message)"
    }
}

/// One libpq connection (`PGconn`). Not Sendable: it is created, used and closed by one
/// executor — in practice inside one `Blocking.run` closure — because libpq calls block and a
/// `PGconn` must not be used from two threads at once.
///
/// Connection settings not given explicitly come from libpq's own variables (PGHOST, PGPORT,
/// PGUSER, PGPASSWORD, PGPASSFILE, PGSSLMODE…), so the operator's usual set-up just works.
public final class PostgresConnection {
    private var conn: OpaquePointer?
    /// `host:port/database` for messages (no credentials).
    public let serverDescription: String

    /// Connects (blocking). `timeout` bounds connection set-up (libpq's `connect_timeout`,
    /// whole seconds, at least 2) and, via `statement_timeout`, every statement.
    /// `statementTimeout` overrides that bound for statements (`.zero`: none, for DDL such as
    /// DROP DATABASE whose time depends on the database's size).
    public init(database: String, timeout: Duration, statementTimeout: Duration? = nil, applicationName: String = "backstop",
                extra: [String: String] = [:]) throws {
        let seconds = max(2, Int(timeout.seconds.rounded(.up)))
        let statementMilliseconds = statementTimeout.map { Int(($0.seconds * 1000).rounded(.up)) } ?? seconds * 1000
        var params: [(String, String)] = [
            ("dbname", database),
            ("connect_timeout", String(seconds)),
            ("application_name", applicationName),
            ("options", "-c statement_timeout=\(statementMilliseconds)"),
        ]
        for (k, v) in extra.sorted(by: { $0.key < $1.key }) { params.append((k, v)) }
        let keywords = params.map { strdup($0.0) } + [nil]
        let values = params.map { strdup($0.1) } + [nil]
        defer {
            keywords.forEach { free($0) }
            values.forEach { free($0) }
        }
        let c = keywords.withUnsafeBufferPointer { k in
            values.withUnsafeBufferPointer { v in
                k.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: k.count) { kp in
                    v.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: v.count) { vp in
                        PQconnectdbParams(kp, vp, 0)
                    }
                }
            }
        }
        let host = c.flatMap { PQhost($0) }.map { String(cString: $0) } ?? "?"
        let port = c.flatMap { PQport($0) }.map { String(cString: $0) } ?? "?"
        serverDescription = (host.hasPrefix("/") ? "socket \(host)" : host) + ":\(port)/\(database)"
        guard let c, PQstatus(c) == CONNECTION_OK else {
            let message = c.map { Self.cleanMessage(PQerrorMessage($0)) } ?? "out of memory"
            if let c { PQfinish(c) }
            throw PostgresError(operation: "connect", server: serverDescription, message: message)
        }
        conn = c
    }

    deinit {
        if let conn { PQfinish(conn) }
    }

    /// The server's version number, as `PQserverVersion` gives it (150018 for 15.18).
    public var serverVersionNumber: Int {
        conn.map { Int(PQserverVersion($0)) } ?? 0
    }

    /// Runs a statement and returns its rows as text (nil for SQL NULL). With `parameters`,
    /// `$1`, `$2`… in `sql` are bound to them by `PQexecParams` (text format): values never
    /// become SQL text, so no quoting can go wrong.
    @discardableResult
    public func query(_ sql: String, _ parameters: [String] = []) throws -> [[String?]] {
        guard let conn else { throw PostgresError(operation: "query", server: serverDescription, message: "connection closed") }
        let raw: OpaquePointer?
        if parameters.isEmpty {
            raw = PQexec(conn, sql)
        } else {
            let values = parameters.map { strdup($0) }
            defer { values.forEach { free($0) } }
            raw = values.withUnsafeBufferPointer { buffer in
                buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buffer.count) { pointers in
                    PQexecParams(conn, sql, Int32(values.count), nil, pointers, nil, nil, 0)
                }
            }
        }
        guard let result = raw else {
            throw PostgresError(operation: "query", server: serverDescription, message: Self.cleanMessage(PQerrorMessage(conn)))
        }
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        guard status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK else {
            let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            throw PostgresError(operation: "query", server: serverDescription,
                                message: Self.cleanMessage(PQresultErrorMessage(result)), sqlState: state)
        }
        let rows = Int(PQntuples(result)), cols = Int(PQnfields(result))
        var out: [[String?]] = []
        out.reserveCapacity(rows)
        for r in 0..<rows {
            var row: [String?] = []
            row.reserveCapacity(cols)
            for c in 0..<cols {
                if PQgetisnull(result, Int32(r), Int32(c)) == 1 {
                    row.append(nil)
                } else {
                    row.append(String(cString: PQgetvalue(result, Int32(r), Int32(c))))
                }
            }
            out.append(row)
        }
        return out
    }

    /// The first column of the first row, or nil.
    public func scalar(_ sql: String, _ parameters: [String] = []) throws -> String? {
        try query(sql, parameters).first?.first ?? nil
    }

    /// Quotes an identifier for SQL (`"my db"`), with libpq's own escaping.
    public func quoteIdentifier(_ name: String) throws -> String {
        guard let conn, let escaped = PQescapeIdentifier(conn, name, name.utf8.count) else {
            throw PostgresError(operation: "quote identifier", server: serverDescription, message: "cannot escape \(name)")
        }
        defer { PQfreemem(escaped) }
        return String(cString: escaped)
    }

    /// Quotes a string literal for SQL (`'it''s'`).
    public func quoteLiteral(_ text: String) throws -> String {
        guard let conn, let escaped = PQescapeLiteral(conn, text, text.utf8.count) else {
            throw PostgresError(operation: "quote literal", server: serverDescription, message: "cannot escape value")
        }
        defer { PQfreemem(escaped) }
        return String(cString: escaped)
    }

    public func close() {
        if let conn { PQfinish(conn) }
        conn = nil
    }

    private static func cleanMessage(_ raw: UnsafePointer<CChar>?) -> String {
        guard let raw else { return "unknown error" }
        return String(cString: raw).trimmingSpaces().replacingAll("\n", with: "; ")
    }
}
