import BackstopCore
import Foundation
import Synchronization

/// Left-aligned columns two spaces apart. The cells go into one flat byte buffer as they are
/// added (a `[[String]]` of 100,000 rows was 100,000 arrays and twice as many strings, each a
/// malloc and its pages), and the table is printed in pieces of about 1 MiB from one reused
/// buffer. Widths are in Characters; an ASCII cell's width is its byte count (no grapheme walk).
struct TextTable {
    private var bytes: [UInt8] = []
    /// Where each cell ends in `bytes`, and its width.
    private var ends: [Int] = []
    private var cellWidths: [Int32] = []
    private var widths: [Int]
    private var inRow = 0

    /// A table whose first row is `header`; `rows` (a guess) reserves room.
    init(header: [String], rows: Int = 0) {
        self.init(columns: header.count, rows: rows + 1)
        addRow(header)
    }

    /// Rows of a table of `columns` columns without its header: one part of `built`.
    private init(columns: Int, rows: Int) {
        widths = [Int](repeating: 0, count: columns)
        bytes.reserveCapacity(rows * columns * 16)
        ends.reserveCapacity(rows * columns)
        cellWidths.reserveCapacity(rows * columns)
    }

    /// The table of `header` and `count` rows, row `i` added by `row(i, &table)`, built on all
    /// cores in parts of 4,096 rows (the cells of 100,000 rows are half a `list`'s work).
    static func built(header: [String], count: Int, row: @Sendable (Int, inout TextTable) -> Void) -> [TextTable] {
        let piece = 4096
        let parts = (count + piece - 1) / piece
        let done = Mutex<[TextTable?]>(Array(repeating: nil, count: parts))
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            var part = TextTable(columns: header.count, rows: piece)
            for i in (p * piece)..<min(count, (p + 1) * piece) { row(i, &part) }
            done.withLock { $0[p] = part }
        }
        return [TextTable(header: header)] + done.withLock { all in all.map { $0! } }
    }

    var columns: Int { widths.count }

    /// Adds the next cell of the current row (rows are `columns` cells long).
    mutating func add(_ cell: String) {
        var cell = cell
        let width = cell.withUTF8 { utf8 -> Int in
            bytes.append(contentsOf: utf8)
            return utf8.allSatisfy({ $0 < 0x80 }) ? utf8.count : -1
        }
        let w = width >= 0 ? width : cell.count
        ends.append(bytes.count)
        cellWidths.append(Int32(w))
        widths[inRow] = max(widths[inRow], w)
        inRow = inRow + 1 == columns ? 0 : inRow + 1
    }

    mutating func addRow(_ cells: [String]) {
        precondition(cells.count == columns, "a row of \(cells.count) cells in a table of \(columns) columns")
        for cell in cells { add(cell) }
    }

    /// The table, handed to `sink` a piece at a time.
    func write(to sink: (UnsafeBufferPointer<UInt8>) -> Void) {
        write(widths: widths, to: sink)
    }

    /// The parts of one table (`built`), each column as wide as its widest cell in any part.
    static func write(_ parts: [TextTable], to sink: (UnsafeBufferPointer<UInt8>) -> Void) {
        guard let first = parts.first else { return }
        var widths = first.widths
        for part in parts.dropFirst() {
            for c in widths.indices { widths[c] = max(widths[c], part.widths[c]) }
        }
        for part in parts { part.write(widths: widths, to: sink) }
    }

    private func write(widths: [Int], to sink: (UnsafeBufferPointer<UInt8>) -> Void) {
        let flushAt = 1 << 20
        var out: [UInt8] = []
        out.reserveCapacity(flushAt + 4096)
        bytes.withUnsafeBufferPointer { all in
            var start = 0
            for k in ends.indices {
                let c = k % columns
                out.append(contentsOf: UnsafeBufferPointer(rebasing: all[start..<ends[k]]))
                start = ends[k]
                if c < columns - 1 {
                    out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: widths[c] - Int(cellWidths[k]) + 2))
                } else {
                    out.append(UInt8(ascii: "\n"))
                    if out.count >= flushAt {
                        out.withUnsafeBufferPointer { sink($0) }
                        out.removeAll(keepingCapacity: true)
                    }
                }
            }
        }
        if !out.isEmpty { out.withUnsafeBufferPointer { sink($0) } }
    }

    /// The whole table as bytes.
    func renderBytes() -> [UInt8] {
        var all: [UInt8] = []
        write { all.append(contentsOf: $0) }
        return all
    }

    /// The table of `rows` (the first is the header) as text.
    static func render(_ rows: [[String]]) -> String {
        guard let first = rows.first else { return "" }
        var table = TextTable(header: first, rows: rows.count)
        for row in rows.dropFirst() { table.addRow(row) }
        return String(decoding: table.renderBytes(), as: UTF8.self)
    }

    /// Writes the parts of one table (`built`) to standard output (`StandardOutput.write`:
    /// a failed write names `what` and exits 1).
    static func print(_ parts: [TextTable], what: String) throws {
        try StandardOutput.write(what) { sink in write(parts, to: sink) }
    }
}
