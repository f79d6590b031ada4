/* Encoding: added tokens are cut out of the raw text first (leftmost-longest), each remaining
 * segment is normalized, pre-tokenized and run through the model; then BOS/EOS are added. */
#include <stdlib.h>
#include <string.h>

#include "text/tok_internal.h"

static int is_space_at(const char *s, size_t n, size_t i, size_t *clen)
{
    uint32_t cp;
    int k = gr_utf8_decode((const unsigned char *)s + i, n - i, &cp);
    *clen = k ? (size_t)k : 1;
    return k && gr_unicode_is_space(cp);
}

static int is_word_char_before(const char *s, size_t i)
{
    if (i == 0) return 0;
    size_t st = i - 1;
    while (st > 0 && ((unsigned char)s[st] & 0xC0) == 0x80) st--;
    uint32_t cp;
    int k = gr_utf8_decode((const unsigned char *)s + st, i - st, &cp);
    /* HF single_word: a boundary is anything that is not alphanumeric or '_' (approximated
     * with ASCII and non-space non-ASCII characters counting as word characters) */
    if (!k) return 0;
    if (cp < 128) return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
    return !gr_unicode_is_space(cp);
}

static int is_word_char_at(const char *s, size_t n, size_t i)
{
    if (i >= n) return 0;
    uint32_t cp;
    int k = gr_utf8_decode((const unsigned char *)s + i, n - i, &cp);
    if (!k) return 0;
    if (cp < 128) return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
    return !gr_unicode_is_space(cp);
}

/* Finds the leftmost-longest added token (with `normalized` flag == want_norm) at or after
 * `from`; the match [*ms, *me) includes whitespace taken by lstrip / rstrip. */
static int find_added(const gr_tokenizer *t, const char *s, size_t n, size_t from, int want_norm,
                      size_t *ms, size_t *me, int32_t *id)
{
    if (t->n_added == 0) return 0;
    for (size_t i = from; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const gr_added *best = NULL;
        for (uint32_t k = t->added_first[c]; k < t->added_first[c + 1]; k++) {
            const gr_added *a = &t->added[t->added_order[k]];
            if (a->normalized != want_norm || a->len > n - i || memcmp(s + i, a->s, a->len) != 0) continue;
            best = a; /* sorted longest first */
            break;
        }
        if (!best) continue;
        size_t a0 = i, a1 = i + best->len;
        if (best->single_word && (is_word_char_before(s, a0) || is_word_char_at(s, n, a1))) { i = a1 - 1; continue; }
        if (best->lstrip)
            while (a0 > from) {
                size_t st = a0 - 1;
                while (st > from && ((unsigned char)s[st] & 0xC0) == 0x80) st--;
                size_t cl;
                if (!is_space_at(s, n, st, &cl) || st + cl != a0) break;
                a0 = st;
            }
        if (best->rstrip) {
            size_t cl;
            while (a1 < n && is_space_at(s, n, a1, &cl)) a1 += cl;
        }
        *ms = a0;
        *me = a1;
        *id = best->id;
        return 1;
    }
    return 0;
}

typedef struct enc { int32_t *ids; size_t n, cap; } enc;

static gr_status push_id(enc *e, int32_t id)
{
    int32_t *v = gr_tok_grow(e->ids, sizeof *v, e->n + 1, &e->cap);
    if (!v) return gr_fail(GR_ERR_NOMEM, "out of memory");
    e->ids = v;
    v[e->n++] = id;
    return GR_OK;
}

/* Model output -> ids. Unknown pieces: consecutive ones fuse into one <unk>, or with byte
 * fallback become their UTF-8 bytes (SentencePiece's processor; HF Unigram). */
static gr_status emit_spans(const gr_tokenizer *t, const char *s, const gr_spans *sp, enc *e)
{
    gr_status st = GR_OK;
    for (size_t i = 0; i < sp->n && !st; i++) {
        const gr_span *x = &sp->v[i];
        if (x->id != t->unk_id || t->unk_id < 0 || (t->kind == GR_TOK_BPE && !t->spm)) { st = push_id(e, x->id); continue; }
        size_t j = i;
        while (j + 1 < sp->n && sp->v[j + 1].id == t->unk_id) j++;
        if (t->byte_fallback) {
            for (size_t k = i; k <= j && !st; k++)
                for (uint32_t b = 0; b < sp->v[k].len && !st; b++) {
                    int32_t bid = t->byte_id[(unsigned char)s[sp->v[k].off + b]];
                    st = push_id(e, bid >= 0 ? bid : t->unk_id);
                }
        } else {
            st = push_id(e, t->unk_id);
        }
        i = j;
    }
    return st;
}

static gr_status model_encode(const gr_tokenizer *t, const char *s, size_t n, gr_spans *sp)
{
    if (t->kind == GR_TOK_UNIGRAM) return gr_unigram_encode(t, s, n, sp);
    if (t->spm) return gr_spm_bpe_encode(t, s, n, sp);
    return gr_bpe_encode_word(t, s, n, sp);
}

