import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A real PostgreSQL server for the tests: its own cluster in a temporary folder, listening on
/// a free loopback port and on a Unix socket in that folder, ready for logical dumps
/// (`pg_dump`) and physical base backups (`wal_level=replica`, WAL senders, a replication
/// `host` line in pg_hba.conf).
///
/// Authentication: `trust` for every local and loopback connection, except the role
/// `passwordRole`, which must authenticate with `scram-sha-256` and `password` — so tests can
/// prove that a password reaches a child process through the environment or a passfile.
///
/// When the tests run as root, the cluster belongs to the `postgres` user and the server
/// programs run through `runuser` (initdb and postgres refuse to run as root). The client
/// programs (`psql`, `pg_dump`) run as the current user and connect over TCP.
///
/// Every server is stopped (SIGQUIT to the postmaster: an immediate shutdown) when the test
/// process exits, so none outlives the run.
public final class PostgresServer: Sendable {
    /// Loopback address the server listens on.
    public let host = "127.0.0.1"
    /// TCP port (also the Unix socket's suffix).
    public let port: Int
    /// The bootstrap superuser (trust auth).
    public let superuser = "postgres"
    /// A login role that can only authenticate with `password` (scram-sha-256), superuser too so
    /// it can dump anything.
    public let passwordRole = "backstop_pw"
    /// Its password.
    public let password = "s3cret-Pässword"
    /// The folder holding the cluster (`data/`), the socket and the server log.
    public let baseDirectory: String
    /// The cluster's data directory.
    public let dataDirectory: String
    /// The Unix socket directory (`unix_socket_directories`).
    public let socketDirectory: String
    /// The server's log file (pg_ctl -l).
    public let logFile: String
    /// The folder with initdb, pg_ctl, postgres, psql, pg_dump ….
    public let binDirectory: String
    /// A name for messages.
    public let name: String
    /// The major version (for example 15).
    public let majorVersion: Int

    private var serverUser: String? { TestEnvironment.isRoot ? "postgres" : nil }

    private init(name: String, port: Int, baseDirectory: String, binDirectory: String, majorVersion: Int) {
        self.name = name
        self.port = port
        self.baseDirectory = baseDirectory
        self.dataDirectory = baseDirectory + "/data"
        self.socketDirectory = baseDirectory
        self.logFile = baseDirectory + "/server.log"
        self.binDirectory = binDirectory
        self.majorVersion = majorVersion
    }

    // MARK: - Starting

    /// Creates a new cluster and starts it. Throws (naming the Debian package) when the
    /// PostgreSQL server programs are not installed.
    public static func start(name: String = "pg") throws -> PostgresServer {
        let initdb = try TestEnvironment.binary("initdb", extraDirectories: TestEnvironment.postgresBinDirectories(), package: "postgresql")
        let binDirectory = (initdb as NSString).deletingLastPathComponent
        let major = Int((binDirectory as NSString).deletingLastPathComponent.split(separator: "/").last ?? "") ?? 0
        for program in ["pg_ctl", "postgres", "psql", "pg_dump"] {
            guard access(binDirectory + "/" + program, X_OK) == 0 else {
                throw TestSupportError("\(program) not found in \(binDirectory): install the Debian package postgresql (apt-get install -y postgresql)")
            }
        }
        let base = try TestEnvironment.makeTempDirectory("pg-\(name)")
        let port = try TestEnvironment.freePort()
        let server = PostgresServer(name: name, port: port, baseDirectory: base, binDirectory: binDirectory, majorVersion: major)
        try server.initialize(initdb: initdb)
        try server.start()
        TestProcesses.atExit { [dataDirectory = server.dataDirectory] in
            PostgresServer.immediateStop(dataDirectory: dataDirectory)
        }
        try server.createPasswordRole()
        return server
    }

    private static let sharedState = Mutex<Result<PostgresServer, TestSupportError>?>(nil)

    /// One server shared by every test of the process that only reads or creates its own
    /// databases. Started on first use; a start failure is remembered and rethrown.
    /// Destructive tests (stopping the server, filling disks) must start their own.
    public static var shared: PostgresServer {
        get throws {
            let result = sharedState.withLock { state -> Result<PostgresServer, TestSupportError> in
                if let state { return state }
                let started: Result<PostgresServer, TestSupportError>
                do {
                    started = .success(try PostgresServer.start(name: "shared"))
                } catch let error as TestSupportError {
                    started = .failure(error)
                } catch {
                    started = .failure(TestSupportError("starting the shared PostgreSQL failed: \(error)"))
                }
                state = started
                return started
            }
            return try result.get()
        }
    }

