/* Template: a compute backend plugin ("my-backend").
 *
 * A backend owns device memory and runs the kernels of graft/backend.h; the core builds every
 * forward and backward pass from them and never knows which backend runs. Read backend.h
 * first: it states for each kernel its exact contract (dtypes, broadcasting, accumulation,
 * masks with -FLT_MAX, error cases). The CPU backend of graft is the reference every other
 * backend is tested against (tests/ops runs each op against float64 and finite differences).
 *
 * This template is a working host-memory skeleton: lifecycle, buffers, transfers, fill and a
 * naive matmul are implemented as worked examples; every other kernel is marked TODO and
 * fails with a one-line error naming itself until you write it. Select the backend with
 * `backend.name = "my-backend";` and `graft backends` shows what describe() reports.
 *
 * What the core guarantees:
 *  - create() once per backend instance, destroy() once; a bctx is used from one thread at a
 *    time (the core serialises submissions; you may run work asynchronously inside).
 *  - Tensors passed to kernels are contiguous, row-major, inside buffers this backend
 *    allocated (or wrapped), with offsets in bytes; shapes were checked by the core (a kernel
 *    still refuses what it cannot do, with an error, never a crash).
 *  - Gradients are accumulated by the core; kernels overwrite their outputs unless an
 *    argument says accumulate.
 *
 * What this plugin must do:
 *  - run work in submission order; download() and synchronize() wait for all earlier work;
 *  - every required slot non-NULL (the host refuses the plugin otherwise); optional slots
 *    (buffer_host_ptr, buffer_wrap_host, max_buffer_size) may be NULL;
 *  - return GR_OK or a gr_status with a gr_fail() message; never exit or abort. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graft/backend.h"
#include "graft/plugin.h"

/* gr_buffer is opaque to the core: each backend defines it. */
struct gr_buffer {
    void *data;
    size_t bytes;
    int wrapped; /* caller-owned memory (buffer_wrap_host): not freed here */
};

typedef struct my_ctx {
    int threads;
} my_ctx;

static void *at(const gr_tensor *t) { return (char *)t->buffer->data + t->offset; }

/* ------------------------------------------------------------------ lifecycle ---- */

static gr_status my_create(const gr_backend_options *opt, void **bctx)
{
    my_ctx *c = calloc(1, sizeof *c);
    if (!c) return gr_fail(GR_ERR_NOMEM, "my-backend: out of memory");
    /* Options only grow: read a field only when opt->struct_size covers it. */
    c->threads = opt && opt->struct_size >= offsetof(gr_backend_options, threads) + sizeof(int)
                     ? opt->threads : 0;
    *bctx = c;
    return GR_OK;
}

static void my_destroy(void *bctx) { free(bctx); }

static gr_status my_describe(void *bctx, char *buf, size_t cap)
{
    my_ctx *c = bctx;
    snprintf(buf, cap, "device: host memory (template)\nthreads: %d\n", c->threads);
    return GR_OK;
}

/* --------------------------------------------------------------------- memory ---- */

static gr_status my_buffer_alloc(void *bctx, size_t bytes, gr_buffer **out)
{
    (void)bctx;
    gr_buffer *b = calloc(1, sizeof *b);
    /* 64-byte alignment: SIMD loads, and any dtype's alignment. */
    if (b) b->data = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    if (!b || !b->data) {
        free(b);
        return gr_fail(GR_ERR_NOMEM, "my-backend: cannot allocate %zu bytes", bytes);
    }
    b->bytes = bytes;
    *out = b;
    return GR_OK;
}

static void my_buffer_free(void *bctx, gr_buffer *b)
{
    (void)bctx;
    if (!b) return;
    if (!b->wrapped) free(b->data);
    free(b);
}

static gr_status check_range(const gr_buffer *b, size_t offset, size_t bytes, const char *what)
{
    if (offset > b->bytes || bytes > b->bytes - offset)
        return gr_fail(GR_ERR_INVALID, "my-backend: %s of %zu bytes at %zu outside a %zu-byte "
                       "buffer", what, bytes, offset, b->bytes);
    return GR_OK;
}

static gr_status my_upload(void *bctx, gr_buffer *dst, size_t offset, const void *src, size_t bytes)
{
    (void)bctx;
    gr_status s = check_range(dst, offset, bytes, "upload");
    if (s == GR_OK && bytes) memcpy((char *)dst->data + offset, src, bytes);
    return s;
}

static gr_status my_download(void *bctx, gr_buffer *src, size_t offset, void *dst, size_t bytes)
{
    (void)bctx;
    gr_status s = check_range(src, offset, bytes, "download");
    if (s == GR_OK && bytes) memcpy(dst, (char *)src->data + offset, bytes);
    return s;
}

