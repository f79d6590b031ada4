#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "graft/rng.h"
#include "transfer/converter.h"

void gr_projector_fuse(const float *W_w, const float *b_w, int64_t d_tgt, int64_t d_src,
                       const float *W_s, const float *b_s, int64_t d_in, float *W_t, float *b_t)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)d_tgt, (int)d_in, (int)d_src, 1.0f,
                W_w, (int)d_src, W_s, (int)d_in, 0.0f, W_t, (int)d_in);
    memcpy(b_t, b_w, sizeof(float) * (size_t)d_tgt);
    if (b_s)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)d_tgt, (int)d_src, 1.0f, W_w, (int)d_src, b_s,
                    1, 1.0f, b_t, 1);
}

static int cmp_desc(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x < y) - (x > y);
}

/* One batch: X [n, ds] source rows, T [n, dt] target rows. Computes P = X W^T + b, the loss
 * mean(1 - cos(P, T)) and, when lr > 0, applies the SGD step. Returns the loss. */
static double batch_step(const float *X, const float *T, int64_t n, int64_t ds, int64_t dt,
                         float *W, float *b, float *P, double lr, double *cos_sum)
{
    for (int64_t i = 0; i < n; i++) memcpy(P + i * dt, b, sizeof(float) * (size_t)dt);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)dt, (int)ds, 1.0f, X, (int)ds,
                W, (int)ds, 1.0f, P, (int)dt);
    double loss = 0.0;
    *cos_sum = 0.0;
    /* dL/dp_i = -(1/n) (t/(|p||t|) - cos p/|p|^2), written over P in place. */
    for (int64_t i = 0; i < n; i++) {
        float *p = P + i * dt;
        const float *t = T + i * dt;
        double pp = 0, tt = 0, pt = 0;
        for (int64_t j = 0; j < dt; j++) { pp += (double)p[j] * p[j]; tt += (double)t[j] * t[j]; pt += (double)p[j] * t[j]; }
        /* torch.cosine_similarity clamps each norm at eps = 1e-8 */
        double np = sqrt(pp) > 1e-8 ? sqrt(pp) : 1e-8, nt = sqrt(tt) > 1e-8 ? sqrt(tt) : 1e-8;
        double c = pt / (np * nt);
        loss += 1.0 - c;
        *cos_sum += c;
        for (int64_t j = 0; j < dt; j++)
            p[j] = (float)(-(1.0 / (double)n) * ((double)t[j] / (np * nt) - c * (double)p[j] / (np * np)));
    }
    if (lr > 0) {
        /* W -= lr * dP^T X ; b -= lr * sum_i dP_i */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)dt, (int)ds, (int)n, (float)-lr, P,
                    (int)dt, X, (int)ds, 1.0f, W, (int)ds);
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < dt; j++) b[j] -= (float)(lr * P[i * dt + j]);
    }
    return loss / (double)(n ? n : 1);
}

