/* Element-wise operations with numpy broadcasting, activations, reductions, conversion. */
#include <string.h>

#include "tensor/internal.h"

#define BE(ctx) gr__be(ctx)->iface
#define BC(ctx) gr__be(ctx)->ctx

/* x's shape left-padded with ones to nd dims. */
static void pad_shape(const gr_tensor *x, int nd, int64_t *out)
{
    int off = nd - x->ndim;
    for (int i = 0; i < nd; i++) out[i] = i < off ? 1 : x->shape[i - off];
}

/* Adds alpha * sum_to(src, x.shape) to x's gradient; src is F32 with nd dims (the broadcast
 * shape). `give` = src is a temporary the caller gives away. */
static void grad_reduce(gr_ctx *ctx, gr_tensor *x, gr_tensor *src, float alpha, int give)
{
    if (!gr_needs_grad(x)) {
        if (give) gr__drop(ctx, src);
        return;
    }
    if (gr_numel(x) == gr_numel(src)) {
        if (give && alpha == 1.0f) {
            gr__grad_give(ctx, x, src);
            return;
        }
        int acc;
        gr_tensor *slot = gr__grad_slot(ctx, x, &acc);
        if (slot && gr__k(ctx, "gradient", BE(ctx)->scale(BC(ctx), slot, src, alpha, acc))) gr__grad_written(x);
    } else {
        int64_t ps[GR_MAX_DIMS];
        pad_shape(x, src->ndim, ps);
        int tmp;
        gr_tensor *g = (alpha == 1.0f) ? gr__gbegin(ctx, x, &tmp) : gr__new(ctx, GR_F32, x->ndim, x->shape);
        if (alpha != 1.0f) tmp = 1;
        if (g) {
            gr_tensor gd = gr__desc(g, src->ndim, ps);
            if (gr__k(ctx, "gradient", BE(ctx)->reduce_to(BC(ctx), &gd, src)) &&
                (alpha == 1.0f || gr__k(ctx, "gradient", BE(ctx)->scale(BC(ctx), g, g, alpha, 0))))
                gr__gend(ctx, x, g, tmp);
            else if (tmp) gr__drop(ctx, g);
        }
    }
    if (give) gr__drop(ctx, src);
}

/* ---------------------------------------------------------------- binary ---- */

static void binary_backward(gr_ctx *ctx, gr_node *nd, gr_tensor *dout)
{
    gr_binary_op bop = (gr_binary_op)nd->iv[0];
    gr_tensor *a = nd->in[0], *b = nd->in[1];
    if (bop == GR_BIN_ADD || bop == GR_BIN_SUB) {
        grad_reduce(ctx, a, dout, 1.0f, 0);
        grad_reduce(ctx, b, dout, bop == GR_BIN_SUB ? -1.0f : 1.0f, 0);
        return;
    }
    /* mul: da = dout * b, db = dout * a (each reduced to its operand's shape) */
    for (int side = 0; side < 2; side++) {
        gr_tensor *x = side ? b : a, *other = side ? a : b;
        if (!gr_needs_grad(x)) continue;
        int64_t ps[GR_MAX_DIMS];
        pad_shape(other, dout->ndim, ps);
        gr_tensor od = gr__desc(other, dout->ndim, ps);
        gr_tensor *t = gr__new(ctx, GR_F32, dout->ndim, dout->shape);
        if (!t) return;
        if (!gr__k(ctx, "gr_mul backward", BE(ctx)->binary(BC(ctx), GR_BIN_MUL, t, dout, &od))) {
            gr__drop(ctx, t);
            return;
        }
        grad_reduce(ctx, x, t, 1.0f, 1);
    }
}

static gr_tensor *binary(gr_ctx *ctx, const char *op, gr_binary_op bop, gr_tensor *a, gr_tensor *b)
{
    if (!gr__ok(ctx) || !gr__in(ctx, op, a) || !gr__in(ctx, op, b)) return NULL;
    if (a->dtype != GR_F32 || b->dtype != GR_F32)
        return gr__fail(ctx, GR_ERR_SHAPE, "%s: operands %s %s and %s %s must be F32", op,
                        gr_dtype_name(a->dtype), GR_SHP(a), gr_dtype_name(b->dtype), GR_SHP(b));
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    int64_t as[GR_MAX_DIMS], bs[GR_MAX_DIMS], os[GR_MAX_DIMS];
    pad_shape(a, nd, as);
    pad_shape(b, nd, bs);
    for (int i = 0; i < nd; i++) {
        if (as[i] != bs[i] && as[i] != 1 && bs[i] != 1)
            return gr__fail(ctx, GR_ERR_SHAPE, "%s: shapes %s and %s do not broadcast", op, GR_SHP(a), GR_SHP(b));
        os[i] = as[i] == 1 ? bs[i] : as[i];
    }
    gr_tensor *out = gr__new(ctx, GR_F32, nd, os);
    if (!out) return NULL;
    gr_tensor ad = gr__desc(a, nd, as), bd = gr__desc(b, nd, bs);
    if (gr_numel(out) && !gr__k(ctx, op, BE(ctx)->binary(BC(ctx), bop, out, &ad, &bd))) return NULL;
    gr_node *n = gr__record(ctx, op, binary_backward, out, a, b, NULL);
    if (n) {
        n->iv[0] = bop;
        if (bop == GR_BIN_MUL) {
            if (gr_needs_grad(a)) gr__save(n, b);
            if (gr_needs_grad(b)) gr__save(n, a);
        }
    }
    return out;
}

