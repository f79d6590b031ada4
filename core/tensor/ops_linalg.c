/* gr_matmul and gr_linear, forward and backward: every product is one backend matmul launch
 * (batched where the operands are), transposes handled by the kernel, never by copies. */
#include <stdio.h>
#include <string.h>

#include "tensor/internal.h"

const char *gr__shp(const gr_tensor *t, char *buf, size_t cap)
{
    if (!t) return "NULL";
    return gr_shape_str(t, buf, cap);
}

gr_tensor gr__desc(const gr_tensor *t, int ndim, const int64_t *shape)
{
    gr_tensor d = *t;
    d.ndim = ndim;
    for (int i = 0; i < ndim; i++) d.shape[i] = shape[i];
    return d;
}

int gr__same_shape(const gr_tensor *a, const gr_tensor *b)
{
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

/* C = op(A) op(B) (+ C when beta = 1), A stored [k, m] if ta else [m, k], B [n, k] if tb else
 * [k, n], over `batch` matrices with the given element strides. A and B may be F16/BF16
 * (converted into temporaries freed at once). */
static int mm(gr_ctx *ctx, const char *op, const gr_tensor *c, gr_tensor *a, gr_tensor *b,
              int ta, int tb, int64_t m, int64_t n, int64_t k, int64_t batch, int64_t sa,
              int64_t sb, int64_t sc, float beta, int kind, int trainable)
{
    int tmpa, tmpb;
    gr_tensor *fa = gr__f32(ctx, op, a, &tmpa);
    gr_tensor *fb = fa ? gr__f32(ctx, op, b, &tmpb) : NULL;
    int ok = 0;
    if (fb) {
        gr_matmul_args args = {
            .a = fa, .b = fb, .c = c, .trans_a = ta, .trans_b = tb, .m = m, .n = n, .k = k,
            .batch = batch, .lda = ta ? m : k, .ldb = tb ? k : n, .ldc = n,
            .stride_a = sa, .stride_b = sb, .stride_c = sc, .alpha = 1.0f, .beta = beta,
        };
        gr_backend *be = gr__be(ctx);
        ok = gr__k(ctx, op, be->iface->matmul(be->ctx, &args));
        if (ok) gr__count_matmul(ctx, 2.0 * (double)m * (double)n * (double)k * (double)batch, kind, trainable);
        if (tmpb) gr__drop(ctx, fb);
    }
    if (fa && tmpa) gr__drop(ctx, fa);
    return ok;
}

static const char *nm(const gr_tensor *t) { return t->name ? t->name : ""; }

/* ------------------------------------------------------------------ matmul ---- */

/* iv: 0 ta, 1 tb, 2 m, 3 n, 4 k, 5 batch, 6 b broadcast */
static void matmul_backward(gr_ctx *ctx, gr_node *nd, gr_tensor *dc)
{
    gr_tensor *a = nd->in[0], *b = nd->in[1];
    int ta = (int)nd->iv[0], tb = (int)nd->iv[1], bc = (int)nd->iv[6];
    int64_t m = nd->iv[2], n = nd->iv[3], k = nd->iv[4], batch = nd->iv[5];
    int acc;
    gr_tensor *da = gr__grad_slot(ctx, a, &acc);
    if (da) {
        int kind = gr__is_param(a) ? 2 : 1;
        int ok;
        if (!ta) {
            /* dA [m,k] = dC [m,n] op(B)^T; with a broadcast B all batches fold into rows. */
            if (bc) ok = mm(ctx, "gr_matmul backward", da, dc, b, 0, !tb, batch * m, k, n, 1, 0, 0, 0, (float)acc, kind, 1);
            else ok = mm(ctx, "gr_matmul backward", da, dc, b, 0, !tb, m, k, n, batch, m * n, k * n, m * k, (float)acc, kind, 1);
        } else {
            /* A stored [k,m]: dA = op(B) dC^T. */
            ok = mm(ctx, "gr_matmul backward", da, b, dc, tb, 1, k, m, n, batch, bc ? 0 : k * n, m * n, k * m, (float)acc, kind, 1);
        }
        if (ok) gr__grad_written(a);
    }
    if (!gr_needs_grad(b)) return;
    int kind = gr__is_param(b) ? 2 : 1;
    if (bc && batch > 1 && ta) {
        /* dB is a sum over the batch of products with transposed A slices: one batched
         * launch into a temporary, then a reduction. */
        int64_t shp[3] = {batch, tb ? n : k, tb ? k : n}, one[3] = {1, shp[1], shp[2]};
        gr_tensor *t = gr__new(ctx, GR_F32, 3, shp);
        if (!t) return;
        int ok = tb ? mm(ctx, "gr_matmul backward", t, dc, a, 1, 1, n, k, m, batch, m * n, k * m, n * k, 0.0f, kind, 1)
                    : mm(ctx, "gr_matmul backward", t, a, dc, 0, 0, k, n, m, batch, k * m, m * n, k * n, 0.0f, kind, 1);
        gr_tensor *r = ok ? gr__new(ctx, GR_F32, b->ndim, b->shape) : NULL;
        if (r) {
            gr_tensor rd = gr__desc(r, 3, one);
            gr_backend *be = gr__be(ctx);
            if (gr__k(ctx, "gr_matmul backward", be->iface->reduce_to(be->ctx, &rd, t))) gr__grad_give(ctx, b, r);
            else gr__drop(ctx, r);
        }
        gr__drop(ctx, t);
        return;
    }
    gr_tensor *db = gr__grad_slot(ctx, b, &acc);
    if (!db) return;
    int64_t rows = bc ? batch * m : m, nb = bc ? 1 : batch;
    int64_t sdc = bc ? 0 : m * n, sa = bc ? 0 : m * k, sdb = bc ? 0 : k * n;
    int ok = tb ? mm(ctx, "gr_matmul backward", db, dc, a, 1, ta, n, k, rows, nb, sdc, sa, sdb, (float)acc, kind, 1)
                : mm(ctx, "gr_matmul backward", db, a, dc, !ta, 0, k, n, rows, nb, sa, sdc, sdb, (float)acc, kind, 1);
    if (ok) gr__grad_written(b);
}

gr_tensor *gr_matmul(gr_ctx *ctx, gr_tensor *a, gr_tensor *b, int trans_a, int trans_b)
{
    static const char op[] = "gr_matmul";
    if (!gr__ok(ctx) || !gr__in(ctx, op, a) || !gr__in(ctx, op, b)) return NULL;
    if (a->ndim < 2 || b->ndim < 2 || (b->ndim != 2 && b->ndim != a->ndim))
        return gr__fail(ctx, GR_ERR_SHAPE, "%s: operands %s and %s: need [..., m, k] and [k, n] or [..., k, n]",
                        op, GR_SHP(a), GR_SHP(b));
    int ta = trans_a != 0, tb = trans_b != 0;
    int64_t m = a->shape[a->ndim - 2 + ta], k = a->shape[a->ndim - 1 - ta];
    int64_t kb = b->shape[b->ndim - 2 + tb], n = b->shape[b->ndim - 1 - tb];
    int bc = b->ndim == 2 && a->ndim > 2;
    int lead_ok = 1;
    if (!bc)
        for (int i = 0; i < a->ndim - 2; i++) lead_ok &= a->shape[i] == b->shape[i];
    if (k != kb || !lead_ok)
        return gr__fail(ctx, GR_ERR_SHAPE, "%s: %s%s and %s%s do not fit (k %lld vs %lld)", op, GR_SHP(a),
                        ta ? "^T" : "", GR_SHP(b), tb ? "^T" : "", (long long)k, (long long)kb);
    int64_t batch = 1, shp[GR_MAX_DIMS];
    for (int i = 0; i < a->ndim - 2; i++) batch *= shp[i] = a->shape[i];
    shp[a->ndim - 2] = m;
    shp[a->ndim - 1] = n;
    gr_tensor *c = gr__new(ctx, GR_F32, a->ndim, shp);
    if (!c) return NULL;
    int trainable = gr_needs_grad(a) || gr_needs_grad(b);
    int ok = (bc && !ta) ? mm(ctx, op, c, a, b, 0, tb, batch * m, n, k, 1, 0, 0, 0, 0.0f, 0, trainable)
                         : mm(ctx, op, c, a, b, ta, tb, m, n, k, batch, m * k, bc ? 0 : k * n, m * n, 0.0f, 0, trainable);
    if (!ok) return NULL;
    gr_node *nd = gr__record(ctx, op, matmul_backward, c, a, b, NULL);
    if (nd) {
        int64_t iv[7] = {ta, tb, m, n, k, batch, bc};
        memcpy(nd->iv, iv, sizeof iv);
        if (gr_needs_grad(a)) gr__save(nd, b);
        if (gr_needs_grad(b)) gr__save(nd, a);
    }
    return c;
}

/* ------------------------------------------------------------------ linear ---- */

/* iv: 0 rows, 1 in, 2 out */
static void linear_backward(gr_ctx *ctx, gr_node *nd, gr_tensor *dy)
{
    gr_tensor *x = nd->in[0], *w = nd->in[1], *bias = nd->in[2];
    int64_t rows = nd->iv[0], in = nd->iv[1], out = nd->iv[2];
    int acc;
    gr_tensor *dx = gr__grad_slot(ctx, x, &acc);
    /* dx [rows,in] = dy [rows,out] @ W [out,in] */
    if (dx && mm(ctx, "gr_linear backward", dx, dy, w, 0, 0, rows, in, out, 1, 0, 0, 0, (float)acc,
                 gr__is_param(x) ? 2 : 1, 1))
        gr__grad_written(x);
    gr_tensor *dw = gr__grad_slot(ctx, w, &acc);
    /* dW [out,in] = dy^T @ x; beta = 1 accumulates into the parameter's gradient in place. */
    if (dw && mm(ctx, "gr_linear backward", dw, dy, x, 1, 0, out, in, rows, 1, 0, 0, 0, (float)acc,
                 gr__is_param(w) ? 2 : 1, 1))
        gr__grad_written(w);
    if (bias && gr_needs_grad(bias)) {
        int tmp;
        gr_tensor *db = gr__gbegin(ctx, bias, &tmp);
        if (!db) return;
        int64_t one[2] = {1, out}, full[2] = {rows, out};
        gr_tensor dd = gr__desc(db, 2, one), yd = gr__desc(dy, 2, full);
        gr_backend *be = gr__be(ctx);
        if (gr__k(ctx, "gr_linear backward", be->iface->reduce_to(be->ctx, &dd, &yd))) gr__gend(ctx, bias, db, tmp);
        else if (tmp) gr__drop(ctx, db);
    }
}

gr_tensor *gr_linear(gr_ctx *ctx, gr_tensor *x, gr_tensor *w, gr_tensor *bias)
{
    static const char op[] = "gr_linear";
    if (!gr__ok(ctx) || !gr__in(ctx, op, x) || !gr__in(ctx, op, w) || (bias && !gr__in(ctx, op, bias)))
        return NULL;
    if (x->ndim < 1 || w->ndim != 2 || x->shape[x->ndim - 1] != w->shape[1] ||
        (bias && (gr_numel(bias) != w->shape[0] || bias->ndim != 1)))
        return gr__fail(ctx, GR_ERR_SHAPE, "%s: x %s, weight %s %s%s%s do not fit", op, GR_SHP(x), nm(w),
                        GR_SHP(w), bias ? ", bias " : "", bias ? GR_SHP(bias) : "");
    int64_t in = w->shape[1], out = w->shape[0], rows = in ? gr_numel(x) / in : 0;
    int64_t shp[GR_MAX_DIMS];
    memcpy(shp, x->shape, sizeof shp);
    shp[x->ndim - 1] = out;
    gr_tensor *y = gr__new(ctx, GR_F32, x->ndim, shp);
    if (!y) return NULL;
    gr_backend *be = gr__be(ctx);
    if (bias) {
        /* y rows start as the bias; sgemm then accumulates x W^T onto them (beta = 1). */
        gr_copy_args ca = {.dst = y, .src = bias, .ndim = 2, .shape = {rows, out},
                           .dst_strides = {out, 1}, .src_strides = {0, 1}, .accumulate = 0};
        if (!gr__k(ctx, op, be->iface->copy_strided(be->ctx, &ca))) return NULL;
    }
    int trainable = gr_needs_grad(x) || gr_needs_grad(w) || (bias && gr_needs_grad(bias));
    if (!mm(ctx, op, y, x, w, 0, 1, rows, out, in, 1, 0, 0, 0, bias ? 1.0f : 0.0f, 0, trainable)) return NULL;
    gr_node *nd = gr__record(ctx, op, linear_backward, y, x, w, bias);
    if (nd) {
        nd->iv[0] = rows;
        nd->iv[1] = in;
        nd->iv[2] = out;
        if (gr_needs_grad(x)) gr__save(nd, w);
        if (gr_needs_grad(w)) gr__save(nd, x);
    }
    return y;
}
