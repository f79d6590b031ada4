/* gr_generate on the real language-model plugins (tests/fixtures: OPT, Llama, T5), against the
 * plugins' full forward without any cache:
 *  - greedy: each token is the argmax of the full forward recomputed on the growing sequence
 *    (one row, no padding), with and without a soft-prompt prefix, in a batch of prompts of
 *    different lengths (left padded); and each row of the batch equals generating that row
 *    alone (bit-identical tokens);
 *  - beam search through the plugin's KV cache and cache_reorder equals beam search over a
 *    test-only "no cache" LM that recomputes the full forward of every row at every step.
 * Generation settings make some rows stop at an EOS and others run to max_new_tokens.
 * Usage: test_gen_models FIXTURES_DIR */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen/generate.h"
#include "graft/rng.h"
#include "plugin/registry.h"

static int failures, checks;
static const char *fixtures;
static gr_backend *backend;

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

#define NB 3      /* prompts per batch */
#define P 3       /* soft-prompt rows */
#define MAXNEW 7

typedef struct model {
    const char *name;
    gr_ctx *ctx;
    const gr_lm_iface *lm;
    gr_lm *m;
    gr_lm_info info;
    json_t *config;
    gr_weights *w;
    char dir[512], config_path[600];
    int32_t prompt[NB][8];
    int plen[NB];
    float *prefix;         /* [NB, P, embed_dim] */
} model;

static gr_status open_fixture(model *M, const char *family, const char *name)
{
    memset(M, 0, sizeof *M);
    M->name = name;
    snprintf(M->dir, sizeof M->dir, "%s/%s", fixtures, name);
    snprintf(M->config_path, sizeof M->config_path, "%s/config.json", M->dir);
    json_error_t e;
    if (!(M->config = json_load_file(M->config_path, 0, &e))) return gr_fail(GR_ERR_FORMAT, "%s: %s", M->config_path, e.text);
    const void *iface;
    gr_status s = gr_plugin_iface(GR_PLUGIN_LANGUAGE_MODEL, family, &iface);
    if (s == GR_OK) s = gr_weights_open(M->dir, &M->w);
    if (s != GR_OK) return s;
    M->lm = iface;
    M->ctx = gr_ctx_create(backend);
    gr_model_source src = {.struct_size = sizeof src, .dir = M->dir, .config = M->config, .config_path = M->config_path,
                           .weights = M->w, .prefix = "", .seed = 1};
    if ((s = M->lm->open(M->ctx, &src, &M->m))) return s;
    M->lm->info(M->m, &M->info);
    /* Prompts of lengths 6, 2, 4 from a fixed stream of in-vocabulary ids; a random soft prompt
     * of the size of a word embedding. */
    gr_rng r;
    gr_rng_seed(&r, 77);
    static const int lens[NB] = {6, 2, 4};
    for (int b = 0; b < NB; b++) {
        M->plen[b] = lens[b];
        for (int j = 0; j < lens[b]; j++) M->prompt[b][j] = 3 + (int32_t)gr_rng_below(&r, (uint64_t)(M->info.vocab_size - 3));
    }
    int64_t n = NB * P * M->info.embed_dim;
    M->prefix = malloc(sizeof(float) * (size_t)n);
    if (!M->prefix) return gr_fail(GR_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) M->prefix[i] = (float)(0.5 * gr_rng_normal(&r));
    return GR_OK;
}

static void close_model(model *M)
{
    if (M->m) M->lm->close(M->m, M->ctx);
    if (M->ctx) gr_ctx_destroy(M->ctx);
    gr_weights_close(M->w);
    json_decref(M->config);
    free(M->prefix);
}

/* The next-token logits of one row by the full forward: decoder-only [prefix][prompt hist];
 * T5 encoder [prefix][prompt], decoder [start hist] (labels hist + one filler). */
