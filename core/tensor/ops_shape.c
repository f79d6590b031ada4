/* Data movement: reshape, permute, slice, concat, repeat_interleave, patchify, embedding, RoPE.
 * Every copy is one strided-copy launch; backward passes scatter with `accumulate`. */
#include <string.h>

#include "tensor/internal.h"

#define BE(ctx) gr__be(ctx)->iface
#define BC(ctx) gr__be(ctx)->ctx

static void contiguous_strides(int nd, const int64_t *shape, int64_t *st)
{
    int64_t s = 1;
    for (int i = nd - 1; i >= 0; i--) {
        st[i] = s;
        s *= shape[i];
    }
}

static int copy_launch(gr_ctx *ctx, const char *op, const gr_tensor *dst, const gr_tensor *src, int nd,
                       const int64_t *shape, const int64_t *ds, const int64_t *ss, int acc)
{
    gr_copy_args ca = {.dst = dst, .src = src, .ndim = nd, .accumulate = acc};
    int64_t n = 1;
    for (int i = 0; i < nd; i++) {
        ca.shape[i] = shape[i];
        ca.dst_strides[i] = ds[i];
        ca.src_strides[i] = ss[i];
        n *= shape[i];
    }
    if (n == 0) return 1;
    return gr__k(ctx, op, BE(ctx)->copy_strided(BC(ctx), &ca));
}

/* ---------------------------------------------------------------- reshape ---- */

static void reshape_backward(gr_ctx *ctx, gr_node *nd, gr_tensor *dout)
{
    gr_tensor *x = nd->in[0];
    gr_tensor *v = gr__view(ctx, dout, x->ndim, x->shape, 0);
    if (v) gr__grad_give(ctx, x, v);
}

gr_tensor *gr_reshape(gr_ctx *ctx, gr_tensor *x, int ndim, const int64_t *shape)
{
    static const char op[] = "gr_reshape";
    if (!gr__ok(ctx) || !gr__in(ctx, op, x)) return NULL;
    if (ndim < 0 || ndim > GR_MAX_DIMS) return gr__fail(ctx, GR_ERR_SHAPE, "%s: %d dims", op, ndim);
    int64_t s[GR_MAX_DIMS], known = 1;
    int infer = -1;
    for (int i = 0; i < ndim; i++) {
        s[i] = shape[i];
        if (s[i] == -1 && infer < 0) infer = i;
        else if (s[i] < 0) return gr__fail(ctx, GR_ERR_SHAPE, "%s: bad size %lld in dim %d", op, (long long)s[i], i);
        else known *= s[i];
    }
    int64_t n = gr_numel(x);
    if (infer >= 0) s[infer] = known ? n / known : 0;
    int64_t m = 1;
    for (int i = 0; i < ndim; i++) m *= s[i];
    if (m != n) {
        gr_tensor t = {.ndim = ndim};
        memcpy(t.shape, shape, (size_t)ndim * sizeof *shape);
        return gr__fail(ctx, GR_ERR_SHAPE, "%s: %s (%lld elements) cannot become %s", op, GR_SHP(x), (long long)n,
                        GR_SHP(&t));
    }
    gr_tensor *v = gr__view(ctx, x, ndim, s, 0);
    if (v) gr__record(ctx, op, reshape_backward, v, x, NULL, NULL);
    return v;
}

/* ---------------------------------------------------------------- permute ---- */

/* iv[0..nd) perm */
static void permute_backward(gr_ctx *ctx, gr_node *nd, gr_tensor *dout)
{
    gr_tensor *x = nd->in[0];
    int acc;
    gr_tensor *slot = gr__grad_slot(ctx, x, &acc);
    if (!slot) return;
    int64_t xs[GR_MAX_DIMS], ds[GR_MAX_DIMS], os[GR_MAX_DIMS];
    contiguous_strides(x->ndim, x->shape, xs);
    contiguous_strides(dout->ndim, dout->shape, os);
    for (int i = 0; i < x->ndim; i++) ds[i] = xs[nd->iv[i]];
    /* Every element is written, so a fresh slot needs no zeroing. */
    if (copy_launch(ctx, "gr_permute backward", slot, dout, dout->ndim, dout->shape, ds, os, acc)) gr__grad_written(x);
}

