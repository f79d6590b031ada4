/* The word converter learns a linear map between two embedding tables, and projector fusion
 * equals the composition of the two maps. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "graft/rng.h"
#include "transfer/converter.h"

static int failures, checks;
static void check(int cond, const char *what)
{
    checks++;
    if (!cond) failures++;
    printf("%s %s\n", cond ? "ok  " : "FAIL", what);
}

int main(void)
{
    gr_rng rng;
    gr_rng_seed(&rng, 7);
    /* Fusion: fused(x) == W_w (W_s x + b_s) + b_w, in double, for random maps. */
    enum { DIN = 5, DS = 7, DT = 3 };
    float Ws[DS * DIN], bs[DS], Ww[DT * DS], bw[DT], Wt[DT * DIN], bt[DT];
    for (int i = 0; i < DS * DIN; i++) Ws[i] = (float)gr_rng_normal(&rng);
    for (int i = 0; i < DS; i++) bs[i] = (float)gr_rng_normal(&rng);
    for (int i = 0; i < DT * DS; i++) Ww[i] = (float)gr_rng_normal(&rng);
    for (int i = 0; i < DT; i++) bw[i] = (float)gr_rng_normal(&rng);
    gr_projector_fuse(Ww, bw, DT, DS, Ws, bs, DIN, Wt, bt);
    double worst = 0;
    for (int trial = 0; trial < 10; trial++) {
        double x[DIN], h[DS], y[DT];
        for (int i = 0; i < DIN; i++) x[i] = gr_rng_normal(&rng);
        for (int i = 0; i < DS; i++) { h[i] = bs[i]; for (int j = 0; j < DIN; j++) h[i] += (double)Ws[i * DIN + j] * x[j]; }
        for (int i = 0; i < DT; i++) { y[i] = bw[i]; for (int j = 0; j < DS; j++) y[i] += (double)Ww[i * DS + j] * h[j]; }
        for (int i = 0; i < DT; i++) {
            double f = bt[i];
            for (int j = 0; j < DIN; j++) f += (double)Wt[i * DIN + j] * x[j];
            double err = fabs(f - y[i]) / (1.0 + fabs(y[i]));
            if (err > worst) worst = err;
        }
    }
    printf("fusion max relative error %.3g\n", worst);
    check(worst < 1e-5, "fused projector equals converter after projector");

    /* Converter: the target table is a fixed linear map of the source table (plus a bias);
     * the trained converter must align them (cosine near 1), and the loss must fall. */
    enum { V = 300, S = 16, T = 12, NC = 400 };
    float *src = malloc(sizeof(float) * V * S), *tgt = malloc(sizeof(float) * V * T);
    float A[T * S], c[T];
    for (int i = 0; i < T * S; i++) A[i] = (float)gr_rng_normal(&rng) / 4.0f;
    for (int i = 0; i < T; i++) c[i] = (float)gr_rng_normal(&rng) * 0.1f;
    for (int v = 0; v < V * S; v++) src[v] = (float)gr_rng_normal(&rng);
    for (int v = 0; v < V; v++)
        for (int i = 0; i < T; i++) {
            double acc = c[i];
            for (int j = 0; j < S; j++) acc += (double)A[i * S + j] * src[v * S + j];
            tgt[v * T + i] = (float)acc;
        }
    int32_t *ids = malloc(sizeof(int32_t) * NC * 10);
    int64_t offsets[NC + 1];
    int64_t n = 0;
    for (int cap = 0; cap < NC; cap++) {
        offsets[cap] = n;
        int len = 3 + (int)gr_rng_below(&rng, 8);
        for (int k = 0; k < len; k++) ids[n++] = (int32_t)gr_rng_below(&rng, V);
    }
    offsets[NC] = n;
    gr_token_pairs pairs = {ids, ids, offsets, NC};
    gr_converter_config cfg = {5.0, 20, 64, 1};
    float W[T * S], b[T];
    gr_converter_report rep;
    gr_status s = gr_converter_train(src, V, S, tgt, V, T, &pairs, &cfg, W, b, &rep);
    printf("converter: %lld pairs, %lld steps, loss %.4f -> %.4f, mean cos %.4f\n", (long long)rep.pairs,
           (long long)rep.steps, rep.first_loss, rep.final_loss, rep.final_cos);
    check(s == GR_OK, "converter trains");
    check(rep.final_loss < rep.first_loss * 0.2, "loss falls by 5x");
    check(rep.final_cos > 0.95, "converted source embeddings point along the targets");

    int32_t bad[1] = {V};
    int64_t off1[2] = {0, 1};
    gr_token_pairs badp = {bad, ids, off1, 1};
    s = gr_converter_train(src, V, S, tgt, V, T, &badp, &cfg, W, b, &rep);
    check(s == GR_ERR_INVALID, "an id outside the vocabulary is refused");
    free(src); free(tgt); free(ids);
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures ? 1 : 0;
}
