/* Token pairs for the word-embedding converter: by position and by identical strings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transfer/pairs.h"

/* ---- growable pair list ----------------------------------------------------------------- */

typedef struct pair_list {
    int32_t *src, *tgt;
    int64_t n, cap;
    int64_t *offsets;
    int64_t n_groups, groups_cap;
} pair_list;

static int list_push(pair_list *l, int32_t s, int32_t t)
{
    if (l->n == l->cap) {
        int64_t cap = l->cap ? 2 * l->cap : 1024;
        int32_t *a = realloc(l->src, sizeof(int32_t) * (size_t)cap);
        if (!a) return 0;
        l->src = a;
        int32_t *b = realloc(l->tgt, sizeof(int32_t) * (size_t)cap);
        if (!b) return 0;
        l->tgt = b;
        l->cap = cap;
    }
    l->src[l->n] = s;
    l->tgt[l->n] = t;
    l->n++;
    return 1;
}

/* Closes the current group (offsets[n_groups + 1] = n). offsets[0] = 0 is set up front. */
static int list_close_group(pair_list *l)
{
    if (l->n_groups + 2 > l->groups_cap) {
        int64_t cap = l->groups_cap ? 2 * l->groups_cap : 256;
        int64_t *o = realloc(l->offsets, sizeof(int64_t) * (size_t)cap);
        if (!o) return 0;
        l->offsets = o;
        l->groups_cap = cap;
    }
    if (l->n_groups == 0) l->offsets[0] = 0;
    l->offsets[++l->n_groups] = l->n;
    return 1;
}

/* ---- an open-addressing set of (src, tgt) pairs ------------------------------------------ */

typedef struct u64_set {
    uint64_t *keys; /* key + 1; 0 = empty */
    size_t cap, n;
} u64_set;

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static uint64_t pair_key(int32_t s, int32_t t) { return ((uint64_t)(uint32_t)s << 32) | (uint32_t)t; }

/* Returns 1 when inserted, 0 when already present, -1 when out of memory. */
static int set_add(u64_set *st, uint64_t key)
{
    if (2 * (st->n + 1) > st->cap) {
        size_t cap = st->cap ? 2 * st->cap : 1024;
        uint64_t *k = calloc(cap, sizeof *k);
        if (!k) return -1;
        for (size_t i = 0; i < st->cap; i++)
            if (st->keys[i]) {
                size_t j = mix64(st->keys[i] - 1) & (cap - 1);
                while (k[j]) j = (j + 1) & (cap - 1);
                k[j] = st->keys[i];
            }
        free(st->keys);
        st->keys = k;
        st->cap = cap;
    }
    size_t j = mix64(key) & (st->cap - 1);
    while (st->keys[j]) {
        if (st->keys[j] == key + 1) return 0;
        j = (j + 1) & (st->cap - 1);
    }
    st->keys[j] = key + 1;
    st->n++;
    return 1;
}

static int set_has(const u64_set *st, uint64_t key)
{
    if (!st->cap) return 0;
    size_t j = mix64(key) & (st->cap - 1);
    while (st->keys[j]) {
        if (st->keys[j] == key + 1) return 1;
        j = (j + 1) & (st->cap - 1);
    }
    return 0;
}

/* ---- stripping --------------------------------------------------------------------------- */

/* A token the original pairing drops: special tokens (OPT's BOS, T5's </s>) and a lone
 * metaspace marker (T5's "▁" = id 3). */
static int stripped(const gr_tokenizer *tok, int32_t id)
{
    if (gr_tokenizer_is_special(tok, id)) return 1;
    size_t len = 0;
    const char *p = gr_tokenizer_piece(tok, id, &len);
    return p && len == 3 && memcmp(p, "\xe2\x96\x81", 3) == 0;
}

static gr_status encode_stripped(const gr_tokenizer *tok, const char *text, int32_t **ids, size_t *n)
{
    gr_status s = gr_tokenizer_encode(tok, text, strlen(text), 0, ids, n);
    if (s != GR_OK) return s;
    size_t k = 0;
    for (size_t i = 0; i < *n; i++)
        if (!stripped(tok, (*ids)[i])) (*ids)[k++] = (*ids)[i];
    *n = k;
    return GR_OK;
}