gr_tensor *gr_permute(gr_ctx *ctx, gr_tensor *x, const int *perm)
{
    static const char op[] = "gr_permute";
    if (!gr__ok(ctx) || !gr__in(ctx, op, x)) return NULL;
    int seen[GR_MAX_DIMS] = {0};
    int64_t os[GR_MAX_DIMS], xs[GR_MAX_DIMS], ss[GR_MAX_DIMS], ds[GR_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) {
        if (perm[i] < 0 || perm[i] >= x->ndim || seen[perm[i]]++)
            return gr__fail(ctx, GR_ERR_SHAPE, "%s: bad permutation of %s (entry %d is %d)", op, GR_SHP(x), i, perm[i]);
        os[i] = x->shape[perm[i]];
    }
    gr_tensor *out = gr__new(ctx, x->dtype, x->ndim, os);
    if (!out) return NULL;
    contiguous_strides(x->ndim, x->shape, xs);
    contiguous_strides(x->ndim, os, ds);
    for (int i = 0; i < x->ndim; i++) ss[i] = xs[perm[i]];
    if (!copy_launch(ctx, op, out, x, x->ndim, os, ds, ss, 0)) return NULL;
    gr_node *n = gr__record(ctx, op, permute_backward, out, x, NULL, NULL);
    if (n)
        for (int i = 0; i < x->ndim; i++) n->iv[i] = perm[i];
    return out;
}

/* ---------------------------------------------------------------- slice ---- */

/* Shape [outer, len, inner] around `axis`. */
static void split3(const gr_tensor *x, int axis, int64_t *outer, int64_t *inner)
{
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < axis; i++) *outer *= x->shape[i];
    for (int i = axis + 1; i < x->ndim; i++) *inner *= x->shape[i];
}

/* iv[0] axis, iv[1] start */
static void slice_backward(gr_ctx *ctx, gr_node *nd, gr_tensor *dout)
{
    gr_tensor *x = nd->in[0];
    int axis = (int)nd->iv[0];
    int64_t start = nd->iv[1], len = dout->shape[axis], outer, inner;
    split3(x, axis, &outer, &inner);
    int acc;
    gr_tensor *slot = gr__grad_slot(ctx, x, &acc);
    if (!slot) return;
    if (!acc && len != x->shape[axis]) {
        if (!gr__k(ctx, "gr_slice backward", BE(ctx)->fill(BC(ctx), slot, 0.0f))) return;
        acc = 1;
    }
    gr_tensor dst = *slot;
    dst.offset += (size_t)(start * inner) * sizeof(float);
    int64_t sh[3] = {outer, len, inner}, ds[3] = {x->shape[axis] * inner, inner, 1}, ss[3] = {len * inner, inner, 1};
    if (copy_launch(ctx, "gr_slice backward", &dst, dout, 3, sh, ds, ss, acc)) gr__grad_written(x);
}

gr_tensor *gr_slice(gr_ctx *ctx, gr_tensor *x, int axis, int64_t start, int64_t len)
{
    static const char op[] = "gr_slice";
    if (!gr__ok(ctx) || !gr__in(ctx, op, x)) return NULL;
    if (axis < 0) axis += x->ndim;
    if (axis < 0 || axis >= x->ndim || start < 0 || len < 0 || start + len > x->shape[axis])
        return gr__fail(ctx, GR_ERR_SHAPE, "%s: [%lld, %lld) of axis %d is outside %s", op, (long long)start,
                        (long long)(start + len), axis, GR_SHP(x));
    int64_t outer, inner, os[GR_MAX_DIMS];
    split3(x, axis, &outer, &inner);
    memcpy(os, x->shape, sizeof os);
    os[axis] = len;
    size_t es = gr_dtype_size(x->dtype);
    gr_tensor *out;
    if (outer == 1) {
        /* Contiguous already: a view, no copy. */
        out = gr__view(ctx, x, x->ndim, os, (size_t)(start * inner) * es);
    } else {
        out = gr__new(ctx, x->dtype, x->ndim, os);
        if (!out) return NULL;
        gr_tensor src = *x;
        src.offset += (size_t)(start * inner) * es;
        int64_t sh[3] = {outer, len, inner}, ss[3] = {x->shape[axis] * inner, inner, 1}, ds[3] = {len * inner, inner, 1};
        if (!copy_launch(ctx, op, out, &src, 3, sh, ds, ss, 0)) return NULL;
    }
    gr_node *n = out ? gr__record(ctx, op, slice_backward, out, x, NULL, NULL) : NULL;
    if (n) {
        n->iv[0] = axis;
        n->iv[1] = start;
    }
    return out;
}

