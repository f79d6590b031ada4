/* BPE encoding: Hugging Face's (merge ranks) and SentencePiece's (piece scores). */
#include <stdlib.h>
#include <string.h>

#include "text/tok_internal.h"

gr_status gr_spans_push(gr_spans *sp, int32_t id, size_t off, size_t len)
{
    gr_span *v = gr_tok_grow(sp->v, sizeof *v, sp->n + 1, &sp->cap);
    if (!v) return gr_fail(GR_ERR_NOMEM, "out of memory");
    sp->v = v;
    v[sp->n].id = id;
    v[sp->n].off = (uint32_t)off;
    v[sp->n].len = (uint32_t)len;
    sp->n++;
    return GR_OK;
}

typedef struct sym { int32_t id; int32_t prev, next; uint32_t off, len; uint8_t freeze; } sym;

/* ---- a binary min-heap of candidate merges; `better` orders them ---- */
typedef struct cand { double key; int32_t left, right; int32_t merged; uint32_t size; } cand;
typedef struct heap { cand *v; size_t n, cap; } heap;

/* HF: lowest rank, then leftmost. SentencePiece: highest score, then leftmost. Both are encoded
 * as "smaller key first" (score negated), ties by position. */
static int better(const cand *a, const cand *b) { return a->key < b->key || (a->key == b->key && a->left < b->left); }

static int heap_push(heap *h, cand c)
{
    cand *v = gr_tok_grow(h->v, sizeof *v, h->n + 1, &h->cap);
    if (!v) return 0;
    h->v = v;
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!better(&c, &v[p])) break;
        v[i] = v[p];
        i = p;
    }
    v[i] = c;
    return 1;
}

static cand heap_pop(heap *h)
{
    cand top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const cand *best = &last;
        if (l < h->n && better(&h->v[l], best)) { m = l; best = &h->v[l]; }
        if (r < h->n && better(&h->v[r], best)) m = r;
        if (m == i) break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (h->n) h->v[i] = last;
    return top;
}

/* ---- Hugging Face BPE (models/bpe/word.rs merge_all) ---- */

static int hf_pair(const gr_tokenizer *t, const sym *sy, int32_t l, heap *h)
{
    int32_t r = sy[l].next, rank, merged;
    if (r < 0 || !gr_pairmap_get(&t->merge_map, sy[l].id, sy[r].id, &rank, &merged)) return 1;
    return heap_push(h, (cand){(double)rank, l, r, merged, 0});
}

gr_status gr_bpe_encode_word(const gr_tokenizer *t, const char *s, size_t n, gr_spans *out)
{
    if (n == 0) return GR_OK;
    if (t->ignore_merges) {
        int32_t id = gr_tok_lookup(t, s, n);
        if (id >= 0) return gr_spans_push(out, id, 0, n);
    }
    sym *sy = malloc(n * sizeof *sy);
    if (!sy) return gr_fail(GR_ERR_NOMEM, "out of memory");
    int32_t ns = 0;
    gr_status st = GR_OK;
    for (size_t i = 0; i < n && !st;) {
        uint32_t cp;
        int k = gr_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        size_t cl = k ? (size_t)k : 1;
        int32_t id = gr_tok_lookup(t, s + i, cl);
        if (id >= 0) {
            sy[ns++] = (sym){id, 0, 0, (uint32_t)i, (uint32_t)cl, 0};
        } else {
            int all = t->byte_fallback;
            for (size_t b = 0; all && b < cl; b++) all = t->byte_id[(unsigned char)s[i + b]] >= 0;
            if (all) {
                for (size_t b = 0; b < cl; b++) sy[ns++] = (sym){t->byte_id[(unsigned char)s[i + b]], 0, 0, (uint32_t)(i + b), 1, 0};
            } else if (t->unk_id < 0) {
                st = gr_fail(GR_ERR_INVALID, "%s: character '%.*s' is not in the vocabulary and there is no unk token",
                             t->source, (int)cl, s + i);
            } else if (t->fuse_unk && ns > 0 && sy[ns - 1].id == t->unk_id) {
                sy[ns - 1].len += (uint32_t)cl;
            } else {
                sy[ns++] = (sym){t->unk_id, 0, 0, (uint32_t)i, (uint32_t)cl, 0};
            }
        }
        i += cl;
    }
    heap h = {0};
    for (int32_t i = 0; i < ns; i++) { sy[i].prev = i - 1; sy[i].next = i + 1 < ns ? i + 1 : -1; }
    for (int32_t i = 0; !st && i + 1 < ns; i++)
        if (!hf_pair(t, sy, i, &h)) st = gr_fail(GR_ERR_NOMEM, "out of memory");
    while (!st && h.n > 0) {
        cand c = heap_pop(&h);
        sym *L = &sy[c.left];
        if (L->len == 0 || L->next < 0) continue;
        sym *R = &sy[L->next];
        int32_t rank, merged;
        if (!gr_pairmap_get(&t->merge_map, L->id, R->id, &rank, &merged) || merged != c.merged) continue;
        L->id = merged;
        L->len += R->len;
        R->len = 0;
        L->next = R->next;
        if (L->next >= 0) sy[L->next].prev = c.left;
        if ((L->prev >= 0 && !hf_pair(t, sy, L->prev, &h)) || !hf_pair(t, sy, c.left, &h))
            st = gr_fail(GR_ERR_NOMEM, "out of memory");
    }
    for (int32_t i = 0; !st && i >= 0 && ns > 0; i = sy[i].next) st = gr_spans_push(out, sy[i].id, sy[i].off, sy[i].len);
    free(h.v);
    free(sy);
    return st;
}

