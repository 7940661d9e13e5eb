import BackstopCore
import BackupCatalog
import Testing

/// BACKUP_KEEP_YEARLY: the newest backup of each of the N latest calendar years with a backup,
/// the same rule on disk and in the bucket (one `RetentionPolicy`).
@Suite struct YearlyRetentionTests {
    @Test func theNewestBackupOfEachOfTheLatestYearsIsKept() throws {
        let stamps = ["20221231_230000", "20230105_020000", "20230630_020000", "20241231_020000", "20241201_020000", "20260101_020000"]
        let items = try stamps.map { RetentionPolicy.Item(group: "postgres_full/app", startedAt: try #require(WallClock.parseFileStamp($0)), isGood: true) }
        let now = try #require(WallClock.parseFileStamp("20260301_000000"))
        let policy = RetentionPolicy(retentionDays: 1, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepYearly: 3)
        let decisions = policy.decide(items, now: now)
        let kept = zip(stamps, decisions).filter { $0.1.keep }.map(\.0)
        #expect(kept == ["20230630_020000", "20241231_020000", "20260101_020000"], "2026, 2024 and 2023 (years without a backup use no slot)")
        #expect(decisions[3].reasons == [.yearly("2024")] && decisions[3].isYearly)
        #expect(decisions[5].reasons.contains(.newest) && decisions[5].reasons.contains(.yearly("2026")))
        #expect(decisions[0].reasons == [.expired(days: 1)])
        // Off by default: the old behaviour.
        #expect(try RetentionPolicy(environment: [:]).keepYearly == 0)
        #expect(throws: ConfigError.self) { try RetentionPolicy(environment: ["BACKUP_KEEP_YEARLY": "many"]) }
    }
}
