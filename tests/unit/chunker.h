/*
 * Feeding a pure parser its input in pieces: whole, byte by byte, split at
 * one point, or in random pieces. Shared by the proto and reply tests,
 * which must give the same verdicts whatever the chunking.
 */
#ifndef MCFAULT_TEST_CHUNKER_H
#define MCFAULT_TEST_CHUNKER_H

#include <stddef.h>
#include <stdint.h>

enum chunking { CH_WHOLE, CH_BYTES, CH_SPLIT, CH_RANDOM };

struct chunker {
    enum chunking kind;
    size_t split; /* CH_SPLIT: length of the first piece */
    size_t max;   /* CH_RANDOM: largest piece */
    uint64_t rng; /* CH_RANDOM: xorshift64 state */
    char desc[64];
};

static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 2685821657736338717ULL;
}

/* The length of the next piece of in[pos..len). */
static inline size_t chunk_next(struct chunker *ch, size_t pos, size_t len)
{
    size_t left = len - pos;
    size_t n;

    switch (ch->kind) {
    case CH_WHOLE:
        n = left;
        break;
    case CH_BYTES:
        n = 1;
        break;
    case CH_SPLIT:
        n = pos < ch->split ? ch->split - pos : left;
        break;
    default:
        n = 1 + (size_t)(rng_next(&ch->rng) % ch->max);
        break;
    }
    return n < left ? n : left;
}

#endif