/* ---- SentencePiece BPE (bpe_model.cc Model::Encode) ---- */

/* A model piece SentencePiece's BPE may merge into: normal, user-defined or unused. */
static int32_t spm_piece(const gr_tokenizer *t, const char *s, size_t n)
{
    int32_t id = gr_tok_lookup(t, s, n);
    if (id < 0) return -1;
    int ty = t->pieces[id].type;
    return ty == GR_PIECE_NORMAL || ty == GR_PIECE_USER_DEFINED || ty == GR_PIECE_UNUSED ? id : -1;
}

typedef struct revmerge { int32_t id; uint32_t loff, llen, roff, rlen; } revmerge;
typedef struct spm_state { const gr_tokenizer *t; const char *s; sym *sy; heap h; revmerge *rev; size_t nrev, caprev; } spm_state;

static int spm_pair(spm_state *S, int32_t l, int32_t r)
{
    if (l < 0 || r < 0 || S->sy[l].freeze || S->sy[r].freeze) return 1;
    uint32_t size = S->sy[l].len + S->sy[r].len;
    int32_t id = spm_piece(S->t, S->s + S->sy[l].off, size);
    if (id < 0) return 1;
    /* score negated so that the min-heap yields the highest score; float as SentencePiece */
    if (!heap_push(&S->h, (cand){-(double)S->t->pieces[id].score, l, r, id, size})) return 0;
    if (S->t->pieces[id].type == GR_PIECE_UNUSED) {
        revmerge *v = gr_tok_grow(S->rev, sizeof *v, S->nrev + 1, &S->caprev);
        if (!v) return 0;
        S->rev = v;
        v[S->nrev++] = (revmerge){id, S->sy[l].off, S->sy[l].len, S->sy[r].off, S->sy[r].len};
    }
    return 1;
}

static gr_status resegment(spm_state *S, uint32_t off, uint32_t len, gr_spans *out, int depth)
{
    int32_t id = gr_tok_lookup(S->t, S->s + off, len);
    if (id < 0) id = S->t->unk_id;
    if (depth < 64 && id >= 0 && S->t->pieces[id].type == GR_PIECE_UNUSED) {
        for (size_t i = S->nrev; i-- > 0;) /* latest record wins, as rev_merge[piece] = ... */
            if (S->rev[i].id == id) {
                gr_status st = resegment(S, S->rev[i].loff, S->rev[i].llen, out, depth + 1);
                return st ? st : resegment(S, S->rev[i].roff, S->rev[i].rlen, out, depth + 1);
            }
    }
    return gr_spans_push(out, id, off, len);
}

gr_status gr_spm_bpe_encode(const gr_tokenizer *t, const char *s, size_t n, gr_spans *out)
{
    if (n == 0) return GR_OK;
    spm_state S = {t, s, malloc(n * sizeof(sym)), {0}, NULL, 0, 0};
    if (!S.sy) return gr_fail(GR_ERR_NOMEM, "out of memory");
    int32_t ns = 0;
    for (size_t i = 0; i < n;) {
        size_t cl = 0;
        uint8_t freeze = 0;
        if (t->max_ud_len > 0) /* user-defined pieces are never merged */
            for (size_t l = (size_t)t->max_ud_len < n - i ? (size_t)t->max_ud_len : n - i; l > 0; l--) {
                int32_t id = gr_tok_lookup(t, s + i, l);
                if (id >= 0 && t->pieces[id].type == GR_PIECE_USER_DEFINED) { cl = l; freeze = 1; break; }
            }
        if (!cl) {
            cl = (size_t)gr_utf8_lead_len((unsigned char)s[i]);
            if (cl > n - i) cl = n - i;
        }
        S.sy[ns] = (sym){0, ns - 1, i + cl < n ? ns + 1 : -1, (uint32_t)i, (uint32_t)cl, freeze};
        ns++;
        i += cl;
    }
    gr_status st = GR_OK;
    for (int32_t i = 1; i < ns; i++)
        if (!spm_pair(&S, i - 1, i)) { st = gr_fail(GR_ERR_NOMEM, "out of memory"); break; }
    while (!st && S.h.n > 0) {
        cand c = heap_pop(&S.h);
        sym *L = &S.sy[c.left], *R = &S.sy[c.right];
        if (L->len == 0 || R->len == 0 || L->len + R->len != c.size) continue; /* stale */
        L->len += R->len;
        L->next = R->next;
        if (R->next >= 0) S.sy[R->next].prev = c.left;
        R->len = 0;
        if (!spm_pair(&S, L->prev, c.left) || !spm_pair(&S, c.left, L->next)) st = gr_fail(GR_ERR_NOMEM, "out of memory");
    }
    for (int32_t i = 0; !st && i >= 0; i = S.sy[i].next) st = resegment(&S, S.sy[i].off, S.sy[i].len, out, 0);
    free(S.h.v);
    free(S.rev);
    free(S.sy);
    return st;
}
