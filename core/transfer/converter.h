/* VPGTrans's word-embedding converter and projector fusion (core pieces every transfer
 * strategy shares).
 *
 * The converter is Linear(d_src, d_tgt) with bias, trained so that W x_s + b points along
 * x_t for token pairs (x_s, x_t) of the two LLMs' input embedding tables: loss 1 - cos,
 * averaged over the token occurrences of a batch of captions, plain SGD (the original: lr 5.0,
 * 5 epochs within a family, 8 across, 4096 captions a batch). Fusing it after the source
 * projector gives the target projector's initialisation: W_t = W_w W_s, b_t = W_w b_s + b_w
 * (the code's order; the paper's Eq. 2 has it the other way round). Computed on the host with
 * BLAS: it is text-only, minutes at full scale, and needs no backend. */
#ifndef GRAFT_CORE_CONVERTER_H
#define GRAFT_CORE_CONVERTER_H

#include <stdint.h>

#include "graft/status.h"

/* Token-pair occurrences grouped by caption: pairs [offsets[c], offsets[c+1]) belong to
 * caption c. */
typedef struct gr_token_pairs {
    const int32_t *src, *tgt;
    const int64_t *offsets;
    int64_t n_captions;
} gr_token_pairs;

typedef struct gr_converter_config {
    double lr;                 /* 5.0 */
    int epochs;                /* 5 (same family) / 8 (across) */
    int64_t captions_per_batch;/* 4096 */
    uint64_t seed;             /* init and caption shuffling */
} gr_converter_config;

typedef struct gr_converter_report {
    double first_loss, final_loss;   /* mean 1 - cos over the first batch / the last epoch */
    double final_cos;                /* mean cosine over all pairs after training */
    int64_t steps, pairs;
} gr_converter_report;

/* Tables are row-major float32 [vocab, dim]. W gets [d_tgt, d_src], b [d_tgt]. */
gr_status gr_converter_train(const float *src_table, int64_t src_vocab, int64_t d_src,
                             const float *tgt_table, int64_t tgt_vocab, int64_t d_tgt,
                             const gr_token_pairs *pairs, const gr_converter_config *cfg,
                             float *W, float *b, gr_converter_report *report);

/* W_t [d_tgt, d_in] = W_w [d_tgt, d_src] @ W_s [d_src, d_in];
 * b_t [d_tgt] = W_w @ b_s [d_src] + b_w [d_tgt]  (b_s may be NULL: treated as 0). */
void gr_projector_fuse(const float *W_w, const float *b_w, int64_t d_tgt, int64_t d_src,
                       const float *W_s, const float *b_s, int64_t d_in, float *W_t, float *b_t);

#endif
