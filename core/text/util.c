/* Buffers, string lists, UTF-8 and the merge-pair hash map used by the tokenizers. */
#include <stdlib.h>
#include <string.h>

#include "text/tok_internal.h"

void *gr_tok_grow(void *p, size_t elem, size_t need, size_t *cap)
{
    if (need <= *cap) return p;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *q = realloc(p, c * elem);
    if (!q) return NULL;
    *cap = c;
    return q;
}

void gr_buf_put(gr_buf *b, const void *data, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 64;
        while (c < b->len + n + 1) c *= 2;
        char *p = realloc(b->p, c);
        if (!p) { b->oom = 1; return; }
        b->p = p;
        b->cap = c;
    }
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void gr_buf_puts(gr_buf *b, const char *s) { gr_buf_put(b, s, strlen(s)); }
void gr_buf_free(gr_buf *b) { free(b->p); memset(b, 0, sizeof *b); }

void gr_strlist_push(gr_strlist *l, const char *s, size_t len)
{
    if (l->oom) return;
    if (l->n + 2 > l->cap) {
        size_t c = l->cap ? l->cap * 2 : 16;
        size_t *o = realloc(l->off, c * sizeof *o);
        if (!o) { l->oom = 1; return; }
        l->off = o;
        l->cap = c;
    }
    if (l->n == 0) l->off[0] = 0;
    gr_buf_put(&l->buf, s, len);
    if (l->buf.oom) { l->oom = 1; return; }
    l->n++;
    l->off[l->n] = l->buf.len;
}

void gr_strlist_clear(gr_strlist *l) { l->n = 0; l->buf.len = 0; }
void gr_strlist_free(gr_strlist *l) { gr_buf_free(&l->buf); free(l->off); memset(l, 0, sizeof *l); }

/* ---- UTF-8 ---- */

int gr_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (n == 0) return 0;
    unsigned c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    if (c < 0xC2 || c > 0xF4) return 0;
    if (c < 0xE0) {
        if (n < 2 || (s[1] & 0xC0) != 0x80) return 0;
        *cp = ((c & 0x1Fu) << 6) | (s[1] & 0x3Fu);
        return 2;
    }
    if (c < 0xF0) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        uint32_t v = ((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
        if (v < 0x800 || (v >= 0xD800 && v <= 0xDFFF)) return 0;
        *cp = v;
        return 3;
    }
    if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
    uint32_t v = ((c & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
    if (v < 0x10000 || v > 0x10FFFF) return 0;
    *cp = v;
    return 4;
}

int gr_utf8_lead_len(unsigned char c)
{
    /* SentencePiece's table: "0xxx" 1, "10xx" 1, "110x" 2, "1110" 3, "11110" 4 (by high nibble). */
    static const int len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return len[c >> 4];
}

int gr_utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

int gr_utf8_valid(const char *s, size_t n)
{
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        int k = gr_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (!k) return 0;
        i += (size_t)k;
    }
    return 1;
}

/* Length of the maximal prefix of an ill-formed sequence that could start a well-formed one
 * (Unicode "maximal subpart"); at least 1. */
static size_t maximal_subpart(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    int need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c >= 0xE0 && c <= 0xEF) { need = 2; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 3; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return 1;
    size_t k = 1;
    for (int i = 0; i < need && k < n; i++, k++) {
        unsigned d = s[k];
        if (d < lo || d > hi) break;
        lo = 0x80;
        hi = 0xBF;
    }
    return k;
}

void gr_utf8_append_lossy(gr_buf *out, const char *s, size_t n, int per_byte)
{
    const unsigned char *u = (const unsigned char *)s;
    uint32_t cp;
    size_t i = 0, run = 0;
    while (i < n) {
        int k = gr_utf8_decode(u + i, n - i, &cp);
        if (k) { i += (size_t)k; continue; }
        gr_buf_put(out, s + run, i - run);
        gr_buf_put(out, "\xEF\xBF\xBD", 3);
        i += per_byte ? 1 : maximal_subpart(u + i, n - i);
        run = i;
    }
    gr_buf_put(out, s + run, n - run);
}

int gr_unicode_is_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* ---- hashing ---- */

uint64_t gr_hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }

static int pairmap_rehash(gr_pairmap *m, size_t cap)
{
    uint64_t *key = malloc(cap * sizeof *key);
    int32_t *rank = malloc(cap * sizeof *rank), *merged = malloc(cap * sizeof *merged);
    if (!key || !rank || !merged) { free(key); free(rank); free(merged); return 0; }
    for (size_t i = 0; i < cap; i++) key[i] = UINT64_MAX;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->key[i] == UINT64_MAX) continue;
        size_t j = mix64(m->key[i]) & (cap - 1);
        while (key[j] != UINT64_MAX) j = (j + 1) & (cap - 1);
        key[j] = m->key[i];
        rank[j] = m->rank[i];
        merged[j] = m->merged[i];
    }
    free(m->key); free(m->rank); free(m->merged);
    m->key = key; m->rank = rank; m->merged = merged; m->cap = cap;
    return 1;
}

int gr_pairmap_put(gr_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t merged)
{
    if ((m->n + 1) * 2 > m->cap && !pairmap_rehash(m, m->cap ? m->cap * 2 : 1024)) return -1;
    uint64_t k = pair_key(a, b);
    size_t j = mix64(k) & (m->cap - 1);
    while (m->key[j] != UINT64_MAX) {
        if (m->key[j] == k) { /* a repeated merge: the later line wins, as in HF and encoder.py */
            m->rank[j] = rank;
            m->merged[j] = merged;
            return 0;
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->key[j] = k;
    m->rank[j] = rank;
    m->merged[j] = merged;
    m->n++;
    return 1;
}

int gr_pairmap_get(const gr_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *merged)
{
    if (!m->cap) return 0;
    uint64_t k = pair_key(a, b);
    size_t j = mix64(k) & (m->cap - 1);
    while (m->key[j] != UINT64_MAX) {
        if (m->key[j] == k) { *rank = m->rank[j]; *merged = m->merged[j]; return 1; }
        j = (j + 1) & (m->cap - 1);
    }
    return 0;
}

void gr_pairmap_free(gr_pairmap *m)
{
    free(m->key); free(m->rank); free(m->merged);
    memset(m, 0, sizeof *m);
}
