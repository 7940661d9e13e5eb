import BackstopCore
import BackstopTestSupport
import Foundation
import Scheduling
import Testing

/// Compares `CronExpression` with croniter (PyPI `croniter`, `pip install croniter`), a
/// widely used independent implementation, on many random expressions in UTC.
///
/// croniter is configured to read the dialect as cronie does:
/// - `day_or=True, implement_cron_bug=True`: when both day fields are restricted the day rule
///   is OR, except that a day field whose text starts with `*` (e.g. `*/2`) makes it AND.
///   That is cronie's DOM_STAR/DOW_STAR behaviour (croniter calls it "the cron bug"); without
///   the flag croniter would use OR for `0 0 */2 * mon`.
///
/// Expressions croniter reads differently from cronie are not generated, each for a
/// stated reason:
/// - equal ranges `N-N`: croniter expands them to the whole field ("Jan-Jan" is every
///   month), cronie to the single value N;
/// - `7/STEP` in day-of-week: croniter rewrites 7 to 0 first and runs 0-6/STEP; cronie runs
///   7-7/STEP, i.e. Sunday only;
/// - in a day field, a list with a `*` element after the first (`5,*`): croniter then treats
///   the field as `*` for the day rule (AND), cronie looks at the first character only (OR);
/// - `N/STEP` in day-of-week where the step lands on 7: cronie reads `3/4` as `3-7/4`, i.e.
///   Wednesday and Sunday, croniter as `3-6/4`, Wednesday only;
/// - backwards ranges (`5-1`, `sat-sun` wrapping): croniter wraps them around, cronie rejects
///   them (and so does Backstop).
@Suite struct CroniterComparisonTests {
    static let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    static let weekdayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

