/* The LM pretraining task (packed windows, causal LM or T5 prefix LM) and its quality check;
 * see task_lm.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fsutil.h"
#include "data/dataset.h"
#include "data/rng.h"
#include "train/task_lm.h"

/* Token ids of many lines, back to back: line i is ids[off[i] .. off[i+1]). */
typedef struct lines_t { int32_t *ids; int64_t n, cap; int64_t *off; int64_t nl, capl; } lines_t;

struct gr_lm_task {
    gr_lm_task_config cfg;
    gr_lm_info info;
    lines_t train, val;
    int64_t *file_first;      /* train lines of corpus file i: file_first[i] .. file_first[i+1] */
    double *weights;          /* per corpus file */
    int64_t epoch_lines;      /* line copies per epoch (the same every epoch) */
    int64_t *picks;           /* the current epoch's line copies, before shuffling */
    int32_t *stream;          /* the current epoch's packed training tokens */
    int64_t stream_tokens;    /* tokens in the stream */
    int64_t stream_epoch;     /* epoch the stream was built for (-1: none) */
    int64_t batches;          /* of the current stream's epoch */
    int64_t val_windows;
    int32_t *bufs;            /* batch buffers: ids | mask | labels */
};

static int grow(void **p, int64_t *cap, int64_t need, size_t elem)
{
    if (need <= *cap) return 1;
    int64_t c = *cap ? *cap : 1024;
    while (c < need) c *= 2;
    void *q = realloc(*p, (size_t)c * elem);
    if (!q) return 0;
    *p = q;
    *cap = c;
    return 1;
}

static gr_status push_line(lines_t *L, const int32_t *ids, int64_t n)
{
    if (!grow((void **)&L->ids, &L->cap, L->n + n, sizeof *L->ids) || !grow((void **)&L->off, &L->capl, L->nl + 2, sizeof *L->off))
        return gr_fail(GR_ERR_NOMEM, "pretrain: out of memory");
    if (L->nl == 0) L->off[0] = 0;
    memcpy(L->ids + L->n, ids, (size_t)n * sizeof *ids);
    L->n += n;
    L->off[++L->nl] = L->n;
    return GR_OK;
}

static void lines_free(lines_t *L) { free(L->ids); free(L->off); memset(L, 0, sizeof *L); }

/* The ids of one text as the family's tokenizer frames it: special tokens added by the
 * tokenizer, plus EOS when it added none and EOS is not also the BOS (OPT: the next line's
 * "</s>" ends this one). With `newline` (decoder-only families) the text keeps its "\n", as
 * the VLM task frames a caption (LAVIS: prompt + text + "\n") and stops generation at it: a
 * frozen LM must already know that a line ends there. */
static gr_status encode_line(const gr_tokenizer *tok, const char *s, size_t n, int newline, int32_t **ids, size_t *nids)
{
    char *text = malloc(n + 2);
    if (!text) return gr_fail(GR_ERR_NOMEM, "pretrain: out of memory");
    memcpy(text, s, n);
    if (newline) text[n++] = '\n';
    text[n] = '\0';
    gr_status st = gr_tokenizer_encode(tok, text, n, GR_ENCODE_ADD_SPECIAL, ids, nids);
    free(text);
    if (st) return st;
    int32_t eos = gr_tokenizer_eos_id(tok), bos = gr_tokenizer_bos_id(tok);
    if (eos >= 0 && eos != bos && (*nids == 0 || (*ids)[*nids - 1] != eos)) {
        int32_t *v = realloc(*ids, (*nids + 1) * sizeof *v);
        if (!v) { free(*ids); *ids = NULL; return gr_fail(GR_ERR_NOMEM, "pretrain: out of memory"); }
        v[(*nids)++] = eos;
        *ids = v;
    }
    return GR_OK;
}

/* Tokenizes a file into units (see task_lm.h: a line, or with `paragraphs` a blank-line
 * separated paragraph whose lines are framed one by one and kept together in order); with
 * every_k > 0 unit j (counting units over all files, *counter) goes to `held` when
 * j % every_k == every_k - 1, else to `main`. */
