/* mix.h — the project's one 64-bit integer mixer (internal): the splitmix64
 * finaliser, a bijection that spreads every input bit over the output. Used
 * to derive dropout keys, data-mixing draws and the data tools' hashes from a
 * seed; header-only (static inline) so each caller compiles it in place. */
#ifndef TUNA_CORE_MIX_H
#define TUNA_CORE_MIX_H
#include <stdint.h>

/* the finaliser alone (MurmurHash3-style constants from splitmix64) */
static inline uint64_t core_mix64(uint64_t x) {
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* splitmix64's output step: the golden-ratio increment, then the finaliser */
static inline uint64_t core_splitmix64(uint64_t x) {
    return core_mix64(x + 0x9e3779b97f4a7c15ULL);
}
#endif