/* ---- the two sources --------------------------------------------------------------------- */

static gr_status by_position(const gr_tokenizer *src, const gr_tokenizer *tgt, const char *const *captions,
                             int64_t n_captions, pair_list *l, u64_set *seen, gr_pair_stats *st)
{
    for (int64_t c = 0; c < n_captions; c++) {
        int32_t *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        gr_status s = encode_stripped(src, captions[c], &a, &na);
        if (s == GR_OK) s = encode_stripped(tgt, captions[c], &b, &nb);
        if (s != GR_OK) {
            free(a);
            free(b);
            return gr_fail_context(s, "token pairs: caption %lld", (long long)c);
        }
        st->captions++;
        int ok = 1;
        if (na == nb && na > 0) {
            st->captions_matched++;
            for (size_t i = 0; i < na && ok; i++) {
                ok = list_push(l, a[i], b[i]);
                if (ok) {
                    int r = set_add(seen, pair_key(a[i], b[i]));
                    if (r < 0) ok = 0;
                    st->position_distinct += r > 0;
                }
            }
            if (ok) ok = list_close_group(l);
            st->position_pairs += (int64_t)na;
        }
        free(a);
        free(b);
        if (!ok) return gr_fail(GR_ERR_NOMEM, "token pairs: out of memory");
    }
    return GR_OK;
}

/* Decoded bytes -> id of the source vocabulary (first id wins on duplicates). */
typedef struct bytes_map {
    struct { char *bytes; size_t len; int32_t id; } *slot;
    size_t cap;
} bytes_map;

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return h;
}

static void map_free(bytes_map *m)
{
    for (size_t i = 0; i < m->cap; i++) free(m->slot[i].bytes);
    free(m->slot);
}

/* Takes ownership of `bytes`. */
static void map_put(bytes_map *m, char *bytes, size_t len, int32_t id)
{
    size_t j = hash_bytes(bytes, len) & (m->cap - 1);
    while (m->slot[j].bytes) {
        if (m->slot[j].len == len && memcmp(m->slot[j].bytes, bytes, len) == 0) { free(bytes); return; }
        j = (j + 1) & (m->cap - 1);
    }
    m->slot[j].bytes = bytes;
    m->slot[j].len = len;
    m->slot[j].id = id;
}

static int32_t map_get(const bytes_map *m, const char *bytes, size_t len)
{
    size_t j = hash_bytes(bytes, len) & (m->cap - 1);
    while (m->slot[j].bytes) {
        if (m->slot[j].len == len && memcmp(m->slot[j].bytes, bytes, len) == 0) return m->slot[j].id;
        j = (j + 1) & (m->cap - 1);
    }
    return -1;
}

/* A vocabulary entry that can stand for running text: a used, non-special, non-unknown piece. */
static int usable(const gr_tokenizer *tok, int32_t id)
{
    if (!gr_tokenizer_piece(tok, id, NULL) || gr_tokenizer_is_special(tok, id)) return 0;
    gr_piece_type t = gr_tokenizer_piece_type(tok, id);
    return t != GR_PIECE_UNKNOWN && t != GR_PIECE_CONTROL && t != GR_PIECE_UNUSED;
}

