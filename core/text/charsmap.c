/* SentencePiece's precompiled charsmap: the normalization rules (NFKC plus NMT fixes for
 * nmt_nfkc) compiled into a darts-clone double-array trie over UTF-8 byte strings, whose leaf
 * values are offsets into a block of NUL-terminated replacement strings.
 *
 * Blob layout: uint32 little-endian trie size in bytes, the trie (uint32 units), then the
 * replacement strings. A unit packs: bits 0-7 label (bit 31 set on value units), bit 8 "has a
 * leaf", bit 9 offset scale (<<8), bits 10-30 offset. Every index is bounds-checked: the blob
 * comes from an untrusted file. */
#include <stdlib.h>
#include <string.h>

#include "text/tok_internal.h"

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

gr_status gr_charsmap_init(gr_charsmap *cm, const char *blob, size_t len, const char *what)
{
    memset(cm, 0, sizeof *cm);
    if (len <= 4) return gr_fail(GR_ERR_FORMAT, "%s: precompiled_charsmap is truncated (%zu bytes)", what, len);
    uint32_t tsize = rd32((const unsigned char *)blob);
    if (tsize >= len - 4 + 1 || tsize % 4 != 0 || tsize == 0)
        return gr_fail(GR_ERR_FORMAT, "%s: precompiled_charsmap trie size %u does not fit its %zu bytes",
                       what, tsize, len);
    cm->n_units = tsize / 4;
    cm->units = malloc(tsize);
    cm->norm_len = len - 4 - tsize;
    cm->norm = malloc(cm->norm_len + 1);
    cm->blob = malloc(len);
    if (!cm->units || !cm->norm || !cm->blob) {
        gr_charsmap_free(cm);
        return gr_fail(GR_ERR_NOMEM, "%s: out of memory", what);
    }
    for (size_t i = 0; i < cm->n_units; i++) cm->units[i] = rd32((const unsigned char *)blob + 4 + 4 * i);
    memcpy(cm->norm, blob + 4 + tsize, cm->norm_len);
    cm->norm[cm->norm_len] = '\0'; /* a last string without its NUL still ends */
    memcpy(cm->blob, blob, len);
    cm->blob_len = len;
    return GR_OK;
}

void gr_charsmap_free(gr_charsmap *cm)
{
    free(cm->units);
    free(cm->norm);
    free(cm->blob);
    memset(cm, 0, sizeof *cm);
}

static inline uint32_t u_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }
static inline uint32_t u_label(uint32_t u) { return u & ((1u << 31) | 0xFFu); }
static inline int u_has_leaf(uint32_t u) { return (u >> 8) & 1; }
static inline uint32_t u_value(uint32_t u) { return u & ((1u << 31) - 1); }

/* darts-clone commonPrefixSearch, keeping the longest hit (SentencePiece's NormalizePrefix
 * takes the longest of at most 32 results; more than 32 prefixes of one string cannot occur
 * with UTF-8 characters of <= 4 bytes and rules of sane length, and we scan them all). */
size_t gr_charsmap_match(const gr_charsmap *cm, const char *s, size_t n, const char **rep)
{
    if (!cm->units) return 0;
    size_t best = 0;
    uint32_t best_val = 0;
    size_t pos = 0;
    uint32_t unit = cm->units[0];
    pos ^= u_offset(unit);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        pos ^= c;
        if (pos >= cm->n_units) break;
        unit = cm->units[pos];
        if (u_label(unit) != c) break;
        pos ^= u_offset(unit);
        if (pos >= cm->n_units) break;
        if (u_has_leaf(unit)) {
            best = i + 1;
            best_val = u_value(cm->units[pos]);
        }
    }
    if (best == 0) return 0;
    if (best_val >= cm->norm_len) return 0; /* corrupt value: treat as no rule */
    *rep = cm->norm + best_val;
    return best;
}