static gr_status read_corpus(const gr_tokenizer *tok, const char *path, int paragraphs, int newline, lines_t *main, lines_t *held,
                             int64_t every_k, int64_t *counter)
{
    char *data;
    size_t len;
    gr_status s = gr_read_file(path, &data, &len);
    if (s) return s;
    size_t pos = 0;
    int64_t line_no = 0;
    int32_t *unit = NULL;
    int64_t unit_n = 0, unit_cap = 0;
    while (!s && pos <= len) {
        const char *line = data + pos;
        const char *nl = pos < len ? memchr(line, '\n', len - pos) : NULL;
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        int at_end = pos + n >= len;
        pos += n + 1;
        line_no++;
        if (n && line[n - 1] == '\r') n--;
        if (n > 0) {
            int32_t *ids;
            size_t nids;
            s = encode_line(tok, line, n, newline, &ids, &nids);
            if (s) { s = gr_fail_context(s, "%s: line %lld", path, (long long)line_no); break; }
            if (!grow((void **)&unit, &unit_cap, unit_n + (int64_t)nids, sizeof *unit)) s = gr_fail(GR_ERR_NOMEM, "pretrain: out of memory");
            else memcpy(unit + unit_n, ids, nids * sizeof *ids);
            unit_n += (int64_t)nids;
            free(ids);
        }
        /* a unit ends at every line, or (paragraphs) at a blank line and at the end of the file */
        if (!s && unit_n > 0 && (!paragraphs || n == 0 || at_end)) {
            lines_t *dst = every_k > 0 && *counter % every_k == every_k - 1 ? held : main;
            s = push_line(dst, unit, unit_n);
            unit_n = 0;
            (*counter)++;
        }
        if (at_end) break;
    }
    free(unit);
    free(data);
    return s;
}

/* ---- batches ---- */

/* Line copies of file f for an epoch: floor(w) copies of each line, then the first
 * round(frac(w) * n) lines of a permutation fixed by (seed, epoch, f). */
static int64_t extra_lines(double w, int64_t n) { return (int64_t)llround((w - floor(w)) * (double)n); }

static gr_status build_stream(gr_lm_task *t, int64_t epoch)
{
    if (t->stream_epoch == epoch) return GR_OK;
    int64_t k = 0;
    for (int f = 0; f < t->cfg.n_corpus; f++) {
        int64_t a = t->file_first[f], n = t->file_first[f + 1] - a, rep = (int64_t)floor(t->weights[f]);
        for (int64_t r = 0; r < rep; r++)
            for (int64_t i = 0; i < n; i++) t->picks[k++] = a + i;
        int64_t extra = extra_lines(t->weights[f], n);
        if (extra > 0) {
            size_t *perm, cnt;
            gr_status s = gr_epoch_order((size_t)n, 1, gr_seed_mix(t->cfg.seed, 0x4d4958ULL /* "MIX" */, (uint64_t)f), (int)epoch, 0, 1,
                                         &perm, &cnt);
            if (s) return s;
            for (int64_t i = 0; i < extra; i++) t->picks[k++] = a + (int64_t)perm[i];
            free(perm);
        }
    }
    size_t *order, count;
    gr_status s = gr_epoch_order((size_t)k, 1, t->cfg.seed, (int)epoch, 0, 1, &order, &count);
    if (s) return s;
    int64_t at = 0;
    for (size_t i = 0; i < count; i++) {
        int64_t line = t->picks[order[i]], a = t->train.off[line], b = t->train.off[line + 1];
        memcpy(t->stream + at, t->train.ids + a, (size_t)(b - a) * sizeof *t->stream);
        at += b - a;
    }
    free(order);
    t->stream_tokens = at;
    t->batches = at / t->cfg.seq_len / t->cfg.batch_size;
    t->stream_epoch = epoch;
    return GR_OK;
}

/* T5: splits window w (T tokens) at k: encoder ids[0..k) (padded to Te with mask 0), labels
 * window[k..T) (padded to Tl with -100). */
static void t5_split(const gr_lm_task *t, const int32_t *w, int64_t k, int32_t *enc, int32_t *mask, int32_t *lab)
{
    int64_t T = t->cfg.seq_len, Te = T - T / 4, Tl = T - T / 4;
    int32_t pad = t->info.pad_id >= 0 ? t->info.pad_id : 0;
    for (int64_t i = 0; i < Te; i++) {
        enc[i] = i < k ? w[i] : pad;
        mask[i] = i < k;
    }
    for (int64_t i = 0; i < Tl; i++) lab[i] = k + i < T ? w[k + i] : -100;
}

