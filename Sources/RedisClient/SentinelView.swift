import BackstopCore

/// What the Sentinels say about one monitored master, gathered in one round: which Sentinels
/// answer, the master address each reports, whether they agree, CKQUORUM, and how many
/// Sentinels and replicas they know.
///
/// Why one value: the health loop's metrics (`backstop_redis_sentinel_up`, `_master_ok`,
/// `_quorum_ok`, `_known_sentinels`, `_known_replicas`, `backstop_redis_master_info`) and the
/// rule "the current master is the one Sentinel names" must all come from the same
/// observation, or a failover in between makes them contradict each other.
public struct SentinelView: Sendable, Equatable {
    /// One Sentinel's answers.
    public struct Report: Sendable, Equatable {
        public var sentinel: Endpoint
        /// It answered (connect, optional AUTH, GET-MASTER-ADDR-BY-NAME).
        public var up: Bool
        /// The master address it reports (nil when down or the name is unknown to it).
        public var master: Endpoint?
        /// CKQUORUM's verdict (nil when down).
        public var quorum: QuorumCheck?
        /// `SENTINEL MASTER` fields (nil when down or the query failed).
        public var state: SentinelMasterState?
        /// Why it is down or partly unanswered (never contains a password).
        public var error: String?
        /// Replicas in `SENTINEL REPLICAS` that listen on a port: entries with port 0 are
        /// RDB-only clients (`redis-cli --rdb`, Backstop's own replication snapshots) that
        /// Sentinel saw in the master's INFO during a transfer and keeps until a
        /// `SENTINEL RESET`; they were never replicas. Nil when the query failed.
        public var listeningReplicas: Int?

        public init(sentinel: Endpoint, up: Bool, master: Endpoint? = nil, quorum: QuorumCheck? = nil,
                    state: SentinelMasterState? = nil, error: String? = nil) {
            self.sentinel = sentinel
            self.up = up
            self.master = master
            self.quorum = quorum
            self.state = state
            self.error = error
        }
    }

    public var masterName: String
    /// One report per configured Sentinel, in the configured order.
    public var reports: [Report]

    public init(masterName: String, reports: [Report]) {
        self.masterName = masterName
        self.reports = reports
    }

    /// The Sentinels that answered.
    public var upReports: [Report] { reports.filter(\.up) }

    /// The master address named by the most answering Sentinels (ties: the earliest
    /// configured Sentinel's answer wins). Nil when none names one.
    public var master: Endpoint? {
        var counts: [Endpoint: Int] = [:]
        var order: [Endpoint] = []
        for report in upReports {
            guard let address = report.master else { continue }
            if counts[address] == nil { order.append(address) }
            counts[address, default: 0] += 1
        }
        return order.max { counts[$0]! < counts[$1]! || (counts[$0]! == counts[$1]! && order.firstIndex(of: $0)! > order.firstIndex(of: $1)!) }
    }

    /// Every answering Sentinel names the same master, and at least one answered.
    public var agreed: Bool {
        let named = upReports.map(\.master)
        guard let first = named.first, let address = first else { return false }
        return named.allSatisfy { $0 == address }
    }

    /// Some Sentinel answered and every answering one says CKQUORUM is OK.
    public var quorumOK: Bool {
        let up = upReports
        return !up.isEmpty && up.allSatisfy { $0.quorum?.ok == true }
    }

    /// `backstop_redis_sentinel_master_ok`: the Sentinels agree on a master that none of them
    /// flags as down.
    public var masterOK: Bool {
        agreed && !upReports.contains { $0.state?.isDown == true }
    }

    /// Sentinels known for this master (num-other-sentinels + 1), the largest any answering
    /// Sentinel reports; nil when none reported it.
    public var knownSentinels: Int? {
        upReports.compactMap { $0.state?.numOtherSentinels.map { $0 + 1 } }.max()
    }