    /// One random field; `field` 0…4.
    static func randomField(_ field: Int, _ rng: inout SeededGenerator) -> String {
        let (low, high) = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)][field]
        func value(_ v: Int) -> String {
            if field == 3, Int.random(in: 0..<4, using: &rng) == 0 { return monthNames[v - 1] }
            if field == 4, v <= 6, Int.random(in: 0..<4, using: &rng) == 0 {
                let name = weekdayNames[v]
                return Bool.random(using: &rng) ? name : name.uppercased()
            }
            return String(v)
        }
        func element() -> String {
            switch Int.random(in: 0..<7, using: &rng) {
            case 0: return "*"
            case 1: return "*/\(Int.random(in: 1...max(2, (high - low) / 2), using: &rng))"
            case 2: return value(Int.random(in: low...high, using: &rng))
            case 3, 4:
                let a = Int.random(in: low..<high, using: &rng)
                let b = Int.random(in: (a + 1)...high, using: &rng)
                let range = "\(value(a))-\(value(b))"
                return Bool.random(using: &rng) ? range : range + "/\(Int.random(in: 1...max(2, b - a), using: &rng))"
            default:
                let a = Int.random(in: low..<high, using: &rng)
                let step = Int.random(in: 1...max(2, (high - a)), using: &rng)
                // croniter ends "N/STEP" in day-of-week at 6, cronie at 7 (Sunday again).
                if field == 4 && a != 0 && (7 - a) % step == 0 { return value(a) }
                return "\(value(a))/\(step)"
            }
        }
        // Mostly single elements (a "*" is common in real schedules), sometimes lists.
        switch Int.random(in: 0..<10, using: &rng) {
        case 0..<3: return "*"
        case 3..<8: return element()
        default:
            var parts = [element()]
            while parts.count < Int.random(in: 2...3, using: &rng) {
                let next = element()
                // croniter treats a day field as "*" when ANY list element is "*"; cronie
                // looks at the first character only. Keep "*" elements first in day fields.
                if (field == 2 || field == 4) && next.hasPrefix("*") { continue }
                parts.append(next)
            }
            return parts.joined(separator: ",")
        }
    }

    static func randomExpression(_ rng: inout SeededGenerator) -> String {
        if Int.random(in: 0..<25, using: &rng) == 0 {
            return ["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"].randomElement(using: &rng)!
        }
        // Keep minute and hour fairly specific so that runs spread over days and months.
        return (0..<5).map { randomField($0, &rng) }.joined(separator: " ")
    }

    static let script = #"""
    import sys
    from datetime import datetime, timezone
    try:
        from croniter import croniter
    except ImportError:
        sys.stderr.write("croniter is not installed: pip install croniter\n")
        sys.exit(3)
    count = int(sys.argv[2])
    with open(sys.argv[1]) as f:
        for line in f:
            start, expr = line.rstrip("\n").split("\t")
            try:
                it = croniter(expr, datetime.fromtimestamp(float(start), tz=timezone.utc),
                              day_or=True, implement_cron_bug=True)
                print("OK " + " ".join(str(int(it.get_next(float))) for _ in range(count)))
            except Exception as e:
                print("ERR " + type(e).__name__ + ": " + str(e).replace("\n", " "))
    """#

    @Test func agreesWithCroniterOnRandomExpressionsInUTC() throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["CRON_COMPARE_SEED"] ?? "") ?? 20_260_107
        var rng = SeededGenerator(seed: seed)
        let cases = 600
        let runsPerCase = 8
        var inputs: [(start: Double, expression: String)] = []
        for i in 0..<cases {
            // Starts between 1995 and 2065, some exactly on a minute, some mid-minute.
            var start = Double(Int.random(in: 788_918_400...3_000_000_000, using: &rng))
            if i % 3 == 0 { start = (start / 60).rounded(.down) * 60 } else if i % 3 == 1 { start += 0.25 }
            inputs.append((start, Self.randomExpression(&rng)))
        }
        // Hand-picked cases that must be in every run, whatever the seed.
        let fixed = ["0 2 * * *", "0 */6 * * *", "0 */4 * * *", "0 3 * * *", "0 4 * * 0", "0 0 */2 * mon",
                     "0 0 13 * fri", "0 0 1-7 * */2", "0 0 29 2 *", "0 0 31 * *", "5/15 * * * *", "0 0 * * 7",
                     "0 0 * * 5-7", "0 12 * jan-mar/2 sun-tue", "0 0 31 2 mon", "0 0 31 2 *"]
        for (i, e) in fixed.enumerated() { inputs.append((1_767_225_600 + Double(i) * 3_333_333, e)) }

        let dir = try TestEnvironment.makeTempDirectory("croniter")
        let scriptPath = dir + "/next_runs.py"
        let inputPath = dir + "/cases.tsv"
        try Self.script.write(toFile: scriptPath, atomically: true, encoding: .utf8)
        try inputs.map { "\($0.start)\t\($0.expression)" }.joined(separator: "\n").appending("\n")
            .write(toFile: inputPath, atomically: true, encoding: .utf8)
        let python = try TestEnvironment.binary("python3", package: "python3")
        let result = try TestProcesses.run(python, [scriptPath, inputPath, String(runsPerCase)], check: false)
        guard result.status == 0 else {
            throw TestSupportError("croniter comparison script failed (\(result.status)): \(result.stderr) — install croniter with: pip install croniter")
        }
        let lines = result.stdout.split(separator: "\n").map(String.init)
        try #require(lines.count == inputs.count, "croniter printed \(lines.count) lines for \(inputs.count) cases")

        let utc = TimeZone(identifier: "UTC")!
        var compared = 0
        var rejectedByBoth = 0
        for (input, line) in zip(inputs, lines) {
            let expected = line.hasPrefix("OK ") ? line.dropFirst(3).split(separator: " ").compactMap { Int64($0) } : nil
            let cron: CronExpression
            do {
                cron = try CronExpression(input.expression)
            } catch {
                // Backstop refuses only schedules that can never run; croniter must fail on
                // them too (it gives up after its search limit).
                #expect(expected == nil, "Backstop rejects \"\(input.expression)\" (\(error)) but croniter runs it: \(line)")
                rejectedByBoth += 1
                continue
            }
            guard let expected else {
                Issue.record("croniter failed on \"\(input.expression)\" which Backstop accepts: \(line)")
                continue
            }
            let actual = cron.next(runsPerCase, after: Date(timeIntervalSince1970: input.start), in: utc)
                .map { Int64($0.timeIntervalSince1970) }
            #expect(actual == expected, "\"\(input.expression)\" after \(WallClock.rfc3339(input.start)): Backstop \(actual.map { WallClock.rfc3339(Double($0)) }) croniter \(expected.map { WallClock.rfc3339(Double($0)) })")
            compared += 1
        }
        #expect(compared >= cases - 20, "too few comparable cases: \(compared)")
        #expect(rejectedByBoth >= 1, "the never-running fixed case must be rejected by both")
    }
}
