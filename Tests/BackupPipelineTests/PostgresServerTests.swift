import BackstopTestSupport
import Testing

@Suite struct PostgresServerTests {
    @Test func startsStopsAndAnswersQueries() throws {
        let server = try PostgresServer.start(name: "selftest")
        defer { server.shutdown() }
        #expect(try server.psql("SELECT 1 + 1;") == "2")
        #expect(try server.psql("SHOW wal_level;") == "replica")
        let db = try server.createDatabase(PostgresServer.uniqueDatabaseName("t"))
        #expect(try server.psql("SELECT current_database();", database: db) == db)
        let pid = try #require(server.postmasterPID)
        try server.stop()
        #expect(server.postmasterPID == nil)
        #expect(!server.isRunning)
        try server.start()
        #expect(server.postmasterPID != pid)
        #expect(try server.psql("SELECT 1;", database: db) == "1")
        // The password role refuses a connection without its password.
        #expect(throws: (any Error).self) { try server.psql("SELECT 1;", user: server.passwordRole) }
    }
}