static gr_status full_next_logits(model *M, const int32_t *prompt, int plen, const float *prefix_row, const int32_t *hist,
                                  int n, float *out)
{
    gr_ctx *ctx = M->ctx;
    int64_t V = M->info.vocab_size, E = M->info.embed_dim;
    int32_t ids[64], labels[64];
    gr_lm_inputs in = {.struct_size = sizeof in, .batch = 1};
    if (prefix_row) in.prefix = gr_from_host(ctx, GR_F32, 3, (int64_t[]){1, P, E}, prefix_row);
    memcpy(ids, prompt, sizeof(int32_t) * (size_t)plen);
    if (M->info.is_encoder_decoder) {
        in.seq = plen;
        memcpy(labels, hist, sizeof(int32_t) * (size_t)n);
        labels[n] = 0;
        in.labels = labels;
        in.label_len = n + 1;
    } else {
        memcpy(ids + plen, hist, sizeof(int32_t) * (size_t)n);
        in.seq = plen + n;
    }
    in.ids = ids;
    gr_lm_outputs o = {.struct_size = sizeof o};
    int was = gr_ctx_set_grad_enabled(ctx, 0);
    gr_status s = gr_ctx_status(ctx);
    if (s == GR_OK) s = M->lm->forward(M->m, ctx, &in, &o);
    gr_ctx_set_grad_enabled(ctx, was);
    if (s != GR_OK) return s;
    int64_t pos = o.logits->shape[1];
    gr_tensor *last = gr_slice(ctx, o.logits, 1, M->info.is_encoder_decoder ? n : pos - 1, 1);
    if ((s = gr_ctx_status(ctx)) != GR_OK) return s;
    if (gr_numel(last) != V) return gr_fail(GR_ERR_SHAPE, "%s: forward logits are not [1, pos, %lld]", M->name, (long long)V);
    return gr_to_host_f32(ctx, last, out);
}

/* The batch of all prompts, left padded, with or without the soft prompt. */
static void batch_inputs(model *M, int with_prefix, int32_t *ids, int32_t *mask, gr_lm_inputs *in)
{
    int S = 0;
    for (int b = 0; b < NB; b++) S = M->plen[b] > S ? M->plen[b] : S;
    int32_t pad = M->info.pad_id >= 0 ? M->info.pad_id : 0;
    for (int b = 0; b < NB; b++)
        for (int j = 0; j < S; j++) {
            int off = S - M->plen[b];
            ids[b * S + j] = j < off ? pad : M->prompt[b][j - off];
            mask[b * S + j] = j >= off;
        }
    *in = (gr_lm_inputs){.struct_size = sizeof *in, .batch = NB, .seq = S, .ids = ids, .mask = mask};
    if (with_prefix) in->prefix = gr_from_host(M->ctx, GR_F32, 3, (int64_t[]){NB, P, M->info.embed_dim}, M->prefix);
}

static gr_status generate_one(model *M, int b, int with_prefix, const gr_gen_config *g, int32_t *out, int *len)
{
    gr_lm_inputs in = {.struct_size = sizeof in, .batch = 1, .seq = M->plen[b], .ids = M->prompt[b]};
    if (with_prefix)
        in.prefix = gr_from_host(M->ctx, GR_F32, 3, (int64_t[]){1, P, M->info.embed_dim},
                                 M->prefix + (int64_t)b * P * M->info.embed_dim);
    int32_t *ids = NULL;
    gr_status s = gr_generate(M->lm, M->m, M->ctx, &in, g, &ids, len);
    if (s == GR_OK) memcpy(out, ids, sizeof(int32_t) * (size_t)*len);
    free(ids);
    gr_ctx_reset(M->ctx);
    return s;
}

/* ------------------------------------------------------------------ greedy ---- */

