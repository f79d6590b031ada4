/* graft — the compute backend interface.
 *
 * A backend is a struct of function pointers plus an opaque context (in the spirit of
 * ggml-backend). The core never knows which backend runs: it allocates buffers, moves bytes
 * and launches the kernels below, and derives every backward pass from them.
 *
 * Conventions every kernel follows:
 *  - Tensors are contiguous and row-major; a kernel reads `buffer`, `offset`, `dtype` and
 *    `shape` of its gr_tensor arguments and nothing else. Unless a kernel says otherwise,
 *    every floating-point tensor is GR_F32 and index tensors are GR_I32.
 *  - Outputs are overwritten, never accumulated, except where an argument says `accumulate`
 *    (matmul's beta, copy_strided, scatter_add_rows). The core accumulates gradients itself.
 *  - Kernels may run asynchronously; `download` and `synchronize` wait for all earlier work.
 *    Work is executed in submission order (a backend inserts the barriers it needs).
 *  - A kernel returns GR_OK or a status with a message set by gr_fail(); it never exits.
 *  - scale, binary and unary may be called in place (out is the same memory as an input of the
 *    same shape); copy_strided's source and destination never overlap.
 *  - Masks are additive and use the lowest finite float (-FLT_MAX, HF's finfo.min), never
 *    -inf: a fully masked softmax row then gets uniform weights, not NaN. Kernels must not
 *    special-case infinities to "fix" that.
 *
 * ABI rule: this struct only grows at the end; `struct_size` tells the host how much of it a
 * backend built against an older minor version provides. Every slot up to `adamw` is required. */
#ifndef GRAFT_BACKEND_H
#define GRAFT_BACKEND_H

#include "graft/status.h"
#include "graft/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gr_backend_options {
    uint32_t struct_size;
    int threads;            /* 0 = backend default (all cores) */
    const char *device;     /* "" = default; a number or a substring of the device name */
    int verbose;            /* log feature probes and compilation */
    const char *cache_dir;  /* where a backend may cache compiled kernels ("" = its default) */
    int debug_check;        /* Vulkan: recompute each op on the CPU and report the first divergence */
} gr_backend_options;

typedef enum gr_binary_op { GR_BIN_ADD = 0, GR_BIN_SUB = 1, GR_BIN_MUL = 2 } gr_binary_op;

typedef enum gr_unary_op {
    GR_ACT_RELU = 0,
    GR_ACT_GELU_ERF = 1,    /* HF "gelu": x * 0.5 * (1 + erf(x / sqrt 2)) */
    GR_ACT_GELU_TANH = 2,   /* HF "gelu_new" / "gelu_pytorch_tanh" */
    GR_ACT_QUICK_GELU = 3,  /* x * sigmoid(1.702 x) */
    GR_ACT_SILU = 4,        /* x * sigmoid(x) */
    GR_ACT_SIGMOID = 5,
    GR_ACT_TANH = 6,
    GR_ACT_COUNT
} gr_unary_op;

/* C[i] = alpha * op(A[i]) @ op(B[i]) + beta * C[i] for i in [0, batch).
 * op(A) is m x k, op(B) is k x n, C is m x n; leading dimensions and batch strides are in
 * elements (a batch stride of 0 broadcasts one matrix over the batch). A, B, C are F32. */
typedef struct gr_matmul_args {
    const gr_tensor *a, *b, *c;
    int trans_a, trans_b;
    int64_t m, n, k, batch;
    int64_t lda, ldb, ldc;
    int64_t stride_a, stride_b, stride_c;
    float alpha, beta;
} gr_matmul_args;

/* dst[idx] (+)= src[idx] over an ndim-dimensional index space `shape`, addressed through
 * element strides from each tensor's offset. Covers permute, slice, concat and patchify.
 * dst and src have the same dtype, or dst is F32 and src any float dtype (converted). */
typedef struct gr_copy_args {
    const gr_tensor *dst, *src;
    int ndim;
    int64_t shape[GR_MAX_DIMS];
    int64_t dst_strides[GR_MAX_DIMS];
    int64_t src_strides[GR_MAX_DIMS];
    int accumulate;
} gr_copy_args;

