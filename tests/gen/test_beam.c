/* gr_generate against an independent reference, on a language model small enough to reason
 * about: a table LM whose next-token logits depend only on (soft-prompt tag, previous token,
 * last token). Its "KV cache" is that state per row, so a missing or wrong cache_reorder, a
 * wrong repetition of the prompt or of the soft prompt per beam, or a left-padding mistake all
 * change the output.
 *
 * The reference is Hugging Face's algorithm written out plainly, one batch row at a time:
 * greedy search for num_beams = 1; for num_beams = K, _beam_search + BeamSearchScorer +
 * BeamHypotheses (transformers 4.38-4.44): all K*V candidates sorted (ties: lower flat index
 * first; torch.topk leaves their order unspecified, this is the deterministic choice), the
 * first max(2, 1 + n_eos) * K kept; an EOS candidate closes a hypothesis only when ranked < K,
 * scored sum_logprobs / (t + 1)^length_penalty (the EOS counts); the first K non-EOS candidates
 * continue; the row is done once it has K hypotheses and the worst of them is >= the
 * best kept candidate's sum / (t + 1)^length_penalty (early_stopping=False); at max_new_tokens
 * the live beams are added with their length; the answer is the last of the best-scored
 * hypotheses in list order (Python's stable sort + pop()). min_new_tokens sets the EOS
 * log-probabilities to -inf.
 *
 * Coverage is counted from the reference, and asserted: hypotheses closed early, rows that never
 * see an EOS, candidates taken beyond rank 2K (several EOS ids), all three length penalties
 * choosing differently, min_new_tokens deciding an output. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen/generate.h"
#include "graft/rng.h"
#include "plugin/registry.h"

static int failures, checks;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                            \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)

/* ------------------------------------------------------------------ the table LM ---- */

#define V 9       /* vocabulary */
#define NTAGS 4   /* soft-prompt tags */
#define NONE V    /* "no previous token" */
#define MAXN 10   /* longest generation of the tests */

struct gr_lm {
    float logits[NTAGS][V + 1][V][V]; /* [tag][prev][last][next] */
    int calls_reorder;
};

struct gr_lm_cache {
    int64_t rows;
    int *tag, *prev, *last;
};

static gr_status lm_emit(gr_lm *lm, gr_ctx *ctx, const gr_lm_cache *c, gr_tensor **logits)
{
    float *buf = malloc(sizeof(float) * (size_t)(c->rows * V));
    if (!buf) return gr_fail(GR_ERR_NOMEM, "table lm: out of memory");
    for (int64_t r = 0; r < c->rows; r++) memcpy(buf + r * V, lm->logits[c->tag[r]][c->prev[r]][c->last[r]], sizeof(float) * V);
    *logits = gr_from_host(ctx, GR_F32, 2, (int64_t[]){c->rows, V}, buf);
    free(buf);
    return gr_ctx_status(ctx);
}

static void lm_cache_free(gr_lm *lm, gr_ctx *ctx, gr_lm_cache *c)
{
    (void)lm;
    (void)ctx;
    if (!c) return;
    free(c->tag);
    free(c->prev);
    free(c->last);
    free(c);
}

/* The prompt must be left padded (0...0 1...1 per mask row) with a real last token; the soft
 * prompt, when given, is [rows, 1, 1] holding the tag. */
