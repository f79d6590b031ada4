/* The CPU backend plugin: lifecycle, host buffers, sgemm, and the interface table. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu.h"
#include "graft/plugin.h"

static gr_status cpu_create(const gr_backend_options *opt, void **out)
{
    int threads = 0;
    if (opt && opt->struct_size >= offsetof(gr_backend_options, threads) + sizeof opt->threads) threads = opt->threads;
    if (threads < 0) return gr_fail(GR_ERR_INVALID, "cpu: threads = %d (0 = all cores)", threads);
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    cpu_backend *b = calloc(1, sizeof *b);
    if (!b) return gr_fail(GR_ERR_NOMEM, "cpu: out of memory");
    b->threads = threads;
    b->pool = cpu_pool_create(threads);
    if (!b->pool) {
        free(b);
        return gr_fail(GR_ERR_NOMEM, "cpu: cannot start %d threads", threads);
    }
    /* One setting for the whole process: OpenBLAS has no per-call thread count. */
    openblas_set_num_threads(threads);
    *out = b;
    return GR_OK;
}

static void cpu_destroy(void *bctx)
{
    cpu_backend *b = bctx;
    if (!b) return;
    cpu_pool_destroy(b->pool);
    free(b);
}

static gr_status cpu_describe(void *bctx, char *buf, size_t cap)
{
    cpu_backend *b = bctx;
    snprintf(buf, cap, "cpu: %d threads (%d-thread pool), %s\n", b->threads, cpu_pool_threads(b->pool),
             openblas_get_config());
    return GR_OK;
}

/* ---------------------------------------------------------------- memory ---- */

static gr_status cpu_buffer_alloc(void *bctx, size_t bytes, gr_buffer **out)
{
    (void)bctx;
    gr_buffer *buf = malloc(sizeof *buf);
    size_t rounded = (bytes + 63) / 64 * 64;
    void *p = buf ? aligned_alloc(64, rounded ? rounded : 64) : NULL;
    if (!p) {
        free(buf);
        return gr_fail(GR_ERR_NOMEM, "cpu: cannot allocate %zu bytes", bytes);
    }
    *buf = (gr_buffer){p, bytes, 0};
    *out = buf;
    return GR_OK;
}

static void cpu_buffer_free(void *bctx, gr_buffer *buf)
{
    (void)bctx;
    if (!buf) return;
    if (!buf->wrapped) free(buf->ptr);
    free(buf);
}

static gr_status range_check(const gr_buffer *buf, size_t off, size_t bytes, const char *what)
{
    if (off > buf->bytes || bytes > buf->bytes - off)
        return gr_fail(GR_ERR_INVALID, "cpu: %s of %zu bytes at %zu is outside a buffer of %zu", what, bytes, off,
                       buf->bytes);
    return GR_OK;
}

static gr_status cpu_upload(void *bctx, gr_buffer *dst, size_t off, const void *src, size_t bytes)
{
    (void)bctx;
    gr_status s = range_check(dst, off, bytes, "upload");
    if (s == GR_OK && bytes) memcpy((char *)dst->ptr + off, src, bytes);
    return s;
}

static gr_status cpu_download(void *bctx, gr_buffer *src, size_t off, void *dst, size_t bytes)
{
    (void)bctx;
    gr_status s = range_check(src, off, bytes, "download");
    if (s == GR_OK && bytes) memcpy(dst, (char *)src->ptr + off, bytes);
    return s;
}

static gr_status cpu_copy(void *bctx, gr_buffer *dst, size_t doff, gr_buffer *src, size_t soff, size_t bytes)
{
    (void)bctx;
    gr_status s = range_check(dst, doff, bytes, "copy");
    if (s == GR_OK) s = range_check(src, soff, bytes, "copy");
    if (s == GR_OK && bytes) memmove((char *)dst->ptr + doff, (char *)src->ptr + soff, bytes);
    return s;
}

static gr_status cpu_synchronize(void *bctx)
{
    (void)bctx;
    return GR_OK;
}

static void *cpu_buffer_host_ptr(void *bctx, gr_buffer *buf)
{
    (void)bctx;
    return buf->ptr;
}

static gr_status cpu_buffer_wrap_host(void *bctx, void *ptr, size_t bytes, gr_buffer **out)
{
    (void)bctx;
    /* Kernels read floats through typed pointers: misaligned memory is copied instead. */
    if ((uintptr_t)ptr % 8) return gr_fail(GR_ERR_UNSUPPORTED, "cpu: host memory at %p is not 8-byte aligned", ptr);
    gr_buffer *buf = malloc(sizeof *buf);
    if (!buf) return gr_fail(GR_ERR_NOMEM, "cpu: out of memory");
    *buf = (gr_buffer){ptr, bytes, 1};
    *out = buf;
    return GR_OK;
}

static size_t cpu_max_buffer_size(void *bctx)
{
    (void)bctx;
    return 0;
}

/* ---------------------------------------------------------------- matmul ---- */

