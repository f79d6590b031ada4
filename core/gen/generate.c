/* Greedy and beam search over a language-model plugin's KV cache.
 *
 * Beam search follows transformers' _beam_search with BeamSearchScorer (4.38-4.44): per step the
 * top max(2, 1 + n_eos) * K candidates of K*V are scanned in order (so K of them are never all
 * EOS); an EOS candidate ranked within the first K closes a hypothesis scored
 * sum_logprobs / generated_len^length_penalty (generated_len counts the EOS); the first K
 * non-EOS candidates continue. A batch row is done once it holds K hypotheses and the worst of
 * them is >= the best candidate's sum / generated_len^length_penalty (early_stopping=False). At
 * max_new_tokens every live beam is closed with its score. Hypotheses are kept as
 * BeamHypotheses keeps them (insertion order; the first worst is dropped) and the answer is the
 * last best one in that order (Python's stable sort + pop()), so ties resolve as in HF. The EOS
 * ban below min_new_tokens is applied to the log-probabilities, as HF's logits processors see
 * them. tests/gen/test_beam.c checks all of this against a plain reference. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gen/generate.h"

typedef struct hyp {
    double score;
    int32_t *tokens;
    int len;
} hyp;

typedef struct hyp_set {
    hyp *items;   /* up to K */
    int count;
    double worst;
    int done;
} hyp_set;

static int is_eos(const gr_gen_config *cfg, int32_t tok)
{
    for (int i = 0; i < cfg->n_eos; i++)
        if (cfg->eos_ids[i] == tok) return 1;
    return 0;
}

/* log_softmax of one row, in double, into out. */
static void log_softmax_row(const float *logits, int64_t v, double *out)
{
    double mx = -DBL_MAX;
    for (int64_t i = 0; i < v; i++) if (logits[i] > mx) mx = logits[i];
    double sum = 0.0;
    for (int64_t i = 0; i < v; i++) sum += exp((double)logits[i] - mx);
    double lse = mx + log(sum);
    for (int64_t i = 0; i < v; i++) out[i] = (double)logits[i] - lse;
}

static double length_norm(double sum_logprobs, int len, double penalty)
{
    return sum_logprobs / pow((double)(len > 0 ? len : 1), penalty);
}

/* BeamHypotheses.add: append when there is room or the score beats the worst; past K, delete
 * the first of the lowest scores, keeping the order of the others. */
static gr_status hyp_add(hyp_set *h, int k, const int32_t *tokens, int len, double score)
{
    if (h->count == k && !(score > h->worst)) return GR_OK;
    int32_t *copy = malloc(sizeof(int32_t) * (size_t)(len > 0 ? len : 1));
    if (!copy) return gr_fail(GR_ERR_NOMEM, "generate: out of memory");
    if (len) memcpy(copy, tokens, sizeof(int32_t) * (size_t)len);
    if (h->count == k) {
        int w = 0;
        for (int i = 1; i < h->count; i++) if (h->items[i].score < h->items[w].score) w = i;
        free(h->items[w].tokens);
        memmove(h->items + w, h->items + w + 1, sizeof(hyp) * (size_t)(h->count - w - 1));
        h->count--;
    }
    h->items[h->count++] = (hyp){score, copy, len};
    h->worst = DBL_MAX;
    for (int i = 0; i < h->count; i++) if (h->items[i].score < h->worst) h->worst = h->items[i].score;
    return GR_OK;
}

/* Repeats each row of a host [rows, cols] int array `times` times. */
static int32_t *repeat_rows(const int32_t *src, int64_t rows, int64_t cols, int times)
{
    if (!src) return NULL;
    int32_t *dst = malloc(sizeof(int32_t) * (size_t)(rows * cols * times + 1));
    if (!dst) return NULL;
    for (int64_t r = 0; r < rows; r++)
        for (int t = 0; t < times; t++)
            memcpy(dst + (r * times + t) * cols, src + r * cols, sizeof(int32_t) * (size_t)cols);
    return dst;
}

/* An encoder-decoder reads its prompt right padded, as HF's T5 tokenizer pads: the encoder's
 * relative position buckets would otherwise count the padding between the soft prompt and the
 * text, and a row would not equal the same row alone. Copies the real tokens of every row to its
 * front (works for left, right or no padding). */