static gr_status lm_begin(gr_lm *lm, gr_ctx *ctx, const gr_lm_inputs *p, gr_lm_cache **out, gr_tensor **logits)
{
    gr_lm_cache *c = calloc(1, sizeof *c);
    if (!c) return gr_fail(GR_ERR_NOMEM, "table lm: out of memory");
    c->rows = p->batch;
    c->tag = calloc((size_t)p->batch, sizeof(int));
    c->prev = calloc((size_t)p->batch, sizeof(int));
    c->last = calloc((size_t)p->batch, sizeof(int));
    float *tags = malloc(sizeof(float) * (size_t)p->batch);
    gr_status s = (c->tag && c->prev && c->last && tags) ? GR_OK : gr_fail(GR_ERR_NOMEM, "table lm: out of memory");
    if (s == GR_OK && p->prefix) {
        if (p->prefix->ndim != 3 || p->prefix->shape[0] != p->batch || p->prefix->shape[1] != 1 || p->prefix->shape[2] != 1)
            s = gr_fail(GR_ERR_SHAPE, "table lm: soft prompt is not [batch, 1, 1]");
        else
            s = gr_to_host_f32(ctx, p->prefix, tags);
    }
    for (int64_t r = 0; s == GR_OK && r < p->batch; r++) {
        c->tag[r] = p->prefix ? (int)tags[r] : 0;
        const int32_t *ids = p->ids + r * p->seq;
        const int32_t *m = p->mask ? p->mask + r * p->seq : NULL;
        for (int64_t j = 1; m && j < p->seq; j++)
            if (m[j - 1] && !m[j]) s = gr_fail(GR_ERR_INVALID, "table lm: row %lld is not left padded", (long long)r);
        if (m && !m[p->seq - 1]) s = gr_fail(GR_ERR_INVALID, "table lm: row %lld is all padding", (long long)r);
        c->last[r] = ids[p->seq - 1];
        c->prev[r] = (p->seq >= 2 && (!m || m[p->seq - 2])) ? ids[p->seq - 2] : NONE;
        if (c->last[r] < 0 || c->last[r] >= V || c->tag[r] < 0 || c->tag[r] >= NTAGS)
            s = gr_fail(GR_ERR_INVALID, "table lm: row %lld: token or tag out of range", (long long)r);
    }
    free(tags);
    if (s == GR_OK) s = lm_emit(lm, ctx, c, logits);
    if (s != GR_OK) { lm_cache_free(lm, ctx, c); return s; }
    *out = c;
    return GR_OK;
}

static gr_status lm_step(gr_lm *lm, gr_ctx *ctx, gr_lm_cache *c, const int32_t *next, gr_tensor **logits)
{
    for (int64_t r = 0; r < c->rows; r++) {
        if (next[r] < 0 || next[r] >= V) return gr_fail(GR_ERR_INVALID, "table lm: step token %d out of range", next[r]);
        c->prev[r] = c->last[r];
        c->last[r] = next[r];
    }
    return lm_emit(lm, ctx, c, logits);
}

static gr_status lm_reorder(gr_lm *lm, gr_ctx *ctx, gr_lm_cache *c, const int32_t *rows, int64_t count)
{
    (void)ctx;
    if (count != c->rows) return gr_fail(GR_ERR_SHAPE, "table lm: reorder of %lld rows, cache has %lld", (long long)count, (long long)c->rows);
    int *t = malloc(sizeof(int) * 3 * (size_t)count);
    if (!t) return gr_fail(GR_ERR_NOMEM, "table lm: out of memory");
    for (int64_t r = 0; r < count; r++) {
        if (rows[r] < 0 || rows[r] >= count) { free(t); return gr_fail(GR_ERR_INVALID, "table lm: reorder row %d", rows[r]); }
        t[3 * r] = c->tag[rows[r]];
        t[3 * r + 1] = c->prev[rows[r]];
        t[3 * r + 2] = c->last[rows[r]];
    }
    for (int64_t r = 0; r < count; r++) { c->tag[r] = t[3 * r]; c->prev[r] = t[3 * r + 1]; c->last[r] = t[3 * r + 2]; }
    free(t);
    lm->calls_reorder++;
    return GR_OK;
}

static void lm_info(const gr_lm *lm, gr_lm_info *out)
{
    (void)lm;
    *out = (gr_lm_info){.struct_size = sizeof *out, .family = "table", .vocab_size = V, .bos_id = -1, .eos_id = -1,
                        .pad_id = -1, .decoder_start_id = -1};
}

static const gr_lm_iface table_iface = {
    .struct_size = sizeof(gr_lm_iface),
    .info = lm_info,
    .generate_begin = lm_begin,
    .generate_step = lm_step,
    .cache_reorder = lm_reorder,
    .cache_free = lm_cache_free,
};

/* Random logits; EOS columns shifted by eos_bias (very negative: never finishes; positive:
 * every beam wants to stop). Quantized tables (integer logits) make exact ties between
 * candidates and between hypotheses common, so the tie rules are exercised too. */
