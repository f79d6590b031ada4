/* debug_check: every kernel is recomputed on the host reference (vk_ref.c) from snapshots of
 * its inputs, then the device result is downloaded and compared. The first divergence fails
 * the op with a message naming the kernel, the argument, the element and both values. It is
 * slow by design (every op synchronises); it exists to find the op that breaks parity. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vk_internal.h"

#define CHECK_RTOL 1e-3
#define CHECK_ATOL 1e-4

typedef struct snap {
    const gr_tensor *dev;
    gr_tensor host;
    void *mem;
    size_t bytes;
    int out;
    const char *arg;
} snap;

typedef struct check {
    vk_ctx *c;
    const char *kernel;
    snap s[8];
    int n;
    gr_status st;
} check;

static const gr_tensor *take(check *k, const gr_tensor *t, size_t bytes, int out, const char *arg)
{
    if (!t || k->st != GR_OK) return NULL;
    snap *s = &k->s[k->n++];
    s->dev = t;
    s->bytes = bytes;
    s->out = out;
    s->arg = arg;
    s->mem = malloc(bytes ? bytes : 1);
    if (!s->mem) {
        k->st = gr_fail(GR_ERR_NOMEM, "debug_check: out of memory");
        return NULL;
    }
    if (bytes && t->offset + bytes > t->buffer->size) {
        k->st = gr_fail(GR_ERR_INVALID, "vulkan: %s: %s overruns its buffer", k->kernel, arg);
        return NULL;
    }
    if (bytes) k->st = vk_download(k->c, t->buffer, t->offset, s->mem, bytes);
    s->host = *t;
    s->host.buffer = (gr_buffer *)s->mem;
    s->host.offset = 0;
    return &s->host;
}

static void release(check *k)
{
    for (int i = 0; i < k->n; i++) free(k->s[i].mem);
    k->n = 0;
}

static gr_status compare(check *k, snap *s)
{
    void *dev = malloc(s->bytes ? s->bytes : 1);
    if (!dev) return gr_fail(GR_ERR_NOMEM, "debug_check: out of memory");
    gr_status st = vk_download(k->c, s->dev->buffer, s->dev->offset, dev, s->bytes);
    if (st != GR_OK) {
        free(dev);
        return st;
    }
    if (s->dev->dtype == GR_F32) {
        const float *a = dev, *h = s->mem;
        size_t n = s->bytes / 4;
        double maxabs = 1;
        for (size_t i = 0; i < n; i++)
            if (isfinite(h[i]) && fabs(h[i]) > maxabs) maxabs = fabs(h[i]);
        for (size_t i = 0; i < n; i++) {
            if (isnan(a[i]) && isnan(h[i])) continue;
            if (fabs((double)a[i] - h[i]) <= CHECK_ATOL * maxabs + CHECK_RTOL * fabs(h[i])) continue;
            st = gr_fail(GR_ERR_NUMERIC, "vulkan: debug_check: %s: %s (%s) element %zu is %.9g on the device, %.9g "
                         "on the host reference", k->kernel, s->arg, s->dev->name ? s->dev->name : "activation", i,
                         a[i], h[i]);
            break;
        }
    } else if (memcmp(dev, s->mem, s->bytes) != 0) {
        size_t i = 0, es = gr_dtype_size(s->dev->dtype);
        while (i < s->bytes && ((char *)dev)[i] == ((char *)s->mem)[i]) i++;
        st = gr_fail(GR_ERR_NUMERIC, "vulkan: debug_check: %s: %s (%s %s) element %zu differs from the host reference",
                     k->kernel, s->arg, gr_dtype_name(s->dev->dtype), s->dev->name ? s->dev->name : "activation",
                     i / es);
    }
    free(dev);
    return st;
}

/* Runs the device op after the reference; compares every output snapshot. */
static gr_status finish(check *k, gr_status ref, gr_status dev)
{
    if (k->st != GR_OK) {
        release(k);
        return k->st;
    }
    char refmsg[512];
    snprintf(refmsg, sizeof refmsg, "%s", gr_last_error());
    if (dev == GR_OK) dev = vk_synchronize(k->c);
    gr_status st = GR_OK;
    if (ref != GR_OK && dev == GR_OK)
        st = gr_fail(GR_ERR_NUMERIC, "vulkan: debug_check: %s: the host reference failed (%s), the device did not",
                     k->kernel, refmsg);
    else if (dev != GR_OK)
        st = dev; /* the device's own message */
    for (int i = 0; i < k->n && st == GR_OK; i++)
        if (k->s[i].out) st = compare(k, &k->s[i]);
    release(k);
    return st;
}