    /// Replicas known for this master, the largest any answering Sentinel reports: those in
    /// `SENTINEL REPLICAS` with a listening port (num-slaves when that query failed).
    public var knownReplicas: Int? {
        upReports.compactMap { $0.listeningReplicas ?? $0.state?.numReplicas }.max()
    }

    /// Asks one Sentinel, blocking: connect (and AUTH when the Sentinels have a password),
    /// GET-MASTER-ADDR-BY-NAME, CKQUORUM, SENTINEL MASTER, SENTINEL REPLICAS. Never throws: failures become a
    /// report with `up == false` (or a nil field) and the reason.
    public static func ask(sentinel: Endpoint, masterName: String, username: String? = nil, password: Secret? = nil,
                           timeout: Double) -> Report {
        var report = Report(sentinel: sentinel, up: false, master: nil, quorum: nil, state: nil, error: nil)
        let connection: RedisConnection
        do {
            connection = try RedisConnection(to: sentinel, username: username, password: password, timeout: timeout)
            report.master = try connection.sentinelGetMasterAddr(masterName)
            report.up = true
            if report.master == nil { report.error = "does not monitor a master named \(masterName)" }
        } catch {
            report.error = "\(error)"
            return report
        }
        var problems: [String] = report.error.map { [$0] } ?? []
        do { report.quorum = try connection.sentinelCKQuorum(masterName) } catch { problems.append("\(error)") }
        do { report.state = try connection.sentinelMaster(masterName) } catch { problems.append("\(error)") }
        do {
            report.listeningReplicas = try connection.sentinelReplicas(masterName).filter { ($0["port"] ?? "0") != "0" }.count
        } catch {
            problems.append("\(error)")
        }
        report.error = problems.isEmpty ? nil : problems.joined(separator: "; ")
        return report
    }

    /// Asks every Sentinel concurrently, each on `Blocking.run` with its own `timeout`, so
    /// one dead Sentinel costs one timeout, not one per Sentinel.
    public static func resolve(sentinels: [Endpoint], masterName: String, username: String? = nil,
                               password: Secret? = nil, timeout: Double) async -> SentinelView {
        let reports = await withTaskGroup(of: (Int, Report).self) { group in
            for (index, sentinel) in sentinels.enumerated() {
                group.addTask {
                    let report = await Blocking.run {
                        ask(sentinel: sentinel, masterName: masterName, username: username, password: password, timeout: timeout)
                    }
                    return (index, report)
                }
            }
            var collected: [(Int, Report)] = []
            for await item in group { collected.append(item) }
            return collected.sorted { $0.0 < $1.0 }.map(\.1)
        }
        return SentinelView(masterName: masterName, reports: reports)
    }

    /// One round of `resolve`, then `requireMaster`: "the current master is the one Sentinel
    /// names". Returns the view too, so the caller can record it (metrics, `.meta`).
    public static func resolveMaster(sentinels: [Endpoint], masterName: String, username: String? = nil,
                                     password: Secret? = nil, timeout: Double) async throws -> (master: Endpoint, view: SentinelView) {
        let view = await resolve(sentinels: sentinels, masterName: masterName, username: username, password: password, timeout: timeout)
        return (try view.requireMaster(), view)
    }

    /// The master the Sentinels name, or an error saying why there is none (all Sentinels
    /// down, or none knows the name). Disagreement is not an error here: the majority's
    /// answer is used; `agreed` tells the health loop.
    public func requireMaster() throws -> Endpoint {
        if let master { return master }
        let details = reports.map { "\($0.sentinel): \($0.error ?? "no master reported")" }.joined(separator: "; ")
        throw SentinelUnavailable(masterName: masterName, details: details)
    }
}

/// No Sentinel named a master.
public struct SentinelUnavailable: Error, Sendable, CustomStringConvertible {
    public var masterName: String
    public var details: String
    public var description: String {
        "no Sentinel named a master for \(masterName) (\(details)); check REDIS_SENTINELS and REDIS_SENTINEL_MASTER"
    }
}
