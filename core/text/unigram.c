/* Unigram encoding: the best segmentation under the piece scores (Viterbi), as SentencePiece's
 * Model::EncodeOptimized and HF's Unigram::encode_optimized compute it.
 *
 * Exactness notes: the search visits start positions left to right and, for each, pieces by
 * increasing length, replacing a best path only on a strictly higher score (so ties keep the
 * first candidate found). SentencePiece stores path scores as float and scores user-defined
 * pieces as length * max_score - 0.1 computed in double; HF keeps doubles throughout. A
 * character without a single-character piece gets an unknown node scored min_score - 10. */
#include <stdlib.h>
#include <string.h>

#include "text/tok_internal.h"

typedef struct node { int32_t id; int32_t start; double score; } node;

gr_status gr_unigram_encode(const gr_tokenizer *t, const char *s, size_t n, gr_spans *out)
{
    if (n == 0) return GR_OK;
    if (n > 0x7FFFFFF0) return gr_fail(GR_ERR_INVALID, "%s: text too long", t->source);
    node *best = malloc((n + 1) * sizeof *best);
    if (!best) return gr_fail(GR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i <= n; i++) best[i] = (node){-1, -1, 0.0};
    const int spm = t->spm;
    const double unk_score = spm ? (double)((float)t->min_score - 10.0f) : t->min_score - 10.0;
    for (size_t start = 0; start < n;) {
        const double base = best[start].score;
        size_t mblen = (size_t)gr_utf8_lead_len((unsigned char)s[start]);
        if (mblen > n - start) mblen = n - start;
        int has_single = 0;
        size_t lim = n - start < (size_t)t->max_piece_len ? n - start : (size_t)t->max_piece_len;
        /* candidate ends at character boundaries (pieces are whole UTF-8 characters) */
        for (size_t len = 1; len <= lim; len++) {
            if (start + len < n && ((unsigned char)s[start + len] & 0xC0) == 0x80) continue;
            int32_t id = gr_tok_lookup(t, s + start, len);
            if (id < 0) continue;
            int ty = t->pieces[id].type;
            if (spm && ty != GR_PIECE_NORMAL && ty != GR_PIECE_USER_DEFINED) continue;
            double score = spm && ty == GR_PIECE_USER_DEFINED ? (double)((float)len * (float)t->max_score) - 0.1
                                                               : (double)t->pieces[id].score;
            double cand = score + base;
            node *tn = &best[start + len];
            if (tn->start < 0 || cand > tn->score) {
                tn->score = spm ? (double)(float)cand : cand;
                tn->start = (int32_t)start;
                tn->id = id;
            }
            if (len == mblen) has_single = 1;
        }
        if (!has_single) {
            /* SentencePiece: float unk_score + float path score, summed in float */
            double cand = spm ? (double)((float)unk_score + (float)base) : unk_score + base;
            node *tn = &best[start + mblen];
            if (tn->start < 0 || cand > tn->score) {
                tn->score = spm ? (double)(float)cand : cand;
                tn->start = (int32_t)start;
                tn->id = t->unk_id;
            }
        }
        start += mblen;
    }
    /* backtrack, then emit left to right */
    size_t cnt = 0;
    for (size_t e = n; e > 0; e = (size_t)best[e].start) {
        if (best[e].start < 0) { free(best); return gr_fail(GR_ERR_INVALID, "%s: no segmentation", t->source); }
        cnt++;
    }
    size_t base = out->n;
    gr_status st = GR_OK;
    for (size_t i = 0; i < cnt && !st; i++) st = gr_spans_push(out, 0, 0, 0);
    size_t k = base + cnt;
    for (size_t e = n; !st && e > 0; e = (size_t)best[e].start) {
        k--;
        out->v[k].id = best[e].id;
        out->v[k].off = (uint32_t)best[e].start;
        out->v[k].len = (uint32_t)(e - (size_t)best[e].start);
    }
    free(best);
    return st;
}