static gr_status my_copy(void *bctx, gr_buffer *dst, size_t dst_offset, gr_buffer *src,
                         size_t src_offset, size_t bytes)
{
    (void)bctx;
    gr_status s = check_range(dst, dst_offset, bytes, "copy");
    if (s == GR_OK) s = check_range(src, src_offset, bytes, "copy");
    if (s == GR_OK && bytes) memmove((char *)dst->data + dst_offset, (char *)src->data + src_offset, bytes);
    return s;
}

/* Everything here runs synchronously, so there is nothing to wait for. */
static gr_status my_synchronize(void *bctx) { (void)bctx; return GR_OK; }

static void *my_buffer_host_ptr(void *bctx, gr_buffer *b) { (void)bctx; return b->data; }

static gr_status my_buffer_wrap_host(void *bctx, void *ptr, size_t bytes, gr_buffer **out)
{
    (void)bctx;
    gr_buffer *b = calloc(1, sizeof *b);
    if (!b) return gr_fail(GR_ERR_NOMEM, "my-backend: out of memory");
    b->data = ptr, b->bytes = bytes, b->wrapped = 1;
    *out = b;
    return GR_OK;
}

/* -------------------------------------------------------------------- kernels ---- */

static gr_status my_fill(void *bctx, const gr_tensor *t, float value)
{
    (void)bctx;
    int64_t n = gr_numel(t);
    if (t->dtype == GR_F32) {
        float *p = at(t);
        for (int64_t i = 0; i < n; i++) p[i] = value;
    } else if (t->dtype == GR_I32) {
        int32_t *p = at(t);
        for (int64_t i = 0; i < n; i++) p[i] = (int32_t)value;
    } else {
        return gr_fail(GR_ERR_UNSUPPORTED, "my-backend: fill of a %s tensor", gr_dtype_name(t->dtype));
    }
    return GR_OK;
}

/* C[i] = alpha op(A[i]) op(B[i]) + beta C[i]; see gr_matmul_args. A naive triple loop with a
 * double accumulator: replace it with your device's GEMM. beta == 0 must ignore C's old
 * contents (it may hold NaN). */
static gr_status my_matmul(void *bctx, const gr_matmul_args *g)
{
    (void)bctx;
    const float *A = at(g->a), *B = at(g->b);
    float *C = at(g->c);
    for (int64_t bi = 0; bi < g->batch; bi++) {
        const float *a = A + bi * g->stride_a, *b = B + bi * g->stride_b;
        float *c = C + bi * g->stride_c;
        for (int64_t i = 0; i < g->m; i++)
            for (int64_t j = 0; j < g->n; j++) {
                double acc = 0;
                for (int64_t k = 0; k < g->k; k++) {
                    float x = g->trans_a ? a[k * g->lda + i] : a[i * g->lda + k];
                    float y = g->trans_b ? b[j * g->ldb + k] : b[k * g->ldb + j];
                    acc += (double)x * y;
                }
                float old = g->beta != 0.0f ? g->beta * c[i * g->ldc + j] : 0.0f;
                c[i * g->ldc + j] = g->alpha * (float)acc + old;
            }
    }
    return GR_OK;
}

/* TODO kernels. Each must follow its comment in graft/backend.h exactly; tests/ops in the graft
 * source tree shows the float64 reference each is checked against. */
#define TODO(name) return gr_fail(GR_ERR_UNSUPPORTED, "my-backend: kernel '" name "' is not written yet")

static gr_status my_binary(void *c, gr_binary_op op, const gr_tensor *o, const gr_tensor *a,
                           const gr_tensor *b) { (void)c, (void)op, (void)o, (void)a, (void)b; TODO("binary"); }
static gr_status my_scale(void *c, const gr_tensor *o, const gr_tensor *i, float alpha, int acc)
{ (void)c, (void)o, (void)i, (void)alpha, (void)acc; TODO("scale"); }
static gr_status my_reduce_to(void *c, const gr_tensor *o, const gr_tensor *i)
{ (void)c, (void)o, (void)i; TODO("reduce_to"); }
static gr_status my_sum_squares(void *c, const gr_tensor *o, const gr_tensor *i)
{ (void)c, (void)o, (void)i; TODO("sum_squares"); }
static gr_status my_unary(void *c, gr_unary_op op, const gr_tensor *o, const gr_tensor *i)
{ (void)c, (void)op, (void)o, (void)i; TODO("unary"); }
static gr_status my_unary_backward(void *c, gr_unary_op op, const gr_tensor *dx, const gr_tensor *x,
                                   const gr_tensor *dy) { (void)c, (void)op, (void)dx, (void)x, (void)dy; TODO("unary_backward"); }
