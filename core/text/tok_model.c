/* The in-memory tokenizer: vocabulary, merges, added tokens, accessors and the builder API. */
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/tok_internal.h"

gr_tokenizer *gr_tok_alloc(const char *source)
{
    gr_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->source = strdup(source ? source : "(tokenizer)");
    if (!t->source) { free(t); return NULL; }
    t->unk_id = t->bos_id = t->eos_id = t->pad_id = -1;
    for (int i = 0; i < 256; i++) t->byte_id[i] = -1;
    t->add_dummy_prefix = t->remove_extra_ws = t->escape_ws = 1;
    return t;
}

static void norm_free_all(gr_tokenizer *t)
{
    for (int i = 0; i < t->n_norms; i++) gr_norm_free(&t->norms[i]);
    free(t->norms);
    for (int i = 0; i < t->n_pres; i++) gr_pretok_free(&t->pres[i]);
    free(t->pres);
    for (int i = 0; i < t->n_decs; i++) { free(t->decs[i].a); free(t->decs[i].b); }
    free(t->decs);
}

void gr_tokenizer_free(gr_tokenizer *t)
{
    if (!t) return;
    for (int32_t i = 0; i < t->n_ids; i++) free(t->pieces[i].s);
    free(t->pieces);
    free(t->vocab.slot);
    free(t->merges);
    gr_pairmap_free(&t->merge_map);
    for (size_t i = 0; i < t->n_added; i++) free(t->added[i].s);
    free(t->added);
    free(t->added_order);
    norm_free_all(t);
    free(t->spm_name);
    free(t->source);
    free(t);
}

/* ---- vocabulary hash: open addressing over piece ids ---- */

static int strmap_rehash(gr_tokenizer *t, size_t cap)
{
    int32_t *slot = malloc(cap * sizeof *slot);
    if (!slot) return 0;
    for (size_t i = 0; i < cap; i++) slot[i] = -1;
    for (size_t i = 0; i < t->vocab.cap; i++) {
        int32_t id = t->vocab.slot[i];
        if (id < 0) continue;
        size_t j = gr_hash_bytes(t->pieces[id].s, t->pieces[id].len) & (cap - 1);
        while (slot[j] >= 0) j = (j + 1) & (cap - 1);
        slot[j] = id;
    }
    free(t->vocab.slot);
    t->vocab.slot = slot;
    t->vocab.cap = cap;
    return 1;
}

int32_t gr_tok_lookup(const gr_tokenizer *t, const char *s, size_t len)
{
    if (!t->vocab.cap) return -1;
    size_t j = gr_hash_bytes(s, len) & (t->vocab.cap - 1);
    for (;;) {
        int32_t id = t->vocab.slot[j];
        if (id < 0) return -1;
        const gr_piece *p = &t->pieces[id];
        if (p->len == len && memcmp(p->s, s, len) == 0) return id;
        j = (j + 1) & (t->vocab.cap - 1);
    }
}

static gr_status ensure_ids(gr_tokenizer *t, int32_t n)
{
    if (n <= t->cap_ids) return GR_OK;
    size_t cap = (size_t)t->cap_ids;
    gr_piece *p = gr_tok_grow(t->pieces, sizeof *p, (size_t)n, &cap);
    if (!p) return gr_fail(GR_ERR_NOMEM, "%s: out of memory for %d pieces", t->source, n);
    memset(p + t->cap_ids, 0, (cap - (size_t)t->cap_ids) * sizeof *p);
    t->pieces = p;
    t->cap_ids = (int32_t)cap;
    return GR_OK;
}

gr_status gr_tok_push_piece(gr_tokenizer *t, const char *s, size_t len, float score, int type, int32_t *id)
{
    if (len == 0) return gr_fail(GR_ERR_FORMAT, "%s: empty piece at id %d", t->source, t->n_model);
    if (len > 0xFFFFFF) return gr_fail(GR_ERR_FORMAT, "%s: piece %d is too long", t->source, t->n_model);
    if (gr_tok_lookup(t, s, len) >= 0)
        return gr_fail(GR_ERR_FORMAT, "%s: piece '%.*s' appears twice", t->source, (int)(len > 60 ? 60 : len), s);
    int32_t nid = t->n_model;
    if (nid < t->n_ids && t->pieces[nid].s)
        return gr_fail(GR_ERR_FORMAT, "%s: id %d is used twice", t->source, nid);
    gr_status st = ensure_ids(t, nid + 1);
    if (st) return st;
    if ((t->vocab.n + 1) * 2 > t->vocab.cap && !strmap_rehash(t, t->vocab.cap ? t->vocab.cap * 2 : 1024))
        return gr_fail(GR_ERR_NOMEM, "%s: out of memory", t->source);
    gr_piece *p = &t->pieces[nid];
    p->s = malloc(len + 1);
    if (!p->s) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", t->source);
    memcpy(p->s, s, len);
    p->s[len] = '\0';
    p->len = (uint32_t)len;
    p->score = score;
    p->type = (uint8_t)type;
    p->in_model = 1;
    p->special = type == GR_PIECE_CONTROL;
    size_t j = gr_hash_bytes(s, len) & (t->vocab.cap - 1);
    while (t->vocab.slot[j] >= 0) j = (j + 1) & (t->vocab.cap - 1);
    t->vocab.slot[j] = nid;
    t->vocab.n++;
    t->n_model = nid + 1;
    if (t->n_ids < t->n_model) t->n_ids = t->n_model;
    if (id) *id = nid;
    return GR_OK;
}