#define BEGIN(name) check k_ = {bctx, name, {{0}}, 0, GR_OK}; check *k = &k_
#define IN(t) take(k, (t), (t) ? gr_nbytes(t) : 0, 0, #t)
#define OUT(t) take(k, (t), (t) ? gr_nbytes(t) : 0, 1, #t)
#define REF (k->st == GR_OK ? vk_ref_iface
#define DEV(call) (k->st == GR_OK ? (call) : k->st)

static gr_status c_fill(void *bctx, const gr_tensor *t, float v)
{
    BEGIN("fill");
    const gr_tensor *ht = OUT(t);
    gr_status r = REF.fill(NULL, ht, v) : k->st);
    return finish(k, r, DEV(vk_fill(bctx, t, v)));
}

static size_t span_bytes(int64_t batch, int64_t stride, int64_t rows, int64_t cols, int64_t ld)
{
    if (batch <= 0 || rows <= 0 || cols <= 0) return 0;
    return (size_t)((batch - 1) * stride + (rows - 1) * ld + cols) * 4;
}

static gr_status c_matmul(void *bctx, const gr_matmul_args *a)
{
    BEGIN("matmul");
    gr_matmul_args h = *a;
    h.a = take(k, a->a, a->k ? span_bytes(a->batch, a->stride_a, a->trans_a ? a->k : a->m, a->trans_a ? a->m : a->k, a->lda) : 0, 0, "a");
    h.b = take(k, a->b, a->k ? span_bytes(a->batch, a->stride_b, a->trans_b ? a->n : a->k, a->trans_b ? a->k : a->n, a->ldb) : 0, 0, "b");
    h.c = take(k, a->c, span_bytes(a->batch, a->stride_c, a->m, a->n, a->ldc), 1, "c");
    gr_status r = REF.matmul(NULL, &h) : k->st);
    return finish(k, r, DEV(vk_matmul(bctx, a)));
}

static gr_status c_binary(void *bctx, gr_binary_op op, const gr_tensor *out, const gr_tensor *a, const gr_tensor *b)
{
    BEGIN("binary");
    const gr_tensor *ha = IN(a), *hb = IN(b), *ho = OUT(out);
    gr_status r = REF.binary(NULL, op, ho, ha, hb) : k->st);
    return finish(k, r, DEV(vk_binary(bctx, op, out, a, b)));
}

static gr_status c_scale(void *bctx, const gr_tensor *out, const gr_tensor *in, float alpha, int acc)
{
    BEGIN("scale");
    const gr_tensor *hi = IN(in), *ho = OUT(out);
    gr_status r = REF.scale(NULL, ho, hi, alpha, acc) : k->st);
    return finish(k, r, DEV(vk_scale(bctx, out, in, alpha, acc)));
}

static gr_status c_reduce_to(void *bctx, const gr_tensor *out, const gr_tensor *in)
{
    BEGIN("reduce_to");
    const gr_tensor *hi = IN(in), *ho = OUT(out);
    gr_status r = REF.reduce_to(NULL, ho, hi) : k->st);
    return finish(k, r, DEV(vk_reduce_to(bctx, out, in)));
}

static gr_status c_sum_squares(void *bctx, const gr_tensor *out, const gr_tensor *in)
{
    BEGIN("sum_squares");
    const gr_tensor *hi = IN(in), *ho = OUT(out);
    gr_status r = REF.sum_squares(NULL, ho, hi) : k->st);
    return finish(k, r, DEV(vk_sum_squares(bctx, out, in)));
}

static gr_status c_unary(void *bctx, gr_unary_op op, const gr_tensor *out, const gr_tensor *in)
{
    BEGIN("unary");
    const gr_tensor *hi = IN(in), *ho = OUT(out);
    gr_status r = REF.unary(NULL, op, ho, hi) : k->st);
    return finish(k, r, DEV(vk_unary(bctx, op, out, in)));
}

static gr_status c_unary_backward(void *bctx, gr_unary_op op, const gr_tensor *dx, const gr_tensor *x,
                                  const gr_tensor *dy)
{
    BEGIN("unary_backward");
    const gr_tensor *hx = IN(x), *hdy = IN(dy), *hdx = OUT(dx);
    gr_status r = REF.unary_backward(NULL, op, hdx, hx, hdy) : k->st);
    return finish(k, r, DEV(vk_unary_backward(bctx, op, dx, x, dy)));
}