/* ---------------------------------------------------------------- concat ---- */

/* iv[0] axis */
static void concat_backward(gr_ctx *ctx, gr_node *nd, gr_tensor *dout)
{
    int axis = (int)nd->iv[0];
    int64_t off = 0, outer, inner;
    split3(dout, axis, &outer, &inner);
    for (int s = 0; s < 2; s++) {
        gr_tensor *x = nd->in[s];
        int64_t len = x->shape[axis];
        int acc;
        gr_tensor *slot = gr__grad_slot(ctx, x, &acc);
        if (slot) {
            gr_tensor src = *dout;
            src.offset += (size_t)(off * inner) * sizeof(float);
            int64_t sh[3] = {outer, len, inner}, ss[3] = {dout->shape[axis] * inner, inner, 1}, ds[3] = {len * inner, inner, 1};
            if (copy_launch(ctx, "gr_concat backward", slot, &src, 3, sh, ds, ss, acc)) gr__grad_written(x);
        }
        off += len;
    }
}

gr_tensor *gr_concat(gr_ctx *ctx, gr_tensor *a, gr_tensor *b, int axis)
{
    static const char op[] = "gr_concat";
    if (!gr__ok(ctx) || !gr__in(ctx, op, a) || !gr__in(ctx, op, b)) return NULL;
    if (axis < 0) axis += a->ndim;
    int ok = a->ndim == b->ndim && a->dtype == b->dtype && axis >= 0 && axis < a->ndim;
    for (int i = 0; ok && i < a->ndim; i++) ok = i == axis || a->shape[i] == b->shape[i];
    if (!ok)
        return gr__fail(ctx, GR_ERR_SHAPE, "%s: %s %s and %s %s do not join along axis %d", op, gr_dtype_name(a->dtype),
                        GR_SHP(a), gr_dtype_name(b->dtype), GR_SHP(b), axis);
    int64_t os[GR_MAX_DIMS], outer, inner;
    memcpy(os, a->shape, sizeof os);
    os[axis] = a->shape[axis] + b->shape[axis];
    gr_tensor *out = gr__new(ctx, a->dtype, a->ndim, os);
    if (!out) return NULL;
    split3(a, axis, &outer, &inner);
    size_t es = gr_dtype_size(a->dtype);
    int64_t off = 0;
    for (int s = 0; s < 2; s++) {
        gr_tensor *x = s ? b : a;
        gr_tensor dst = *out;
        dst.offset += (size_t)(off * inner) * es;
        int64_t len = x->shape[axis];
        int64_t sh[3] = {outer, len, inner}, ds[3] = {os[axis] * inner, inner, 1}, ss[3] = {len * inner, inner, 1};
        if (!copy_launch(ctx, op, &dst, x, 3, sh, ds, ss, 0)) return NULL;
        off += len;
    }
    gr_node *n = gr__record(ctx, op, concat_backward, out, a, b, NULL);
    if (n) n->iv[0] = axis;
    return out;
}

/* ---------------------------------------------------------------- repeat_interleave ---- */

/* iv[0] axis, iv[1] times */
static void repeat_backward(gr_ctx *ctx, gr_node *nd, gr_tensor *dout)
{
    gr_tensor *x = nd->in[0];
    int axis = (int)nd->iv[0];
    int64_t times = nd->iv[1], outer, inner;
    split3(x, axis, &outer, &inner);
    int tmp;
    gr_tensor *g = gr__gbegin(ctx, x, &tmp);
    if (!g) return;
    int64_t full[4] = {outer, x->shape[axis], times, inner}, red[4] = {outer, x->shape[axis], 1, inner};
    gr_tensor gd = gr__desc(g, 4, red), dd = gr__desc(dout, 4, full);
    if (gr__k(ctx, "gr_repeat_interleave backward", BE(ctx)->reduce_to(BC(ctx), &gd, &dd))) gr__gend(ctx, x, g, tmp);
    else if (tmp) gr__drop(ctx, g);
}