gr_status gr_tok_set_id(gr_tokenizer *t, int32_t id, const char *s, size_t len, int type)
{
    if (id < 0 || id > 0x7FFFFFF) return gr_fail(GR_ERR_FORMAT, "%s: token id %d out of range", t->source, id);
    gr_status st = ensure_ids(t, id + 1);
    if (st) return st;
    gr_piece *p = &t->pieces[id];
    if (p->s) {
        if (p->len != len || memcmp(p->s, s, len) != 0)
            return gr_fail(GR_ERR_FORMAT, "%s: id %d is both '%s' and '%.*s'", t->source, id, p->s,
                           (int)(len > 60 ? 60 : len), s);
        if (type == GR_PIECE_CONTROL) { p->type = GR_PIECE_CONTROL; p->special = 1; }
        return GR_OK;
    }
    p->s = malloc(len + 1);
    if (!p->s) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", t->source);
    memcpy(p->s, s, len);
    p->s[len] = '\0';
    p->len = (uint32_t)len;
    p->type = (uint8_t)type;
    p->special = type == GR_PIECE_CONTROL;
    if (t->n_ids <= id) t->n_ids = id + 1;
    return GR_OK;
}

gr_status gr_tok_add_added(gr_tokenizer *t, const char *s, size_t len, int32_t id, int special,
                           int lstrip, int rstrip, int single_word, int normalized)
{
    if (len == 0) return gr_fail(GR_ERR_FORMAT, "%s: added token %d has empty content", t->source, id);
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == len && memcmp(t->added[i].s, s, len) == 0) {
            if (t->added[i].id != id)
                return gr_fail(GR_ERR_FORMAT, "%s: added token '%.*s' has ids %d and %d", t->source,
                               (int)len, s, t->added[i].id, id);
            t->added[i].special |= (uint8_t)special;
            if (special && id < t->n_ids) t->pieces[id].special = 1;
            return GR_OK;
        }
    gr_status st = gr_tok_set_id(t, id, s, len, special ? GR_PIECE_CONTROL : GR_PIECE_USER_DEFINED);
    if (st) return st;
    if (special) t->pieces[id].special = 1;
    gr_added *a = gr_tok_grow(t->added, sizeof *a, t->n_added + 1, &t->cap_added);
    if (!a) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", t->source);
    t->added = a;
    gr_added *x = &t->added[t->n_added];
    memset(x, 0, sizeof *x);
    x->s = malloc(len + 1);
    if (!x->s) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", t->source);
    memcpy(x->s, s, len);
    x->s[len] = '\0';
    x->len = len;
    x->id = id;
    x->special = (uint8_t)special;
    x->lstrip = (uint8_t)lstrip;
    x->rstrip = (uint8_t)rstrip;
    x->single_word = (uint8_t)single_word;
    x->normalized = (uint8_t)normalized;
    t->n_added++;
    return GR_OK;
}

gr_status gr_tok_push_merge(gr_tokenizer *t, int32_t a, int32_t b)
{
    if (a < 0 || b < 0 || a >= t->n_model || b >= t->n_model)
        return gr_fail(GR_ERR_INVALID, "%s: merge %d: piece id out of range", t->source, t->n_merges);
    const gr_piece *pa = &t->pieces[a], *pb = &t->pieces[b];
    size_t n = (size_t)pa->len + pb->len;
    char stackbuf[256];
    char *cat = n <= sizeof stackbuf ? stackbuf : malloc(n);
    if (!cat) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", t->source);
    memcpy(cat, pa->s, pa->len);
    memcpy(cat + pa->len, pb->s, pb->len);
    int32_t m = gr_tok_lookup(t, cat, n);
    if (cat != stackbuf) free(cat);
    if (m < 0)
        return gr_fail(GR_ERR_FORMAT, "%s: merge %d ('%s' '%s'): the merged piece is not in the vocabulary",
                       t->source, t->n_merges + 1, pa->s, pb->s);
    size_t cap = (size_t)t->cap_merges;
    int32_t(*mg)[2] = gr_tok_grow(t->merges, sizeof *mg, (size_t)t->n_merges + 1, &cap);
    if (!mg) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", t->source);
    t->merges = mg;
    t->cap_merges = (int32_t)cap;
    t->merges[t->n_merges][0] = a;
    t->merges[t->n_merges][1] = b;
    if (gr_pairmap_put(&t->merge_map, a, b, t->n_merges, m) < 0)
        return gr_fail(GR_ERR_NOMEM, "%s: out of memory", t->source);
    t->n_merges++;
    return GR_OK;
}

