#define _GNU_SOURCE
#include "memory_release.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

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

struct range { unsigned long start, end; long rssKB; };

long backstop_release_clean_file_pages(void) {
    FILE *smaps = fopen("/proc/self/smaps", "re");
    if (smaps == NULL) return -1;
    size_t capacity = 256, count = 0;
    struct range *ranges = malloc(capacity * sizeof *ranges);
    if (ranges == NULL) { fclose(smaps); return -1; }

    char *line = NULL;
    size_t lineCapacity = 0;
    int candidate = 0;          /* the current mapping: private, not writable, file-backed */
    long rssKB = 0, anonKB = 0;
    struct range current = {0, 0, 0};
    for (;;) {
        ssize_t n = getline(&line, &lineCapacity, smaps);
        int header = n > 0 && (isdigit((unsigned char)line[0]) || (line[0] >= 'a' && line[0] <= 'f'));
        if (n <= 0 || header) {
            /* Close the previous mapping: keep it only if no page of it was ever copied. */
            if (candidate && anonKB == 0 && rssKB > 0) {
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
            anonKB = 1; /* unknown until the Anonymous line is read */
            if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &start, &end, perms, &pathAt) >= 3 && pathAt > 0) {
                candidate = perms[0] == 'r' && perms[1] == '-' && perms[3] == 'p' && line[pathAt] == '/';
                current.start = start;
                current.end = end;
            }
        } else if (candidate && strncmp(line, "Rss:", 4) == 0) {
            rssKB = strtol(line + 4, NULL, 10);
        } else if (candidate && strncmp(line, "Anonymous:", 10) == 0) {
            anonKB = strtol(line + 10, NULL, 10);
        }
    }
    free(line);
    fclose(smaps);

    long released = 0;
    for (size_t i = 0; i < count; i++) {
        if (madvise((void *)ranges[i].start, ranges[i].end - ranges[i].start, MADV_DONTNEED) == 0)
            released += ranges[i].rssKB;
    }
    free(ranges);
    return released;
}
