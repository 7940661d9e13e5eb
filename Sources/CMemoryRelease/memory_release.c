#define _GNU_SOURCE
#include "memory_release.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

int backstop_malloc_for_batch(long pad_bytes, long keep_bytes, long mmap_bytes) {
#if defined(__GLIBC__)
    const char *tunables = getenv("GLIBC_TUNABLES");
    if (tunables != NULL && strstr(tunables, "glibc.malloc.") != NULL) return 0;
    if (getenv("MALLOC_TOP_PAD_") != NULL || getenv("MALLOC_TRIM_THRESHOLD_") != NULL || getenv("MALLOC_MMAP_THRESHOLD_") != NULL) return 0;
    return mallopt(M_TOP_PAD, (int)pad_bytes) == 1 && mallopt(M_TRIM_THRESHOLD, (int)keep_bytes) == 1
        && mallopt(M_MMAP_THRESHOLD, (int)mmap_bytes) == 1;
#else
    (void)pad_bytes; (void)keep_bytes; (void)mmap_bytes;
    return 0;
#endif
}

int backstop_limit_malloc_arenas(int count) {
#if defined(__GLIBC__)
    if (count < 1) return 0;
    if (getenv("MALLOC_ARENA_MAX") != NULL) return 0;
    const char *tunables = getenv("GLIBC_TUNABLES");
    if (tunables != NULL && strstr(tunables, "malloc.arena_max") != NULL) return 0;
    return mallopt(M_ARENA_MAX, count) == 1 ? count : 0;
#else
    (void)count;
    return 0;
#endif
}

void backstop_trim_malloc(void) {
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
}

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

/* Every candidate mapping (private, file-backed, readable) is handled the same way: only its
   pages that pagemap shows present and still file-backed are handed to the kernel's own
   reclaim (MADV_PAGEOUT). Never MADV_DONTNEED: the ranges are read from smaps before the
   madvise calls, and a range unmapped and reused in between (an anonymous heap mapping, a
   library loaded by another thread) must not lose a byte. MADV_PAGEOUT only reclaims:
   copied (written) pages, anonymous memory and pages other processes map stay as they are. */
struct range { unsigned long start, end; long rssKB; };

/* MADV_PAGEOUT on the runs of present, file-backed pages of [start, end) (Linux 5.4+;
   elsewhere madvise fails and nothing changes). Returns the kilobytes asked to reclaim. */
static long reclaim_file_pages(int pagemap, unsigned long start, unsigned long end) {
    const unsigned long page = (unsigned long)sysconf(_SC_PAGESIZE);
    uint64_t entries[512];
    unsigned long run = 0, kb = 0;
    for (unsigned long at = start; at < end;) {
        size_t count = (end - at) / page;
        if (count > 512) count = 512;
        ssize_t got = pread(pagemap, entries, count * sizeof entries[0], (off_t)(at / page * sizeof entries[0]));
        if (got <= 0) break;
        count = (size_t)got / sizeof entries[0];
        for (size_t i = 0; i < count; i++, at += page) {
            int filePage = ((entries[i] >> 63) & 1) && ((entries[i] >> 61) & 1);
            if (filePage && run == 0) run = at;
            if (!filePage && run != 0) {
                if (madvise((void *)run, at - run, MADV_PAGEOUT) == 0) kb += (at - run) / 1024;
                run = 0;
            }
        }
    }
    if (run != 0 && madvise((void *)run, end - run, MADV_PAGEOUT) == 0) kb += (end - run) / 1024;
    return (long)kb;
}

long backstop_release_clean_file_pages(void) {
    FILE *smaps = fopen("/proc/self/smaps", "re");
    if (smaps == NULL) return -1;
    size_t capacity = 256, count = 0;
    struct range *ranges = malloc(capacity * sizeof *ranges);
    if (ranges == NULL) { fclose(smaps); return -1; }

    char *line = NULL;
    size_t lineCapacity = 0;
    int candidate = 0;          /* the current mapping: private, file-backed */
    long rssKB = 0;
    struct range current = {0, 0, 0};
    for (;;) {
        ssize_t n = getline(&line, &lineCapacity, smaps);
        int header = n > 0 && (isdigit((unsigned char)line[0]) || (line[0] >= 'a' && line[0] <= 'f'));
        if (n <= 0 || header) {
            /* Close the previous mapping. */
            if (candidate && rssKB > 0) {
                if (count == capacity) {
                    struct range *grown = realloc(ranges, 2 * capacity * sizeof *ranges);
                    if (grown == NULL) break;
                    ranges = grown;
                    capacity *= 2;
                }
                current.rssKB = rssKB;
                ranges[count++] = current;
            }
            if (n <= 0) break;
            unsigned long start, end;
            char perms[8] = {0};
            int pathAt = 0;
            candidate = 0;
            rssKB = 0;
            if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &start, &end, perms, &pathAt) >= 3 && pathAt > 0) {
                candidate = perms[0] == 'r' && perms[3] == 'p' && line[pathAt] == '/';
                current.start = start;
                current.end = end;
            }
        } else if (candidate && strncmp(line, "Rss:", 4) == 0) {
            rssKB = strtol(line + 4, NULL, 10);
        }
    }
    free(line);
    fclose(smaps);

    long released = 0;
    int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    for (size_t i = 0; pagemap >= 0 && i < count; i++) {
        released += reclaim_file_pages(pagemap, ranges[i].start, ranges[i].end);
    }
    if (pagemap >= 0) close(pagemap);
    free(ranges);
    return released;
}