gr_tensor *gr_add(gr_ctx *ctx, gr_tensor *a, gr_tensor *b) { return binary(ctx, "gr_add", GR_BIN_ADD, a, b); }
gr_tensor *gr_sub(gr_ctx *ctx, gr_tensor *a, gr_tensor *b) { return binary(ctx, "gr_sub", GR_BIN_SUB, a, b); }
gr_tensor *gr_mul(gr_ctx *ctx, gr_tensor *a, gr_tensor *b) { return binary(ctx, "gr_mul", GR_BIN_MUL, a, b); }

/* ---------------------------------------------------------------- scale ---- */

static void scale_backward(gr_ctx *ctx, gr_node *nd, gr_tensor *dout)
{
    grad_reduce(ctx, nd->in[0], dout, nd->f[0], 0);
}

static int need_f32(gr_ctx *ctx, const char *op, const gr_tensor *x)
{
    if (x->dtype == GR_F32) return 1;
    gr__fail(ctx, GR_ERR_SHAPE, "%s: input %s %s is %s, expected F32", op, x->name ? x->name : "",
             GR_SHP(x), gr_dtype_name(x->dtype));
    return 0;
}

gr_tensor *gr_scale(gr_ctx *ctx, gr_tensor *x, float alpha)
{
    static const char op[] = "gr_scale";
    if (!gr__ok(ctx) || !gr__in(ctx, op, x) || !need_f32(ctx, op, x)) return NULL;
    gr_tensor *out = gr__new(ctx, GR_F32, x->ndim, x->shape);
    if (!out) return NULL;
    if (gr_numel(x) && !gr__k(ctx, op, BE(ctx)->scale(BC(ctx), out, x, alpha, 0))) return NULL;
    gr_node *n = gr__record(ctx, op, scale_backward, out, x, NULL, NULL);
    if (n) n->f[0] = alpha;
    return out;
}

/* ---------------------------------------------------------------- activations ---- */

static void act_backward(gr_ctx *ctx, gr_node *nd, gr_tensor *dout)
{
    gr_tensor *x = nd->in[0];
    int tmp;
    gr_tensor *dx = gr__gbegin(ctx, x, &tmp);
    if (!dx) return;
    if (gr__k(ctx, "gr_act backward", BE(ctx)->unary_backward(BC(ctx), (gr_unary_op)nd->iv[0], dx, x, dout)))
        gr__gend(ctx, x, dx, tmp);
    else if (tmp) gr__drop(ctx, dx);
}

gr_tensor *gr_act(gr_ctx *ctx, gr_unary_op uop, gr_tensor *x)
{
    static const char op[] = "gr_act";
    if (!gr__ok(ctx) || !gr__in(ctx, op, x) || !need_f32(ctx, op, x)) return NULL;
    if ((unsigned)uop >= GR_ACT_COUNT) return gr__fail(ctx, GR_ERR_INVALID, "%s: unknown activation %d", op, (int)uop);
    gr_tensor *out = gr__new(ctx, GR_F32, x->ndim, x->shape);
    if (!out) return NULL;
    if (gr_numel(x) && !gr__k(ctx, op, BE(ctx)->unary(BC(ctx), uop, out, x))) return NULL;
    gr_node *n = gr__record(ctx, op, act_backward, out, x, NULL, NULL);
    if (n) {
        n->iv[0] = uop;
        gr__save(n, x);
    }
    return out;
}

/* ---------------------------------------------------------------- reductions ---- */