    private func initialize(initdb: String) throws {
        if let user = serverUser {
            _ = chown(baseDirectory, try Self.uid(of: user), gid_t.max)
        }
        try TestProcesses.run(initdb, ["-D", dataDirectory, "-U", superuser, "--auth=trust", "--encoding=UTF8",
                                       "--locale=C.UTF-8", "--no-sync"],
                              environment: ["LC_ALL": "C.UTF-8"], asUser: serverUser)
        let conf = """

        # --- backstop test server ---
        listen_addresses = '127.0.0.1'
        port = \(port)
        unix_socket_directories = '\(socketDirectory)'
        wal_level = replica
        max_wal_senders = 10
        max_replication_slots = 10
        max_connections = 60
        shared_buffers = 32MB
        fsync = off
        synchronous_commit = off
        log_min_messages = warning
        logging_collector = off
        timezone = 'UTC'

        """
        try append(conf, to: dataDirectory + "/postgresql.conf")
        // First match wins: the password role must use scram; everyone else is trusted.
        let hba = """
        local   all          \(passwordRole)                   scram-sha-256
        host    all          \(passwordRole)   127.0.0.1/32    scram-sha-256
        host    replication  \(passwordRole)   127.0.0.1/32    scram-sha-256
        local   all          all                               trust
        host    all          all               127.0.0.1/32    trust
        local   replication  all                               trust
        host    replication  all               127.0.0.1/32    trust

        """
        try hba.write(toFile: dataDirectory + "/pg_hba.conf", atomically: false, encoding: .utf8)
    }

    private func append(_ text: String, to path: String) throws {
        guard let handle = FileHandle(forWritingAtPath: path) else { throw TestSupportError("cannot open \(path)") }
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(text.utf8))
    }

    private func createPasswordRole() throws {
        let escaped = password.replacingOccurrences(of: "'", with: "''")
        try psql("CREATE ROLE \(passwordRole) LOGIN SUPERUSER REPLICATION PASSWORD '\(escaped)';")
    }

    private static func uid(of user: String) throws -> uid_t {
        guard let entry = getpwnam(user) else { throw TestSupportError("user \(user) does not exist (the postgresql package creates it)") }
        return entry.pointee.pw_uid
    }

    // MARK: - Control

    /// Starts the server on its existing data directory (`pg_ctl start -w`).
    ///
    /// pg_ctl leaves a daemon behind, which would inherit every descriptor of this process that
    /// is not close-on-exec — among them Foundation's per-`Process` socket, which keeps
    /// `waitUntilExit` waiting until the server stops. So pg_ctl is started with posix_spawn,
    /// descriptors 3 and up closed, stdio on /dev/null and the log.
    public func start() throws {
        var argv = [program("pg_ctl"), "-D", dataDirectory, "-l", logFile, "-w", "-t", "60", "start"]
        if let user = serverUser { argv = ["/usr/sbin/runuser", "-u", user, "--"] + argv }
        let status = try DetachedLauncher.run(argv, output: baseDirectory + "/pg_ctl.log")
        guard status == 0 else {
            let log = (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? ""
            throw TestSupportError("pg_ctl start for \(name) exited \(status); server log:\n\(log.suffix(2000))")
        }
        try TestEnvironment.waitUntil(timeout: 30, "PostgreSQL \(name) on port \(port)") {
            TestEnvironment.isListening(port: port)
        }
    }

    /// Stops the server (`pg_ctl stop`, fast mode by default; `immediate` for a crash-like stop).
    public func stop(mode: String = "fast") throws {
        try TestProcesses.run(binDirectory + "/pg_ctl", ["-D", dataDirectory, "-m", mode, "-w", "stop"], asUser: serverUser)
    }

    /// The postmaster's process id, from `postmaster.pid` (nil when the server is not running).
    public var postmasterPID: Int32? {
        guard let text = try? String(contentsOfFile: dataDirectory + "/postmaster.pid", encoding: .utf8),
              let first = text.split(separator: "\n").first, let pid = Int32(first.trimmingCharacters(in: .whitespaces)),
              kill(pid, 0) == 0 else { return nil }
        return pid
    }

    /// Stops the server at once (immediate mode) and ignores errors: for tests that simulate a
    /// crash, and for clean-up of servers a test started for itself.
    public func shutdown() {
        _ = try? stop(mode: "immediate")
    }

    /// Whether the server accepts TCP connections.
    public var isRunning: Bool { TestEnvironment.isListening(port: port, host: host) }

    /// The exit hook: SIGQUIT makes the postmaster shut down immediately. No child process,
    /// no Dispatch: this runs inside `atexit`.
    private static func immediateStop(dataDirectory: String) {
        guard let file = fopen(dataDirectory + "/postmaster.pid", "r") else { return }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 32)
        guard fgets(&buffer, 32, file) != nil else { return }
        let pid = Int32(atoi(buffer))
        if pid > 0 { kill(pid, SIGQUIT) }
    }

    // MARK: - Clients

    /// libpq variables that point a client (pg_dump, psql, backstop) at this server as the
    /// superuser; `database` becomes PGDATABASE.
    public func environment(database: String = "postgres") -> [String: String] {
        ["PGHOST": host, "PGPORT": String(port), "PGUSER": superuser, "PGDATABASE": database]
    }

    /// The same for `environment(database: "postgres")`.
    public var environment: [String: String] { environment() }

    /// The path of a client or server program of this server's version.
    public func program(_ name: String) -> String { binDirectory + "/" + name }

    /// Runs SQL through `psql` (unaligned, tuples only, stopping at the first error) and returns
    /// its standard output with the trailing newline removed. Several statements may be given.
    @discardableResult
    public func psql(_ sql: String, database: String = "postgres", user: String? = nil) throws -> String {
        let result = try TestProcesses.run(program("psql"),
                                           ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", host, "-p", String(port),
                                            "-U", user ?? superuser, "-d", database, "-f", "-"],
                                           environment: ["PGCONNECT_TIMEOUT": "10"], stdin: Data(sql.utf8), check: false)
        guard result.status == 0 else {
            throw TestSupportError("psql on \(name) (database \(database)) exited \(result.status): \(result.stderr)")
        }
        var out = result.stdout
        while out.hasSuffix("\n") { out.removeLast() }
        return out
    }

    /// Creates a database (optionally from a template) and returns its name.
    @discardableResult
    public func createDatabase(_ database: String, template: String? = nil) throws -> String {
        let templateClause = template.map { " TEMPLATE \"\($0)\"" } ?? ""
        try psql("CREATE DATABASE \"\(database)\"\(templateClause);")
        return database
    }

    /// Drops a database if it exists (terminating its sessions).
    public func dropDatabase(_ database: String) throws {
        try psql("DROP DATABASE IF EXISTS \"\(database)\" WITH (FORCE);")
    }

    /// A database name no other test of this process uses (tests run in parallel on the
    /// shared server).
    public static func uniqueDatabaseName(_ prefix: String) -> String {
        let n = UniqueCounter.next()
        return "\(prefix)_\(getpid())_\(n)"
    }
}

