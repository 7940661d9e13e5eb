#ifndef BACKSTOP_CHIREDIS_SHIM_H
#define BACKSTOP_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#include <string.h>
#include <sys/time.h>

/* redisCommand is variadic; Backstop only ever sends argv-style commands, so
   the shims below cover what Swift cannot import or name cleanly. */
static inline struct timeval backstop_timeval_ms(long ms) {
    struct timeval tv;
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    return tv;
}

/* redisCommandArgv returns void *; the reply is always a redisReply (or NULL on an
   I/O or protocol error, with c->err set). */
static inline redisReply *backstop_redis_command_argv(redisContext *c, int argc,
                                                      const char **argv, const size_t *argvlen) {
    return (redisReply *)redisCommandArgv(c, argc, argv, argvlen);
}

/* errstr is a fixed char[128], imported by Swift as a 128-element tuple. */
static inline const char *backstop_redis_errstr(const redisContext *c) {
    return c->errstr;
}

/* Sends one command without waiting for a reply: the replication handshake's PSYNC, whose
   answer (keepalive newlines, +FULLRESYNC, then the RDB) is read from the socket directly.
   Blocking: redisBufferWrite writes until the output buffer is empty. */
static inline int backstop_redis_send_argv(redisContext *c, int argc, const char **argv, const size_t *argvlen) {
    if (redisAppendCommandArgv(c, argc, argv, argvlen) != REDIS_OK) return REDIS_ERR;
    int done = 0;
    do {
        if (redisBufferWrite(c, &done) == REDIS_ERR) return REDIS_ERR;
    } while (!done);
    return REDIS_OK;
}

/* hiredis reads the socket in chunks of up to 16 KiB, so after a reply its reader may hold
   bytes the server sent behind it. Whoever takes the stream over from c->fd must consume
   these first: this copies up to `capacity` of them into `out`, marks them consumed, and
   returns how many (0 when none are left). */
static inline size_t backstop_redis_take_buffered(redisContext *c, void *out, size_t capacity) {
    redisReader *r = c->reader;
    if (r == NULL || r->buf == NULL || r->len <= r->pos) return 0;
    size_t count = r->len - r->pos;
    if (count > capacity) count = capacity;
    memcpy(out, r->buf + r->pos, count);
    r->pos += count;
    return count;
}
#endif