/* dx (+)= alpha * broadcast(dout) where dout has x's ndim with ones in reduced dims. */
static void grad_broadcast(gr_ctx *ctx, gr_tensor *x, gr_tensor *dout, int nd, const int64_t *dshape,
                           float alpha)
{
    int acc;
    gr_tensor *slot = gr__grad_slot(ctx, x, &acc);
    if (!slot) return;
    gr_tensor *src = dout;
    if (alpha != 1.0f) {
        src = gr__new(ctx, GR_F32, dout->ndim, dout->shape);
        if (!src || !gr__k(ctx, "gradient", BE(ctx)->scale(BC(ctx), src, dout, alpha, 0))) {
            if (src) gr__drop(ctx, src);
            return;
        }
    }
    gr_copy_args ca = {.dst = slot, .src = src, .ndim = nd, .accumulate = acc};
    int64_t ds = 1, ss = 1;
    for (int i = nd - 1; i >= 0; i--) {
        ca.shape[i] = x->shape[i];
        ca.dst_strides[i] = ds;
        ca.src_strides[i] = dshape[i] == 1 ? 0 : ss;
        ds *= x->shape[i];
        ss *= dshape[i];
    }
    if (gr__k(ctx, "gradient", BE(ctx)->copy_strided(BC(ctx), &ca))) gr__grad_written(x);
    if (src != dout) gr__drop(ctx, src);
}

/* iv[0..nd) the reduced shape (x's ndim); f[0] alpha */
static void reduce_backward(gr_ctx *ctx, gr_node *nd, gr_tensor *dout)
{
    gr_tensor *x = nd->in[0];
    grad_broadcast(ctx, x, dout, x->ndim, nd->iv, nd->f[0]);
}

static gr_tensor *reduce(gr_ctx *ctx, const char *op, gr_tensor *x, int ndim, const int64_t *shape,
                         int out_ndim, float alpha)
{
    gr_tensor *out = gr__new(ctx, GR_F32, out_ndim, shape);
    if (!out) return NULL;
    gr_tensor od = gr__desc(out, x->ndim, shape);
    if (gr_numel(x) == 0) {
        if (!gr__k(ctx, op, BE(ctx)->fill(BC(ctx), out, 0.0f))) return NULL;
    } else if (!gr__k(ctx, op, BE(ctx)->reduce_to(BC(ctx), &od, x)) ||
               (alpha != 1.0f && !gr__k(ctx, op, BE(ctx)->scale(BC(ctx), out, out, alpha, 0)))) {
        return NULL;
    }
    gr_node *n = gr__record(ctx, op, reduce_backward, out, x, NULL, NULL);
    if (n) {
        for (int i = 0; i < ndim; i++) n->iv[i] = shape[i];
        n->f[0] = alpha;
    }
    return out;
}

gr_tensor *gr_sum(gr_ctx *ctx, gr_tensor *x)
{
    if (!gr__ok(ctx) || !gr__in(ctx, "gr_sum", x) || !need_f32(ctx, "gr_sum", x)) return NULL;
    int64_t ones[GR_MAX_DIMS] = {1, 1, 1, 1, 1, 1};
    return reduce(ctx, "gr_sum", x, x->ndim, ones, 0, 1.0f);
}

gr_tensor *gr_mean(gr_ctx *ctx, gr_tensor *x)
{
    if (!gr__ok(ctx) || !gr__in(ctx, "gr_mean", x) || !need_f32(ctx, "gr_mean", x)) return NULL;
    int64_t ones[GR_MAX_DIMS] = {1, 1, 1, 1, 1, 1};
    int64_t n = gr_numel(x);
    return reduce(ctx, "gr_mean", x, x->ndim, ones, 0, n ? 1.0f / (float)n : 1.0f);
}

gr_tensor *gr_sum_to(gr_ctx *ctx, gr_tensor *x, int ndim, const int64_t *shape)
{
    static const char op[] = "gr_sum_to";
    if (!gr__ok(ctx) || !gr__in(ctx, op, x) || !need_f32(ctx, op, x)) return NULL;
    int bad = ndim != x->ndim;
    for (int i = 0; !bad && i < ndim; i++) bad = shape[i] != 1 && shape[i] != x->shape[i];
    if (bad) {
        gr_tensor t = {.ndim = ndim};
        for (int i = 0; i < ndim && i < GR_MAX_DIMS; i++) t.shape[i] = shape[i];
        return gr__fail(ctx, GR_ERR_SHAPE, "%s: cannot sum %s to %s", op, GR_SHP(x),
                        ndim >= 0 && ndim <= GR_MAX_DIMS ? GR_SHP(&t) : "(bad rank)");
    }
    return reduce(ctx, op, x, ndim, shape, ndim, 1.0f);
}

/* ---------------------------------------------------------------- conversion ---- */

static void convert_backward(gr_ctx *ctx, gr_node *nd, gr_tensor *dout)
{
    grad_reduce(ctx, nd->in[0], dout, 1.0f, 0);
}

