#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#else
import Darwin
#endif
import BackstopCore

/// The `process_*` families every exporter carries, read from `/proc/self` when a scrape
/// renders (a handful of small reads; nothing that can block on another process).
public enum ProcessMetrics {
    public static func register(in registry: MetricsRegistry) {
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
        let startTime = processStartTime(ticksPerSecond: ticks)
        registry.declareComputed("process_cpu_seconds_total", .counter, help: "Total user and system CPU time spent in seconds.") { _ in
            guard let fields = statFields() else { return [] }
            return [([:], ((Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)) / ticks)]
        }
        registry.declareComputed("process_resident_memory_bytes", .gauge, help: "Resident memory size in bytes.") { _ in
            guard let statm = readSmall("/proc/self/statm") else { return [] }
            let parts = statm.split(separator: " ")
            guard parts.count > 1, let pages = Double(parts[1]) else { return [] }
            return [([:], pages * pageSize)]
        }
        registry.declareComputed("process_virtual_memory_bytes", .gauge, help: "Virtual memory size in bytes.") { _ in
            guard let fields = statFields(), let v = Double(fields[20]) else { return [] }
            return [([:], v)]
        }
        registry.declareComputed("process_start_time_seconds", .gauge, help: "Start time of the process since unix epoch in seconds.") { _ in
            [([:], startTime)]
        }
        registry.declareComputed("process_open_fds", .gauge, help: "Number of open file descriptors.") { _ in
            guard let names = try? FileSystem.list("/proc/self/fd") else { return [] }
            return [([:], Double(max(0, names.count - 1)))] // minus the descriptor opendir itself holds
        }
        registry.declareComputed("process_max_fds", .gauge, help: "Maximum number of open file descriptors.") { _ in
            var limit = rlimit()
            guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return [] }
            return [([:], Double(limit.rlim_cur))]
        }
    }

    /// Fields of /proc/self/stat after the command name (field 3 onwards, zero-based from "state").
    private static func statFields() -> [Substring]? {
        guard let stat = readSmall("/proc/self/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        let rest = stat[stat.index(after: close)...].split(separator: " ")
        return rest.count > 20 ? rest : nil
    }

    private static func processStartTime(ticksPerSecond: Double) -> Double {
        guard let fields = statFields(), let startTicks = Double(fields[19]),
              let stat = readSmall("/proc/stat") else { return WallClock.now() }
        for line in stat.split(separator: "\n") where line.hasPrefix("btime ") {
            if let boot = Double(line.dropFirst(6).trimmingSpacesSub()) {
                return boot + startTicks / ticksPerSecond
            }
        }
        return WallClock.now()
    }

    private static func readSmall(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        var out: [UInt8] = []
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            out.append(contentsOf: buffer[0..<n])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension Substring {
    fileprivate func trimmingSpacesSub() -> String { String(self).trimmingSpaces() }
}
