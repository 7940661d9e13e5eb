import BackstopTestSupport
import Testing

@Suite struct PostgresServerTests {
    @Test func startsStopsAndAnswersQueries() throws {
        let server = try PostgresServer.start(name: "selftest")
        defer { server.shutdown() }
        #expect(try server.psql("SELECT 1 + 1;") == "2")
        #expect(try server.psql("SELECT current_database();") == "psscript")
        #expect(try server.psql("SHOW wal_level;") == "replica")
        #expect(server.environment["PGPORT"] == String(server.port))
        let db = try server.createDatabase(PostgresServer.uniqueDatabaseName("t"))
        #expect(try server.psql("SELECT current_database();", database: db) == db)
        let pid = try server.postmasterPID()
        try server.stop()
        #expect(throws: TestSupportError.self) { try server.postmasterPID() }
        #expect(!server.isRunning)
        try server.start()
        #expect(try server.postmasterPID() != pid)
        #expect(try server.psql("SELECT 1;", database: db) == "1")
        // The password role refuses a connection without its password.
        #expect(throws: (any Error).self) { try server.psql("SELECT 1;", user: server.passwordRole) }
    }
}