gr_tensor *gr_repeat_interleave(gr_ctx *ctx, gr_tensor *x, int axis, int times)
{
    static const char op[] = "gr_repeat_interleave";
    if (!gr__ok(ctx) || !gr__in(ctx, op, x)) return NULL;
    if (axis < 0) axis += x->ndim;
    if (axis < 0 || axis >= x->ndim || times < 1)
        return gr__fail(ctx, GR_ERR_SHAPE, "%s: axis %d, times %d for %s", op, axis, times, GR_SHP(x));
    int64_t os[GR_MAX_DIMS], outer, inner;
    memcpy(os, x->shape, sizeof os);
    os[axis] *= times;
    split3(x, axis, &outer, &inner);
    gr_tensor *out = gr__new(ctx, x->dtype, x->ndim, os);
    if (!out) return NULL;
    int64_t n = x->shape[axis];
    int64_t sh[4] = {outer, n, times, inner}, ds[4] = {n * times * inner, times * inner, inner, 1},
            ss[4] = {n * inner, inner, 0, 1};
    if (!copy_launch(ctx, op, out, x, 4, sh, ds, ss, 0)) return NULL;
    gr_node *nd = gr__record(ctx, op, repeat_backward, out, x, NULL, NULL);
    if (nd) {
        nd->iv[0] = axis;
        nd->iv[1] = times;
    }
    return out;
}

/* ---------------------------------------------------------------- patchify ---- */

/* Index space [B, H/p, W/p, C, p, p]: the output's order. */
static void patch_space(const gr_tensor *x, int p, int64_t *sh, int64_t *xs, int64_t *os)
{
    int64_t B = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    int64_t s[6] = {B, H / p, W / p, C, p, p}, xst[6] = {C * H * W, p * W, p, H * W, W, 1};
    memcpy(sh, s, sizeof s);
    memcpy(xs, xst, sizeof xst);
    contiguous_strides(6, sh, os);
}

/* iv[0] patch */
static void patchify_backward(gr_ctx *ctx, gr_node *nd, gr_tensor *dout)
{
    gr_tensor *x = nd->in[0];
    int acc;
    gr_tensor *slot = gr__grad_slot(ctx, x, &acc);
    if (!slot) return;
    int64_t sh[6], xs[6], os[6];
    patch_space(x, (int)nd->iv[0], sh, xs, os);
    if (copy_launch(ctx, "gr_patchify backward", slot, dout, 6, sh, xs, os, acc)) gr__grad_written(x);
}

gr_tensor *gr_patchify(gr_ctx *ctx, gr_tensor *x, int patch)
{
    static const char op[] = "gr_patchify";
    if (!gr__ok(ctx) || !gr__in(ctx, op, x)) return NULL;
    if (x->ndim != 4 || patch < 1 || x->shape[2] % patch || x->shape[3] % patch)
        return gr__fail(ctx, GR_ERR_SHAPE, "%s: image %s is not [B, C, H, W] with H, W multiples of %d", op, GR_SHP(x),
                        patch);
    int64_t sh[6], xs[6], os[6];
    patch_space(x, patch, sh, xs, os);
    int64_t oshape[3] = {sh[0], sh[1] * sh[2], sh[3] * patch * patch};
    gr_tensor *out = gr__new(ctx, x->dtype, 3, oshape);
    if (!out) return NULL;
    if (!copy_launch(ctx, op, out, x, 6, sh, os, xs, 0)) return NULL;
    gr_node *n = gr__record(ctx, op, patchify_backward, out, x, NULL, NULL);
    if (n) n->iv[0] = patch;
    return out;
}

/* ---------------------------------------------------------------- embedding ---- */

/* iv[0] padding_idx */
static void embedding_backward(gr_ctx *ctx, gr_node *nd, gr_tensor *dout)
{
    gr_tensor *table = nd->in[0], *ids = nd->saved[0];
    gr_tensor *slot = gr__grad_slot_zeroed(ctx, table);
    if (!slot) return;
    int64_t n = gr_numel(ids), dim = table->shape[1], s2[2] = {n, dim};
    gr_tensor idd = gr__desc(ids, 1, &n), dd = gr__desc(dout, 2, s2);
    if (n && gr__k(ctx, "gr_embedding backward",
                   BE(ctx)->scatter_add_rows(BC(ctx), slot, &idd, &dd, (int32_t)nd->iv[0])))
        gr__grad_written(table);
}

