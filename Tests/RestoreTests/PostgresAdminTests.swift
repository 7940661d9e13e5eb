import BackstopCore
import BackstopTestSupport
import BackupJobs
import Foundation
import Restore
import Testing

/// The restore's server statements over libpq against a real PostgreSQL: names that would
/// break hand-quoted SQL are bound as parameters or quoted by libpq, and the connection
/// reaches the server through the settings the client programs get (here: a password role).
@Suite("restore's libpq statements")
struct PostgresAdminTests {
    @Test("create, look up, rename and drop a database whose name holds quotes, a semicolon and a space")
    func hostileNames() throws {
        let pg = try PostgresServer.shared
        var env = pg.environment
        // The password role over TCP: libpq must get the password from the settings, not argv.
        env["PGUSER"] = pg.passwordRole
        env["PGPASSWORD"] = pg.password
        env["PGHOST"] = pg.host
        let dir = try TestEnvironment.makeTempDirectory("admin")
        env["BACKUP_DIR"] = dir
        let superEnv = pg.environment.merging(["BACKUP_DIR": dir]) { _, n in n }
        let admin = PostgresAdmin(settings: try PostgresJobSettings(environment: superEnv, childEnvironment: superEnv))
        let name = "o'brien \"db\"; DROP DATABASE postgres; -- \(getpid())"
        let renamed = name + " (old)"
        #expect(try !admin.databaseExists(name))
        try admin.session { db in try db.execute("CREATE DATABASE \(try db.identifier(name))") }
        defer {
            for n in [name, renamed] {
                _ = try? admin.session { db in try db.execute("DROP DATABASE IF EXISTS \(try db.identifier(n))") }
            }
        }
        #expect(try admin.databaseExists(name))
        #expect(try admin.databaseExists("postgres"), "the name's SQL was run as SQL")
        #expect(try admin.databaseOwner(name) == pg.superuser)
        try admin.session { db in
            try db.terminateSessions(name)
            try db.execute("ALTER DATABASE \(try db.identifier(name)) RENAME TO \(try db.identifier(renamed))")
        }
        #expect(try !admin.databaseExists(name) && admin.databaseExists(renamed))

        // The password role reaches the server with the password of the settings alone.
        let asRole = PostgresAdmin(settings: try PostgresJobSettings(environment: env, childEnvironment: env))
        #expect(try asRole.roles().contains(pg.passwordRole))
        var wrong = env
        wrong["PGPASSWORD"] = "not-the-password"
        let refused = PostgresAdmin(settings: try PostgresJobSettings(environment: wrong, childEnvironment: wrong))
        do {
            _ = try refused.roles()
            Issue.record("a wrong password connected")
        } catch {
            #expect("\(error)".contains("password authentication failed"), "\(error)")
            #expect(!"\(error)".contains("not-the-password") && !"\(error)".contains(pg.password), "the error shows a password: \(error)")
        }
    }
}