static gr_status right_align(const int32_t *ids, const int32_t *mask, int64_t rows, int64_t cols, int32_t pad,
                             int32_t **ids_out, int32_t **mask_out)
{
    *ids_out = malloc(sizeof(int32_t) * (size_t)(rows * cols + 1));
    *mask_out = malloc(sizeof(int32_t) * (size_t)(rows * cols + 1));
    if (!*ids_out || !*mask_out) return gr_fail(GR_ERR_NOMEM, "generate: out of memory");
    for (int64_t r = 0; r < rows; r++) {
        int64_t n = 0;
        for (int64_t j = 0; j < cols; j++)
            if (mask[r * cols + j]) (*ids_out)[r * cols + n++] = ids[r * cols + j];
        for (int64_t j = 0; j < cols; j++) {
            if (j >= n) (*ids_out)[r * cols + j] = pad;
            (*mask_out)[r * cols + j] = j < n;
        }
    }
    return GR_OK;
}

static gr_status fetch_logits(gr_ctx *ctx, gr_tensor *logits, int64_t rows, float **buf, int64_t *vocab)
{
    if (!logits) return gr_ctx_status(ctx) ? gr_ctx_status(ctx) : gr_fail(GR_ERR_BACKEND, "generate: no logits");
    int64_t v = logits->shape[logits->ndim - 1];
    if (gr_numel(logits) != rows * v)
        return gr_fail(GR_ERR_SHAPE, "generate: logits have %lld elements, expected %lld x %lld",
                       (long long)gr_numel(logits), (long long)rows, (long long)v);
    if (!*buf) {
        *buf = malloc(sizeof(float) * (size_t)(rows * v));
        if (!*buf) return gr_fail(GR_ERR_NOMEM, "generate: out of memory for logits");
        *vocab = v;
    }
    return gr_to_host_f32(ctx, logits, *buf);
}