gr_tensor *gr_embedding(gr_ctx *ctx, gr_tensor *table, gr_tensor *ids, int32_t padding_idx)
{
    static const char op[] = "gr_embedding";
    if (!gr__ok(ctx) || !gr__in(ctx, op, table) || !gr__in(ctx, op, ids)) return NULL;
    if (table->ndim != 2 || ids->dtype != GR_I32 || ids->ndim >= GR_MAX_DIMS ||
        (table->dtype != GR_F32 && table->dtype != GR_F16 && table->dtype != GR_BF16))
        return gr__fail(ctx, GR_ERR_SHAPE, "%s: table %s %s %s and ids %s %s do not fit (float [rows, dim], I32 ids)", op,
                        table->name ? table->name : "", gr_dtype_name(table->dtype), GR_SHP(table),
                        gr_dtype_name(ids->dtype), GR_SHP(ids));
    int64_t os[GR_MAX_DIMS], n = gr_numel(ids), dim = table->shape[1];
    memcpy(os, ids->shape, sizeof os);
    os[ids->ndim] = dim;
    gr_tensor *out = gr__new(ctx, GR_F32, ids->ndim + 1, os);
    if (!out) return NULL;
    int64_t s2[2] = {n, dim};
    gr_tensor od = gr__desc(out, 2, s2), idd = gr__desc(ids, 1, &n);
    if (n && !gr__k(ctx, table->name ? table->name : op, BE(ctx)->gather_rows(BC(ctx), &od, table, &idd))) return NULL;
    gr_node *nd = gr__record(ctx, op, embedding_backward, out, table, NULL, NULL);
    if (nd) {
        nd->iv[0] = padding_idx;
        gr__save(nd, ids);
    }
    return out;
}

/* ---------------------------------------------------------------- rope ---- */

/* iv[0] rot_dim */
static void rope_backward(gr_ctx *ctx, gr_node *nd, gr_tensor *dout)
{
    gr_tensor *x = nd->in[0];
    int tmp;
    gr_tensor *dx = gr__gbegin(ctx, x, &tmp);
    if (!dx) return;
    if (gr__k(ctx, "gr_rope backward", BE(ctx)->rope(BC(ctx), dx, dout, nd->saved[0], nd->saved[1], (int)nd->iv[0], 1)))
        gr__gend(ctx, x, dx, tmp);
    else if (tmp) gr__drop(ctx, dx);
}

gr_tensor *gr_rope(gr_ctx *ctx, gr_tensor *x, gr_tensor *cos, gr_tensor *sin, int rot_dim)
{
    static const char op[] = "gr_rope";
    if (!gr__ok(ctx) || !gr__in(ctx, op, x) || !gr__in(ctx, op, cos) || !gr__in(ctx, op, sin)) return NULL;
    int ok = x->ndim == 4 && x->dtype == GR_F32 && cos->dtype == GR_F32 && sin->dtype == GR_F32 && rot_dim > 0 &&
             rot_dim % 2 == 0 && rot_dim <= x->shape[3] && cos->ndim == 3 && gr__same_shape(cos, sin) &&
             cos->shape[0] == x->shape[0] && cos->shape[1] == x->shape[1] && cos->shape[2] == rot_dim / 2;
    if (!ok)
        return gr__fail(ctx, GR_ERR_SHAPE, "%s: x %s, cos %s, sin %s, rot_dim %d do not fit ([B,T,H,D], [B,T,rot_dim/2])",
                        op, GR_SHP(x), GR_SHP(cos), GR_SHP(sin), rot_dim);
    gr_tensor *out = gr__new(ctx, GR_F32, 4, x->shape);
    if (!out) return NULL;
    if (gr_numel(x) && !gr__k(ctx, op, BE(ctx)->rope(BC(ctx), out, x, cos, sin, rot_dim, 0))) return NULL;
    gr_node *n = gr__record(ctx, op, rope_backward, out, x, NULL, NULL);
    if (n) {
        n->iv[0] = rot_dim;
        gr__save(n, cos);
        gr__save(n, sin);
    }
    return out;
}
