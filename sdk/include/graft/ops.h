/* graft — tensors, operations and reverse-mode autodiff, as model plugins use them.
 *
 * A gr_ctx binds one backend, a tape and the tensors created through it. Model plugins write
 * only forward passes with the gr_* operations below; while gradients are enabled every
 * operation whose inputs need a gradient records a tape node, and gr_backward() walks the
 * tape in reverse, derives each input gradient from backend kernels and releases saved
 * activations as soon as the last node needing them is done.
 *
 * Gradients flow only where needed: a tensor needs a gradient when it is a trainable
 * parameter or depends on one (or on an input marked with gr_requires_grad). No gradient is
 * ever computed for a frozen parameter: a frozen LM passes dL/dx through, never dL/dW.
 *
 * Errors are sticky (as in cairo): the first failing operation sets the context's status and
 * message and returns NULL; every later operation given NULL or called on a failed context
 * returns NULL at once. So a forward pass checks gr_ctx_status() once at the end.
 *
 * Lifetimes: tensors made by operations and gr_new/gr_from_host are transient and freed by
 * gr_ctx_reset(). Parameters (gr_param_*) persist until gr_tensor_free() or gr_ctx_destroy(). */
#ifndef GRAFT_OPS_H
#define GRAFT_OPS_H

#include "graft/backend.h"
#include "graft/status.h"
#include "graft/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gr_ctx gr_ctx;

/* ---------------------------------------------------------------- context ---- */

