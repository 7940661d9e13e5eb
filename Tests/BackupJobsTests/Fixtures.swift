import BackstopCore
import BackstopTestSupport
import BackupJobs
import Foundation

/// A database with many column types, views, functions, triggers, sequences and an extension:
/// what a plain-SQL round trip must carry over unchanged.
enum Fixtures {
    static let richSchema = """
    CREATE EXTENSION pgcrypto;
    CREATE EXTENSION hstore;
    CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'ünïcødé');
    CREATE SEQUENCE invoice_numbers START 1000 INCREMENT 7;
    CREATE TABLE people (
        id bigserial PRIMARY KEY,
        name text NOT NULL,
        mood mood,
        profile jsonb,
        raw json,
        tags text[],
        scores integer[][],
        photo bytea,
        balance numeric(20, 6),
        big numeric,
        born timestamptz,
        wake time with time zone,
        ratio double precision,
        attrs hstore,
        updated_at timestamptz
    );
    CREATE FUNCTION touch_updated() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN NEW.updated_at := '2001-02-03 04:05:06+00'; RETURN NEW; END $$;
    CREATE TRIGGER people_touch BEFORE INSERT OR UPDATE ON people FOR EACH ROW EXECUTE FUNCTION touch_updated();
    CREATE FUNCTION fingerprint(p people) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT encode(digest(p.name, 'sha256'), 'hex') $$;
    CREATE VIEW happy_people AS SELECT id, name, fingerprint(people) AS fp FROM people WHERE mood = 'happy';
    CREATE TABLE invoices (
        number integer PRIMARY KEY DEFAULT nextval('invoice_numbers'),
        person bigint REFERENCES people(id),
        amount numeric(12, 2) CHECK (amount >= 0),
        issued date
    );
    CREATE INDEX invoices_person ON invoices (person);
    COMMENT ON TABLE people IS 'Людзі — people, 人々';
    INSERT INTO people (name, mood, profile, raw, tags, scores, photo, balance, big, born, wake, ratio, attrs) VALUES
      ('Zoë Ångström', 'happy', '{"a": [1, 2, {"b": null}], "ü": "ß"}', '{"keep":  "spacing" }', ARRAY['x', 'y,z', 'quote"d', NULL],
       '{{1,2},{3,4}}', '\\x00ff10deadbeef', 12345.678901, 123456789012345678901234567890.123456789,
       '2024-02-29 23:59:59.123456+05:30', '12:34:56+02', 1e-300, 'k=>v, "a b"=>"c d"'),
      ('李小龍', 'ünïcødé', '[]', 'null', '{}', NULL, '', -0.000001, 'NaN', 'infinity', '00:00:00-11', 'NaN', ''),
      (E'tab\\there\\nnewline \\\\ backslash', 'sad', '"just a string"', '[1, 2.50, 3e5]', ARRAY['🎉'], '{{5}}',
       gen_random_bytes(64), 0, -1, '-infinity', NULL, -0.5, NULL),
      ('emoji 😀 and NUL-free text', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    INSERT INTO people (name, mood, profile, tags, photo, balance, born)
      SELECT 'person ' || g, (ARRAY['sad','ok','happy']::mood[])[1 + g % 3], jsonb_build_object('n', g, 'sq', g * g),
             ARRAY['t' || g], decode(md5(g::text), 'hex'), g / 7.0, '2020-01-01'::timestamptz + g * interval '1 hour'
      FROM generate_series(1, 2000) g;
    INSERT INTO invoices (person, amount, issued) SELECT 1 + g % 4, g * 1.5, '2024-01-01'::date + g FROM generate_series(1, 500) g;
    SELECT nextval('invoice_numbers');
    """

    /// A database of roughly `megabytes` MB (for dumps that take long enough to interrupt).
    static func bulk(megabytes: Int) -> String {
        """
        CREATE TABLE bulk (id bigint, body text, doc jsonb);
        INSERT INTO bulk SELECT g, repeat(md5(g::text), 8), jsonb_build_object('g', g, 'h', md5(g::text))
          FROM generate_series(1, \(megabytes * 2600)) g;
        """
    }

    static func settings(server: PostgresServer, database: String, backupDir: String, extra: [String: String] = [:]) throws -> PostgresJobSettings {
        var env = server.environment(database: database)
        env["BACKUP_DIR"] = backupDir
        env["BACKUP_POSTGRES_BIN"] = server.binDirectory
        for (k, v) in extra { env[k] = v }
        return try PostgresJobSettings(environment: env, childEnvironment: env)
    }

    /// A plain dump of a database for comparisons (schema and rows).
    static func dumpText(server: PostgresServer, database: String) throws -> String {
        let out = try TestProcesses.run(server.program("pg_dump"), ["--no-password", "-d", database], environment: server.environment(database: database))
        return out.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.hasPrefix("-- Dumped") && !$0.hasPrefix("\\restrict") && !$0.hasPrefix("\\unrestrict") }.joined(separator: "\n")
    }

    static func files(in dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
    }
}

/// Makes a pg_dump wait, deterministically: another session holds an ACCESS EXCLUSIVE lock on
/// a table, so pg_dump (which locks every table before it copies any) blocks until released.
/// Tests use the pause to interrupt a run in flight.
struct TableLockHolder: Sendable {
    let pid: Int32
    let server: PostgresServer
    let application: String

    init(server: PostgresServer, database: String, table: String, logDirectory: String) throws {
        self.server = server
        application = "lock-holder-\(UInt32.random(in: 0...UInt32.max))"
        var env = server.environment(database: database)
        env["PGAPPNAME"] = application
        pid = try TestProcesses.spawn(server.program("psql"),
                                      ["-X", "-q", "-d", database, "-c", "BEGIN; LOCK TABLE \(table) IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(300);"],
                                      logFile: logDirectory + "/lock-holder.log", environment: env)
        try TestEnvironment.waitUntil(timeout: 30, "the table lock on \(table)") {
            try server.psql("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = '\(table)' AND l.mode = 'AccessExclusiveLock' AND l.granted", database: database) == "1"
        }
    }

    /// Waits until a pg_dump session on `database` is blocked on a lock.
    func waitForBlockedDump(server: PostgresServer, database: String) throws {
        try TestEnvironment.waitUntil(timeout: 30, "pg_dump to wait on the lock") {
            try server.psql("SELECT count(*) FROM pg_stat_activity WHERE datname = '\(database)' AND application_name = 'pg_dump' AND wait_event_type = 'Lock'") != "0"
        }
    }

    /// Ends the holding session (a backend sleeping in pg_sleep does not notice its client
    /// going away, so it is terminated on the server) and the psql process.
    func release() {
        _ = try? server.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '\(application)'")
        kill(pid, SIGKILL)
        TestProcesses.unregister(pid: pid)
    }
}

extension Fixtures {
    /// A new 1 MB `bulk` database on `server` whose table a `TableLockHolder` holds, so a
    /// pg_dump of it waits (for the tests that stop or cut a dump part-way), and a fresh
    /// backup folder; the caller releases the holder.
    static func lockedBulkDatabase(_ server: PostgresServer, prefix: String, folder: String) throws
        -> (db: String, backupDir: String, holder: TableLockHolder) {
        let db = try server.createDatabase(PostgresServer.uniqueDatabaseName(prefix))
        try server.psql(bulk(megabytes: 1), database: db)
        let backupDir = try TestEnvironment.makeTempDirectory(folder)
        let holder = try TableLockHolder(server: server, database: db, table: "bulk", logDirectory: backupDir)
        return (db, backupDir, holder)
    }
}