static gr_status forward_windows(gr_lm_task *t, gr_ctx *ctx, const int32_t *windows, int64_t B, int split_seed_on,
                                 uint64_t epoch, int64_t first_window, gr_lm_outputs *out, int64_t *tokens)
{
    int64_t T = t->cfg.seq_len;
    gr_lm_inputs in;
    memset(&in, 0, sizeof in);
    in.struct_size = sizeof in;
    in.batch = B;
    if (!t->info.is_encoder_decoder) {
        in.seq = T;
        in.ids = windows;
        in.labels = windows; /* HF shifts inside */
        *tokens = B * (T - 1);
    } else {
        int64_t Te = T - T / 4, Tl = T - T / 4;
        int32_t *enc = t->bufs, *mask = enc + B * Te, *lab = mask + B * Te;
        *tokens = 0;
        for (int64_t r = 0; r < B; r++) {
            int64_t k = T / 2;
            if (split_seed_on) {
                gr_rng g;
                gr_rng_seed(&g, gr_seed_mix(t->cfg.seed, epoch, (uint64_t)(first_window + r)));
                k = T / 4 + (int64_t)gr_rng_below(&g, (uint64_t)(T / 2 + 1));
            }
            t5_split(t, windows + r * T, k, enc + r * Te, mask + r * Te, lab + r * Tl);
            *tokens += T - k;
        }
        in.seq = Te;
        in.ids = enc;
        in.mask = mask;
        in.labels = lab;
        in.label_len = Tl;
    }
    gr_status s = t->cfg.lm->forward(t->cfg.model, ctx, &in, out);
    if (s == GR_OK && !out->loss) s = gr_fail(GR_ERR_INVALID, "pretrain: the model returned no loss");
    return s;
}

static gr_status task_batches(void *u, int64_t epoch, int64_t *count)
{
    gr_lm_task *t = u;
    gr_status s = build_stream(t, epoch);
    if (s) return s;
    if (t->batches < 1)
        return gr_fail(GR_ERR_INVALID, "%s: epoch %lld has %lld training tokens, fewer than one batch of %lld x %lld", t->cfg.corpus[0],
                       (long long)epoch, (long long)t->stream_tokens, (long long)t->cfg.batch_size, (long long)t->cfg.seq_len);
    *count = t->batches;
    return GR_OK;
}

static gr_status task_forward(void *u, gr_ctx *ctx, int64_t epoch, int64_t index, gr_task_loss *out)
{
    gr_lm_task *t = u;
    gr_status s = build_stream(t, epoch);
    if (s) return s;
    int64_t B = t->cfg.batch_size, T = t->cfg.seq_len;
    if (index < 0 || index >= t->batches)
        return gr_fail(GR_ERR_INVALID, "pretrain: batch %lld of epoch %lld is beyond its %lld batches", (long long)index, (long long)epoch,
                       (long long)t->batches);
    gr_lm_outputs o = {.struct_size = sizeof(gr_lm_outputs)};
    int64_t tokens;
    s = forward_windows(t, ctx, t->stream + index * B * T, B, 1, (uint64_t)epoch, index * B, &o, &tokens);
    if (s) return s;
    out->loss = o.loss;
    out->tokens = tokens;
    out->examples = B;
    return GR_OK;
}

gr_status gr_lm_task_eval_loss(gr_lm_task *t, gr_ctx *ctx, double *loss)
{
    int64_t B = t->cfg.batch_size, T = t->cfg.seq_len;
    double sum = 0;
    int64_t count = 0;
    int was = gr_ctx_set_grad_enabled(ctx, 0);
    gr_status s = GR_OK;
    for (int64_t w = 0; w < t->val_windows && !s; w += B) {
        int64_t b = t->val_windows - w < B ? t->val_windows - w : B;
        gr_ctx_reset(ctx);
        gr_lm_outputs o = {.struct_size = sizeof(gr_lm_outputs)};
        int64_t tokens;
        s = forward_windows(t, ctx, t->val.ids + w * T, b, 0, 0, w, &o, &tokens);
        float v = 0;
        if (!s) s = gr_to_host_f32(ctx, o.loss, &v);
        sum += (double)v * (double)tokens;
        count += tokens;
    }
    gr_ctx_reset(ctx);
    gr_ctx_set_grad_enabled(ctx, was);
    if (s) return gr_fail_context(s, "pretrain: held-out loss");
    *loss = count ? sum / (double)count : NAN;
    return GR_OK;
}