/* Pre-tokenizes one normalized piece of text and runs the model on every word. */
static gr_status encode_normalized(const gr_tokenizer *t, const char *s, size_t n, int first, enc *e)
{
    gr_status st = GR_OK;
    gr_spans sp = {0};
    if (t->n_pres == 0) {
        st = model_encode(t, s, n, &sp);
        if (!st) st = emit_spans(t, s, &sp, e);
        free(sp.v);
        return st;
    }
    gr_strlist a = {0}, b = {0};
    gr_strlist_push(&a, s, n);
    for (int i = 0; i < t->n_pres && !st; i++) {
        gr_strlist_clear(&b);
        st = gr_pretok_apply(&t->pres[i], &a, &b, first);
        gr_strlist tmp = a; a = b; b = tmp;
    }
    if (!st && a.oom) st = gr_fail(GR_ERR_NOMEM, "out of memory");
    for (size_t w = 0; w < a.n && !st; w++) {
        size_t wl;
        const char *ws = gr_strlist_at(&a, w, &wl);
        sp.n = 0;
        st = model_encode(t, ws, wl, &sp);
        if (!st) st = emit_spans(t, ws, &sp, e);
    }
    free(sp.v);
    gr_strlist_free(&a);
    gr_strlist_free(&b);
    return st;
}

static gr_status encode_segment(const gr_tokenizer *t, const char *s, size_t n, int first, enc *e)
{
    if (n == 0) return GR_OK;
    if (t->n_norms == 0) return encode_normalized(t, s, n, first, e);
    gr_buf a = {0}, b = {0};
    gr_status st = GR_OK;
    const char *cur = s;
    size_t cur_len = n;
    for (int i = 0; i < t->n_norms && !st; i++) {
        b.len = 0;
        st = gr_norm_apply(t, &t->norms[i], cur, cur_len, &b);
        if (!st && b.oom) st = gr_fail(GR_ERR_NOMEM, "out of memory");
        gr_buf tmp = a; a = b; b = tmp;
        cur = a.p ? a.p : "";
        cur_len = a.len;
    }
    /* added tokens flagged `normalized` are matched in the normalized text */
    size_t pos = 0, ms, me;
    int32_t id;
    while (!st && pos < cur_len && find_added(t, cur, cur_len, pos, 1, &ms, &me, &id)) {
        st = encode_normalized(t, cur + pos, ms - pos, first && pos == 0, e);
        if (!st) st = push_id(e, id);
        pos = me;
    }
    if (!st && pos < cur_len) st = encode_normalized(t, cur + pos, cur_len - pos, first && pos == 0, e);
    gr_buf_free(&a);
    gr_buf_free(&b);
    return st;
}

gr_status gr_tokenizer_encode(const gr_tokenizer *t, const char *text, size_t len, unsigned flags,
                              int32_t **ids, size_t *n_ids)
{
    *ids = NULL;
    *n_ids = 0;
    if (!t->spm && !gr_utf8_valid(text, len))
        return gr_fail(GR_ERR_INVALID, "%s: the text to encode is not valid UTF-8", t->source);
    enc e = {0};
    gr_status st = GR_OK;
    if (flags & GR_ENCODE_ADD_SPECIAL)
        for (int i = 0; i < t->n_prefix && !st; i++) st = push_id(&e, t->prefix[i]);
    size_t pos = 0, ms, me;
    int32_t id;
    while (!st && pos < len && find_added(t, text, len, pos, 0, &ms, &me, &id)) {
        st = encode_segment(t, text + pos, ms - pos, pos == 0, &e);
        if (!st) st = push_id(&e, id);
        pos = me;
    }
    if (!st && pos < len) st = encode_segment(t, text + pos, len - pos, pos == 0, &e);
    if (flags & GR_ENCODE_ADD_SPECIAL)
        for (int i = 0; i < t->n_suffix && !st; i++) st = push_id(&e, t->suffix[i]);
    if (st) { free(e.ids); return st; }
    *ids = e.ids;
    *n_ids = e.n;
    return GR_OK;
}

static int cmp_added(const void *pa, const void *pb, void *ctx)
{
    const gr_tokenizer *t = ctx;
    const gr_added *a = &t->added[*(const uint32_t *)pa], *b = &t->added[*(const uint32_t *)pb];
    unsigned ca = (unsigned char)a->s[0], cb = (unsigned char)b->s[0];
    if (ca != cb) return ca < cb ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return 0;
}

gr_status gr_tok_index_added(gr_tokenizer *t)
{
    free(t->added_order);
    t->added_order = malloc((t->n_added + 1) * sizeof *t->added_order);
    if (!t->added_order) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", t->source);
    for (size_t i = 0; i < t->n_added; i++) t->added_order[i] = (uint32_t)i;
    qsort_r(t->added_order, t->n_added, sizeof *t->added_order, cmp_added, t);
    memset(t->added_first, 0, sizeof t->added_first);
    for (size_t i = 0; i < t->n_added; i++) t->added_first[(unsigned char)t->added[t->added_order[i]].s[0] + 1]++;
    for (int c = 0; c < 256; c++) t->added_first[c + 1] += t->added_first[c];
    return GR_OK;
}