static void test_greedy(const char *family, const char *name)
{
    model M;
    gr_status s = open_fixture(&M, family, name);
    CHECK(s == GR_OK, "%s: open: %s", name, gr_last_error());
    if (s != GR_OK) { close_model(&M); return; }
    int64_t V = M.info.vocab_size, E = M.info.embed_dim;
    float *logits = malloc(sizeof(float) * (size_t)V);
    int stopped = 0, ran_out = 0, near_ties = 0;
    for (int pf = 0; pf < 2; pf++) {
        /* EOS: the token row 1 generates third when nothing stops it, so that row stops early. */
        gr_gen_config g = {.num_beams = 1, .max_new_tokens = MAXNEW, .pad_id = 0};
        int32_t free_run[MAXNEW];
        int free_len = 0;
        s = generate_one(&M, 1, pf, &g, free_run, &free_len);
        CHECK(s == GR_OK && free_len == MAXNEW, "%s: free run: %s", name, gr_last_error());
        if (s != GR_OK) break;
        g.eos_ids[g.n_eos++] = free_run[2];
        int32_t ids[NB * 8], mask[NB * 8], *got = NULL;
        int lens[NB];
        gr_lm_inputs in;
        batch_inputs(&M, pf, ids, mask, &in);
        s = gr_generate(M.lm, M.m, M.ctx, &in, &g, &got, lens);
        gr_ctx_reset(M.ctx);
        CHECK(s == GR_OK, "%s: batch greedy: %s", name, gr_last_error());
        if (s != GR_OK) break;
        for (int b = 0; b < NB; b++) {
            /* the full forward, one row, no padding, on the growing sequence */
            int32_t hist[MAXNEW];
            int n = 0, ok = 1;
            for (int t = 0; t < MAXNEW && ok; t++) {
                s = full_next_logits(&M, M.prompt[b], M.plen[b], pf ? M.prefix + (int64_t)b * P * E : NULL, hist, n, logits);
                gr_ctx_reset(M.ctx);
                if (s != GR_OK) { CHECK(0, "%s: full forward: %s", name, gr_last_error()); ok = 0; break; }
                int best = 0;
                for (int v = 1; v < V; v++) if (logits[v] > logits[best]) best = v;
                int gen = t < lens[b] ? got[b * MAXNEW + t] : g.eos_ids[0];
                if (gen != best) {
                    /* only a tie within rounding may go either way */
                    int tie = logits[gen] >= logits[best] - 1e-4f * (1.0f + fabsf(logits[best]));
                    near_ties += tie;
                    CHECK(tie, "%s%s row %d step %d: generated %d, full-forward argmax %d (%.6g vs %.6g)", name,
                          pf ? " prefix" : "", b, t, gen, best, logits[gen], logits[best]);
                    if (!tie) ok = 0;
                }
                if (gen == g.eos_ids[0]) break;
                hist[n++] = gen;
            }
            if (!ok) continue;
            CHECK(n == lens[b], "%s%s row %d: %d tokens generated, the reference has %d", name, pf ? " prefix" : "", b,
                  lens[b], n);
            stopped += n < MAXNEW;
            ran_out += n == MAXNEW;
            /* the same row alone */
            int32_t alone[MAXNEW];
            int alen = 0;
            s = generate_one(&M, b, pf, &g, alone, &alen);
            CHECK(s == GR_OK && alen == lens[b] && memcmp(alone, got + b * MAXNEW, sizeof(int32_t) * (size_t)alen) == 0,
                  "%s%s row %d: batched (left padded) output differs from the row alone", name, pf ? " prefix" : "", b);
        }
        free(got);
    }
    CHECK(stopped > 0 && ran_out > 0, "%s: no row stopped at the EOS or none ran to max_new_tokens", name);
    printf("ok   %-24s greedy = full-forward argmax, batch row = row alone (with/without prefix; %d rows stopped at"
           " EOS, %d at max_new_tokens, %d near-ties)\n", name, stopped, ran_out, near_ties);
    free(logits);
    close_model(&M);
}

/* ------------------------------------------------------------------ no-cache LM ---- */

/* Wraps a model: the "cache" is each row's prompt, soft prompt and generated tokens; every
 * step recomputes the full forward of every row. */
typedef struct nocache { model *M; } nocache;
typedef struct nc_cache {
    int64_t rows;
    int32_t (*prompt)[8];
    int *plen;
    float *prefix;  /* [rows, P, E] or NULL */
    int32_t (*hist)[MAXNEW + 1];
    int n;
} nc_cache;

static gr_status nc_logits(nocache *w, gr_ctx *ctx, nc_cache *c, gr_tensor **logits)
{
    model *M = w->M;
    int64_t V = M->info.vocab_size, E = M->info.embed_dim;
    float *buf = malloc(sizeof(float) * (size_t)(c->rows * V));
    if (!buf) return gr_fail(GR_ERR_NOMEM, "out of memory");
    gr_status s = GR_OK;
    for (int64_t r = 0; r < c->rows && s == GR_OK; r++) {
        s = full_next_logits(M, c->prompt[r], c->plen[r], c->prefix ? c->prefix + r * P * E : NULL, c->hist[r], c->n,
                             buf + r * V);
        gr_ctx_reset(M->ctx);
    }
    /* the outputs live in gr_generate's context: full forwards ran in the model's own */
    if (s == GR_OK) *logits = gr_from_host(ctx, GR_F32, 2, (int64_t[]){c->rows, V}, buf);
    free(buf);
    return s == GR_OK ? gr_ctx_status(ctx) : s;
}