static void lm_fill(gr_lm *lm, uint64_t seed, const gr_gen_config *g, double eos_bias, int quantized)
{
    gr_rng r;
    gr_rng_seed(&r, seed);
    for (int a = 0; a < NTAGS; a++)
        for (int p = 0; p <= V; p++)
            for (int l = 0; l < V; l++)
                for (int v = 0; v < V; v++) lm->logits[a][p][l][v] = quantized ? (float)floor(2.0 * gr_rng_uniform(&r)) : (float)(1.5 * gr_rng_normal(&r));
    for (int a = 0; a < NTAGS; a++)
        for (int p = 0; p <= V; p++)
            for (int l = 0; l < V; l++)
                for (int e = 0; e < g->n_eos; e++) lm->logits[a][p][l][g->eos_ids[e]] += (float)eos_bias;
}

/* ------------------------------------------------------------------ the reference ---- */

typedef struct ref_state { int tag, prev, last; } ref_state;

typedef struct ref_stats {
    int closed_early;      /* row done before max_new_tokens */
    int never_eos;         /* no hypothesis closed by an EOS in the whole search */
    int beyond_2k;         /* a continuing candidate taken at rank >= 2K */
    int eos_won;           /* the answer ended with an EOS */
} ref_stats;

static int ref_is_eos(const gr_gen_config *g, int tok)
{
    for (int e = 0; e < g->n_eos; e++) if (g->eos_ids[e] == tok) return 1;
    return 0;
}

/* log_softmax in double, then the min_new_tokens ban (HF's processors see log-probabilities). */
static void ref_logprobs(const gr_lm *lm, ref_state s, const gr_gen_config *g, int t, double *out)
{
    const float *x = lm->logits[s.tag][s.prev][s.last];
    double mx = -INFINITY, sum = 0;
    for (int v = 0; v < V; v++) if (x[v] > mx) mx = x[v];
    for (int v = 0; v < V; v++) sum += exp((double)x[v] - mx);
    for (int v = 0; v < V; v++) out[v] = (double)x[v] - (mx + log(sum));
    if (t < g->min_new_tokens)
        for (int e = 0; e < g->n_eos; e++) out[g->eos_ids[e]] = -INFINITY;
}

static ref_state ref_advance(ref_state s, int tok) { return (ref_state){s.tag, s.last, tok}; }

static int ref_greedy(const gr_lm *lm, ref_state s, const gr_gen_config *g, int32_t *out, ref_stats *st)
{
    int n = 0;
    for (int t = 0; t < g->max_new_tokens; t++) {
        const float *x = lm->logits[s.tag][s.prev][s.last];
        int best = -1;
        for (int v = 0; v < V; v++) {
            if (t < g->min_new_tokens && ref_is_eos(g, v)) continue;
            if (best < 0 || x[v] > x[best]) best = v; /* torch.argmax: first maximum */
        }
        if (ref_is_eos(g, best)) { st->eos_won = 1; if (t + 1 < g->max_new_tokens) st->closed_early = 1; return n; }
        out[n++] = best;
        s = ref_advance(s, best);
    }
    st->never_eos = 1;
    return n;
}

/* BeamHypotheses: a list in insertion order, worst_score starting at 1e9. */
typedef struct ref_hyp { double score; int32_t tok[MAXN]; int len; int eos; } ref_hyp;
typedef struct ref_hyps { ref_hyp items[40]; int n; double worst; } ref_hyps;

static void ref_add(ref_hyps *h, int K, const int32_t *tok, int len, double sum_logprobs, int generated_len,
                    double length_penalty, int eos)
{
    double score = sum_logprobs / pow((double)generated_len, length_penalty);
    if (h->n < K || score > h->worst) {
        ref_hyp *x = &h->items[h->n++];
        x->score = score;
        x->len = len;
        x->eos = eos;
        memcpy(x->tok, tok, sizeof(int32_t) * (size_t)len);
        if (h->n > K) {
            /* sorted((score, idx)): delete the first minimum; worst = the next smallest */
            int lo = 0;
            for (int i = 1; i < h->n; i++) if (h->items[i].score < h->items[lo].score) lo = i;
            memmove(&h->items[lo], &h->items[lo + 1], sizeof(ref_hyp) * (size_t)(h->n - lo - 1));
            h->n--;
            h->worst = h->items[0].score;
            for (int i = 1; i < h->n; i++) if (h->items[i].score < h->worst) h->worst = h->items[i].score;
        } else {
            h->worst = score < h->worst ? score : h->worst;
        }
    }
}

