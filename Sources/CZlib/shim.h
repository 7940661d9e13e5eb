#ifndef BACKSTOP_CZLIB_SHIM_H
#define BACKSTOP_CZLIB_SHIM_H
#include <zlib.h>

/* deflateInit2 and inflateInit2 are macros that pass the library version and
   the stream size; Swift cannot call macros, so these wrappers do. */
static inline int backstop_deflateInit2(z_streamp strm, int level, int method, int windowBits, int memLevel, int strategy) {
    return deflateInit2(strm, level, method, windowBits, memLevel, strategy);
}
static inline int backstop_inflateInit2(z_streamp strm, int windowBits) {
    return inflateInit2(strm, windowBits);
}
#endif
