import BackstopCore
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A real PostgreSQL for tests: `initdb` into a temporary folder, started with `pg_ctl` on a
/// free loopback port (as the `postgres` user when the tests run as root, since PostgreSQL
/// refuses root), `wal_level=replica` for base backups and WAL archiving, trust
/// authentication on loopback. Stopped (immediate) when the test process exits.
public final class PostgresServer: Sendable {
    public let port: Int
    public let directory: String
    public let dataDirectory: String
    public let binDirectory: String
    public let superuser = "postgres"
    /// The database created for the tests (the `PGDATABASE` Backstop gets).
    public let database: String
    private let runAs: String?

    /// The variables `backstop` (and libpq, pg_dump, psql) need to reach this server.
    public var environment: [String: String] {
        ["PGHOST": "127.0.0.1", "PGPORT": String(port), "PGUSER": superuser, "PGDATABASE": database]
    }

    public var host: String { "127.0.0.1" }

    private static let sharedResult = Result { try PostgresServer.start(name: "shared") }
    /// One server shared by the non-destructive tests of a run.
    public static func shared() throws -> PostgresServer { try sharedResult.get() }

    /// Creates a cluster and starts it. `database` is created empty.
    public static func start(name: String, database: String = "psscript", extraConfig: [String] = []) throws -> PostgresServer {
        let bins = TestEnvironment.postgresBinDirectories()
        let initdb = try TestEnvironment.binary("initdb", extraDirectories: bins, package: "postgresql")
        let binDir = FileSystem.directory(of: initdb)
        let server = try PostgresServer(name: name, database: database, binDirectory: binDir, extraConfig: extraConfig)
        return server
    }

    private init(name: String, database: String, binDirectory: String, extraConfig: [String]) throws {
        self.binDirectory = binDirectory
        self.database = database
        directory = try TestEnvironment.makeTempDirectory("pg-\(name)")
        dataDirectory = directory + "/data"
        port = try TestEnvironment.freePort()
        runAs = TestEnvironment.isRoot ? "postgres" : nil
        if runAs != nil {
            _ = try TestProcesses.run("/bin/chown", ["postgres:postgres", directory])
        }
        try TestProcesses.run(binDirectory + "/initdb", ["-D", dataDirectory, "-U", superuser, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
                              asUser: runAs)
        let conf = [
            "port = \(port)",
            "listen_addresses = '127.0.0.1'",
            "unix_socket_directories = '\(directory)'",
            "wal_level = replica",
            "max_wal_senders = 10",
            "max_replication_slots = 10",
            "fsync = off",
            "synchronous_commit = off",
            "full_page_writes = on",
            "shared_buffers = 32MB",
            "max_connections = 50",
            "log_min_messages = warning",
        ] + extraConfig
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: dataDirectory + "/postgresql.conf"))
        handle.seekToEndOfFile()
        handle.write(Data(("\n" + conf.joined(separator: "\n") + "\n").utf8))
        try handle.close()
        let hba = "local all all trust\nhost all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\nlocal replication all trust\n"
        try hba.write(toFile: dataDirectory + "/pg_hba.conf", atomically: false, encoding: .utf8)
        let pgctl = binDirectory + "/pg_ctl", data = dataDirectory, user = runAs
        TestProcesses.atExit {
            _ = try? TestProcesses.run(pgctl, ["-D", data, "-m", "immediate", "stop"], asUser: user, check: false)
        }
        try start()
        if database != "postgres" {
            try psql("CREATE DATABASE \(database)", database: "postgres")
        }
    }

    /// Starts (or restarts) the server on its port and waits until it accepts connections.
    public func start() throws {
        try TestProcesses.run(binDirectory + "/pg_ctl", ["-D", dataDirectory, "-l", directory + "/server.log", "-w", "-t", "60", "start"], asUser: runAs)
    }

    /// Stops the server (fast shutdown); `start()` brings it back with the same data.
    public func stop() throws {
        try TestProcesses.run(binDirectory + "/pg_ctl", ["-D", dataDirectory, "-m", "fast", "-w", "stop"], asUser: runAs)
    }

    /// Stops and forgets the server (immediate); its folder stays for post-mortems.
    public func shutdown() {
        _ = try? TestProcesses.run(binDirectory + "/pg_ctl", ["-D", dataDirectory, "-m", "immediate", "stop"], asUser: runAs, check: false)
    }

    /// The postmaster's process id (first line of postmaster.pid).
    public func postmasterPID() throws -> Int32 {
        let text = try String(contentsOfFile: dataDirectory + "/postmaster.pid", encoding: .utf8)
        guard let first = text.split(separator: "\n").first, let pid = Int32(first) else {
            throw TestSupportError("cannot read postmaster.pid in \(dataDirectory)")
        }
        return pid
    }

    /// Runs SQL through `psql` (ON_ERROR_STOP, unaligned, tuples only) and returns its output.
    @discardableResult
    public func psql(_ sql: String, database: String? = nil) throws -> String {
        try TestProcesses.run(binDirectory + "/psql", [
            "-h", host, "-p", String(port), "-U", superuser, "-d", database ?? self.database,
            "-v", "ON_ERROR_STOP=1", "-X", "-q", "-A", "-t", "-c", sql,
        ]).stdout
    }

    /// Path of a PostgreSQL client program of the same version (pg_dump, pg_basebackup…).
    public func program(_ name: String) -> String { binDirectory + "/" + name }
}