gr_status gr_converter_train(const float *src_table, int64_t src_vocab, int64_t d_src,
                             const float *tgt_table, int64_t tgt_vocab, int64_t d_tgt,
                             const gr_token_pairs *pairs, const gr_converter_config *cfg,
                             float *W, float *b, gr_converter_report *report)
{
    const int64_t nc = pairs->n_captions;
    const int64_t total = nc ? pairs->offsets[nc] : 0;
    if (total == 0) return gr_fail(GR_ERR_INVALID, "word converter: no token pairs to train on");
    for (int64_t i = 0; i < total; i++) {
        if (pairs->src[i] < 0 || pairs->src[i] >= src_vocab)
            return gr_fail(GR_ERR_INVALID, "word converter: source token id %d outside the vocabulary (%lld)",
                           pairs->src[i], (long long)src_vocab);
        if (pairs->tgt[i] < 0 || pairs->tgt[i] >= tgt_vocab)
            return gr_fail(GR_ERR_INVALID, "word converter: target token id %d outside the vocabulary (%lld)",
                           pairs->tgt[i], (long long)tgt_vocab);
    }
    /* nn.Linear's default init: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias. */
    gr_rng rng;
    gr_rng_seed(&rng, cfg->seed);
    double bound = 1.0 / sqrt((double)d_src);
    for (int64_t i = 0; i < d_tgt * d_src; i++) W[i] = (float)((gr_rng_uniform(&rng) * 2 - 1) * bound);
    for (int64_t i = 0; i < d_tgt; i++) b[i] = (float)((gr_rng_uniform(&rng) * 2 - 1) * bound);

    int64_t per = cfg->captions_per_batch > 0 ? cfg->captions_per_batch : 4096;
    /* Scratch rows: any `per` captions hold at most the `per` longest captions' tokens. */
    int64_t max_rows = 0;
    int64_t *lens = malloc(sizeof(int64_t) * (size_t)nc);
    int64_t *order = malloc(sizeof(int64_t) * (size_t)nc);
    if (!lens || !order) { free(lens); free(order); return gr_fail(GR_ERR_NOMEM, "word converter: out of memory"); }
    for (int64_t c = 0; c < nc; c++) lens[c] = pairs->offsets[c + 1] - pairs->offsets[c];
    {
        int64_t *sorted = malloc(sizeof(int64_t) * (size_t)nc);
        if (!sorted) { free(lens); free(order); return gr_fail(GR_ERR_NOMEM, "word converter: out of memory"); }
        memcpy(sorted, lens, sizeof(int64_t) * (size_t)nc);
        qsort(sorted, (size_t)nc, sizeof *sorted, cmp_desc);
        for (int64_t k = 0; k < per && k < nc; k++) max_rows += sorted[k];
        free(sorted);
    }
    float *X = malloc(sizeof(float) * (size_t)(max_rows * d_src));
    float *T = malloc(sizeof(float) * (size_t)(max_rows * d_tgt));
    float *P = malloc(sizeof(float) * (size_t)(max_rows * d_tgt));
    if (!X || !T || !P || max_rows == 0) {
        free(X); free(T); free(P); free(lens); free(order);
        return gr_fail(GR_ERR_NOMEM, "word converter: out of memory for %lld rows", (long long)max_rows);
    }
    memset(report, 0, sizeof *report);
    report->pairs = total;
    for (int64_t c = 0; c < nc; c++) order[c] = c;
    double epoch_loss = 0.0, cos_sum = 0.0;
    for (int e = 0; e < cfg->epochs; e++) {
        gr_rng_shuffle(&rng, order, nc);
        epoch_loss = 0.0;
        int64_t epoch_rows = 0;
        for (int64_t c0 = 0; c0 < nc; c0 += per) {
            int64_t rows = 0;
            for (int64_t c = c0; c < c0 + per && c < nc; c++) {
                int64_t cap = order[c];
                for (int64_t k = pairs->offsets[cap]; k < pairs->offsets[cap + 1]; k++, rows++) {
                    memcpy(X + rows * d_src, src_table + (int64_t)pairs->src[k] * d_src, sizeof(float) * (size_t)d_src);
                    memcpy(T + rows * d_tgt, tgt_table + (int64_t)pairs->tgt[k] * d_tgt, sizeof(float) * (size_t)d_tgt);
                }
            }
            if (!rows) continue;
            double loss = batch_step(X, T, rows, d_src, d_tgt, W, b, P, cfg->lr, &cos_sum);
            if (report->steps == 0) report->first_loss = loss;
            report->steps++;
            epoch_loss += loss * (double)rows;
            epoch_rows += rows;
        }
        epoch_loss /= (double)(epoch_rows ? epoch_rows : 1);
    }
    report->final_loss = epoch_loss;
    /* Mean cosine over every pair with the trained converter (no update). */
    double all_cos = 0.0;
    for (int64_t c0 = 0; c0 < nc; c0 += per) {
        int64_t rows = 0;
        for (int64_t c = c0; c < c0 + per && c < nc; c++)
            for (int64_t k = pairs->offsets[c]; k < pairs->offsets[c + 1]; k++, rows++) {
                memcpy(X + rows * d_src, src_table + (int64_t)pairs->src[k] * d_src, sizeof(float) * (size_t)d_src);
                memcpy(T + rows * d_tgt, tgt_table + (int64_t)pairs->tgt[k] * d_tgt, sizeof(float) * (size_t)d_tgt);
            }
        if (!rows) continue;
        batch_step(X, T, rows, d_src, d_tgt, W, b, P, 0.0, &cos_sum);
        all_cos += cos_sum;
    }
    report->final_cos = all_cos / (double)total;
    free(X); free(T); free(P); free(lens); free(order);
    return GR_OK;
}
