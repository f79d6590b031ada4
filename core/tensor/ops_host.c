/* Tensors computed on the host: attention masks and RoPE tables (float32, as HF computes them). */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "tensor/internal.h"

gr_tensor *gr_attention_mask(gr_ctx *ctx, int64_t batch, int64_t tq, int64_t tk, const int32_t *key_mask,
                             int causal)
{
    if (!gr__ok(ctx)) return NULL;
    if (batch < 0 || tq < 0 || tk < 0 || (causal && tq > tk))
        return gr__fail(ctx, GR_ERR_SHAPE, "gr_attention_mask: batch %lld, %lld queries, %lld keys%s", (long long)batch,
                        (long long)tq, (long long)tk, causal ? " (causal needs queries <= keys)" : "");
    size_t n = (size_t)(batch * tq * tk);
    float *m = malloc((n ? n : 1) * sizeof *m);
    if (!m) return gr__fail(ctx, GR_ERR_NOMEM, "gr_attention_mask: out of host memory");
    for (int64_t b = 0; b < batch; b++)
        for (int64_t q = 0; q < tq; q++)
            for (int64_t k = 0; k < tk; k++) {
                int ok = (!key_mask || key_mask[b * tk + k]) && (!causal || k <= q + (tk - tq));
                m[(b * tq + q) * tk + k] = ok ? 0.0f : -FLT_MAX;
            }
    int64_t shape[4] = {batch, 1, tq, tk};
    gr_tensor *t = gr_from_host(ctx, GR_F32, 4, shape, m);
    free(m);
    return t;
}

gr_status gr_rope_inv_freq(const gr_rope_config *rc, float *inv_freq)
{
    int dim = rc->rot_dim;
    if (dim <= 0 || dim % 2 || !(rc->theta > 0))
        return gr_fail(GR_ERR_INVALID, "rope: rot_dim %d and theta %g (even dim > 0, theta > 0)", dim, rc->theta);
    for (int i = 0; i < dim / 2; i++) {
        /* torch: 1.0 / (base ** (arange(0, dim, 2).float() / dim)) in float32 */
        float e = (float)(2 * i) / (float)dim;
        inv_freq[i] = 1.0f / powf((float)rc->theta, e);
    }
    if (rc->type == GR_ROPE_DEFAULT) return GR_OK;
    if (!(rc->factor > 0)) return gr_fail(GR_ERR_INVALID, "rope: scaling factor %g must be > 0", rc->factor);
    if (rc->type == GR_ROPE_LINEAR) {
        for (int i = 0; i < dim / 2; i++) inv_freq[i] /= rc->factor;
        return GR_OK;
    }
    if (rc->type != GR_ROPE_LLAMA3) return gr_fail(GR_ERR_INVALID, "rope: unknown scaling type %d", (int)rc->type);
    if (!(rc->high_freq_factor > rc->low_freq_factor) || !(rc->low_freq_factor > 0) || rc->original_max_position <= 0)
        return gr_fail(GR_ERR_INVALID, "rope: llama3 needs high_freq_factor > low_freq_factor > 0 and original_max_position > 0");
    /* modeling_rope_utils._compute_llama3_parameters, element-wise in float32. */
    float old = (float)rc->original_max_position, f = rc->factor;
    float low_wl = old / rc->low_freq_factor, high_wl = old / rc->high_freq_factor;
    for (int i = 0; i < dim / 2; i++) {
        float inv = inv_freq[i];
        float wl = (float)(2 * M_PI) / inv;
        float scaled = wl > low_wl ? inv / f : inv;
        if (!(wl < high_wl) && !(wl > low_wl)) {
            float smooth = (old / wl - rc->low_freq_factor) / (rc->high_freq_factor - rc->low_freq_factor);
            scaled = (1.0f - smooth) * scaled / f + smooth * scaled;
        }
        inv_freq[i] = scaled;
    }
    return GR_OK;
}

gr_status gr_rope_tables(gr_ctx *ctx, const gr_rope_config *rc, int64_t batch, int64_t seq, const int32_t *positions,
                         gr_tensor **cos_out, gr_tensor **sin_out)
{
    *cos_out = *sin_out = NULL;
    if (!gr__ok(ctx)) return gr_ctx_status(ctx);
    int half = rc->rot_dim / 2;
    float *inv = malloc((size_t)(half > 0 ? half : 1) * sizeof *inv);
    size_t n = (size_t)(batch * seq * (half > 0 ? half : 0));
    float *c = malloc((n ? n : 1) * sizeof *c), *s = malloc((n ? n : 1) * sizeof *s);
    gr_status st = (!inv || !c || !s) ? gr_fail(GR_ERR_NOMEM, "rope: out of host memory") : gr_rope_inv_freq(rc, inv);
    if (st == GR_OK) {
        for (int64_t b = 0; b < batch; b++)
            for (int64_t t = 0; t < seq; t++) {
                float p = (float)(positions ? positions[b * seq + t] : t);
                for (int i = 0; i < half; i++) {
                    float fr = p * inv[i]; /* float32 product, as torch's float32 matmul */
                    size_t k = (size_t)((b * seq + t) * half + i);
                    c[k] = cosf(fr);
                    s[k] = sinf(fr);
                }
            }
        int64_t shape[3] = {batch, seq, half};
        *cos_out = gr_from_host(ctx, GR_F32, 3, shape, c);
        *sin_out = gr_from_host(ctx, GR_F32, 3, shape, s);
        st = gr_ctx_status(ctx);
    } else {
        gr_ctx_fail(ctx, st, "%s", gr_last_error());
    }
    free(inv);
    free(c);
    free(s);
    return st;
}
