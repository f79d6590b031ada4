/* Row-wise operations: layernorm, RMSnorm, softmax, cross-entropy. */
#include <stdlib.h>
#include <string.h>

#include "tensor/internal.h"

#define BE(ctx) gr__be(ctx)->iface
#define BC(ctx) gr__be(ctx)->ctx

static int64_t rows_of(const gr_tensor *x) { return x->ndim ? gr_numel(x) / (x->shape[x->ndim - 1] ? x->shape[x->ndim - 1] : 1) : 1; }
static int64_t last_dim(const gr_tensor *x) { return x->ndim ? x->shape[x->ndim - 1] : 1; }

static int norm_check(gr_ctx *ctx, const char *op, gr_tensor *x, gr_tensor *w, gr_tensor *b)
{
    if (!gr__ok(ctx) || !gr__in(ctx, op, x) || (w && !gr__in(ctx, op, w)) || (b && !gr__in(ctx, op, b))) return 0;
    int64_t d = last_dim(x);
    if (x->dtype != GR_F32 || x->ndim < 1 || (w && gr_numel(w) != d) || (b && gr_numel(b) != d)) {
        gr__fail(ctx, GR_ERR_SHAPE, "%s: x %s %s, weight %s %s, bias %s do not fit (F32 x, weights of its last dim)",
                 op, gr_dtype_name(x->dtype), GR_SHP(x), w && w->name ? w->name : "", w ? GR_SHP(w) : "-",
                 b ? GR_SHP(b) : "-");
        return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- layernorm ---- */

static gr_tensor *flat2(const gr_tensor *t, int64_t r, int64_t d, gr_tensor *store)
{
    int64_t s[2] = {r, d};
    *store = gr__desc(t, 2, s);
    return store;
}

static void layernorm_backward(gr_ctx *ctx, gr_node *nd, gr_tensor *dy)
{
    gr_tensor *x = nd->in[0], *w = nd->in[1], *b = nd->in[2];
    gr_tensor *mean = nd->saved[0], *rstd = nd->saved[1];
    int64_t r = rows_of(x), d = last_dim(x);
    int tx = 0, tw = 0, tb = 0, tmpw = 0;
    gr_tensor *dx = gr__gbegin(ctx, x, &tx);
    gr_tensor *dw = w && gr_needs_grad(w) ? gr__gbegin(ctx, w, &tw) : NULL;
    gr_tensor *db = b && gr_needs_grad(b) ? gr__gbegin(ctx, b, &tb) : NULL;
    gr_tensor *fw = w ? gr__f32(ctx, "gr_layernorm backward", w, &tmpw) : NULL;
    if (gr__ok(ctx)) {
        gr_tensor xs, dys, dxs, ws, dws, dbs;
        int ok = gr__k(ctx, "gr_layernorm backward",
                       BE(ctx)->layernorm_backward(BC(ctx), dx ? flat2(dx, r, d, &dxs) : NULL,
                                                   dw ? flat2(dw, 1, d, &dws) : NULL, db ? flat2(db, 1, d, &dbs) : NULL,
                                                   flat2(dy, r, d, &dys), flat2(x, r, d, &xs),
                                                   fw ? flat2(fw, 1, d, &ws) : NULL, mean, rstd));
        if (ok) {
            gr__gend(ctx, x, dx, tx);
            gr__gend(ctx, w, dw, tw);
            gr__gend(ctx, b, db, tb);
            dx = dw = db = NULL;
        }
    }
    if (tx && dx) gr__drop(ctx, dx);
    if (tw && dw) gr__drop(ctx, dw);
    if (tb && db) gr__drop(ctx, db);
    if (tmpw) gr__drop(ctx, fw);
}

gr_tensor *gr_layernorm(gr_ctx *ctx, gr_tensor *x, gr_tensor *w, gr_tensor *b, float eps)
{
    static const char op[] = "gr_layernorm";
    if (!norm_check(ctx, op, x, w, b)) return NULL;
    int64_t r = rows_of(x), d = last_dim(x);
    gr_tensor *out = gr__new(ctx, GR_F32, x->ndim, x->shape);
    gr_tensor *mean = out ? gr__new(ctx, GR_F32, 1, &r) : NULL;
    gr_tensor *rstd = mean ? gr__new(ctx, GR_F32, 1, &r) : NULL;
    int tw = 0, tb = 0;
    gr_tensor *fw = rstd && w ? gr__f32(ctx, op, w, &tw) : NULL;
    gr_tensor *fb = rstd && b ? gr__f32(ctx, op, b, &tb) : NULL;
    if (!gr__ok(ctx)) return NULL;
    gr_tensor os, xs, ws, bs;
    int ok = r == 0 || gr__k(ctx, op, BE(ctx)->layernorm(BC(ctx), flat2(out, r, d, &os), mean, rstd, flat2(x, r, d, &xs),
                                                     fw ? flat2(fw, 1, d, &ws) : NULL, fb ? flat2(fb, 1, d, &bs) : NULL, eps));
    if (tw) gr__drop(ctx, fw);
    if (tb) gr__drop(ctx, fb);
    if (!ok) return NULL;
    gr_node *n = gr__record(ctx, op, layernorm_backward, out, x, w, b);
    if (n) {
        gr__save(n, mean);
        gr__save(n, rstd);
        gr__save(n, x);
        if (w) gr__save(n, w);
    }
    gr__release(ctx, mean); /* the node holds its own references */
    gr__release(ctx, rstd);
    return out;
}

/* ---------------------------------------------------------------- rmsnorm ---- */

static void rmsnorm_backward(gr_ctx *ctx, gr_node *nd, gr_tensor *dy)
{
    gr_tensor *x = nd->in[0], *w = nd->in[1], *rstd = nd->saved[0];
    int64_t r = rows_of(x), d = last_dim(x);
    int tx = 0, tw = 0, tmpw = 0;
    gr_tensor *dx = gr__gbegin(ctx, x, &tx);
    gr_tensor *dw = w && gr_needs_grad(w) ? gr__gbegin(ctx, w, &tw) : NULL;
    gr_tensor *fw = w ? gr__f32(ctx, "gr_rmsnorm backward", w, &tmpw) : NULL;
    if (gr__ok(ctx)) {
        gr_tensor xs, dys, dxs, ws, dws;
        if (gr__k(ctx, "gr_rmsnorm backward",
                  BE(ctx)->rmsnorm_backward(BC(ctx), dx ? flat2(dx, r, d, &dxs) : NULL, dw ? flat2(dw, 1, d, &dws) : NULL,
                                            flat2(dy, r, d, &dys), flat2(x, r, d, &xs), fw ? flat2(fw, 1, d, &ws) : NULL,
                                            rstd))) {
            gr__gend(ctx, x, dx, tx);
            gr__gend(ctx, w, dw, tw);
            dx = dw = NULL;
        }
    }
    if (tx && dx) gr__drop(ctx, dx);
    if (tw && dw) gr__drop(ctx, dw);
    if (tmpw) gr__drop(ctx, fw);
}

gr_tensor *gr_rmsnorm(gr_ctx *ctx, gr_tensor *x, gr_tensor *w, float eps)
{
    static const char op[] = "gr_rmsnorm";
    if (!norm_check(ctx, op, x, w, NULL)) return NULL;
    int64_t r = rows_of(x), d = last_dim(x);
    gr_tensor *out = gr__new(ctx, GR_F32, x->ndim, x->shape);
    gr_tensor *rstd = out ? gr__new(ctx, GR_F32, 1, &r) : NULL;
    int tw = 0;
    gr_tensor *fw = rstd && w ? gr__f32(ctx, op, w, &tw) : NULL;
    if (!gr__ok(ctx)) return NULL;
    gr_tensor os, xs, ws;
    int ok = r == 0 || gr__k(ctx, op, BE(ctx)->rmsnorm(BC(ctx), flat2(out, r, d, &os), rstd, flat2(x, r, d, &xs),
                                                   fw ? flat2(fw, 1, d, &ws) : NULL, eps));
    if (tw) gr__drop(ctx, fw);
    if (!ok) return NULL;
    gr_node *n = gr__record(ctx, op, rmsnorm_backward, out, x, w, NULL);
    if (n) {
        gr__save(n, rstd);
        gr__save(n, x);
        if (w) gr__save(n, w);
    }
    gr__release(ctx, rstd);
    return out;
}

/* ---------------------------------------------------------------- softmax ---- */

static void softmax_backward(gr_ctx *ctx, gr_node *nd, gr_tensor *dy)
{
    gr_tensor *x = nd->in[0], *y = nd->saved[0];
    int64_t r = rows_of(x), d = last_dim(x);
    int tx;
    gr_tensor *dx = gr__gbegin(ctx, x, &tx);
    if (!dx) return;
    gr_tensor dxs, ys, dys;
    if (gr__k(ctx, "gr_softmax backward",
              BE(ctx)->softmax_backward(BC(ctx), flat2(dx, r, d, &dxs), flat2(y, r, d, &ys), flat2(dy, r, d, &dys))))
        gr__gend(ctx, x, dx, tx);
    else if (tx) gr__drop(ctx, dx);
}

gr_tensor *gr_softmax(gr_ctx *ctx, gr_tensor *x)
{
    static const char op[] = "gr_softmax";
    if (!norm_check(ctx, op, x, NULL, NULL)) return NULL;
    int64_t r = rows_of(x), d = last_dim(x);
    gr_tensor *out = gr__new(ctx, GR_F32, x->ndim, x->shape);
    if (!out) return NULL;
    gr_tensor os, xs;
    if (r && d && !gr__k(ctx, op, BE(ctx)->softmax(BC(ctx), flat2(out, r, d, &os), flat2(x, r, d, &xs)))) return NULL;
    gr_node *n = gr__record(ctx, op, softmax_backward, out, x, NULL, NULL);
    if (n) gr__save(n, out);
    return out;
}

/* ---------------------------------------------------------------- cross-entropy ---- */

static int64_t count_labels(gr_ctx *ctx, const char *op, const gr_tensor *labels, int32_t ignore)
{
    int64_t n = gr_numel(labels), c = 0;
    int32_t *h = malloc((size_t)(n ? n : 1) * sizeof *h);
    if (!h) return gr__fail(ctx, GR_ERR_NOMEM, "%s: out of host memory", op), -1;
    if (gr_to_host(ctx, labels, h) != GR_OK) {
        free(h);
        return -1;
    }
    for (int64_t i = 0; i < n; i++) c += h[i] != ignore;
    free(h);
    return c;
}

int64_t gr_ce_count(gr_ctx *ctx, gr_tensor *labels, int32_t ignore_index)
{
    if (!gr__ok(ctx) || !gr__in(ctx, "gr_ce_count", labels)) return -1;
    if (labels->dtype != GR_I32) return gr__fail(ctx, GR_ERR_SHAPE, "gr_ce_count: labels must be I32"), -1;
    return count_labels(ctx, "gr_ce_count", labels, ignore_index);
}

/* iv[0] ignore_index; f[0] 1 / count */
static void ce_backward(gr_ctx *ctx, gr_node *nd, gr_tensor *dout)
{
    gr_tensor *logits = nd->in[0], *labels = nd->saved[1];
    float g = 0;
    if (!gr__k(ctx, "gr_cross_entropy backward", BE(ctx)->download(BC(ctx), dout->buffer, dout->offset, &g, sizeof g)))
        return;
    int tmp;
    gr_tensor *dl = gr__gbegin(ctx, logits, &tmp);
    if (!dl) return;
    int64_t r = rows_of(logits), v = last_dim(logits);
    gr_tensor dls, ls, lab = gr__desc(labels, 1, &r);
    if (gr__k(ctx, "gr_cross_entropy backward",
              BE(ctx)->cross_entropy_backward(BC(ctx), flat2(dl, r, v, &dls), flat2(nd->saved[0], r, v, &ls), &lab,
                                              (int32_t)nd->iv[0], g * nd->f[0])))
        gr__gend(ctx, logits, dl, tmp);
    else if (tmp) gr__drop(ctx, dl);
}

gr_tensor *gr_cross_entropy(gr_ctx *ctx, gr_tensor *logits, gr_tensor *labels, int32_t ignore_index)
{
    static const char op[] = "gr_cross_entropy";
    if (!gr__ok(ctx) || !gr__in(ctx, op, logits) || !gr__in(ctx, op, labels)) return NULL;
    int64_t r = rows_of(logits), v = last_dim(logits);
    if (logits->dtype != GR_F32 || labels->dtype != GR_I32 || logits->ndim < 1 || gr_numel(labels) != r || v < 1)
        return gr__fail(ctx, GR_ERR_SHAPE, "%s: logits %s %s and labels %s %s do not fit (F32 [..., V] and I32 [...])", op,
                        gr_dtype_name(logits->dtype), GR_SHP(logits), gr_dtype_name(labels->dtype), GR_SHP(labels));
    int64_t count = count_labels(ctx, op, labels, ignore_index);
    if (count < 0) return NULL;
    gr_tensor *out = gr__new(ctx, GR_F32, 0, NULL);
    if (!out) return NULL;
    if (r == 0) {
        if (!gr__k(ctx, op, BE(ctx)->fill(BC(ctx), out, 0.0f))) return NULL;
        return out;
    }
    gr_tensor *loss = gr__new(ctx, GR_F32, 1, &r);
    if (!loss) return NULL;
    gr_tensor ls, lab = gr__desc(labels, 1, &r);
    int64_t one = 1;
    gr_tensor od = gr__desc(out, 1, &one);
    float inv = count ? 1.0f / (float)count : 0.0f;
    int ok = gr__k(ctx, op, BE(ctx)->cross_entropy(BC(ctx), loss, flat2(logits, r, v, &ls), &lab, ignore_index)) &&
             gr__k(ctx, op, BE(ctx)->reduce_to(BC(ctx), &od, loss)) &&
             gr__k(ctx, op, BE(ctx)->scale(BC(ctx), out, out, inv, 0));
    gr__drop(ctx, loss);
    if (!ok) return NULL;
    gr_node *n = gr__record(ctx, op, ce_backward, out, logits, NULL, NULL);
    if (n) {
        n->iv[0] = ignore_index;
        n->f[0] = inv;
        gr__save(n, logits);
        gr__save(n, labels);
    }
    return out;
}