private enum UniqueCounter {
    static let value = Mutex<Int>(0)
    static func next() -> Int { value.withLock { $0 += 1; return $0 } }
}

/// Runs a program whose descendants may outlive it (pg_ctl start) without letting them
/// inherit this process's descriptors.
enum DetachedLauncher {
    /// Spawns `argv` with stdin /dev/null, stdout+stderr appended to `output`, every other
    /// descriptor closed; waits for it and returns its exit status.
    static func run(_ argv: [String], output: String) throws -> Int32 {
        let cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for arg in cArgs { free(arg) } }
        var pid: pid_t = 0
        // A clean signal mask: the caller may be a thread with signals blocked.
        let rc = TestProcesses.withLogFileActions(logFile: output, mode: 0o666, closingInherited: true) { actions in
            TestProcesses.withCleanSignalAttributes(defaultHandlers: false) { posix_spawn(&pid, argv[0], &actions, &$0, cArgs, environ) }
        }
        guard rc == 0 else { throw TestSupportError("posix_spawn \(argv[0]) failed: \(String(cString: strerror(rc)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw TestSupportError("waitpid for \(argv[0]) failed: \(String(cString: strerror(errno)))") }
        }
        // WIFEXITED / WEXITSTATUS are macros; decode by hand.
        if status & 0x7f == 0 { return (status >> 8) & 0xff }
        return 128 + (status & 0x7f)
    }
}

extension TestEnvironment {
    /// A backup folder (with `postgres/` and `postgres/wal/`) the test server's own user can
    /// write: archive_command runs as `postgres` when the tests run as root, as it would in a
    /// deployment where the PostgreSQL container runs it.
    public static func archiveBackupDirectory(_ prefix: String) throws -> String {
        let dir = try makeTempDirectory(prefix)
        if isRoot, let pw = getpwnam("postgres") {
            for sub in ["", "/postgres", "/postgres/wal"] {
                if mkdir(dir + sub, 0o777) != 0 && errno != EEXIST {
                    throw TestSupportError("cannot create \(dir + sub): \(String(cString: strerror(errno)))")
                }
                _ = chown(dir + sub, pw.pointee.pw_uid, pw.pointee.pw_gid)
                _ = chmod(dir + sub, 0o777)
            }
        }
        return dir
    }
}