static gr_status by_string(const gr_tokenizer *src, const gr_tokenizer *tgt, pair_list *l,
                           const u64_set *seen, gr_pair_stats *st)
{
    int32_t ns = gr_tokenizer_vocab_size(src), nt = gr_tokenizer_vocab_size(tgt);
    bytes_map m = {0};
    m.cap = 1;
    while (m.cap < 2 * (size_t)(ns > 0 ? ns : 1)) m.cap <<= 1;
    m.slot = calloc(m.cap, sizeof *m.slot);
    if (!m.slot) return gr_fail(GR_ERR_NOMEM, "token pairs: out of memory");
    gr_status s = GR_OK;
    for (int32_t id = 0; id < ns && s == GR_OK; id++) {
        if (!usable(src, id)) continue;
        char *b = NULL;
        size_t n = 0;
        s = gr_tokenizer_token_bytes(src, id, &b, &n);
        if (s == GR_OK && n > 0) map_put(&m, b, n, id);
        else free(b);
    }
    for (int32_t id = 0; id < nt && s == GR_OK; id++) {
        if (!usable(tgt, id)) continue;
        char *b = NULL;
        size_t n = 0;
        s = gr_tokenizer_token_bytes(tgt, id, &b, &n);
        int32_t sid = s == GR_OK && n > 0 ? map_get(&m, b, n) : -1;
        free(b);
        if (sid < 0) continue;
        if (!list_push(l, sid, id) || !list_close_group(l)) s = gr_fail(GR_ERR_NOMEM, "token pairs: out of memory");
        st->string_pairs++;
        st->string_in_position += set_has(seen, pair_key(sid, id));
    }
    map_free(&m);
    return s;
}

/* ---- public ------------------------------------------------------------------------------ */

gr_status gr_pairs_parse_sources(const char *text, const char *what, unsigned *sources)
{
    if (text && strcmp(text, "position") == 0) *sources = GR_PAIRS_POSITION;
    else if (text && strcmp(text, "string") == 0) *sources = GR_PAIRS_STRING;
    else if (text && strcmp(text, "union") == 0) *sources = GR_PAIRS_UNION;
    else return gr_fail(GR_ERR_INVALID, "%s: \"%s\" is not a pair source (position, string or union)", what,
                        text ? text : "");
    return GR_OK;
}

gr_status gr_pairs_build(const gr_tokenizer *src, const gr_tokenizer *tgt, const char *const *captions,
                         int64_t n_captions, unsigned sources, gr_pair_set *out)
{
    memset(out, 0, sizeof *out);
    if (!(sources & GR_PAIRS_UNION) || (sources & ~(unsigned)GR_PAIRS_UNION))
        return gr_fail(GR_ERR_INVALID, "token pairs: no pair source chosen");
    pair_list l = {0};
    u64_set seen = {0};
    gr_status s = GR_OK;
    if (sources & GR_PAIRS_POSITION) {
        if (!captions && n_captions > 0) return gr_fail(GR_ERR_INVALID, "token pairs: captions missing");
        s = by_position(src, tgt, captions, n_captions, &l, &seen, &out->stats);
    }
    if (s == GR_OK && (sources & GR_PAIRS_STRING)) s = by_string(src, tgt, &l, &seen, &out->stats);
    free(seen.keys);
    if (s == GR_OK && l.n == 0)
        s = gr_fail(GR_ERR_INVALID, "token pairs: no pairs (%lld captions, none with matching token counts%s)",
                    (long long)out->stats.captions,
                    (sources & GR_PAIRS_STRING) ? ", no identical vocabulary strings" : "");
    if (s != GR_OK) {
        free(l.src); free(l.tgt); free(l.offsets);
        return s;
    }
    out->src = l.src;
    out->tgt = l.tgt;
    out->offsets = l.offsets;
    out->n_groups = l.n_groups;
    return GR_OK;
}

void gr_pair_set_free(gr_pair_set *p)
{
    if (!p) return;
    free(p->src);
    free(p->tgt);
    free(p->offsets);
    memset(p, 0, sizeof *p);
}

gr_token_pairs gr_pair_set_view(const gr_pair_set *p)
{
    gr_token_pairs v = {p->src, p->tgt, p->offsets, p->n_groups};
    return v;
}

void gr_pair_stats_format(const gr_pair_stats *s, unsigned sources, char *buf, size_t cap)
{
    int n = 0;
    buf[0] = 0;
    if (sources & GR_PAIRS_POSITION)
        n = snprintf(buf, cap, "position %lld/%lld captions, %lld pairs (%lld distinct)",
                     (long long)s->captions_matched, (long long)s->captions, (long long)s->position_pairs,
                     (long long)s->position_distinct);
    if ((sources & GR_PAIRS_STRING) && n >= 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, "%sstring %lld pairs (%lld also by position)", n ? "; " : "",
                 (long long)s->string_pairs, (long long)s->string_in_position);
}