static void nc_free(gr_lm *lm, gr_ctx *ctx, gr_lm_cache *cache)
{
    (void)lm;
    (void)ctx;
    nc_cache *c = (nc_cache *)cache;
    if (!c) return;
    free(c->prompt);
    free(c->plen);
    free(c->prefix);
    free(c->hist);
    free(c);
}

static gr_status nc_begin(gr_lm *lm, gr_ctx *ctx, const gr_lm_inputs *p, gr_lm_cache **out, gr_tensor **logits)
{
    nocache *w = (nocache *)lm;
    int64_t E = w->M->info.embed_dim;
    nc_cache *c = calloc(1, sizeof *c);
    if (!c) return gr_fail(GR_ERR_NOMEM, "out of memory");
    c->rows = p->batch;
    c->prompt = calloc((size_t)p->batch, sizeof *c->prompt);
    c->plen = calloc((size_t)p->batch, sizeof *c->plen);
    c->hist = calloc((size_t)p->batch, sizeof *c->hist);
    gr_status s = (c->prompt && c->plen && c->hist) ? GR_OK : gr_fail(GR_ERR_NOMEM, "out of memory");
    if (s == GR_OK && p->prefix) {
        c->prefix = malloc(sizeof(float) * (size_t)(p->batch * P * E));
        s = c->prefix ? gr_to_host_f32(ctx, p->prefix, c->prefix) : gr_fail(GR_ERR_NOMEM, "out of memory");
    }
    for (int64_t r = 0; s == GR_OK && r < p->batch; r++)
        for (int64_t j = 0; j < p->seq; j++)
            if (!p->mask || p->mask[r * p->seq + j]) c->prompt[r][c->plen[r]++] = p->ids[r * p->seq + j];
    if (s == GR_OK) s = nc_logits(w, ctx, c, logits);
    if (s != GR_OK) { nc_free(lm, ctx, (gr_lm_cache *)c); return s; }
    *out = (gr_lm_cache *)c;
    return GR_OK;
}

static gr_status nc_step(gr_lm *lm, gr_ctx *ctx, gr_lm_cache *cache, const int32_t *next, gr_tensor **logits)
{
    nc_cache *c = (nc_cache *)cache;
    if (c->n == MAXNEW) return gr_fail(GR_ERR_INVALID, "no-cache LM: too many steps");
    for (int64_t r = 0; r < c->rows; r++) c->hist[r][c->n] = next[r];
    c->n++;
    return nc_logits((nocache *)lm, ctx, c, logits);
}

static gr_status nc_reorder(gr_lm *lm, gr_ctx *ctx, gr_lm_cache *cache, const int32_t *rows, int64_t count)
{
    (void)ctx;
    nc_cache *c = (nc_cache *)cache;
    int64_t E = ((nocache *)lm)->M->info.embed_dim;
    nc_cache old = *c;
    nc_cache nw = {.rows = count, .n = c->n};
    nw.prompt = calloc((size_t)count, sizeof *nw.prompt);
    nw.plen = calloc((size_t)count, sizeof *nw.plen);
    nw.hist = calloc((size_t)count, sizeof *nw.hist);
    nw.prefix = old.prefix ? malloc(sizeof(float) * (size_t)(count * P * E)) : NULL;
    if (!nw.prompt || !nw.plen || !nw.hist || (old.prefix && !nw.prefix)) {
        free(nw.prompt); free(nw.plen); free(nw.hist); free(nw.prefix);
        return gr_fail(GR_ERR_NOMEM, "out of memory");
    }
    for (int64_t r = 0; r < count; r++) {
        memcpy(nw.prompt[r], old.prompt[rows[r]], sizeof nw.prompt[r]);
        nw.plen[r] = old.plen[rows[r]];
        memcpy(nw.hist[r], old.hist[rows[r]], sizeof nw.hist[r]);
        if (nw.prefix) memcpy(nw.prefix + r * P * E, old.prefix + rows[r] * P * E, sizeof(float) * (size_t)(P * E));
    }
    free(old.prompt); free(old.plen); free(old.hist); free(old.prefix);
    *c = nw;
    return GR_OK;
}

static void nc_info(const gr_lm *lm, gr_lm_info *out)
{
    const model *M = ((const nocache *)lm)->M;
    *out = M->info;
}

static const gr_lm_iface nocache_iface = {
    .struct_size = sizeof(gr_lm_iface),
    .info = nc_info,
    .generate_begin = nc_begin,
    .generate_step = nc_step,
    .cache_reorder = nc_reorder,
    .cache_free = nc_free,
};