/* torch.optim.AdamW on n = numel(param) elements, all F32:
 *   p -= lr * weight_decay * p
 *   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
 *   p -= lr * (m / bias_correction1) / (sqrt(v / bias_correction2) + eps)
 * where bias_correction{1,2} = 1 - beta{1,2}^step, computed by the host in double.
 * grad_scale multiplies g first (global-norm clipping and accumulation averaging). */
typedef struct gr_adamw_args {
    const gr_tensor *param, *grad, *m, *v;
    float lr, beta1, beta2, eps, weight_decay;
    float bias_correction1, bias_correction2;
    float grad_scale;
} gr_adamw_args;

typedef struct gr_backend_iface {
    uint32_t struct_size;

    /* ---- lifecycle ---- */
    gr_status (*create)(const gr_backend_options *opt, void **bctx);
    void (*destroy)(void *bctx);
    /* Human-readable lines for `graft backends`: devices, threads, features. */
    gr_status (*describe)(void *bctx, char *buf, size_t cap);

    /* ---- memory ---- */
    gr_status (*buffer_alloc)(void *bctx, size_t bytes, gr_buffer **out);
    void (*buffer_free)(void *bctx, gr_buffer *buf);
    gr_status (*upload)(void *bctx, gr_buffer *dst, size_t offset, const void *src, size_t bytes);
    gr_status (*download)(void *bctx, gr_buffer *src, size_t offset, void *dst, size_t bytes);
    gr_status (*copy)(void *bctx, gr_buffer *dst, size_t dst_offset, gr_buffer *src,
                      size_t src_offset, size_t bytes);
    gr_status (*synchronize)(void *bctx);

    /* ---- kernels ---- */
    /* t[:] = value (F32 or I32 tensors). */
    gr_status (*fill)(void *bctx, const gr_tensor *t, float value);
    gr_status (*matmul)(void *bctx, const gr_matmul_args *args);
    /* out = a OP b with numpy broadcasting: all three have out->ndim dims; each dim of a and b
     * equals out's or is 1. */
    gr_status (*binary)(void *bctx, gr_binary_op op, const gr_tensor *out, const gr_tensor *a,
                        const gr_tensor *b);
    /* out = alpha * in (+ out when accumulate). Same numel. */
    gr_status (*scale)(void *bctx, const gr_tensor *out, const gr_tensor *in, float alpha,
                       int accumulate);
    /* out = sum of `in` over every dim where out has size 1 (same ndim; other dims equal). */
    gr_status (*reduce_to)(void *bctx, const gr_tensor *out, const gr_tensor *in);
    /* out[0] = sum(in^2), accumulated in double where the device allows; out is F32 [1]. */
    gr_status (*sum_squares)(void *bctx, const gr_tensor *out, const gr_tensor *in);
    gr_status (*unary)(void *bctx, gr_unary_op op, const gr_tensor *out, const gr_tensor *in);
    /* dx = dy * f'(x). */
    gr_status (*unary_backward)(void *bctx, gr_unary_op op, const gr_tensor *dx,
                                const gr_tensor *x, const gr_tensor *dy);
    /* out[i, :] = table[ids[i], :]; table is F32/F16/BF16 [rows, dim], ids I32 [n], out F32
     * [n, dim]. An id outside [0, rows) is an error naming it. */
    gr_status (*gather_rows)(void *bctx, const gr_tensor *out, const gr_tensor *table,
                             const gr_tensor *ids);
    /* dtable[ids[i], :] += dout[i, :] for every i with ids[i] != skip_id (-1: none). */
    gr_status (*scatter_add_rows)(void *bctx, const gr_tensor *dtable, const gr_tensor *ids,
                                  const gr_tensor *dout, int32_t skip_id);
    /* Over the last dim d of x [rows, d]: out = (x - mean) * rstd * w + b; w, b may be NULL.
     * mean, rstd are F32 [rows], saved for the backward pass. */
    gr_status (*layernorm)(void *bctx, const gr_tensor *out, const gr_tensor *mean,
                           const gr_tensor *rstd, const gr_tensor *x, const gr_tensor *w,
                           const gr_tensor *b, float eps);
    /* Any of dx, dw, db may be NULL (not wanted). dw, db are overwritten. */
    gr_status (*layernorm_backward)(void *bctx, const gr_tensor *dx, const gr_tensor *dw,
                                    const gr_tensor *db, const gr_tensor *dy, const gr_tensor *x,
                                    const gr_tensor *w, const gr_tensor *mean,
                                    const gr_tensor *rstd);
    /* out = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps); w may be NULL. */
    gr_status (*rmsnorm)(void *bctx, const gr_tensor *out, const gr_tensor *rstd,
                         const gr_tensor *x, const gr_tensor *w, float eps);
    gr_status (*rmsnorm_backward)(void *bctx, const gr_tensor *dx, const gr_tensor *dw,
                                  const gr_tensor *dy, const gr_tensor *x, const gr_tensor *w,
                                  const gr_tensor *rstd);
    /* Row softmax over the last dim (max-subtracted). */
    gr_status (*softmax)(void *bctx, const gr_tensor *out, const gr_tensor *in);
    /* dx = y * (dy - sum(dy * y)) per row. */
    gr_status (*softmax_backward)(void *bctx, const gr_tensor *dx, const gr_tensor *y,
                                  const gr_tensor *dy);
    /* Rotary embedding, rotate-half pairing (i, i + d/2) over the first `rot_dim` of each head:
     *   x [B, T, H, D]; cos, sin [B, T, rot_dim/2];
     *   out[i] = x[i] c - x[i+h] s,  out[i+h] = x[i+h] c + x[i] s   (h = rot_dim/2)
     * inverse != 0 uses -sin (the backward pass). Dims >= rot_dim are copied. */
    gr_status (*rope)(void *bctx, const gr_tensor *out, const gr_tensor *x,
                      const gr_tensor *cos, const gr_tensor *sin, int rot_dim, int inverse);
    gr_status (*copy_strided)(void *bctx, const gr_copy_args *args);
    /* Element-wise dtype conversion between float dtypes (F32/F16/BF16) and I64 -> I32. */
    gr_status (*convert)(void *bctx, const gr_tensor *out, const gr_tensor *in);
    /* Per-row loss[i] = logsumexp(logits[i]) - logits[i, labels[i]], 0 where labels[i] ==
     * ignore_index; logits F32 [n, v], labels I32 [n], loss F32 [n]. A label outside [0, v)
     * that is not ignore_index is an error naming it. */
    gr_status (*cross_entropy)(void *bctx, const gr_tensor *loss, const gr_tensor *logits,
                               const gr_tensor *labels, int32_t ignore_index);
    /* dlogits[i] = scale * (softmax(logits[i]) - onehot(labels[i])), 0 for ignored rows. */
    gr_status (*cross_entropy_backward)(void *bctx, const gr_tensor *dlogits,
                                        const gr_tensor *logits, const gr_tensor *labels,
                                        int32_t ignore_index, float scale);
    gr_status (*adamw)(void *bctx, const gr_adamw_args *args);

    /* ---- optional (may be NULL) ---- */
    /* Host pointer to a buffer when the device shares host memory (CPU backend). */
    void *(*buffer_host_ptr)(void *bctx, gr_buffer *buf);
    /* Wrap caller-owned host memory (e.g. an mmap of a safetensors file) without copying;
     * the memory must outlive the buffer. */
    gr_status (*buffer_wrap_host)(void *bctx, void *ptr, size_t bytes, gr_buffer **out);
    /* Largest single buffer the device can address (0 = unlimited). */
    size_t (*max_buffer_size)(void *bctx);
} gr_backend_iface;

/* A live backend: interface + context, as the core holds it. */
typedef struct gr_backend {
    const gr_backend_iface *iface;
    void *ctx;
    const char *name;
} gr_backend;

#ifdef __cplusplus
}
#endif
#endif