gr_status gr_tok_finish(gr_tokenizer *t)
{
    t->min_score = DBL_MAX;
    t->max_score = -DBL_MAX;
    t->max_piece_len = 1;
    float fmin = FLT_MAX, fmax = FLT_MIN; /* SentencePiece's initial values (FLT_MIN > 0, sic) */
    for (int32_t i = 0; i < t->n_model; i++) {
        gr_piece *p = &t->pieces[i];
        if (!p->s) continue;
        if ((int32_t)p->len > t->max_piece_len) t->max_piece_len = (int32_t)p->len;
        if (t->spm && p->type == GR_PIECE_USER_DEFINED && (int32_t)p->len > t->max_ud_len) t->max_ud_len = (int32_t)p->len;
        int b = gr_byte_piece(p->s, p->len);
        if (b >= 0 && (!t->spm || p->type == GR_PIECE_BYTE)) t->byte_id[b] = i;
        if (t->spm) {
            if (p->type == GR_PIECE_NORMAL) {
                if (p->score < fmin) fmin = p->score;
                if (p->score > fmax) fmax = p->score;
            }
        } else {
            if (p->score < t->min_score) t->min_score = p->score;
            if (p->score > t->max_score) t->max_score = p->score;
        }
    }
    if (t->spm) { t->min_score = fmin; t->max_score = fmax; }
    if (t->n_model == 0) return gr_fail(GR_ERR_FORMAT, "%s: the vocabulary is empty", t->source);
    return GR_OK;
}

/* ---- accessors ---- */

int32_t gr_tokenizer_vocab_size(const gr_tokenizer *t) { return t->n_ids; }
int32_t gr_tokenizer_bos_id(const gr_tokenizer *t) { return t->bos_id; }
int32_t gr_tokenizer_eos_id(const gr_tokenizer *t) { return t->eos_id; }
int32_t gr_tokenizer_pad_id(const gr_tokenizer *t) { return t->pad_id; }
int32_t gr_tokenizer_unk_id(const gr_tokenizer *t) { return t->unk_id; }
const char *gr_tokenizer_describe(const gr_tokenizer *t) { return t->desc; }

const char *gr_tokenizer_piece(const gr_tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || id >= t->n_ids || !t->pieces[id].s) return NULL;
    if (len) *len = t->pieces[id].len;
    return t->pieces[id].s;
}

int32_t gr_tokenizer_piece_id(const gr_tokenizer *t, const char *s, size_t len)
{
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == len && memcmp(t->added[i].s, s, len) == 0) return t->added[i].id;
    return gr_tok_lookup(t, s, len);
}

gr_piece_type gr_tokenizer_piece_type(const gr_tokenizer *t, int32_t id)
{
    if (id < 0 || id >= t->n_ids || !t->pieces[id].s) return GR_PIECE_UNUSED;
    return (gr_piece_type)t->pieces[id].type;
}

int gr_tokenizer_is_special(const gr_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_ids && t->pieces[id].s && t->pieces[id].special;
}

/* ---- builder API ---- */

