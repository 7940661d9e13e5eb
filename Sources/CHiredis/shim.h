#ifndef BACKSTOP_CHIREDIS_SHIM_H
#define BACKSTOP_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
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
#endif
