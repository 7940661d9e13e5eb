import BackstopCore
import BackstopTestSupport
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Where most fault tests start: a new database on `pg` holding table `t` (made by `table`), a
/// fresh folder `dir` with the backup folder `dir/backups`, the CLI's environment for them, and
/// one good full dump of the database already made by `backstop backup postgres full`.
struct DumpedDatabase {
    let db: String
    let dir: String
    let backupDir: String
    /// `pg`'s environment with BACKUP_DIR and BACKUP_POSTGRES_DATABASES (the database) set.
    let environment: [String: String]

    var postgresDir: String { backupDir + "/postgres" }

    init(_ pg: PostgresServer, prefix: String, table: String, folder: String) throws {
        db = try pg.createDatabase(PostgresServer.uniqueDatabaseName(prefix))
        try pg.psql(table, database: db)
        dir = try TestEnvironment.makeTempDirectory(folder)
        backupDir = dir + "/backups"
        environment = pg.environment.merging(["BACKUP_DIR": backupDir, "BACKUP_POSTGRES_DATABASES": db]) { $1 }
        let made = try BackstopBinary.run(["backup", "postgres", "full"], environment: environment)
        #expect(made.status == 0, "\(made.stderr)")
    }
}

/// Where the drill fault tests start: a Redis master of their own (password `drill-pw`) with
/// 300 keys and one snapshot of it in `dir/backups`, taken by `backstop backup redis`.
struct SnapshottedRedis {
    let cluster: RedisCluster
    let dir: String
    /// BACKUP_DIR and the master's address and password.
    let environment: [String: String]

    init(folder: String) throws {
        cluster = try RedisCluster.start(password: "drill-pw", withSentinels: false)
        do {
            let cli = try TestEnvironment.binary("redis-cli", package: "redis-tools")
            try TestProcesses.run(cli, ["-p", String(cluster.master.port), "-a", "drill-pw", "--no-auth-warning", "EVAL",
                                        "for i = 1, 300 do redis.call('SET', KEYS[1] .. i, i) end", "1", "drill:"])
            dir = try TestEnvironment.makeTempDirectory(folder)
            environment = ["BACKUP_DIR": dir + "/backups", "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(cluster.master.port),
                           "REDIS_PASSWORD": "drill-pw"]
        } catch {
            cluster.shutdown()
            throw error
        }
        let made = try BackstopBinary.run(["backup", "redis"], environment: environment)
        #expect(made.status == 0, "\(made.stderr)")
    }

    /// Starts `backstop drill --redis` with a redis-server that loads 100 ms a key (30 s for the
    /// snapshot) and returns once that server runs: the drill's pid and the server's.
    func startSlowDrill(logFile: String) throws -> (drill: Int32, server: Int32) {
        let redisServer = try TestEnvironment.binary("redis-server", package: "redis-server")
        let wrapper = dir + "/slow-redis-server"
        try "#!/bin/sh\nexec \(redisServer) \"$@\" --key-load-delay 100000\n".write(toFile: wrapper, atomically: true, encoding: .utf8)
        chmod(wrapper, 0o755)
        let drill = try BackstopBinary.spawn(["drill", "--redis"], environment: environment.merging(["BACKUP_REDIS_SERVER": wrapper]) { $1 },
                                             logFile: logFile)
        var server: Int32 = 0
        try TestEnvironment.waitUntil(timeout: 20, "the drill's redis-server (log \(logFile))") {
            server = childProcesses(of: drill).first { $0.cmdline.first?.contains("redis-server") == true }?.pid ?? 0
            return server != 0
        }
        return (drill, server)
    }
}

/// A small tmpfs mounted on a folder (created), the volume the full-disk tests fill up.
/// `unmount()` (lazy: a process still in it does not keep it) goes in the test's `defer`.
struct Tmpfs {
    let path: String

    init(_ path: String, size: String) throws {
        self.path = path
        try FileSystem.createDirectory(path)
        let mount = try TestProcesses.run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(size)", "tmpfs", path], check: false)
        guard mount.status == 0 else {
            throw TestSupportError("this test mounts a \(size) tmpfs and needs root (mount exited \(mount.status): \(mount.stderr))")
        }
    }

    /// A new temporary folder named for `prefix` and, in it, `folder` as a tmpfs of `size`.
    static func inNewFolder(_ prefix: String, folder: String = "backups", size: String) throws -> (dir: String, volume: Tmpfs) {
        let dir = try TestEnvironment.makeTempDirectory(prefix)
        return (dir, try Tmpfs(dir + "/" + folder, size: size))
    }

    func unmount() {
        _ = try? TestProcesses.run("/bin/umount", ["-l", path], check: false)
    }
}

extension StandaloneRedis {
    /// A server of its own holding `keys` keys `key:N` (40-hex values, about 85 bytes of RDB a key).
    static func filled(keys: Int) throws -> StandaloneRedis {
        let redis = try StandaloneRedis()
        do {
            _ = try redis.cli(["EVAL", "for i=1,\(keys) do redis.call('SET','key:'..i, redis.sha1hex(i)..redis.sha1hex('v'..i)) end return 1", "0"])
        } catch {
            redis.stop()
            throw error
        }
        return redis
    }
}

/// The WAL of a test server as the archive tests drive it: rows and a segment switch, and
/// whether a segment reached the archive folder whole (data and `.meta`).
struct WalSegments {
    let pg: PostgresServer
    let archiveDir: String

    /// Rows into `t`, then a segment switch: returns the name of the segment completed.
    func switchWal() throws -> String {
        try pg.psql("INSERT INTO t SELECT generate_series(1, 5000);")
        let name = try pg.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
        try pg.psql("SELECT pg_switch_wal()")
        return name
    }

    func archived(_ name: String) -> Bool {
        FileManager.default.fileExists(atPath: archiveDir + "/" + name + ".meta") && FileManager.default.fileExists(atPath: archiveDir + "/" + name + ".gz")
    }
}