static gr_status task_eval(void *u, gr_ctx *ctx, gr_task_eval *ev)
{
    gr_lm_task *t = u;
    double loss;
    gr_status s = gr_lm_task_eval_loss(t, ctx, &loss);
    if (s) return s;
    ev->split = "val";
    ev->metrics[0] = (gr_metric){"loss", loss};
    ev->metrics[1] = (gr_metric){"ppl", exp(loss)};
    ev->count = 2;
    return GR_OK;
}

gr_task gr_lm_task_iface(gr_lm_task *t)
{
    gr_task k = {.user = t, .epoch_batches = task_batches, .forward = task_forward,
                 .evaluate = t->val_windows > 0 ? task_eval : NULL};
    return k;
}

gr_status gr_lm_task_create(const gr_lm_task_config *cfg, gr_lm_task **out)
{
    *out = NULL;
    if (cfg->seq_len < 4 || cfg->batch_size < 1) return gr_fail(GR_ERR_INVALID, "pretrain: seq_len must be >= 4 and batch_size >= 1");
    if (cfg->n_corpus < 1) return gr_fail(GR_ERR_INVALID, "pretrain: no corpus file");
    for (int i = 0; cfg->corpus_weights && i < cfg->n_corpus; i++) {
        double w = cfg->corpus_weights[i];
        if (!(w >= 0 && w <= 1000))
            return gr_fail(GR_ERR_INVALID, "%s: corpus weight %g is outside 0..1000", cfg->corpus[i], w);
    }
    gr_lm_task *t = calloc(1, sizeof *t);
    if (!t) return gr_fail(GR_ERR_NOMEM, "pretrain: out of memory");
    t->cfg = *cfg;
    t->cfg.corpus_weights = NULL; /* the caller's array need not outlive create: copied below */
    t->stream_epoch = -1;
    t->file_first = calloc((size_t)cfg->n_corpus + 1, sizeof *t->file_first);
    t->weights = calloc((size_t)cfg->n_corpus, sizeof *t->weights);
    if (!t->file_first || !t->weights) { gr_lm_task_free(t); return gr_fail(GR_ERR_NOMEM, "pretrain: out of memory"); }
    for (int i = 0; i < cfg->n_corpus; i++) t->weights[i] = cfg->corpus_weights ? cfg->corpus_weights[i] : 1.0;
    cfg->lm->info(cfg->model, &t->info);
    int64_t every = 0, counter = 0;
    if (cfg->n_val == 0 && cfg->val_fraction > 0) {
        every = (int64_t)llround(1.0 / cfg->val_fraction);
        if (every < 2) every = 2;
    }
    gr_status s = GR_OK;
    for (int i = 0; i < cfg->n_corpus && !s; i++) {
        s = read_corpus(cfg->tok, cfg->corpus[i], cfg->paragraphs, !t->info.is_encoder_decoder, &t->train, &t->val, every, &counter);
        t->file_first[i + 1] = t->train.nl;
    }
    for (int i = 0; i < cfg->n_val && !s; i++) {
        int64_t c2 = 0;
        s = read_corpus(cfg->tok, cfg->val_corpus[i], cfg->paragraphs, !t->info.is_encoder_decoder, &t->val, NULL, 0, &c2);
    }
    /* ids beyond the model's embedding table would be a silent out-of-range lookup */
    for (int64_t i = 0; !s && i < t->train.n + t->val.n; i++) {
        int32_t id = i < t->train.n ? t->train.ids[i] : t->val.ids[i - t->train.n];
        if (id < 0 || id >= t->info.vocab_size)
            s = gr_fail(GR_ERR_INVALID, "pretrain: token id %d is outside the model's vocabulary of %lld (tokenizer and config disagree)",
                        (int)id, (long long)t->info.vocab_size);
    }
    int64_t T = cfg->seq_len, B = cfg->batch_size;
    /* An epoch's size: line copies (fixed) and an upper bound on its tokens (the fractional
     * part of a weight draws different lines each epoch). */
    int64_t max_tokens = 0;
    for (int f = 0; f < cfg->n_corpus && !s; f++) {
        int64_t a = t->file_first[f], n = t->file_first[f + 1] - a;
        int64_t tokens = t->train.off && n ? t->train.off[a + n] - t->train.off[a] : 0;
        t->epoch_lines += (int64_t)floor(t->weights[f]) * n + extra_lines(t->weights[f], n);
        max_tokens += (int64_t)ceil(t->weights[f]) * tokens;
    }
    if (!s) {
        t->val_windows = t->val.n / T;
        if (cfg->eval_windows > 0 && t->val_windows > cfg->eval_windows) t->val_windows = cfg->eval_windows;
        if (max_tokens < B * T)
            s = gr_fail(GR_ERR_INVALID, "%s: the corpus has %lld training tokens an epoch, fewer than one batch of %lld x %lld", cfg->corpus[0],
                        (long long)max_tokens, (long long)B, (long long)T);
    }
    if (!s) {
        t->picks = malloc((size_t)(t->epoch_lines + 1) * sizeof *t->picks);
        t->stream = malloc((size_t)(max_tokens + 1) * sizeof *t->stream);
        t->bufs = malloc((size_t)(3 * B * T + 1) * sizeof *t->bufs);
        if (!t->picks || !t->stream || !t->bufs) s = gr_fail(GR_ERR_NOMEM, "pretrain: out of memory");
    }
    if (!s) s = build_stream(t, 0);
    if (!s && t->batches < 1)
        s = gr_fail(GR_ERR_INVALID, "%s: the corpus has %lld training tokens an epoch, fewer than one batch of %lld x %lld", cfg->corpus[0],
                    (long long)t->stream_tokens, (long long)B, (long long)T);
    if (s) { gr_lm_task_free(t); return s; }
    *out = t;
    return GR_OK;
}