gr_tensor *gr_convert(gr_ctx *ctx, gr_tensor *x, gr_dtype dtype)
{
    static const char op[] = "gr_convert";
    if (!gr__ok(ctx) || !gr__in(ctx, op, x)) return NULL;
    int fl_in = x->dtype == GR_F32 || x->dtype == GR_F16 || x->dtype == GR_BF16;
    int fl_out = dtype == GR_F32 || dtype == GR_F16 || dtype == GR_BF16;
    if (!((fl_in && fl_out) || (x->dtype == GR_I64 && dtype == GR_I32) || x->dtype == dtype))
        return gr__fail(ctx, GR_ERR_UNSUPPORTED, "%s: %s %s to %s is not supported", op,
                        gr_dtype_name(x->dtype), GR_SHP(x), (unsigned)dtype < GR_DTYPE_COUNT ? gr_dtype_name(dtype) : "?");
    gr_tensor *out = gr__new(ctx, dtype, x->ndim, x->shape);
    if (!out) return NULL;
    gr_status s = x->dtype == dtype ? BE(ctx)->copy(BC(ctx), out->buffer, out->offset, x->buffer, x->offset, gr_nbytes(x))
                                    : BE(ctx)->convert(BC(ctx), out, x);
    if (gr_numel(x) && !gr__k(ctx, op, s)) return NULL;
    if (dtype == GR_F32) gr__record(ctx, op, convert_backward, out, x, NULL, NULL);
    return out;
}

gr_tensor *gr_detach(gr_ctx *ctx, gr_tensor *x)
{
    if (!gr__ok(ctx) || !gr__in(ctx, "gr_detach", x)) return NULL;
    gr_tensor *out = gr__new(ctx, x->dtype, x->ndim, x->shape);
    if (!out) return NULL;
    if (gr_nbytes(x) && !gr__k(ctx, "gr_detach", BE(ctx)->copy(BC(ctx), out->buffer, out->offset, x->buffer,
                                                            x->offset, gr_nbytes(x))))
        return NULL;
    return out;
}

/* ---------------------------------------------------------------- optimizer ---- */

gr_status gr_adamw_update(gr_ctx *ctx, gr_tensor *param, gr_tensor *m, gr_tensor *v, int64_t step,
                          float lr, float beta1, float beta2, float eps, float weight_decay,
                          float grad_scale)
{
    static const char op[] = "gr_adamw_update";
    if (!gr__ok(ctx)) return gr_ctx_status(ctx);
    if (!gr__in(ctx, op, param) || !gr__in(ctx, op, m) || !gr__in(ctx, op, v)) return gr_ctx_status(ctx);
    gr_tensor *g = gr_grad(param);
    if (!g)
        return gr_ctx_fail(ctx, GR_ERR_INVALID, "%s: parameter %s has no gradient", op, param->name ? param->name : "");
    if (param->dtype != GR_F32 || m->dtype != GR_F32 || v->dtype != GR_F32 || gr_numel(m) != gr_numel(param) ||
        gr_numel(v) != gr_numel(param) || step < 1)
        return gr_ctx_fail(ctx, GR_ERR_SHAPE, "%s: parameter %s %s %s, moments %s %s, step %lld (all F32 of one size, step >= 1)",
                           op, param->name ? param->name : "", gr_dtype_name(param->dtype), GR_SHP(param), GR_SHP(m),
                           GR_SHP(v), (long long)step);
    double bc1 = 1.0 - __builtin_pow((double)beta1, (double)step);
    double bc2 = 1.0 - __builtin_pow((double)beta2, (double)step);
    gr_adamw_args a = {.param = param, .grad = g, .m = m, .v = v, .lr = lr, .beta1 = beta1, .beta2 = beta2,
                       .eps = eps, .weight_decay = weight_decay, .bias_correction1 = (float)bc1,
                       .bias_correction2 = (float)bc2, .grad_scale = grad_scale};
    if (gr_numel(param) && !gr__k(ctx, op, BE(ctx)->adamw(BC(ctx), &a))) return gr_ctx_status(ctx);
    return GR_OK;
}

gr_status gr_sum_squares(gr_ctx *ctx, const gr_tensor *x, double *out)
{
    static const char op[] = "gr_sum_squares";
    *out = 0;
    if (!gr__ok(ctx)) return gr_ctx_status(ctx);
    if (!gr__in(ctx, op, x) || !need_f32(ctx, op, x)) return gr_ctx_status(ctx);
    if (!gr_numel(x)) return GR_OK;
    int64_t one = 1;
    gr_tensor *r = gr__new(ctx, GR_F32, 1, &one);
    if (!r) return gr_ctx_status(ctx);
    float v = 0;
    if (gr__k(ctx, op, BE(ctx)->sum_squares(BC(ctx), r, x)) &&
        gr__k(ctx, op, BE(ctx)->download(BC(ctx), r->buffer, r->offset, &v, sizeof v)))
        *out = v;
    gr__drop(ctx, r);
    return gr_ctx_status(ctx);
}