typedef struct ref_cand { double score; int flat; } ref_cand;

static int cand_cmp(const void *a, const void *b)
{
    const ref_cand *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return (x->flat > y->flat) - (x->flat < y->flat);
}

static int ref_beam(const gr_lm *lm, ref_state s0, const gr_gen_config *g, int32_t *out, ref_stats *st)
{
    const int K = g->num_beams;
    const double lp = g->length_penalty;
    ref_state state[8], nstate[8];
    int32_t seq[8][MAXN], nseq[8][MAXN];
    double score[8], nscore[8];
    ref_hyps hyps;
    memset(&hyps, 0, sizeof hyps);
    hyps.worst = 1e9;
    for (int k = 0; k < K; k++) { state[k] = s0; score[k] = k ? -1e9 : 0.0; }
    int done = 0, t = 0, eos_seen = 0;
    int keep = (g->n_eos + 1 > 2 ? g->n_eos + 1 : 2) * K;
    for (t = 0; t < g->max_new_tokens && !done; t++) {
        ref_cand c[8 * V];
        for (int k = 0; k < K; k++) {
            double lpv[V];
            ref_logprobs(lm, state[k], g, t, lpv);
            for (int v = 0; v < V; v++) c[k * V + v] = (ref_cand){score[k] + lpv[v], k * V + v};
        }
        qsort(c, (size_t)(K * V), sizeof *c, cand_cmp);
        int filled = 0;
        for (int rank = 0; rank < keep && filled < K; rank++) {
            int k = c[rank].flat / V, tok = c[rank].flat % V;
            if (ref_is_eos(g, tok)) {
                if (rank >= K) continue;
                ref_add(&hyps, K, seq[k], t, c[rank].score, t + 1, lp, 1);
                eos_seen = 1;
            } else {
                memcpy(nseq[filled], seq[k], sizeof(int32_t) * (size_t)t);
                nseq[filled][t] = tok;
                nstate[filled] = ref_advance(state[k], tok);
                nscore[filled] = c[rank].score;
                if (rank >= 2 * K) st->beyond_2k = 1;
                filled++;
            }
        }
        if (filled < K) return -1; /* HF raises: cannot happen with max(2, 1 + n_eos) * K candidates */
        if (hyps.n >= K && hyps.worst >= c[0].score / pow((double)(t + 1), lp)) done = 1;
        memcpy(seq, nseq, sizeof seq);
        memcpy(state, nstate, sizeof state);
        memcpy(score, nscore, sizeof score);
    }
    if (done && t < g->max_new_tokens) st->closed_early = 1;
    if (!done)
        for (int k = 0; k < K; k++) ref_add(&hyps, K, seq[k], g->max_new_tokens, score[k], g->max_new_tokens, lp, 0);
    if (!eos_seen) st->never_eos = 1;
    int best = 0;
    for (int i = 1; i < hyps.n; i++) if (hyps.items[i].score >= hyps.items[best].score) best = i; /* last maximum */
    st->eos_won = hyps.items[best].eos;
    memcpy(out, hyps.items[best].tok, sizeof(int32_t) * (size_t)hyps.items[best].len);
    return hyps.items[best].len;
}

/* ------------------------------------------------------------------ the sweep ---- */

#define B 3

typedef struct coverage {
    int cases, closed_early, never_eos, beyond_2k, eos_won, max_won, min_new_decided, lp_differs;
} coverage;

/* Prompts of different lengths (left padded): row b = its tokens, tag b + 1 (0 without prefix). */
static const int32_t prompt_tok[B][4] = {{3, 1, 4, 1}, {5, 8, 0, 0}, {6, 0, 0, 0}};
static const int prompt_len[B] = {4, 2, 1};

/* One configuration: gr_generate on the batch == the reference on each row. Writes each row's
 * answer into ans (for cross-configuration coverage). */