static gr_status c_gather_rows(void *bctx, const gr_tensor *out, const gr_tensor *table, const gr_tensor *ids)
{
    BEGIN("gather_rows");
    const gr_tensor *ht = IN(table), *hi = IN(ids), *ho = OUT(out);
    gr_status r = REF.gather_rows(NULL, ho, ht, hi) : k->st);
    return finish(k, r, DEV(vk_gather_rows(bctx, out, table, ids)));
}

static gr_status c_scatter_add_rows(void *bctx, const gr_tensor *dtable, const gr_tensor *ids, const gr_tensor *dout,
                                    int32_t skip)
{
    BEGIN("scatter_add_rows");
    const gr_tensor *hi = IN(ids), *hd = IN(dout), *ht = OUT(dtable);
    gr_status r = REF.scatter_add_rows(NULL, ht, hi, hd, skip) : k->st);
    return finish(k, r, DEV(vk_scatter_add_rows(bctx, dtable, ids, dout, skip)));
}

static gr_status c_layernorm(void *bctx, const gr_tensor *out, const gr_tensor *mean, const gr_tensor *rstd,
                             const gr_tensor *x, const gr_tensor *w, const gr_tensor *b, float eps)
{
    BEGIN("layernorm");
    const gr_tensor *hx = IN(x), *hw = IN(w), *hb = IN(b), *ho = OUT(out), *hm = OUT(mean), *hr = OUT(rstd);
    gr_status r = REF.layernorm(NULL, ho, hm, hr, hx, hw, hb, eps) : k->st);
    return finish(k, r, DEV(vk_layernorm(bctx, out, mean, rstd, x, w, b, eps)));
}

static gr_status c_layernorm_backward(void *bctx, const gr_tensor *dx, const gr_tensor *dw, const gr_tensor *db,
                                      const gr_tensor *dy, const gr_tensor *x, const gr_tensor *w,
                                      const gr_tensor *mean, const gr_tensor *rstd)
{
    BEGIN("layernorm_backward");
    const gr_tensor *hdy = IN(dy), *hx = IN(x), *hw = IN(w), *hm = IN(mean), *hr = IN(rstd);
    const gr_tensor *hdx = OUT(dx), *hdw = OUT(dw), *hdb = OUT(db);
    gr_status r = REF.layernorm_backward(NULL, hdx, hdw, hdb, hdy, hx, hw, hm, hr) : k->st);
    return finish(k, r, DEV(vk_layernorm_backward(bctx, dx, dw, db, dy, x, w, mean, rstd)));
}

static gr_status c_rmsnorm(void *bctx, const gr_tensor *out, const gr_tensor *rstd, const gr_tensor *x,
                           const gr_tensor *w, float eps)
{
    BEGIN("rmsnorm");
    const gr_tensor *hx = IN(x), *hw = IN(w), *ho = OUT(out), *hr = OUT(rstd);
    gr_status r = REF.rmsnorm(NULL, ho, hr, hx, hw, eps) : k->st);
    return finish(k, r, DEV(vk_rmsnorm(bctx, out, rstd, x, w, eps)));
}

static gr_status c_rmsnorm_backward(void *bctx, const gr_tensor *dx, const gr_tensor *dw, const gr_tensor *dy,
                                    const gr_tensor *x, const gr_tensor *w, const gr_tensor *rstd)
{
    BEGIN("rmsnorm_backward");
    const gr_tensor *hdy = IN(dy), *hx = IN(x), *hw = IN(w), *hr = IN(rstd), *hdx = OUT(dx), *hdw = OUT(dw);
    gr_status r = REF.rmsnorm_backward(NULL, hdx, hdw, hdy, hx, hw, hr) : k->st);
    return finish(k, r, DEV(vk_rmsnorm_backward(bctx, dx, dw, dy, x, w, rstd)));
}

static gr_status c_softmax(void *bctx, const gr_tensor *out, const gr_tensor *in)
{
    BEGIN("softmax");
    const gr_tensor *hi = IN(in), *ho = OUT(out);
    gr_status r = REF.softmax(NULL, ho, hi) : k->st);
    return finish(k, r, DEV(vk_softmax(bctx, out, in)));
}

static gr_status c_softmax_backward(void *bctx, const gr_tensor *dx, const gr_tensor *y, const gr_tensor *dy)
{
    BEGIN("softmax_backward");
    const gr_tensor *hy = IN(y), *hdy = IN(dy), *hdx = OUT(dx);
    gr_status r = REF.softmax_backward(NULL, hdx, hy, hdy) : k->st);
    return finish(k, r, DEV(vk_softmax_backward(bctx, dx, y, dy)));
}

