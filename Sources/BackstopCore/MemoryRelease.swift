import CMemoryRelease

/// Keeps the long-running service's resident set near what it actually uses.
///
/// - glibc gives every thread that contends on malloc its own arena (up to 8 per core), each
///   keeping freed memory; `limitArenas` caps them (MALLOC_ARENA_MAX, if set, wins).
/// - `release` returns free heap to the kernel (malloc_trim) and hands the pages of code and
///   data that are still mapped only because start-up or a job once ran them (argument
///   parsing, configuration, Foundation and ICU, the backup pipeline) to the kernel's reclaim
///   (`MADV_PAGEOUT`), only those still identical to their file. Reclaim never loses a byte:
///   written pages stay, and a range reused by other memory meanwhile is only reclaimed, never
///   zeroed (which is why `MADV_DONTNEED` is not used). A later access reads them back.
public enum MemoryRelease {
    /// Call once, early (before the worker threads allocate). Returns the cap set, 0 if the
    /// environment already chose one or the C library is not glibc.
    @discardableResult
    public static func limitArenas(_ count: Int = 2) -> Int {
        Int(backstop_limit_malloc_arenas(Int32(count)))
    }

    /// For `list` and `cleanup` of a large catalog, which build and free their 100,000 entries
    /// once and exit: the heap grows 64 MiB at a time and keeps what is freed, and blocks up to
    /// 32 MiB come from it, so freed memory is reused rather than handed back and faulted in
    /// again (on 100k backups: 57,800 -> 49,800 page faults, `list` about 10 % faster). Never
    /// for `serve`, whose resident set must stay small. The environment's malloc settings win.
    @discardableResult
    public static func tuneForBatch() -> Bool {
        backstop_malloc_for_batch(64 << 20, 256 << 20, 32 << 20) == 1
    }

    /// Trims the heap and drops clean file-backed pages; returns the kilobytes of mapped
    /// file pages dropped (-1 when /proc/self/smaps cannot be read).
    @discardableResult
    public static func release() -> Int {
        backstop_trim_malloc()
        return backstop_release_clean_file_pages()
    }
}
