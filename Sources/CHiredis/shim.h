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
#endif