static gr_status my_gather_rows(void *c, const gr_tensor *o, const gr_tensor *t, const gr_tensor *ids)
{ (void)c, (void)o, (void)t, (void)ids; TODO("gather_rows"); }
static gr_status my_scatter_add_rows(void *c, const gr_tensor *dt, const gr_tensor *ids,
                                     const gr_tensor *dout, int32_t skip)
{ (void)c, (void)dt, (void)ids, (void)dout, (void)skip; TODO("scatter_add_rows"); }
static gr_status my_layernorm(void *c, const gr_tensor *o, const gr_tensor *mean, const gr_tensor *rstd,
                              const gr_tensor *x, const gr_tensor *w, const gr_tensor *b, float eps)
{ (void)c, (void)o, (void)mean, (void)rstd, (void)x, (void)w, (void)b, (void)eps; TODO("layernorm"); }
static gr_status my_layernorm_backward(void *c, const gr_tensor *dx, const gr_tensor *dw,
                                       const gr_tensor *db, const gr_tensor *dy, const gr_tensor *x,
                                       const gr_tensor *w, const gr_tensor *mean, const gr_tensor *rstd)
{ (void)c, (void)dx, (void)dw, (void)db, (void)dy, (void)x, (void)w, (void)mean, (void)rstd; TODO("layernorm_backward"); }
static gr_status my_rmsnorm(void *c, const gr_tensor *o, const gr_tensor *rstd, const gr_tensor *x,
                            const gr_tensor *w, float eps)
{ (void)c, (void)o, (void)rstd, (void)x, (void)w, (void)eps; TODO("rmsnorm"); }
static gr_status my_rmsnorm_backward(void *c, const gr_tensor *dx, const gr_tensor *dw, const gr_tensor *dy,
                                     const gr_tensor *x, const gr_tensor *w, const gr_tensor *rstd)
{ (void)c, (void)dx, (void)dw, (void)dy, (void)x, (void)w, (void)rstd; TODO("rmsnorm_backward"); }
static gr_status my_softmax(void *c, const gr_tensor *o, const gr_tensor *i)
{ (void)c, (void)o, (void)i; TODO("softmax"); }
static gr_status my_softmax_backward(void *c, const gr_tensor *dx, const gr_tensor *y, const gr_tensor *dy)
{ (void)c, (void)dx, (void)y, (void)dy; TODO("softmax_backward"); }
static gr_status my_rope(void *c, const gr_tensor *o, const gr_tensor *x, const gr_tensor *cs,
                         const gr_tensor *sn, int rot_dim, int inverse)
{ (void)c, (void)o, (void)x, (void)cs, (void)sn, (void)rot_dim, (void)inverse; TODO("rope"); }
static gr_status my_copy_strided(void *c, const gr_copy_args *a) { (void)c, (void)a; TODO("copy_strided"); }
static gr_status my_convert(void *c, const gr_tensor *o, const gr_tensor *i)
{ (void)c, (void)o, (void)i; TODO("convert"); }
static gr_status my_cross_entropy(void *c, const gr_tensor *loss, const gr_tensor *logits,
                                  const gr_tensor *labels, int32_t ignore)
{ (void)c, (void)loss, (void)logits, (void)labels, (void)ignore; TODO("cross_entropy"); }
static gr_status my_cross_entropy_backward(void *c, const gr_tensor *dl, const gr_tensor *logits,
                                           const gr_tensor *labels, int32_t ignore, float scale)
{ (void)c, (void)dl, (void)logits, (void)labels, (void)ignore, (void)scale; TODO("cross_entropy_backward"); }
static gr_status my_adamw(void *c, const gr_adamw_args *a) { (void)c, (void)a; TODO("adamw"); }

static const gr_backend_iface iface = {
    .struct_size = sizeof(gr_backend_iface),
    .create = my_create,
    .destroy = my_destroy,
    .describe = my_describe,
    .buffer_alloc = my_buffer_alloc,
    .buffer_free = my_buffer_free,
    .upload = my_upload,
    .download = my_download,
    .copy = my_copy,
    .synchronize = my_synchronize,
    .fill = my_fill,
    .matmul = my_matmul,
    .binary = my_binary,
    .scale = my_scale,
    .reduce_to = my_reduce_to,
    .sum_squares = my_sum_squares,
    .unary = my_unary,
    .unary_backward = my_unary_backward,
    .gather_rows = my_gather_rows,
    .scatter_add_rows = my_scatter_add_rows,
    .layernorm = my_layernorm,
    .layernorm_backward = my_layernorm_backward,
    .rmsnorm = my_rmsnorm,
    .rmsnorm_backward = my_rmsnorm_backward,
    .softmax = my_softmax,
    .softmax_backward = my_softmax_backward,
    .rope = my_rope,
    .copy_strided = my_copy_strided,
    .convert = my_convert,
    .cross_entropy = my_cross_entropy,
    .cross_entropy_backward = my_cross_entropy_backward,
    .adamw = my_adamw,
    /* optional */
    .buffer_host_ptr = my_buffer_host_ptr,
    .buffer_wrap_host = my_buffer_wrap_host,
    .max_buffer_size = NULL,
};

static const gr_plugin_descriptor descriptor = GR_PLUGIN_DESCRIPTOR(
    GR_PLUGIN_BACKEND, "my-backend", "host-memory backend skeleton (template)", &iface);

GR_PLUGIN_EXPORT const gr_plugin_descriptor *graft_plugin_entry(void) { return &descriptor; }