gr_status gr_generate(const gr_lm_iface *iface, gr_lm *lm, gr_ctx *ctx,
                      const gr_lm_inputs *prompt, const gr_gen_config *cfg, int32_t **out_ids,
                      int *out_lens)
{
    const int64_t B = prompt->batch;
    const int K = cfg->num_beams > 0 ? cfg->num_beams : 1;
    const int64_t R = B * K;
    const int maxn = cfg->max_new_tokens;
    if (maxn <= 0) return gr_fail(GR_ERR_INVALID, "generate: max_new_tokens must be positive");
    if (K > 32) return gr_fail(GR_ERR_INVALID, "generate: num_beams %d exceeds 32", K);
    if (cfg->n_eos < 0 || cfg->n_eos > GR_GEN_MAX_EOS)
        return gr_fail(GR_ERR_INVALID, "generate: %d EOS ids (at most %d)", cfg->n_eos, GR_GEN_MAX_EOS);
    int grad_was = gr_ctx_set_grad_enabled(ctx, 0);

    gr_status s = GR_OK;
    gr_lm_inputs in = *prompt;
    int32_t *ids_rep = NULL, *mask_rep = NULL, *ids_ra = NULL, *mask_ra = NULL;
    float *logits_host = NULL;
    double *logp = NULL;
    int32_t *seq = NULL, *seq_next = NULL, *next_tok = NULL, *src_rows = NULL;
    double *beam_scores = NULL, *beam_next = NULL;
    hyp_set *hyps = NULL;
    uint8_t *finished = NULL;
    gr_lm_cache *cache = NULL;
    int64_t V = 0;
    int steps = 0;

    gr_lm_info info = {.struct_size = sizeof info};
    iface->info(lm, &info);
    if (info.is_encoder_decoder && prompt->mask && prompt->seq > 0) {
        if (!prompt->ids) {
            for (int64_t r = 0; r < B; r++)
                if (!prompt->mask[r * prompt->seq]) {
                    s = gr_fail(GR_ERR_UNSUPPORTED, "generate: an encoder-decoder prompt given as embeddings must be "
                                "right padded (row %lld starts with padding)", (long long)r);
                    goto done;
                }
        } else {
            s = right_align(prompt->ids, prompt->mask, B, prompt->seq, info.pad_id >= 0 ? info.pad_id : cfg->pad_id,
                            &ids_ra, &mask_ra);
            if (s != GR_OK) goto done;
            in.ids = ids_ra;
            in.mask = mask_ra;
        }
    }
    if (K > 1) {
        const int32_t *src_ids = in.ids, *src_mask = in.mask;
        in.batch = R;
        if (src_ids) { ids_rep = repeat_rows(src_ids, B, prompt->seq, K); in.ids = ids_rep; }
        if (src_mask) { mask_rep = repeat_rows(src_mask, B, prompt->seq, K); in.mask = mask_rep; }
        if ((src_ids && !ids_rep) || (src_mask && !mask_rep)) {
            s = gr_fail(GR_ERR_NOMEM, "generate: out of memory");
            goto done;
        }
        if (prompt->prefix) in.prefix = gr_repeat_interleave(ctx, prompt->prefix, 0, K);
        if (prompt->inputs_embeds) in.inputs_embeds = gr_repeat_interleave(ctx, prompt->inputs_embeds, 0, K);
        if ((s = gr_ctx_status(ctx)) != GR_OK) goto done;
    }

    gr_tensor *logits = NULL;
    s = iface->generate_begin(lm, ctx, &in, &cache, &logits);
    if (s != GR_OK) goto done;
    seq = calloc((size_t)(R * maxn), sizeof *seq);
    seq_next = calloc((size_t)(R * maxn), sizeof *seq_next);
    next_tok = calloc((size_t)R, sizeof *next_tok);
    src_rows = calloc((size_t)R, sizeof *src_rows);
    beam_scores = calloc((size_t)R, sizeof *beam_scores);
    beam_next = calloc((size_t)R, sizeof *beam_next);
    finished = calloc((size_t)R, 1);
    hyps = calloc((size_t)B, sizeof *hyps);
    if (!seq || !seq_next || !next_tok || !src_rows || !beam_scores || !beam_next || !finished || !hyps) {
        s = gr_fail(GR_ERR_NOMEM, "generate: out of memory");
        goto done;
    }
    for (int64_t b = 0; b < B; b++) {
        hyps[b].items = calloc((size_t)K, sizeof(hyp));
        if (!hyps[b].items) { s = gr_fail(GR_ERR_NOMEM, "generate: out of memory"); goto done; }
        /* Only beam 0 is live at first, so the first step does not pick K copies. */
        for (int k = 1; k < K; k++) beam_scores[b * K + k] = -1e9;
    }

    for (int t = 0; t < maxn; t++) {
        if ((s = fetch_logits(ctx, logits, R, &logits_host, &V)) != GR_OK) goto done;
        if (!logp) {
            logp = malloc(sizeof(double) * (size_t)V);
            if (!logp) { s = gr_fail(GR_ERR_NOMEM, "generate: out of memory"); goto done; }
        }
        int all_done = 1;
        if (K == 1) {
            for (int64_t r = 0; r < R; r++) {
                if (finished[r]) { next_tok[r] = cfg->pad_id; continue; }
                const float *row = logits_host + r * V;
                int32_t best = -1;
                float bv = -FLT_MAX;
                for (int64_t v = 0; v < V; v++) {
                    if (t < cfg->min_new_tokens && is_eos(cfg, (int32_t)v)) continue;
                    if (best < 0 || row[v] > bv) { bv = row[v]; best = (int32_t)v; }
                }
                next_tok[r] = best;
                if (is_eos(cfg, best)) {
                    finished[r] = 1;
                    out_lens[r] = t;
                } else {
                    seq[r * maxn + t] = best;
                    out_lens[r] = t + 1;
                    all_done = 0;
                }
            }
            steps = t + 1;
            if (all_done || t + 1 == maxn) break;
        } else {
            for (int64_t b = 0; b < B; b++) {
                if (hyps[b].done) {
                    for (int k = 0; k < K; k++) {
                        int64_t r = b * K + k;
                        beam_next[r] = 0.0;
                        next_tok[r] = cfg->pad_id;
                        src_rows[r] = (int32_t)(b * K);
                    }
                    continue;
                }
                /* Top max(2, 1 + n_eos) * K of beam_score + logprob over K*V, sorted descending
                 * (ties: lower flat index first). */
                int want = (cfg->n_eos + 1 > 2 ? cfg->n_eos + 1 : 2) * K;
                double top_s[(GR_GEN_MAX_EOS + 1) * 32];
                int64_t top_i[(GR_GEN_MAX_EOS + 1) * 32];
                int n_top = 0;
                for (int k = 0; k < K; k++) {
                    int64_t r = b * K + k;
                    log_softmax_row(logits_host + r * V, V, logp);
                    if (t < cfg->min_new_tokens)
                        for (int e = 0; e < cfg->n_eos; e++)
                            if (cfg->eos_ids[e] >= 0 && cfg->eos_ids[e] < V) logp[cfg->eos_ids[e]] = -INFINITY;
                    for (int64_t v = 0; v < V; v++) {
                        double sc = beam_scores[r] + logp[v];
                        if (n_top == want && !(sc > top_s[n_top - 1])) continue;
                        int pos = n_top < want ? n_top++ : want - 1;
                        while (pos > 0 && top_s[pos - 1] < sc) {
                            top_s[pos] = top_s[pos - 1];
                            top_i[pos] = top_i[pos - 1];
                            pos--;
                        }
                        top_s[pos] = sc;
                        top_i[pos] = (int64_t)k * V + v;
                    }
                }
                int filled = 0;
                for (int rank = 0; rank < n_top && filled < K; rank++) {
                    int k = (int)(top_i[rank] / V);
                    int32_t tok = (int32_t)(top_i[rank] % V);
                    int64_t src = b * K + k;
                    if (is_eos(cfg, tok)) {
                        if (rank >= K) continue;
                        s = hyp_add(&hyps[b], K, seq + src * maxn, t,
                                    length_norm(top_s[rank], t + 1, cfg->length_penalty));
                        if (s != GR_OK) goto done;
                    } else {
                        int64_t r = b * K + filled;
                        beam_next[r] = top_s[rank];
                        next_tok[r] = tok;
                        src_rows[r] = (int32_t)src;
                        filled++;
                    }
                }
                for (; filled < K; filled++) { /* only when K*V is smaller than the scan: inert rows */
                    int64_t r = b * K + filled;
                    beam_next[r] = -1e9;
                    next_tok[r] = cfg->pad_id;
                    src_rows[r] = (int32_t)(b * K);
                }
                if (hyps[b].count >= K &&
                    hyps[b].worst >= length_norm(top_s[0], t + 1, cfg->length_penalty))
                    hyps[b].done = 1;
                if (!hyps[b].done) all_done = 0;
            }
            for (int64_t r = 0; r < R; r++) {
                memcpy(seq_next + r * maxn, seq + (int64_t)src_rows[r] * maxn, sizeof(int32_t) * (size_t)t);
                seq_next[r * maxn + t] = next_tok[r];
                beam_scores[r] = beam_next[r];
            }
            int32_t *sw = seq; seq = seq_next; seq_next = sw;
            steps = t + 1;
            if (all_done || t + 1 == maxn) break;
            s = iface->cache_reorder(lm, ctx, cache, src_rows, R);
            if (s != GR_OK) goto done;
        }
        s = iface->generate_step(lm, ctx, cache, next_tok, &logits);
        if (s != GR_OK) goto done;
    }

    int32_t *result = calloc((size_t)(B * maxn + 1), sizeof *result);
    if (!result) { s = gr_fail(GR_ERR_NOMEM, "generate: out of memory"); goto done; }
    if (K == 1) {
        for (int64_t b = 0; b < B; b++) memcpy(result + b * maxn, seq + b * maxn, sizeof(int32_t) * (size_t)out_lens[b]);
    } else {
        for (int64_t b = 0; b < B; b++) {
            if (!hyps[b].done)
                for (int k = 0; k < K && s == GR_OK; k++) {
                    int64_t r = b * K + k;
                    s = hyp_add(&hyps[b], K, seq + r * maxn, steps,
                                length_norm(beam_scores[r], steps, cfg->length_penalty));
                }
            if (s != GR_OK) { free(result); goto done; }
            int best = 0; /* the last of the best, as sorted(...).pop() picks it */
            for (int i = 1; i < hyps[b].count; i++) if (hyps[b].items[i].score >= hyps[b].items[best].score) best = i;
            hyp *h = &hyps[b].items[best];
            out_lens[b] = h->len;
            if (h->len) memcpy(result + b * maxn, h->tokens, sizeof(int32_t) * (size_t)h->len);
        }
    }
    *out_ids = result;

done:
    if (cache) iface->cache_free(lm, ctx, cache);
    if (hyps) {
        for (int64_t b = 0; b < B; b++) {
            for (int i = 0; i < hyps[b].count; i++) free(hyps[b].items[i].tokens);
            free(hyps[b].items);
        }
        free(hyps);
    }
    free(ids_rep); free(mask_rep); free(ids_ra); free(mask_ra); free(logits_host); free(logp);
    free(seq); free(seq_next); free(next_tok); free(src_rows);
    free(beam_scores); free(beam_next); free(finished);
    gr_ctx_set_grad_enabled(ctx, grad_was);
    return s;
}
