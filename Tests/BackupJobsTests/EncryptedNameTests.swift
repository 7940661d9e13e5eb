import BackupCatalog
import Testing

@Suite struct EncryptedNameTests {
    @Test func ageNamesAreTheirPlainNamesEncrypted() {
        #expect(BackupCatalog.classify("psscript_full_20260107_020000.sql.gz.age")! == (.postgresFull, "psscript", "20260107_020000"))
        #expect(BackupCatalog.classify("globals_20260107_020000.sql.gz.age")! == (.postgresGlobals, "globals", "20260107_020000"))
        #expect(BackupCatalog.classify("redis_20260107_040000.rdb.gz.age")! == (.redis, "redis", "20260107_040000"))
        #expect(BackupCatalog.classify("wal_20260107_020000.age") == nil, "base backups are folders")
        #expect(BackupCatalog.classify("psscript_full_20260107_020000.sql.gz.age.meta") == nil)
        #expect(BackupCatalog.classify(".age") == nil)
        #expect(BackupCatalog.classify("notes.txt.age") == nil)
    }
}
