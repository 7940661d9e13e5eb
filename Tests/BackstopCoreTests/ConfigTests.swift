import BackstopCore
import Testing

@Suite("Configuration from the environment")
struct ConfigTests {
    @Test("defaults match DESIGN.md and the old scripts")
    func defaults() throws {
        let config = try BackstopConfig(environment: [:])
        #expect(config.backupDir == "/backups")
        #expect(config.healthInterval == .seconds(300))
        #expect(config.metricsListen == Endpoint(host: "0.0.0.0", port: BackstopConfig.defaultMetricsPort))
        #expect(config.postgres.database == "psscript")
        #expect(config.redis.master == Endpoint(host: "redis-master", port: 6379))
        #expect(config.redis.sentinelMasterName == "mymaster")
        #expect(config.redis.usesSentinel == false)
    }

    @Test("HEALTH_CHECK_INTERVAL accepts 300, 300s and 5m alike", arguments: ["300", "300s", "5m", " 5m ", "4m60s"])
    func intervalForms(value: String) throws {
        let config = try BackstopConfig(environment: ["HEALTH_CHECK_INTERVAL": value])
        #expect(config.healthInterval == .seconds(300))
    }

    @Test("a bad value names the variable, the value and what is accepted", arguments: [
        ("HEALTH_CHECK_INTERVAL", "5 minutes"),
        ("HEALTH_CHECK_INTERVAL", "0"),
        ("HEALTH_CHECK_INTERVAL", "-5m"),
        ("METRICS_LISTEN", "localhost"),
        ("METRICS_LISTEN", "127.0.0.1:99999"),
        ("REDIS_PORT", "redis"),
        ("REDIS_SENTINELS", "10.0.0.1:26379,:26379"),
        ("PGPORT", "0"),
        ("DISK_FREE_WARNING_PERCENT", "150"),
        ("LOG_LEVEL", "verbose"),
    ])
    func badValues(variable: String, value: String) {
        do {
            _ = try BackstopConfig(environment: [variable: value])
            Issue.record("\(variable)=\(value) was accepted")
        } catch let error as ConfigError {
            #expect(error.variable == variable)
            #expect(error.description.contains(variable))
            #expect(error.description.contains("\"\(value)\""))
            #expect(error.description.contains("expected"))
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test("Sentinel list: host:port pairs, default port 26379, IPv6 in brackets")
    func sentinels() throws {
        let config = try BackstopConfig(environment: ["REDIS_SENTINELS": "s1:26380, s2 ,[::1]:26381"])
        #expect(config.redis.sentinels == [
            Endpoint(host: "s1", port: 26380), Endpoint(host: "s2", port: 26379), Endpoint(host: "::1", port: 26381),
        ])
        #expect(config.redis.sentinels[2].description == "[::1]:26381")
    }

    @Test("secrets never print")
    func secretsRedacted() throws {
        let config = try BackstopConfig(environment: ["REDIS_PASSWORD": "hunter2", "REDIS_SENTINEL_PASSWORD": "s3cret"])
        #expect(config.redis.password?.value == "hunter2")
        #expect(!"\(config)".contains("hunter2"))
        #expect(!"\(config)".contains("s3cret"))
        #expect(!String(reflecting: config).contains("hunter2"))
    }

    @Test("critical disk level may not be above the warning level")
    func diskLevels() {
        #expect(throws: ConfigError.self) {
            try BackstopConfig(environment: ["DISK_FREE_WARNING_PERCENT": "10", "DISK_FREE_CRITICAL_PERCENT": "20"])
        }
    }
}

@Suite("Durations")
struct DurationTests {
    @Test("units and combinations")
    func units() throws {
        #expect(try ValueParsers.duration("250ms", variable: "X") == .milliseconds(250))
        #expect(try ValueParsers.duration("1h30m", variable: "X") == .seconds(5400))
        #expect(try ValueParsers.duration("2d", variable: "X") == .seconds(172_800))
        #expect(try ValueParsers.duration("1.5s", variable: "X") == .milliseconds(1500))
    }
}