static void run_case(gr_lm *lm, gr_ctx *ctx, const gr_gen_config *g, int with_prefix, coverage *cov,
                     int32_t ans[B][MAXN + 1], const char *what)
{
    int32_t ids[B * 4], mask[B * 4];
    float tags[B];
    for (int b = 0; b < B; b++) {
        int off = 4 - prompt_len[b];
        for (int j = 0; j < 4; j++) {
            ids[b * 4 + j] = j < off ? 0 : prompt_tok[b][j - off];
            mask[b * 4 + j] = j >= off;
        }
        tags[b] = (float)(b + 1);
    }
    gr_lm_inputs in = {.struct_size = sizeof in, .batch = B, .seq = 4, .ids = ids, .mask = mask};
    if (with_prefix) in.prefix = gr_from_host(ctx, GR_F32, 3, (int64_t[]){B, 1, 1}, tags);
    int32_t *got = NULL;
    int lens[B];
    lm->calls_reorder = 0;
    gr_status s = gr_generate(&table_iface, lm, ctx, &in, g, &got, lens);
    CHECK(s == GR_OK, "%s: gr_generate: %s", what, gr_last_error());
    if (s != GR_OK) { gr_ctx_reset(ctx); return; }
    for (int b = 0; b < B; b++) {
        ref_state s0 = {with_prefix ? b + 1 : 0, prompt_len[b] >= 2 ? prompt_tok[b][prompt_len[b] - 2] : NONE,
                        prompt_tok[b][prompt_len[b] - 1]};
        int32_t want[MAXN];
        ref_stats st = {0};
        int n = g->num_beams == 1 ? ref_greedy(lm, s0, g, want, &st) : ref_beam(lm, s0, g, want, &st);
        CHECK(n >= 0, "%s row %d: the reference ran out of non-EOS candidates", what, b);
        if (n < 0) continue;
        int same = lens[b] == n && memcmp(got + b * g->max_new_tokens, want, sizeof(int32_t) * (size_t)n) == 0;
        if (!same) {
            printf("  %s row %d: got", what, b);
            for (int i = 0; i < lens[b]; i++) printf(" %d", got[b * g->max_new_tokens + i]);
            printf(", reference");
            for (int i = 0; i < n; i++) printf(" %d", want[i]);
            printf("\n");
        }
        CHECK(same, "%s row %d: output differs from the reference", what, b);
        ans[b][0] = n;
        memcpy(ans[b] + 1, want, sizeof(int32_t) * (size_t)n);
        cov->closed_early += st.closed_early;
        cov->never_eos += st.never_eos;
        cov->beyond_2k += st.beyond_2k;
        cov->eos_won += st.eos_won;
        cov->max_won += !st.eos_won;
    }
    int longest = 0;
    for (int b = 0; b < B; b++) longest = lens[b] > longest ? lens[b] : longest;
    if (g->num_beams > 1 && longest >= 2) /* a second token was chosen after a reorder */
        CHECK(lm->calls_reorder > 0, "%s: beam search never reordered the cache", what);
    cov->cases++;
    free(got);
    gr_ctx_reset(ctx);
}