static void batch_task(void *arg, int64_t begin, int64_t end)
{
    const gr_matmul_args *a = arg;
    const float *A = cpu_f32(a->a), *B = cpu_f32(a->b);
    float *C = cpu_f32(a->c);
    for (int64_t i = begin; i < end; i++)
        cblas_sgemm(CblasRowMajor, a->trans_a ? CblasTrans : CblasNoTrans, a->trans_b ? CblasTrans : CblasNoTrans,
                    (blasint)a->m, (blasint)a->n, (blasint)a->k, a->alpha, A + i * a->stride_a, (blasint)a->lda,
                    B + i * a->stride_b, (blasint)a->ldb, a->beta, C + i * a->stride_c, (blasint)a->ldc);
}

static gr_status cpu_matmul(void *bctx, const gr_matmul_args *a)
{
    if (a->a->dtype != GR_F32 || a->b->dtype != GR_F32 || a->c->dtype != GR_F32)
        return gr_fail(GR_ERR_INVALID, "cpu matmul: operands must be F32 (got %s, %s, %s)", gr_dtype_name(a->a->dtype),
                       gr_dtype_name(a->b->dtype), gr_dtype_name(a->c->dtype));
    if (a->m <= 0 || a->n <= 0 || a->batch <= 0) return GR_OK;
    const float *A = cpu_f32(a->a), *B = cpu_f32(a->b);
    float *C = cpu_f32(a->c);
    if (a->k <= 0) {
        /* An empty contraction: C = beta * C. */
        for (int64_t i = 0; i < a->batch; i++)
            for (int64_t r = 0; r < a->m; r++)
                for (int64_t j = 0; j < a->n; j++) {
                    float *c = C + i * a->stride_c + r * a->ldc + j;
                    *c = a->beta == 0.0f ? 0.0f : a->beta * *c;
                }
        return GR_OK;
    }
    cpu_backend *b = bctx;
    double per = (double)a->m * (double)a->n * (double)a->k;
    if (a->batch >= b->threads && b->threads > 1 && per < (double)(1 << 24)) {
        /* Many small products (attention's per-head q.k and p.v): one single-threaded sgemm per
         * matrix, the matrices spread over the pool. A threaded OpenBLAS call this small spends
         * much of its time handing out and joining work, and two threaded calls may not
         * overlap (OpenBLAS serializes them), so the batch loop itself is what runs in parallel.
         * OpenBLAS has one process-wide thread count: it is 1 only while the pool runs. */
        openblas_set_num_threads(1);
        cpu_pool_run(b->pool, a->batch, 1, batch_task, (void *)a);
        openblas_set_num_threads(b->threads);
        return GR_OK;
    }
    for (int64_t i = 0; i < a->batch; i++)
        cblas_sgemm(CblasRowMajor, a->trans_a ? CblasTrans : CblasNoTrans, a->trans_b ? CblasTrans : CblasNoTrans,
                    (blasint)a->m, (blasint)a->n, (blasint)a->k, a->alpha, A + i * a->stride_a, (blasint)a->lda,
                    B + i * a->stride_b, (blasint)a->ldb, a->beta, C + i * a->stride_c, (blasint)a->ldc);
    return GR_OK;
}

/* ---------------------------------------------------------------- plugin ---- */

static const gr_backend_iface cpu_iface = {
    .struct_size = sizeof(gr_backend_iface),
    .create = cpu_create,
    .destroy = cpu_destroy,
    .describe = cpu_describe,
    .buffer_alloc = cpu_buffer_alloc,
    .buffer_free = cpu_buffer_free,
    .upload = cpu_upload,
    .download = cpu_download,
    .copy = cpu_copy,
    .synchronize = cpu_synchronize,
    .fill = cpu_fill,
    .matmul = cpu_matmul,
    .binary = cpu_binary,
    .scale = cpu_scale,
    .reduce_to = cpu_reduce_to,
    .sum_squares = cpu_sum_squares,
    .unary = cpu_unary,
    .unary_backward = cpu_unary_backward,
    .gather_rows = cpu_gather_rows,
    .scatter_add_rows = cpu_scatter_add_rows,
    .layernorm = cpu_layernorm,
    .layernorm_backward = cpu_layernorm_backward,
    .rmsnorm = cpu_rmsnorm,
    .rmsnorm_backward = cpu_rmsnorm_backward,
    .softmax = cpu_softmax,
    .softmax_backward = cpu_softmax_backward,
    .rope = cpu_rope,
    .copy_strided = cpu_copy_strided,
    .convert = cpu_convert,
    .cross_entropy = cpu_cross_entropy,
    .cross_entropy_backward = cpu_cross_entropy_backward,
    .adamw = cpu_adamw,
    .buffer_host_ptr = cpu_buffer_host_ptr,
    .buffer_wrap_host = cpu_buffer_wrap_host,
    .max_buffer_size = cpu_max_buffer_size,
};

static const gr_plugin_descriptor cpu_descriptor =
    GR_PLUGIN_DESCRIPTOR(GR_PLUGIN_BACKEND, "cpu", "CPU: OpenBLAS sgemm, threaded C kernels, F32 compute", &cpu_iface);

GR_PLUGIN_EXPORT const gr_plugin_descriptor *graft_plugin_entry(void) { return &cpu_descriptor; }