static gr_status c_rope(void *bctx, const gr_tensor *out, const gr_tensor *x, const gr_tensor *cos,
                        const gr_tensor *sin, int rot, int inverse)
{
    BEGIN("rope");
    const gr_tensor *hx = IN(x), *hc = IN(cos), *hs = IN(sin), *ho = OUT(out);
    gr_status r = REF.rope(NULL, ho, hx, hc, hs, rot, inverse) : k->st);
    return finish(k, r, DEV(vk_rope(bctx, out, x, cos, sin, rot, inverse)));
}

static size_t strided_bytes(const gr_copy_args *a, const int64_t *strides, size_t es)
{
    int64_t hi = 0;
    for (int d = 0; d < a->ndim; d++) {
        if (a->shape[d] == 0) return 0;
        if (strides[d] > 0) hi += (a->shape[d] - 1) * strides[d];
    }
    return (size_t)(hi + 1) * es;
}

static gr_status c_copy_strided(void *bctx, const gr_copy_args *a)
{
    BEGIN("copy_strided");
    gr_copy_args h = *a;
    h.src = take(k, a->src, strided_bytes(a, a->src_strides, gr_dtype_size(a->src->dtype)), 0, "src");
    h.dst = take(k, a->dst, strided_bytes(a, a->dst_strides, gr_dtype_size(a->dst->dtype)), 1, "dst");
    gr_status r = REF.copy_strided(NULL, &h) : k->st);
    return finish(k, r, DEV(vk_copy_strided(bctx, a)));
}

static gr_status c_convert(void *bctx, const gr_tensor *out, const gr_tensor *in)
{
    BEGIN("convert");
    const gr_tensor *hi = IN(in), *ho = OUT(out);
    gr_status r = REF.convert(NULL, ho, hi) : k->st);
    return finish(k, r, DEV(vk_convert(bctx, out, in)));
}

static gr_status c_cross_entropy(void *bctx, const gr_tensor *loss, const gr_tensor *logits, const gr_tensor *labels,
                                 int32_t ignore)
{
    BEGIN("cross_entropy");
    const gr_tensor *hl = IN(logits), *hy = IN(labels), *ho = OUT(loss);
    gr_status r = REF.cross_entropy(NULL, ho, hl, hy, ignore) : k->st);
    return finish(k, r, DEV(vk_cross_entropy(bctx, loss, logits, labels, ignore)));
}

static gr_status c_cross_entropy_backward(void *bctx, const gr_tensor *dlogits, const gr_tensor *logits,
                                          const gr_tensor *labels, int32_t ignore, float scale)
{
    BEGIN("cross_entropy_backward");
    const gr_tensor *hl = IN(logits), *hy = IN(labels), *ho = OUT(dlogits);
    gr_status r = REF.cross_entropy_backward(NULL, ho, hl, hy, ignore, scale) : k->st);
    return finish(k, r, DEV(vk_cross_entropy_backward(bctx, dlogits, logits, labels, ignore, scale)));
}

static gr_status c_adamw(void *bctx, const gr_adamw_args *a)
{
    BEGIN("adamw");
    gr_adamw_args h = *a;
    h.grad = IN(a->grad);
    h.param = take(k, a->param, gr_nbytes(a->param), 1, "param");
    h.m = take(k, a->m, gr_nbytes(a->m), 1, "m");
    h.v = take(k, a->v, gr_nbytes(a->v), 1, "v");
    gr_status r = REF.adamw(NULL, &h) : k->st);
    return finish(k, r, DEV(vk_adamw(bctx, a)));
}

const gr_backend_iface vk_checked_iface = {
    .struct_size = sizeof(gr_backend_iface),
    .fill = c_fill,
    .matmul = c_matmul,
    .binary = c_binary,
    .scale = c_scale,
    .reduce_to = c_reduce_to,
    .sum_squares = c_sum_squares,
    .unary = c_unary,
    .unary_backward = c_unary_backward,
    .gather_rows = c_gather_rows,
    .scatter_add_rows = c_scatter_add_rows,
    .layernorm = c_layernorm,
    .layernorm_backward = c_layernorm_backward,
    .rmsnorm = c_rmsnorm,
    .rmsnorm_backward = c_rmsnorm_backward,
    .softmax = c_softmax,
    .softmax_backward = c_softmax_backward,
    .rope = c_rope,
    .copy_strided = c_copy_strided,
    .convert = c_convert,
    .cross_entropy = c_cross_entropy,
    .cross_entropy_backward = c_cross_entropy_backward,
    .adamw = c_adamw,
};