static void sweep(gr_ctx *ctx)
{
    static const int eos_sets[3][3] = {{2, -1, -1}, {2, 5, -1}, {1, 4, 7}};
    static const double biases[3] = {-40.0, -0.5, 3.0};
    static const double penalties[3] = {1.0, 0.0, -1.0};
    static const int maxns[3] = {1, 5, MAXN};
    gr_lm *lm = malloc(sizeof *lm);
    coverage cov = {0};
    int32_t ans[3][B][MAXN + 1];
    for (int seed = 0; seed < 3; seed++)
        for (int es = 0; es < 3; es++)
            for (int bi = 0; bi < 3; bi++) {
                gr_gen_config g = {.pad_id = 0};
                for (int e = 0; e < 3 && eos_sets[es][e] >= 0; e++) g.eos_ids[g.n_eos++] = eos_sets[es][e];
                lm_fill(lm, 1000 + (uint64_t)seed, &g, biases[bi], seed == 2);
                for (int K = 1; K <= 5; K++)
                    for (int mn = 0; mn <= 3; mn += 3)
                        for (int mi = 0; mi < 3; mi++)
                            for (int pf = 0; pf < 2; pf++) {
                                int32_t noban[B][MAXN + 1];
                                memset(ans, 0, sizeof ans);
                                memset(noban, 0, sizeof noban);
                                for (int li = 0; li < 3; li++) {
                                    gr_gen_config c = g;
                                    c.num_beams = K;
                                    c.min_new_tokens = mn;
                                    c.max_new_tokens = maxns[mi];
                                    c.length_penalty = penalties[li];
                                    char what[160];
                                    snprintf(what, sizeof what, "seed %d eos {%d,%d,%d} bias %g K %d min %d max %d lp %g%s",
                                             seed, eos_sets[es][0], eos_sets[es][1], eos_sets[es][2], biases[bi], K, mn,
                                             maxns[mi], penalties[li], pf ? " prefix" : "");
                                    run_case(lm, ctx, &c, pf, &cov, ans[li], what);
                                }
                                if (K > 1 && memcmp(ans[0], ans[2], sizeof ans[0]) != 0) cov.lp_differs++;
                                if (mn > 0) {
                                    gr_gen_config c = g;
                                    c.num_beams = K;
                                    c.max_new_tokens = maxns[mi];
                                    c.length_penalty = penalties[0];
                                    run_case(lm, ctx, &c, pf, &cov, noban, "min_new_tokens 0 twin");
                                    if (memcmp(noban, ans[0], sizeof noban) != 0) cov.min_new_decided++;
                                }
                            }
            }
    printf("ok   %d configurations x %d rows equal the reference (%d checks, %d failures so far)\n", cov.cases, B,
           checks, failures);
    printf("     coverage: closed early %d, never an EOS %d, candidate beyond rank 2K %d, EOS-closed answers %d,"
           " max-length answers %d, length penalty 1 vs -1 differ %d, min_new_tokens decides %d\n",
           cov.closed_early, cov.never_eos, cov.beyond_2k, cov.eos_won, cov.max_won, cov.lp_differs,
           cov.min_new_decided);
    CHECK(cov.closed_early > 50 && cov.never_eos > 50 && cov.beyond_2k > 0 && cov.eos_won > 50 && cov.max_won > 50 &&
              cov.lp_differs > 0 && cov.min_new_decided > 0,
          "the sweep does not cover every behaviour it claims to");
    free(lm);
}

/* Bad settings: one-line errors, no crash. */
static void errors(gr_ctx *ctx)
{
    gr_lm *lm = calloc(1, sizeof *lm);
    int32_t ids[1] = {1}, *out = NULL;
    int lens[1];
    gr_lm_inputs in = {.struct_size = sizeof in, .batch = 1, .seq = 1, .ids = ids};
    gr_gen_config g = {.num_beams = 2, .max_new_tokens = 0};
    gr_status s = gr_generate(&table_iface, lm, ctx, &in, &g, &out, lens);
    CHECK(s != GR_OK && strstr(gr_last_error(), "max_new_tokens") && !strchr(gr_last_error(), '\n'),
          "max_new_tokens 0 accepted or badly reported: %s", s ? gr_last_error() : "ok");
    g.max_new_tokens = 3;
    g.num_beams = 33;
    s = gr_generate(&table_iface, lm, ctx, &in, &g, &out, lens);
    CHECK(s != GR_OK && strstr(gr_last_error(), "num_beams"), "num_beams 33 accepted: %s", s ? gr_last_error() : "ok");
    /* A failing LM: its message comes back unchanged. */
    int32_t bad[1] = {V + 3};
    in.ids = bad;
    g.num_beams = 3;
    s = gr_generate(&table_iface, lm, ctx, &in, &g, &out, lens);
    CHECK(s != GR_OK && strstr(gr_last_error(), "table lm"), "an LM error was lost: %s", s ? gr_last_error() : "ok");
    printf("ok   errors: %s\n", gr_last_error());
    free(lm);
    gr_ctx_reset(ctx);
}

int main(void)
{
    gr_backend *backend = NULL;
    gr_plugins_scan();
    if (gr_backend_open("cpu", NULL, &backend) != GR_OK) {
        printf("FAIL: cpu backend: %s\n", gr_last_error());
        return 1;
    }
    gr_ctx *ctx = gr_ctx_create(backend);
    sweep(ctx);
    errors(ctx);
    gr_ctx_destroy(ctx);
    gr_backend_close(backend);
    printf("%s: %d checks, %d failures\n", failures ? "FAIL" : "PASS", checks, failures);
    return failures ? 1 : 0;
}