void gr_lm_task_free(gr_lm_task *t)
{
    if (!t) return;
    lines_free(&t->train);
    lines_free(&t->val);
    free(t->file_first);
    free(t->weights);
    free(t->picks);
    free(t->stream);
    free(t->bufs);
    free(t);
}

void gr_lm_task_stats_get(const gr_lm_task *t, gr_lm_task_stats *o)
{
    o->train_lines = t->train.nl;
    o->val_lines = t->val.nl;
    o->train_tokens = t->train.n;
    o->val_tokens = t->val.n;
    o->epoch_tokens = t->stream_tokens;
    o->batches_per_epoch = t->batches;
    o->val_windows = t->val_windows;
}

/* ---- fixed batch for reload checks ---- */

gr_status gr_lm_task_fixed_batch(gr_lm_task *t, int64_t rows, gr_lm_batch *b)
{
    memset(b, 0, sizeof *b);
    int64_t T = t->cfg.seq_len;
    const int32_t *src = t->val.n >= rows * T ? t->val.ids : t->train.ids;
    if ((src == t->train.ids && t->train.n < rows * T) || rows < 1) return gr_fail(GR_ERR_INVALID, "pretrain: not enough text for %lld windows", (long long)rows);
    b->batch = rows;
    if (!t->info.is_encoder_decoder) {
        b->seq = T;
        b->label_len = T;
        b->ids = malloc((size_t)(rows * T) * sizeof *b->ids);
        b->mask = malloc((size_t)(rows * T) * sizeof *b->mask);
        b->labels = malloc((size_t)(rows * T) * sizeof *b->labels);
        if (!b->ids || !b->mask || !b->labels) { gr_lm_batch_free(b); return gr_fail(GR_ERR_NOMEM, "pretrain: out of memory"); }
        memcpy(b->ids, src, (size_t)(rows * T) * sizeof *b->ids);
        memcpy(b->labels, src, (size_t)(rows * T) * sizeof *b->ids);
        for (int64_t i = 0; i < rows * T; i++) b->mask[i] = 1;
        return GR_OK;
    }
    int64_t Te = T - T / 4, Tl = T - T / 4;
    b->seq = Te;
    b->label_len = Tl;
    b->ids = malloc((size_t)(rows * Te) * sizeof *b->ids);
    b->mask = malloc((size_t)(rows * Te) * sizeof *b->mask);
    b->labels = malloc((size_t)(rows * Tl) * sizeof *b->labels);
    if (!b->ids || !b->mask || !b->labels) { gr_lm_batch_free(b); return gr_fail(GR_ERR_NOMEM, "pretrain: out of memory"); }
    for (int64_t r = 0; r < rows; r++) t5_split(t, src + r * T, T / 2, b->ids + r * Te, b->mask + r * Te, b->labels + r * Tl);
    return GR_OK;
}

void gr_lm_batch_free(gr_lm_batch *b)
{
    free(b->ids);
    free(b->mask);
    free(b->labels);
    memset(b, 0, sizeof *b);
}