gr_ctx *gr_ctx_create(gr_backend *backend);
void gr_ctx_destroy(gr_ctx *ctx);
gr_backend *gr_ctx_backend(gr_ctx *ctx);
/* GR_OK, or the status of the first failure since the last gr_ctx_reset/gr_ctx_clear_error. */
gr_status gr_ctx_status(const gr_ctx *ctx);
/* Sets the sticky error from the thread's current message (for plugin-side failures). */
gr_status gr_ctx_fail(gr_ctx *ctx, gr_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void gr_ctx_clear_error(gr_ctx *ctx);
/* The sticky message of the first failure ("" when none). */
const char *gr_ctx_error(const gr_ctx *ctx);
/* Frees every transient tensor and the tape; clears the sticky error. */
void gr_ctx_reset(gr_ctx *ctx);
/* Record tape nodes (default on). Returns the previous setting. */
int gr_ctx_set_grad_enabled(gr_ctx *ctx, int enabled);

/* FLOPs issued through this context since the last gr_ctx_reset_flops(). Forward FLOPs are
 * "trainable" when an operand needs a gradient, else "frozen"; backward FLOPs are split into
 * propagation (gradients of activations) and parameter gradients. */
typedef struct gr_flops {
    double forward_frozen, forward_trainable;
    double backward_input, backward_param;
    int64_t matmuls, param_grad_matmuls;  /* counts of matmul kernel launches */
} gr_flops;
void gr_ctx_flops(const gr_ctx *ctx, gr_flops *out);
void gr_ctx_reset_flops(gr_ctx *ctx);

/* Bytes of device memory held by live tensors, and the peak since creation. */
size_t gr_ctx_bytes_in_use(const gr_ctx *ctx);
size_t gr_ctx_peak_bytes(const gr_ctx *ctx);
/* Freed buffers are cached by size for reuse (default limit 2 GiB); trim returns them all to
 * the backend, set_cache_limit changes the limit (0 disables caching). */
void gr_ctx_trim_cache(gr_ctx *ctx);
void gr_ctx_set_cache_limit(gr_ctx *ctx, size_t bytes);

/* ---------------------------------------------------------------- tensors ---- */

/* Transient, uninitialised. */
gr_tensor *gr_new(gr_ctx *ctx, gr_dtype dtype, int ndim, const int64_t *shape);
gr_tensor *gr_zeros(gr_ctx *ctx, gr_dtype dtype, int ndim, const int64_t *shape);
/* Transient, every element = value (F32 or I32). */
gr_tensor *gr_full(gr_ctx *ctx, gr_dtype dtype, int ndim, const int64_t *shape, float value);
/* Transient, filled from host memory of the same dtype. */
gr_tensor *gr_from_host(gr_ctx *ctx, gr_dtype dtype, int ndim, const int64_t *shape,
                        const void *data);
/* Persistent parameter named `name` (copied), uninitialised, frozen. */
gr_tensor *gr_param_new(gr_ctx *ctx, const char *name, gr_dtype dtype, int ndim,
                        const int64_t *shape);
/* Persistent parameter backed by host memory the caller keeps alive (e.g. an mmap of a
 * safetensors file): zero-copy where the backend shares host memory, else uploaded. */
gr_tensor *gr_param_from_host(gr_ctx *ctx, const char *name, gr_dtype dtype, int ndim,
                              const int64_t *shape, const void *data);
void gr_tensor_free(gr_ctx *ctx, gr_tensor *t);

gr_status gr_upload(gr_ctx *ctx, gr_tensor *t, const void *data); /* same dtype as t */
/* Copies t to host memory converted to float32 (numel floats). */
gr_status gr_to_host_f32(gr_ctx *ctx, const gr_tensor *t, float *dst);
/* Copies t to host memory in its own dtype (nbytes). */
gr_status gr_to_host(gr_ctx *ctx, const gr_tensor *t, void *dst);

/* Trainable parameters get gradients (accumulated in gr_grad(t) across backward calls until
 * gr_zero_grad). Frozen is the default. */
void gr_set_trainable(gr_tensor *t, int trainable);
int gr_is_trainable(const gr_tensor *t);
/* Marks a non-parameter input (e.g. a soft prompt fed by a test) as needing its gradient. */
void gr_requires_grad(gr_tensor *t);
int gr_needs_grad(const gr_tensor *t);
/* The accumulated gradient of t (F32, same shape), or NULL if none was computed. */
gr_tensor *gr_grad(const gr_tensor *t);
void gr_zero_grad(gr_ctx *ctx, gr_tensor *t);
/* Keeps t's storage alive through gr_backward (outputs a caller still wants to read). */
void gr_keep(gr_tensor *t);

/* ---------------------------------------------------------------- operations ---- */
/* Unless stated otherwise inputs are F32; stored F16/BF16 weights are converted on use
 * (matmul, linear, embedding, norms), so a model keeps its weights in the stored dtype. */

/* View with a new shape (same numel); -1 in one dim is inferred. Shares storage. */
gr_tensor *gr_reshape(gr_ctx *ctx, gr_tensor *x, int ndim, const int64_t *shape);
/* Batched matmul over leading dims: a [..., m, k] (or [..., k, m] if trans_a), b likewise;
 * leading dims must be equal or b may have none (broadcast). */
gr_tensor *gr_matmul(gr_ctx *ctx, gr_tensor *a, gr_tensor *b, int trans_a, int trans_b);
/* y = x @ w^T + bias, w [out, in] (torch Linear layout), bias [out] or NULL; x [..., in]. */
gr_tensor *gr_linear(gr_ctx *ctx, gr_tensor *x, gr_tensor *w, gr_tensor *bias);
/* Broadcasting element-wise ops (numpy rules, aligned at the trailing dims). */
gr_tensor *gr_add(gr_ctx *ctx, gr_tensor *a, gr_tensor *b);
gr_tensor *gr_sub(gr_ctx *ctx, gr_tensor *a, gr_tensor *b);
gr_tensor *gr_mul(gr_ctx *ctx, gr_tensor *a, gr_tensor *b);
gr_tensor *gr_scale(gr_ctx *ctx, gr_tensor *x, float alpha);
gr_tensor *gr_act(gr_ctx *ctx, gr_unary_op op, gr_tensor *x);
/* Over the last dim; w, b may be NULL. */
gr_tensor *gr_layernorm(gr_ctx *ctx, gr_tensor *x, gr_tensor *w, gr_tensor *b, float eps);
gr_tensor *gr_rmsnorm(gr_ctx *ctx, gr_tensor *x, gr_tensor *w, float eps);
/* Softmax over the last dim. */
gr_tensor *gr_softmax(gr_ctx *ctx, gr_tensor *x);
/* Rows of table [rows, dim] (any float dtype) at ids (I32, any shape) -> [ids..., dim].
 * Rows equal to padding_idx get no gradient (-1: none). */
gr_tensor *gr_embedding(gr_ctx *ctx, gr_tensor *table, gr_tensor *ids, int32_t padding_idx);
/* x [B, T, H, D]; cos, sin [B, T, rot_dim/2] (host-computed tables, see gr_rope_tables). */
gr_tensor *gr_rope(gr_ctx *ctx, gr_tensor *x, gr_tensor *cos, gr_tensor *sin, int rot_dim);
/* Reorders dims: out.shape[i] = x.shape[perm[i]]. Copies. */
gr_tensor *gr_permute(gr_ctx *ctx, gr_tensor *x, const int *perm);
gr_tensor *gr_slice(gr_ctx *ctx, gr_tensor *x, int axis, int64_t start, int64_t len);
gr_tensor *gr_concat(gr_ctx *ctx, gr_tensor *a, gr_tensor *b, int axis);
/* Repeats each slice along `axis` `times` times consecutively (GQA's repeat_kv on dim 1). */
gr_tensor *gr_repeat_interleave(gr_ctx *ctx, gr_tensor *x, int axis, int times);
/* Image [B, C, H, W] -> patches [B, (H/p)*(W/p), C*p*p], patches row-major, each patch in
 * (c, ky, kx) order: a matmul with conv weight [out, C, p, p] then equals the strided conv. */
gr_tensor *gr_patchify(gr_ctx *ctx, gr_tensor *x, int patch);
/* Mean cross-entropy over rows whose label != ignore_index: logits [..., V], labels I32 [...].
 * Returns a scalar (0-dim); 0 when every label is ignored (as HF returns NaN there: callers
 * that need HF's NaN check gr_ce_count). */
gr_tensor *gr_cross_entropy(gr_ctx *ctx, gr_tensor *logits, gr_tensor *labels,
                            int32_t ignore_index);
/* Sum / mean of all elements -> scalar. */
gr_tensor *gr_sum(gr_ctx *ctx, gr_tensor *x);
gr_tensor *gr_mean(gr_ctx *ctx, gr_tensor *x);
/* Sums x down to `shape` (ndim dims, each equal to x's or 1): the broadcast's reverse. */
gr_tensor *gr_sum_to(gr_ctx *ctx, gr_tensor *x, int ndim, const int64_t *shape);
/* Converts to another float dtype (F32 result records a node; others are constants). */
gr_tensor *gr_convert(gr_ctx *ctx, gr_tensor *x, gr_dtype dtype);
/* A constant copy that never carries a gradient (torch's detach + clone). */
gr_tensor *gr_detach(gr_ctx *ctx, gr_tensor *x);

/* Number of labels != ignore_index (reads the labels back to the host); -1 on failure. */
int64_t gr_ce_count(gr_ctx *ctx, gr_tensor *labels, int32_t ignore_index);

/* Reverse pass from a scalar (seeded with 1), or from `out` with the given cotangent
 * `seed` of the same shape (vector-Jacobian products). Gradients of trainable parameters
 * and of gr_requires_grad inputs are accumulated into gr_grad(). */
gr_status gr_backward(gr_ctx *ctx, gr_tensor *out, gr_tensor *seed);

/* Gradient-ready hook (for data-parallel training: start reducing a gradient while the rest
 * of the backward pass runs). During each gr_backward on ctx, fn(user, param) is called once
 * per trainable parameter used by the tape, right after the last tape node that contributes
 * to its gradient, so gr_grad(param) is final for this pass when fn runs (NULL if no
 * gradient reached it). Calls come in backward order; fn must not record operations.
 * fn NULL removes the hook. */
typedef void (*gr_grad_ready_fn)(void *user, gr_tensor *param);
void gr_ctx_set_grad_ready_hook(gr_ctx *ctx, gr_grad_ready_fn fn, void *user);
/* The gradient buffer of a trainable parameter, allocated if needed and marked as holding a
 * value, for code that writes gradients from outside a backward pass (gr_upload into it);
 * NULL if t is not trainable or on failure (sticky error). */
gr_tensor *gr_grad_buffer(gr_ctx *ctx, gr_tensor *t);

/* ---------------------------------------------------------------- optimizer ---- */

/* One torch.optim.AdamW step (see gr_adamw_args) on an F32 parameter with its accumulated
 * gradient gr_grad(param); m, v are F32 state tensors of the same size (zero at step 1),
 * step counts from 1. grad_scale multiplies the gradient first (clipping, averaging). */
gr_status gr_adamw_update(gr_ctx *ctx, gr_tensor *param, gr_tensor *m, gr_tensor *v, int64_t step,
                          float lr, float beta1, float beta2, float eps, float weight_decay,
                          float grad_scale);
/* sum(x^2) of an F32 tensor (e.g. a gradient, for global-norm clipping), to the host. */
gr_status gr_sum_squares(gr_ctx *ctx, const gr_tensor *x, double *out);

/* ---------------------------------------------------------------- helpers ---- */

/* Additive attention mask, F32 [B, 1, Tq, Tk]: 0 where query q of row b may see key k, else
 * -FLT_MAX. key_mask [B, Tk] (1 = real token, may be NULL: all real); causal adds k > q +
 * (Tk - Tq) masking (keys past the query, with a cache offset). */
gr_tensor *gr_attention_mask(gr_ctx *ctx, int64_t batch, int64_t tq, int64_t tk,
                             const int32_t *key_mask, int causal);

/* RoPE frequencies as HF computes them in float32 (modeling_rope_utils.py). */
typedef enum gr_rope_type { GR_ROPE_DEFAULT = 0, GR_ROPE_LINEAR = 1, GR_ROPE_LLAMA3 = 2 } gr_rope_type;
typedef struct gr_rope_config {
    int rot_dim;                 /* rotated dims per head (head_dim * partial_rotary_factor) */
    double theta;                /* rope_theta */
    gr_rope_type type;
    float factor;                /* linear, llama3 */
    float low_freq_factor, high_freq_factor;  /* llama3 */
    int64_t original_max_position;            /* llama3: original_max_position_embeddings */
} gr_rope_config;
/* inv_freq[rot_dim/2]. */
gr_status gr_rope_inv_freq(const gr_rope_config *rc, float *inv_freq);
/* cos, sin [B, T, rot_dim/2] for positions [B, T] (host ints; NULL: 0..T-1 in every row). */
gr_status gr_rope_tables(gr_ctx *ctx, const gr_rope_config *rc, int64_t batch, int64_t seq,
                         const int32_t *positions, gr_tensor **cos, gr_tensor **sin);

#ifdef __cplusplus
}
#endif
#endif