/* ------------------------------------------------------------------ beam search ---- */

static void test_beam_cache(const char *family, const char *name)
{
    model M;
    gr_status s = open_fixture(&M, family, name);
    CHECK(s == GR_OK, "%s: open: %s", name, gr_last_error());
    if (s != GR_OK) { close_model(&M); return; }
    nocache w = {&M};
    gr_ctx *ctx = gr_ctx_create(backend); /* gr_generate's context for the wrapper */
    int cases = 0, eos_answers = 0;
    for (int pf = 0; pf < 2; pf++)
        for (int K = 2; K <= 4; K += 2)
            for (int li = 0; li < 2; li++) {
                gr_gen_config g = {.num_beams = K, .max_new_tokens = MAXNEW - 1, .min_new_tokens = 1,
                                   .length_penalty = li ? -1.0 : 1.0, .pad_id = 0};
                /* EOS: the second greedy token of row 0 and the third of row 2, so hypotheses
                 * close early and later */
                gr_gen_config gg = {.num_beams = 1, .max_new_tokens = 3, .pad_id = 0};
                int32_t r0[3], r2[3];
                int n0 = 0, n2 = 0;
                if (generate_one(&M, 0, pf, &gg, r0, &n0) != GR_OK || generate_one(&M, 2, pf, &gg, r2, &n2) != GR_OK) {
                    CHECK(0, "%s: greedy: %s", name, gr_last_error());
                    continue;
                }
                g.eos_ids[g.n_eos++] = r0[1];
                if (r2[2] != r0[1]) g.eos_ids[g.n_eos++] = r2[2];
                int32_t ids[NB * 8], mask[NB * 8], *a = NULL, *b = NULL;
                int la[NB], lb[NB];
                gr_lm_inputs in;
                batch_inputs(&M, pf, ids, mask, &in);
                s = gr_generate(M.lm, M.m, M.ctx, &in, &g, &a, la);
                gr_ctx_reset(M.ctx);
                CHECK(s == GR_OK, "%s: beam search (KV cache): %s", name, gr_last_error());
                if (pf) in.prefix = gr_from_host(ctx, GR_F32, 3, (int64_t[]){NB, P, M.info.embed_dim}, M.prefix);
                if (s == GR_OK) s = gr_generate(&nocache_iface, (gr_lm *)&w, ctx, &in, &g, &b, lb);
                gr_ctx_reset(ctx);
                CHECK(s == GR_OK, "%s: beam search (no cache): %s", name, gr_last_error());
                for (int r = 0; s == GR_OK && r < NB; r++) {
                    int same = la[r] == lb[r] && memcmp(a + r * g.max_new_tokens, b + r * g.max_new_tokens,
                                                        sizeof(int32_t) * (size_t)la[r]) == 0;
                    CHECK(same, "%s%s K %d lp %g row %d: KV-cache beam search differs from the full forward's", name,
                          pf ? " prefix" : "", K, g.length_penalty, r);
                    eos_answers += la[r] < g.max_new_tokens;
                }
                cases++;
                free(a);
                free(b);
            }
    printf("ok   %-24s beam search with cache_reorder = full-forward beam search (%d settings x %d rows, %d answers"
           " closed by an EOS)\n", name, cases, NB, eos_answers);
    gr_ctx_destroy(ctx);
    close_model(&M);
}

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: test_gen_models FIXTURES_DIR\n"); return 2; }
    fixtures = argv[1];
    gr_plugins_scan();
    if (gr_backend_open("cpu", NULL, &backend) != GR_OK) {
        printf("FAIL: cpu backend: %s\n", gr_last_error());
        return 1;
    }
    static const char *const cases[][2] = {{"opt", "opt_prenorm"}, {"opt", "opt_postln_project"},
                                           {"llama", "llama_gqa2_llama3rope"}, {"llama", "llama_gqa4_linear_tied"},
                                           {"t5", "t5_gated_gelu_untied"}, {"t5", "t5_v10_relu_tied"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) test_greedy(cases[i][0], cases[i][1]);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) test_beam_cache(cases[i][0], cases[i][1]);
    gr_backend_close(backend);
    printf("%s: %d checks, %d failures\n", failures ? "FAIL" : "PASS", checks, failures);
    return failures ? 1 : 0;
}