void gr_lm_batch_inputs(const gr_lm_batch *b, int encdec, gr_lm_inputs *in)
{
    memset(in, 0, sizeof *in);
    in->struct_size = sizeof *in;
    in->batch = b->batch;
    in->seq = b->seq;
    in->ids = b->ids;
    in->mask = b->mask;
    in->labels = b->labels;
    in->label_len = encdec ? b->label_len : 0;
}

/* ---- quality check ---- */

/* log P(answer | prompt) summed over the answer's tokens, and whether its first token is the
 * arg-max after the prompt. */
static gr_status probe(gr_lm_task *t, gr_ctx *ctx, const char *prompt, const char *answer, double *logp, int *top1,
                       int *n_answer)
{
    const gr_tokenizer *tok = t->cfg.tok;
    int encdec = t->info.is_encoder_decoder;
    int32_t *p = NULL, *a = NULL;
    size_t np = 0, na = 0;
    char *spaced = malloc(strlen(answer) + 2);
    if (!spaced) return gr_fail(GR_ERR_NOMEM, "pretrain: out of memory");
    spaced[0] = ' ';
    strcpy(spaced + 1, answer);
    /* decoder-only: "BOS prompt" as in training; T5's encoder saw raw windows: no EOS */
    gr_status s = gr_tokenizer_encode(tok, prompt, strlen(prompt), encdec ? 0 : GR_ENCODE_ADD_SPECIAL, &p, &np);
    if (!s) s = gr_tokenizer_encode(tok, spaced, strlen(spaced), 0, &a, &na);
    free(spaced);
    if (!s && (np == 0 || na == 0)) s = gr_fail(GR_ERR_INVALID, "pretrain: probe '%s|%s' encodes to no tokens", prompt, answer);
    int64_t T = encdec ? (int64_t)na : (int64_t)(np + na);
    int32_t *ids = NULL, *lab = NULL;
    if (!s) {
        ids = malloc((size_t)(np + na) * sizeof *ids);
        lab = malloc((size_t)(np + na) * sizeof *lab);
        if (!ids || !lab) s = gr_fail(GR_ERR_NOMEM, "pretrain: out of memory");
    }
    float *row = NULL;
    if (!s) {
        gr_lm_inputs in;
        memset(&in, 0, sizeof in);
        in.struct_size = sizeof in;
        in.batch = 1;
        if (encdec) {
            memcpy(ids, p, np * sizeof *ids);
            memcpy(lab, a, na * sizeof *lab);
            in.seq = (int64_t)np;
            in.label_len = (int64_t)na;
        } else {
            memcpy(ids, p, np * sizeof *ids);
            memcpy(ids + np, a, na * sizeof *ids);
            for (size_t i = 0; i < np + na; i++) lab[i] = i < np ? -100 : ids[i];
            in.seq = T;
        }
        in.ids = ids;
        in.labels = lab;
        gr_lm_outputs o = {.struct_size = sizeof(gr_lm_outputs)};
        int was = gr_ctx_set_grad_enabled(ctx, 0);
        gr_ctx_reset(ctx);
        s = t->cfg.lm->forward(t->cfg.model, ctx, &in, &o);
        float loss = 0;
        if (!s) s = gr_to_host_f32(ctx, o.loss, &loss);
        int64_t V = t->info.vocab_size, pos = encdec ? 0 : (int64_t)np - 1;
        row = malloc((size_t)V * sizeof *row);
        if (!s && !row) s = gr_fail(GR_ERR_NOMEM, "pretrain: out of memory");
        if (!s) {
            gr_tensor *lg = gr_slice(ctx, o.logits, 1, pos, 1);
            s = lg ? gr_to_host_f32(ctx, lg, row) : gr_ctx_status(ctx);
        }
        if (!s) {
            int64_t best = 0;
            for (int64_t v = 1; v < V; v++)
                if (row[v] > row[best]) best = v;
            *top1 = best == a[0];
            *logp = -(double)loss * (double)na;
            *n_answer = (int)na;
        }
        gr_ctx_reset(ctx);
        gr_ctx_set_grad_enabled(ctx, was);
    }
    free(row);
    free(ids);
    free(lab);
    free(p);
    free(a);
    return s;
}