gr_status gr_tokenizer_new(gr_tok_model_kind kind, int byte_level, gr_tokenizer **out)
{
    if (kind != GR_TOK_BPE && kind != GR_TOK_UNIGRAM) return gr_fail(GR_ERR_INVALID, "tokenizer: unknown model kind %d", (int)kind);
    if (byte_level && kind != GR_TOK_BPE) return gr_fail(GR_ERR_INVALID, "tokenizer: byte-level needs a BPE model");
    gr_tokenizer *t = gr_tok_alloc("(new tokenizer)");
    if (!t) return gr_fail(GR_ERR_NOMEM, "tokenizer: out of memory");
    t->kind = kind;
    if (byte_level) {
        gr_status st = gr_tok_setup_gpt2_pipeline(t);
        if (st) { gr_tokenizer_free(t); return st; }
    } else {
        /* Metaspace pipeline: "▁" for spaces, prepended once; decoder undoes it. */
        /* Decoder: Llama's chain (Replace "▁" -> " ", ByteFallback, Fuse, Strip one leading
         * space), so <0xXX> pieces decode to their bytes in graft and in HF alike (a lone
         * Metaspace decoder would print them as "<0xXX>" text). */
        t->pres = calloc(1, sizeof *t->pres);
        t->decs = calloc(4, sizeof *t->decs);
        if (!t->pres || !t->decs) { gr_tokenizer_free(t); return gr_fail(GR_ERR_NOMEM, "tokenizer: out of memory"); }
        t->pres[0].kind = PRE_METASPACE;
        t->pres[0].repl = strdup("\xE2\x96\x81");
        t->pres[0].repl_len = 3;
        t->pres[0].prepend_scheme = PREPEND_ALWAYS;
        t->pres[0].split = 1;
        t->n_pres = 1;
        t->decs[0].kind = DEC_REPLACE;
        t->decs[0].a = strdup("\xE2\x96\x81");
        t->decs[0].alen = 3;
        t->decs[0].b = strdup(" ");
        t->decs[0].blen = 1;
        t->decs[1].kind = DEC_BYTEFALLBACK;
        t->decs[2].kind = DEC_FUSE;
        t->decs[3].kind = DEC_STRIP;
        t->decs[3].content = ' ';
        t->decs[3].start = 1;
        t->decs[3].stop = 0;
        t->n_decs = 4;
        if (!t->pres[0].repl || !t->decs[0].a || !t->decs[0].b) { gr_tokenizer_free(t); return gr_fail(GR_ERR_NOMEM, "tokenizer: out of memory"); }
        t->fuse_unk = kind == GR_TOK_UNIGRAM;
    }
    snprintf(t->desc, sizeof t->desc, "%s (built in memory)", kind == GR_TOK_BPE ? "BPE" : "Unigram");
    *out = t;
    return GR_OK;
}

gr_status gr_tokenizer_add_piece(gr_tokenizer *t, const char *piece, size_t len, float score,
                                 gr_piece_type type, int32_t *id)
{
    if (t->n_ids > t->n_model)
        return gr_fail(GR_ERR_INVALID, "%s: add pieces before special tokens beyond the vocabulary", t->source);
    int32_t nid;
    gr_status st = gr_tok_push_piece(t, piece, len, score, (int)type, &nid);
    if (st) return st;
    if (id) *id = nid;
    /* what gr_tok_finish computes, kept up to date piece by piece */
    if (t->n_model == 1) { t->min_score = t->max_score = score; t->max_piece_len = 1; }
    if (score < t->min_score) t->min_score = score;
    if (score > t->max_score) t->max_score = score;
    if ((int32_t)len > t->max_piece_len) t->max_piece_len = (int32_t)len;
    int b = gr_byte_piece(piece, len);
    if (b >= 0 && !t->byte_level) { t->byte_id[b] = nid; t->byte_fallback = 1; }
    return GR_OK;
}

gr_status gr_tokenizer_add_merge(gr_tokenizer *t, int32_t left, int32_t right)
{
    if (t->kind != GR_TOK_BPE) return gr_fail(GR_ERR_INVALID, "%s: merges need a BPE model", t->source);
    return gr_tok_push_merge(t, left, right);
}

gr_status gr_tokenizer_add_special(gr_tokenizer *t, const char *content, int32_t *id)
{
    size_t len = strlen(content);
    int32_t i = gr_tok_lookup(t, content, len);
    if (i < 0) i = t->n_ids;
    gr_status st = gr_tok_add_added(t, content, len, i, 1, 0, 0, 0, 0);
    if (st) return st;
    if (i < t->n_model) t->pieces[i].type = GR_PIECE_CONTROL;
    if (id) *id = i;
    return gr_tok_index_added(t);
}

gr_status gr_tokenizer_set_specials(gr_tokenizer *t, int32_t bos, int32_t eos, int32_t pad,
                                    int32_t unk, int add_bos, int add_eos)
{
    int32_t ids[4] = {bos, eos, pad, unk};
    for (int i = 0; i < 4; i++)
        if (ids[i] < -1 || ids[i] >= t->n_ids || (ids[i] >= 0 && !t->pieces[ids[i]].s))
            return gr_fail(GR_ERR_INVALID, "%s: special token id %d is not in the vocabulary", t->source, ids[i]);
    if ((add_bos && bos < 0) || (add_eos && eos < 0))
        return gr_fail(GR_ERR_INVALID, "%s: cannot add a BOS/EOS the tokenizer does not have", t->source);
    t->bos_id = bos;
    t->eos_id = eos;
    t->pad_id = pad;
    t->unk_id = unk;
    if (unk >= 0 && t->pieces[unk].type == GR_PIECE_NORMAL) t->pieces[unk].type = GR_PIECE_UNKNOWN;
    t->n_prefix = t->n_suffix = 0;
    if (add_bos) t->prefix[t->n_prefix++] = bos;
    if (add_eos) t->suffix[t->n_suffix++] = eos;
    return GR_OK;
}