gr_status gr_lm_quality(gr_lm_task *t, gr_ctx *ctx, const char *const *probes, int n_probes, const char *const *colors,
                        int n_colors, json_t **out)
{
    *out = NULL;
    json_t *q = json_object(), *plist = json_array(), *clist = json_array();
    if (!q || !plist || !clist) { json_decref(q); json_decref(plist); json_decref(clist); return gr_fail(GR_ERR_NOMEM, "pretrain: out of memory"); }
    json_object_set_new(q, "probes", plist);
    json_object_set_new(q, "colors", clist);
    gr_status s = GR_OK;
    if (t->val_windows > 0) {
        double loss;
        s = gr_lm_task_eval_loss(t, ctx, &loss);
        if (!s) {
            json_object_set_new(q, "val_loss", json_real(loss));
            json_object_set_new(q, "val_ppl", json_real(exp(loss)));
        }
    }
    double psum = 0, pmin = 1;
    int ntop = 0, nprobe = 0;
    for (int i = 0; i < n_probes && !s; i++) {
        const char *bar = strchr(probes[i], '|');
        if (!bar || bar == probes[i] || !bar[1]) { s = gr_fail(GR_ERR_INVALID, "pretrain: probe '%s' is not PROMPT|ANSWER", probes[i]); break; }
        char *prompt = strndup(probes[i], (size_t)(bar - probes[i]));
        if (!prompt) { s = gr_fail(GR_ERR_NOMEM, "pretrain: out of memory"); break; }
        double logp = 0;
        int top1 = 0, na = 0;
        s = probe(t, ctx, prompt, bar + 1, &logp, &top1, &na);
        if (!s) {
            double pr = exp(logp);
            json_array_append_new(plist, json_pack("{s:s, s:s, s:f, s:b, s:i}", "prompt", prompt, "answer", bar + 1, "prob", pr, "top1", top1,
                                                   "answer_tokens", na));
            psum += pr;
            if (pr < pmin) pmin = pr;
            ntop += top1;
            nprobe++;
        }
        free(prompt);
    }
    if (!s && nprobe) {
        json_object_set_new(q, "probe_prob_mean", json_real(psum / nprobe));
        json_object_set_new(q, "probe_prob_min", json_real(pmin));
        json_object_set_new(q, "probe_top1", json_real((double)ntop / nprobe));
    }
    /* colour-word input embeddings: max pairwise cosine */
    float *E = NULL;
    int64_t V = t->info.vocab_size, D = t->info.embed_dim;
    gr_tensor *emb = s ? NULL : t->cfg.lm->input_embeddings(t->cfg.model);
    if (!s && emb) {
        E = malloc((size_t)(V * D) * sizeof *E);
        if (!E) s = gr_fail(GR_ERR_NOMEM, "pretrain: out of memory");
        else s = gr_to_host_f32(ctx, emb, E);
    }
    int32_t *cid = calloc((size_t)n_colors + 1, sizeof *cid);
    if (!s && !cid) s = gr_fail(GR_ERR_NOMEM, "pretrain: out of memory");
    for (int i = 0; i < n_colors && !s; i++) {
        char word[128];
        snprintf(word, sizeof word, " %s", colors[i]);
        int32_t *ids;
        size_t n;
        s = gr_tokenizer_encode(t->cfg.tok, word, strlen(word), 0, &ids, &n);
        if (s) break;
        cid[i] = n == 1 ? ids[0] : -1;
        json_array_append_new(clist, json_pack("{s:s, s:i}", "word", colors[i], "token", (int)cid[i]));
        free(ids);
    }
    double cmax = -2;
    int ca = -1, cb = -1;
    for (int i = 0; i < n_colors && !s && E; i++)
        for (int j = i + 1; j < n_colors; j++) {
            if (cid[i] < 0 || cid[j] < 0) continue;
            const float *x = E + (int64_t)cid[i] * D, *y = E + (int64_t)cid[j] * D;
            double xy = 0, xx = 0, yy = 0;
            for (int64_t k = 0; k < D; k++) { xy += (double)x[k] * y[k]; xx += (double)x[k] * x[k]; yy += (double)y[k] * y[k]; }
            double c = xy / (sqrt(xx * yy) + 1e-30);
            if (c > cmax) { cmax = c; ca = i; cb = j; }
        }
    if (!s && ca >= 0) {
        json_object_set_new(q, "color_cosine_max", json_real(cmax));
        json_object_set_new(q, "color_pair", json_pack("[s, s]", colors[ca], colors[cb]));
    }
    free(cid);
    free(E);
    if (s) { json_decref(q); return s; }
    *out = q;
    return GR_OK;
}
