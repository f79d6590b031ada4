/* Every kernel of backend.h except matmul: argument checks on the host, then one or more
 * dispatches. Tensors larger than one storage-buffer window are processed in row chunks
 * (vk_run_rows) or, for tables addressed by ids, in windows of table rows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vk_internal.h"

static const char *tn(const gr_tensor *t) { return t && t->name ? t->name : "tensor"; }

static gr_status need_dtype(const char *k, const char *arg, const gr_tensor *t, gr_dtype dt)
{
    if (!t) return gr_fail(GR_ERR_INVALID, "vulkan: %s: %s is NULL", k, arg);
    if (t->dtype != dt)
        return gr_fail(GR_ERR_SHAPE, "vulkan: %s: %s (%s) is %s, expected %s", k, arg, tn(t),
                       gr_dtype_name(t->dtype), gr_dtype_name(dt));
    return GR_OK;
}

static gr_status need_numel(const char *k, const char *arg, const gr_tensor *t, int64_t n)
{
    if (gr_numel(t) != n) {
        char sb[96];
        return gr_fail(GR_ERR_SHAPE, "vulkan: %s: %s (%s) has shape %s, expected %lld elements", k, arg, tn(t),
                       gr_shape_str(t, sb, sizeof sb), (long long)n);
    }
    return GR_OK;
}

#define TRY(x) do { gr_status s_ = (x); if (s_ != GR_OK) return s_; } while (0)

static uint32_t fbits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static uint32_t wg_limit(const vk_ctx *c, uint32_t want)
{
    uint32_t m = c->props.limits.maxComputeWorkGroupInvocations;
    if (c->props.limits.maxComputeWorkGroupSize[0] < m) m = c->props.limits.maxComputeWorkGroupSize[0];
    while (want > m) want /= 2;
    return want;
}

/* Workgroup size for one-workgroup-per-row kernels: enough lanes for the row, a power of two. */
static uint32_t row_wg(const vk_ctx *c, int64_t d)
{
    uint32_t w = 32;
    while (w < 256 && (int64_t)w * 4 < d) w *= 2;
    return wg_limit(c, w);
}

static gr_status pipe(vk_ctx *c, const char *name, const char *defines, uint32_t wg, int nbind, vk_pipeline **p)
{
    uint32_t spec[1] = {wg};
    return vk_pipeline_get(c, name, defines, spec, 1, nbind, p);
}

/* A tensor that stands for the error-report buffer (and for absent optional arguments). */
static gr_tensor err_tensor(const vk_ctx *c)
{
    gr_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = GR_I32;
    t.ndim = 1;
    t.shape[0] = 16;
    t.buffer = c->errbuf;
    t.name = "(error reports)";
    return t;
}

static void job_arg(vk_rowjob *j, const gr_tensor *t, int64_t row_elems, int write)
{
    j->t[j->nargs] = t;
    j->row_elems[j->nargs] = row_elems;
    j->write[j->nargs] = write;
    j->nargs++;
}

static void job_init(vk_rowjob *j, const char *kernel, vk_pipeline *p, int64_t rows)
{
    memset(j, 0, sizeof *j);
    j->kernel = kernel;
    j->pipe = p;
    j->rows = rows;
    j->npush = 8;
}

static void job_param(vk_rowjob *j, uint32_t v) { j->push[j->npush++] = v; }

/* Kernels that validate ids or labels on the device report through errbuf. By default the
 * op waits for the device so the error comes from the op itself, as on the CPU backend (one
 * queue drain per embedding / loss op); GRAFT_VULKAN_DEFER_INDEX_CHECKS=1 reports at the
 * next synchronisation instead. */
static gr_status index_checked(vk_ctx *c, gr_status s)
{
    if (s != GR_OK || c->defer_index_checks) return s;
    return vk_synchronize(c);
}

/* ------------------------------------------------------------------ fill ---- */

gr_status vk_fill(void *bctx, const gr_tensor *t, float value)
{
    vk_ctx *c = bctx;
    if (!t || (t->dtype != GR_F32 && t->dtype != GR_I32))
        return gr_fail(GR_ERR_SHAPE, "vulkan: fill: %s must be F32 or I32", tn(t));
    size_t bytes = gr_nbytes(t);
    if (bytes == 0) return GR_OK;
    if (t->offset % 4 || t->offset + bytes > t->buffer->size)
        return gr_fail(GR_ERR_INVALID, "vulkan: fill: %s: bad offset %zu", tn(t), t->offset);
    uint32_t word = t->dtype == GR_F32 ? fbits(value) : (uint32_t)(int32_t)value;
    VkCommandBuffer cmd;
    TRY(vk_cmd(c, &cmd));
    vk_bind b = {t->buffer, t->offset, t->offset + bytes, 1};
    vk_hazard(c, cmd, &b, 1);
    vkCmdFillBuffer(cmd, t->buffer->block->buf, t->buffer->off + t->offset, bytes, word);
    return GR_OK;
}

/* ------------------------------------------------------- element-wise ---- */

static gr_status elementwise(vk_ctx *c, const char *kernel, const char *shader, const char *defines,
                             const gr_tensor *const *t, const int *write, int n, int64_t numel,
                             const uint32_t *params, int nparams)
{
    if (numel == 0) return GR_OK;
    vk_pipeline *p;
    TRY(pipe(c, shader, defines, wg_limit(c, 256), n, &p));
    vk_rowjob j;
    job_init(&j, kernel, p, numel);
    j.elems_per_row = 1;
    for (int i = 0; i < n; i++) job_arg(&j, t[i], 1, write[i]);
    for (int i = 0; i < nparams; i++) job_param(&j, params[i]);
    return vk_run_rows(c, &j);
}

gr_status vk_scale(void *bctx, const gr_tensor *out, const gr_tensor *in, float alpha, int acc)
{
    TRY(need_dtype("scale", "out", out, GR_F32));
    TRY(need_dtype("scale", "in", in, GR_F32));
    TRY(need_numel("scale", "in", in, gr_numel(out)));
    const gr_tensor *t[2] = {out, in};
    int w[2] = {1, 0};
    uint32_t p[2] = {fbits(alpha), acc ? 1u : 0u};
    return elementwise(bctx, "scale", "scale.comp", "", t, w, 2, gr_numel(out), p, 2);
}

gr_status vk_unary(void *bctx, gr_unary_op op, const gr_tensor *out, const gr_tensor *in)
{
    if ((unsigned)op >= GR_ACT_COUNT) return gr_fail(GR_ERR_INVALID, "vulkan: unary: unknown op %d", (int)op);
    TRY(need_dtype("unary", "out", out, GR_F32));
    TRY(need_dtype("unary", "in", in, GR_F32));
    TRY(need_numel("unary", "in", in, gr_numel(out)));
    const gr_tensor *t[2] = {out, in};
    int w[2] = {1, 0};
    uint32_t p[1] = {(uint32_t)op};
    return elementwise(bctx, "unary", "unary.comp", "", t, w, 2, gr_numel(out), p, 1);
}

gr_status vk_unary_backward(void *bctx, gr_unary_op op, const gr_tensor *dx, const gr_tensor *x,
                            const gr_tensor *dy)
{
    if ((unsigned)op >= GR_ACT_COUNT)
        return gr_fail(GR_ERR_INVALID, "vulkan: unary_backward: unknown op %d", (int)op);
    TRY(need_dtype("unary_backward", "dx", dx, GR_F32));
    TRY(need_dtype("unary_backward", "x", x, GR_F32));
    TRY(need_dtype("unary_backward", "dy", dy, GR_F32));
    TRY(need_numel("unary_backward", "x", x, gr_numel(dx)));
    TRY(need_numel("unary_backward", "dy", dy, gr_numel(dx)));
    const gr_tensor *t[3] = {dx, x, dy};
    int w[3] = {1, 0, 0};
    uint32_t p[1] = {(uint32_t)op};
    return elementwise(bctx, "unary_backward", "unary_backward.comp", "", t, w, 3, gr_numel(dx), p, 1);
}

gr_status vk_adamw(void *bctx, const gr_adamw_args *a)
{
    TRY(need_dtype("adamw", "param", a->param, GR_F32));
    TRY(need_dtype("adamw", "grad", a->grad, GR_F32));
    TRY(need_dtype("adamw", "m", a->m, GR_F32));
    TRY(need_dtype("adamw", "v", a->v, GR_F32));
    int64_t n = gr_numel(a->param);
    TRY(need_numel("adamw", "grad", a->grad, n));
    TRY(need_numel("adamw", "m", a->m, n));
    TRY(need_numel("adamw", "v", a->v, n));
    const gr_tensor *t[4] = {a->param, a->grad, a->m, a->v};
    int w[4] = {1, 0, 1, 1};
    uint32_t p[8] = {fbits(a->lr), fbits(a->beta1), fbits(a->beta2), fbits(a->eps), fbits(a->weight_decay),
                     fbits(a->bias_correction1), fbits(a->bias_correction2), fbits(a->grad_scale)};
    return elementwise(bctx, "adamw", "adamw.comp", "", t, w, 4, n, p, 8);
}

static const char *dtype_define(gr_dtype d)
{
    switch (d) {
    case GR_F32: return "F32";
    case GR_F16: return "F16";
    case GR_BF16: return "BF16";
    case GR_I64: return "I64";
    case GR_I32: return "I32";
    default: return NULL;
    }
}

static gr_status need_16bit(const vk_ctx *c, const char *k, const gr_tensor *t)
{
    if ((t->dtype == GR_F16 || t->dtype == GR_BF16) && !c->feat.fp16_storage)
        return gr_fail(GR_ERR_UNSUPPORTED, "vulkan: %s: %s is %s but %s lacks storageBuffer16BitAccess", k,
                       tn(t), gr_dtype_name(t->dtype), c->props.deviceName);
    return GR_OK;
}

gr_status vk_convert(void *bctx, const gr_tensor *out, const gr_tensor *in)
{
    vk_ctx *c = bctx;
    if (!out || !in) return gr_fail(GR_ERR_INVALID, "vulkan: convert: NULL tensor");
    TRY(need_numel("convert", "in", in, gr_numel(out)));
    int floats_ok = (in->dtype == GR_F32 || in->dtype == GR_F16 || in->dtype == GR_BF16) &&
                    (out->dtype == GR_F32 || out->dtype == GR_F16 || out->dtype == GR_BF16);
    if (!floats_ok && !(in->dtype == GR_I64 && out->dtype == GR_I32) && in->dtype != out->dtype)
        return gr_fail(GR_ERR_UNSUPPORTED, "vulkan: convert: %s -> %s (%s) is not a supported conversion",
                       gr_dtype_name(in->dtype), gr_dtype_name(out->dtype), tn(out));
    if (in->dtype == out->dtype)
        return gr_numel(out) ? vk_copy(c, out->buffer, out->offset, in->buffer, in->offset, gr_nbytes(out)) : GR_OK;
    TRY(need_16bit(c, "convert", in));
    TRY(need_16bit(c, "convert", out));
    char defs[64];
    snprintf(defs, sizeof defs, "SRC_%s DST_%s", dtype_define(in->dtype), dtype_define(out->dtype));
    const gr_tensor *t[2] = {out, in};
    int w[2] = {1, 0};
    return elementwise(c, "convert", "convert.comp", defs, t, w, 2, gr_numel(out), NULL, 0);
}

/* ------------------------------------------------------------ binary ---- */

gr_status vk_binary(void *bctx, gr_binary_op op, const gr_tensor *out, const gr_tensor *a, const gr_tensor *b)
{
    vk_ctx *c = bctx;
    if ((unsigned)op > GR_BIN_MUL) return gr_fail(GR_ERR_INVALID, "vulkan: binary: unknown op %d", (int)op);
    TRY(need_dtype("binary", "out", out, GR_F32));
    TRY(need_dtype("binary", "a", a, GR_F32));
    TRY(need_dtype("binary", "b", b, GR_F32));
    if (a->ndim != out->ndim || b->ndim != out->ndim)
        return gr_fail(GR_ERR_SHAPE, "vulkan: binary: %s, %s and %s must have the same number of dims", tn(out),
                       tn(a), tn(b));
    for (int d = 0; d < out->ndim; d++)
        if ((a->shape[d] != out->shape[d] && a->shape[d] != 1) || (b->shape[d] != out->shape[d] && b->shape[d] != 1)) {
            char s1[96], s2[96], s3[96];
            return gr_fail(GR_ERR_SHAPE, "vulkan: binary: %s %s and %s %s do not broadcast to %s %s", tn(a),
                           gr_shape_str(a, s1, sizeof s1), tn(b), gr_shape_str(b, s2, sizeof s2), tn(out),
                           gr_shape_str(out, s3, sizeof s3));
        }
    if (gr_numel(out) == 0) return GR_OK;
    /* Drop leading dims of size 1 so dim 0 is a real row dimension to chunk over. */
    int first = 0;
    while (first < out->ndim - 1 && out->shape[first] == 1) first++;
    int nd = out->ndim - first;
    if (nd > 6) return gr_fail(GR_ERR_SHAPE, "vulkan: binary: too many dims");
    int64_t shape[6] = {1, 1, 1, 1, 1, 1};
    uint32_t sa[6] = {0}, sb[6] = {0};
    int64_t ra = 1, rb = 1;
    for (int d = nd - 1; d >= 0; d--) {
        shape[d] = out->ndim ? out->shape[first + d] : 1;
        int64_t ea = out->ndim ? a->shape[first + d] : 1, eb = out->ndim ? b->shape[first + d] : 1;
        sa[d] = ea == 1 ? 0 : (uint32_t)ra;
        sb[d] = eb == 1 ? 0 : (uint32_t)rb;
        ra *= ea;
        rb *= eb;
    }
    if (nd == 0) nd = 1;
    int64_t rows = shape[0], per_row = gr_numel(out) / rows;
    vk_pipeline *p;
    TRY(pipe(c, "binary.comp", "", wg_limit(c, 256), 3, &p));
    vk_rowjob j;
    job_init(&j, "binary", p, rows);
    j.elems_per_row = per_row;
    job_arg(&j, out, per_row, 1);
    int a_rows = out->ndim && a->shape[first] == rows && rows > 1;
    int b_rows = out->ndim && b->shape[first] == rows && rows > 1;
    job_arg(&j, a, a_rows ? gr_numel(a) / rows : 0, 0);
    job_arg(&j, b, b_rows ? gr_numel(b) / rows : 0, 0);
    job_param(&j, (uint32_t)nd);
    job_param(&j, (uint32_t)op);
    for (int d = 0; d < 6; d++) job_param(&j, (uint32_t)shape[d]);
    for (int d = 0; d < 6; d++) job_param(&j, sa[d]);
    for (int d = 0; d < 6; d++) job_param(&j, sb[d]);
    return vk_run_rows(c, &j);
}

/* ------------------------------------------------------------ reductions ---- */

gr_status vk_reduce_to(void *bctx, const gr_tensor *out, const gr_tensor *in)
{
    vk_ctx *c = bctx;
    TRY(need_dtype("reduce_to", "out", out, GR_F32));
    TRY(need_dtype("reduce_to", "in", in, GR_F32));
    if (out->ndim != in->ndim) return gr_fail(GR_ERR_SHAPE, "vulkan: reduce_to: %s and %s differ in dims", tn(out), tn(in));
    for (int d = 0; d < in->ndim; d++)
        if (out->shape[d] != in->shape[d] && out->shape[d] != 1) {
            char s1[96], s2[96];
            return gr_fail(GR_ERR_SHAPE, "vulkan: reduce_to: %s %s cannot be reduced to %s %s", tn(in),
                           gr_shape_str(in, s1, sizeof s1), tn(out), gr_shape_str(out, s2, sizeof s2));
        }
    if (gr_numel(out) == 0) return GR_OK;
    if (gr_numel(in) == 0) return vk_fill(c, out, 0.0f);
    int first = 0;
    while (first < in->ndim - 1 && in->shape[first] == 1) first++;
    int nd = in->ndim - first;
    if (nd < 1) nd = 1;
    int64_t shape[6] = {1, 1, 1, 1, 1, 1};
    uint32_t red[6] = {0};
    for (int d = 0; d < nd && in->ndim; d++) {
        shape[d] = in->shape[first + d];
        red[d] = out->shape[first + d] == 1 && in->shape[first + d] != 1;
    }
    int64_t rows = shape[0];
    int64_t in_row = gr_numel(in) / rows, out_row = red[0] ? gr_numel(out) : gr_numel(out) / rows;
    VkDeviceSize budget = vk_budget(c);
    int64_t chunk = (int64_t)(budget / ((VkDeviceSize)in_row * 4));
    if (!red[0] && (int64_t)(budget / ((VkDeviceSize)out_row * 4)) < chunk) chunk = (int64_t)(budget / ((VkDeviceSize)out_row * 4));
    if (chunk < 1 || (red[0] && (VkDeviceSize)out_row * 4 > budget))
        return gr_fail(GR_ERR_UNSUPPORTED, "vulkan: reduce_to: %s is too large for the device's storage-buffer window",
                       tn(in));
    vk_pipeline *p;
    uint32_t wg = wg_limit(c, 64);
    TRY(pipe(c, "reduce_to.comp", "", wg, 2, &p));
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        int64_t nr = rows - r0 < chunk ? rows - r0 : chunk;
        uint32_t push[VK_PUSH_WORDS] = {0};
        vk_bind b[2];
        VkDeviceSize olo = red[0] ? 0 : (VkDeviceSize)r0 * out_row * 4;
        VkDeviceSize ohi = red[0] ? (VkDeviceSize)out_row * 4 : olo + (VkDeviceSize)nr * out_row * 4;
        TRY(vk_window(c, out, olo, ohi, 4, 1, &b[0], &push[0]));
        TRY(vk_window(c, in, (VkDeviceSize)r0 * in_row * 4, (VkDeviceSize)(r0 + nr) * in_row * 4, 4, 0, &b[1], &push[1]));
        push[6] = (uint32_t)nr;
        push[7] = (uint32_t)r0;
        push[8] = (uint32_t)nd;
        push[9] = red[0] && r0 > 0; /* later chunks of a reduced dim 0 add to the first */
        for (int d = 0; d < 6; d++) push[10 + d] = (uint32_t)shape[d];
        for (int d = 0; d < 6; d++) push[16 + d] = red[d];
        int64_t nout = red[0] ? out_row : nr * out_row;
        TRY(vk_dispatch(c, p, b, 2, push, 22, (uint32_t)((nout + wg - 1) / wg)));
    }
    return GR_OK;
}

gr_status vk_sum_squares(void *bctx, const gr_tensor *out, const gr_tensor *in)
{
    vk_ctx *c = bctx;
    TRY(need_dtype("sum_squares", "out", out, GR_F32));
    TRY(need_dtype("sum_squares", "in", in, GR_F32));
    TRY(need_numel("sum_squares", "out", out, 1));
    int64_t n = gr_numel(in);
    if (n == 0) return vk_fill(c, out, 0.0f);
    const char *defs = c->feat.fp64 ? "USE_DOUBLE" : "";
    size_t accsz = c->feat.fp64 ? 8 : 4;
    uint32_t wg = wg_limit(c, 256);
    int64_t chunk = (int64_t)(vk_budget(c) / 4);
    int64_t nchunks = (n + chunk - 1) / chunk;
    /* Partial sums per chunk: all of them must fit one window for the final pass. */
    int64_t gmax = (int64_t)(vk_budget(c) / accsz) / nchunks;
    if (gmax < 1) return gr_fail(GR_ERR_UNSUPPORTED, "vulkan: sum_squares: %s is too large", tn(in));
    const uint32_t G = gmax < 256 ? (uint32_t)gmax : 256;
    gr_buffer *part;
    TRY(vk_buffer_alloc(c, (size_t)(nchunks * G) * accsz, &part));
    gr_tensor pt;
    memset(&pt, 0, sizeof pt);
    pt.dtype = c->feat.fp64 ? GR_F64 : GR_F32;
    pt.ndim = 1;
    pt.shape[0] = nchunks * G;
    pt.buffer = part;
    pt.name = "(sum_squares partials)";
    vk_pipeline *p1, *p2;
    gr_status s = pipe(c, "sum_squares.comp", defs, wg, 2, &p1);
    if (s == GR_OK) {
        char d2[64];
        snprintf(d2, sizeof d2, "%s FINAL", defs);
        s = pipe(c, "sum_squares.comp", d2, wg, 2, &p2);
    }
    for (int64_t ci = 0; ci < nchunks && s == GR_OK; ci++) {
        int64_t lo = ci * chunk, cnt = n - lo < chunk ? n - lo : chunk;
        uint32_t push[VK_PUSH_WORDS] = {0};
        vk_bind b[2];
        s = vk_window(c, &pt, (VkDeviceSize)(ci * G) * accsz, (VkDeviceSize)((ci + 1) * G) * accsz, accsz, 1, &b[0],
                      &push[0]);
        if (s == GR_OK) s = vk_window(c, in, (VkDeviceSize)lo * 4, (VkDeviceSize)(lo + cnt) * 4, 4, 0, &b[1], &push[1]);
        push[6] = (uint32_t)cnt;
        push[8] = 0;
        /* Always G groups: a group past the data writes a zero partial. */
        if (s == GR_OK) s = vk_dispatch3(c, p1, b, 2, push, 9, G, 1, 1);
    }
    if (s == GR_OK) {
        uint32_t push[VK_PUSH_WORDS] = {0};
        vk_bind b[2];
        s = vk_window(c, out, 0, 4, 4, 1, &b[0], &push[0]);
        if (s == GR_OK) s = vk_window(c, &pt, 0, gr_nbytes(&pt), accsz, 0, &b[1], &push[1]);
        push[9] = (uint32_t)(nchunks * G);
        if (s == GR_OK) s = vk_dispatch3(c, p2, b, 2, push, 10, 1, 1, 1);
    }
    gr_status s2 = vk_buffer_free_later(c, part);
    return s != GR_OK ? s : s2;
}

/* ------------------------------------------------------- gather / scatter ---- */

/* A view of rows [r0, r0 + n) of a 2-D-like tensor whose rows hold `row` elements. */
static gr_tensor row_view(const gr_tensor *t, int64_t r0, int64_t n, int64_t row)
{
    gr_tensor v = *t;
    v.ndim = 2;
    v.shape[0] = n;
    v.shape[1] = row;
    v.offset = t->offset + (size_t)(r0 * row) * gr_dtype_size(t->dtype);
    return v;
}

gr_status vk_gather_rows(void *bctx, const gr_tensor *out, const gr_tensor *table, const gr_tensor *ids)
{
    vk_ctx *c = bctx;
    TRY(need_dtype("gather_rows", "out", out, GR_F32));
    TRY(need_dtype("gather_rows", "ids", ids, GR_I32));
    if (!table || (table->dtype != GR_F32 && table->dtype != GR_F16 && table->dtype != GR_BF16) || table->ndim != 2)
        return gr_fail(GR_ERR_SHAPE, "vulkan: gather_rows: table %s must be a 2-D F32/F16/BF16 tensor", tn(table));
    TRY(need_16bit(c, "gather_rows", table));
    int64_t rows = table->shape[0], dim = table->shape[1], n = gr_numel(ids);
    TRY(need_numel("gather_rows", "out", out, n * dim));
    if (n == 0 || dim == 0) return GR_OK;
    char defs[32];
    snprintf(defs, sizeof defs, "T_%s", dtype_define(table->dtype));
    vk_pipeline *p;
    TRY(pipe(c, "gather_rows.comp", defs, wg_limit(c, 256), 4, &p));
    size_t es = gr_dtype_size(table->dtype);
    int64_t tchunk = (int64_t)(vk_budget(c) / ((VkDeviceSize)dim * es));
    if (tchunk < 1) return gr_fail(GR_ERR_UNSUPPORTED, "vulkan: gather_rows: a row of %s exceeds the window", tn(table));
    gr_tensor et = err_tensor(c);
    for (int64_t t0 = 0; t0 < rows || (rows == 0 && t0 == 0); t0 += tchunk) {
        int64_t tn_ = rows - t0 < tchunk ? rows - t0 : tchunk;
        gr_tensor view = row_view(table, t0, tn_ > 0 ? tn_ : 0, dim);
        gr_tensor *vt = tn_ > 0 ? &view : &et; /* an empty table: every id is out of range */
        vk_rowjob j;
        job_init(&j, "gather_rows", p, n);
        j.elems_per_row = dim;
        job_arg(&j, out, dim, 1);
        job_arg(&j, vt, 0, 0);
        job_arg(&j, ids, 1, 0);
        job_arg(&j, &et, 0, 1);
        job_param(&j, (uint32_t)dim);
        job_param(&j, (uint32_t)t0);
        job_param(&j, (uint32_t)(tn_ > 0 ? tn_ : 0));
        job_param(&j, (uint32_t)rows);
        job_param(&j, t0 == 0);
        TRY(vk_run_rows(c, &j));
        if (rows == 0) break;
    }
    return index_checked(c, GR_OK);
}

gr_status vk_scatter_add_rows(void *bctx, const gr_tensor *dtable, const gr_tensor *ids, const gr_tensor *dout,
                              int32_t skip_id)
{
    vk_ctx *c = bctx;
    TRY(need_dtype("scatter_add_rows", "dtable", dtable, GR_F32));
    TRY(need_dtype("scatter_add_rows", "ids", ids, GR_I32));
    TRY(need_dtype("scatter_add_rows", "dout", dout, GR_F32));
    if (dtable->ndim != 2) return gr_fail(GR_ERR_SHAPE, "vulkan: scatter_add_rows: dtable %s must be 2-D", tn(dtable));
    int64_t rows = dtable->shape[0], dim = dtable->shape[1], n = gr_numel(ids);
    TRY(need_numel("scatter_add_rows", "dout", dout, n * dim));
    if (n == 0 || dim == 0) return GR_OK;
    uint32_t wg = wg_limit(c, 64);
    vk_pipeline *p;
    TRY(pipe(c, "scatter_add_rows.comp", "", wg, 4, &p));
    VkDeviceSize budget = vk_budget(c), rowb = (VkDeviceSize)dim * 4;
    int64_t tchunk = (int64_t)(budget / rowb), ichunk = (int64_t)(budget / rowb);
    if (tchunk < 1) return gr_fail(GR_ERR_UNSUPPORTED, "vulkan: scatter_add_rows: a row of %s exceeds the window", tn(dtable));
    gr_tensor et = err_tensor(c);
    /* Ids in order (outer loop) keep the per-row summation order of the CPU backend. */
    for (int64_t i0 = 0; i0 < n; i0 += ichunk) {
        int64_t ni = n - i0 < ichunk ? n - i0 : ichunk;
        gr_tensor iv = row_view(ids, i0, ni, 1), dv = row_view(dout, i0, ni, dim);
        for (int64_t t0 = 0; t0 < rows || (rows == 0 && t0 == 0); t0 += tchunk) {
            int64_t nt = rows - t0 < tchunk ? rows - t0 : tchunk;
            gr_tensor tv = row_view(dtable, t0, nt > 0 ? nt : 0, dim);
            uint32_t push[VK_PUSH_WORDS] = {0};
            vk_bind b[4];
            TRY(vk_window(c, nt > 0 ? &tv : &et, 0, nt > 0 ? gr_nbytes(&tv) : 64, 4, 1, &b[0], &push[0]));
            TRY(vk_window(c, &iv, 0, gr_nbytes(&iv), 4, 0, &b[1], &push[1]));
            TRY(vk_window(c, &dv, 0, gr_nbytes(&dv), 4, 0, &b[2], &push[2]));
            TRY(vk_window(c, &et, 0, 64, 4, 1, &b[3], &push[3]));
            push[6] = (uint32_t)ni;
            push[7] = (uint32_t)i0;
            push[8] = (uint32_t)dim;
            push[9] = (uint32_t)t0;
            push[10] = (uint32_t)(nt > 0 ? nt : 0);
            push[11] = (uint32_t)rows;
            push[12] = (uint32_t)skip_id;
            push[13] = t0 == 0;
            TRY(vk_dispatch(c, p, b, 4, push, 14, (uint32_t)((dim + wg - 1) / wg)));
            if (rows == 0) break;
        }
    }
    return index_checked(c, GR_OK);
}

/* ------------------------------------------------------------ norms ---- */

static gr_status norm_shapes(const char *k, const gr_tensor *x, int64_t *rows, int64_t *d)
{
    TRY(need_dtype(k, "x", x, GR_F32));
    if (x->ndim < 1) return gr_fail(GR_ERR_SHAPE, "vulkan: %s: x %s must have at least one dim", k, tn(x));
    *d = x->shape[x->ndim - 1];
    *rows = *d ? gr_numel(x) / *d : 0;
    return GR_OK;
}

static gr_status opt_f32(const char *k, const char *arg, const gr_tensor *t, int64_t n)
{
    if (!t) return GR_OK;
    TRY(need_dtype(k, arg, t, GR_F32));
    return need_numel(k, arg, t, n);
}

/* Column kernel for dw (and db): rows processed in window-sized chunks that accumulate. */
static gr_status norm_param_grad(vk_ctx *c, int rms, const gr_tensor *dw, const gr_tensor *db, const gr_tensor *dy,
                                 const gr_tensor *x, const gr_tensor *mean, const gr_tensor *rstd, int64_t rows,
                                 int64_t d)
{
    if (!dw && !db) return GR_OK;
    gr_tensor et = err_tensor(c);
    uint32_t wg = wg_limit(c, 64);
    vk_pipeline *p;
    TRY(pipe(c, "norm_param_grad.comp", rms ? "RMS" : "", wg, rms ? 4 : 6, &p));
    if (rows == 0) {
        if (dw) TRY(vk_fill(c, dw, 0.0f));
        if (db) TRY(vk_fill(c, db, 0.0f));
        return GR_OK;
    }
    const gr_tensor *args[6];
    int64_t row_elems[6];
    int write[6], na = 0;
#define ARG(t, re, w) (args[na] = (t), row_elems[na] = (re), write[na] = (w), na++)
    ARG(dw ? dw : &et, 0, 1);
    if (!rms) ARG(db ? db : &et, 0, 1);
    ARG(dy, d, 0);
    ARG(x, d, 0);
    if (!rms) ARG(mean, 1, 0);
    ARG(rstd, 1, 0);
#undef ARG
    if ((VkDeviceSize)d * 4 > vk_budget(c)) return gr_fail(GR_ERR_UNSUPPORTED, "vulkan: norm backward: rows too long");
    int64_t chunk = (int64_t)(vk_budget(c) / ((VkDeviceSize)d * 4));
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        int64_t nr = rows - r0 < chunk ? rows - r0 : chunk;
        uint32_t push[VK_PUSH_WORDS] = {0};
        vk_bind b[6];
        for (int i = 0; i < na; i++) {
            VkDeviceSize lo = 0, hi = args[i] == &et ? 64 : gr_nbytes(args[i]);
            if (row_elems[i]) {
                lo = (VkDeviceSize)r0 * row_elems[i] * 4;
                hi = lo + (VkDeviceSize)nr * row_elems[i] * 4;
            }
            TRY(vk_window(c, args[i], lo, hi, 4, write[i], &b[i], &push[i]));
        }
        push[6] = (uint32_t)nr;
        push[7] = (uint32_t)r0;
        push[8] = (uint32_t)d;
        push[9] = r0 > 0;
        push[10] = dw != NULL;
        push[11] = db != NULL;
        TRY(vk_dispatch(c, p, b, na, push, 12, (uint32_t)((d + wg - 1) / wg)));
    }
    return GR_OK;
}

gr_status vk_layernorm(void *bctx, const gr_tensor *out, const gr_tensor *mean, const gr_tensor *rstd,
                       const gr_tensor *x, const gr_tensor *w, const gr_tensor *b, float eps)
{
    vk_ctx *c = bctx;
    int64_t rows, d;
    TRY(norm_shapes("layernorm", x, &rows, &d));
    TRY(opt_f32("layernorm", "out", out, rows * d));
    TRY(opt_f32("layernorm", "mean", mean, rows));
    TRY(opt_f32("layernorm", "rstd", rstd, rows));
    TRY(opt_f32("layernorm", "w", w, d));
    TRY(opt_f32("layernorm", "b", b, d));
    if (!out || !mean || !rstd) return gr_fail(GR_ERR_INVALID, "vulkan: layernorm: out, mean and rstd are required");
    if (rows == 0 || d == 0) return GR_OK;
    gr_tensor et = err_tensor(c);
    vk_pipeline *p;
    uint32_t wg = row_wg(c, d);
    TRY(pipe(c, "layernorm.comp", "", wg, 6, &p));
    vk_rowjob j;
    job_init(&j, "layernorm", p, rows);
    j.groups_per_row = 1;
    job_arg(&j, out, d, 1);
    job_arg(&j, mean, 1, 1);
    job_arg(&j, rstd, 1, 1);
    job_arg(&j, x, d, 0);
    job_arg(&j, w ? w : &et, 0, 0);
    job_arg(&j, b ? b : &et, 0, 0);
    job_param(&j, (uint32_t)d);
    job_param(&j, w != NULL);
    job_param(&j, b != NULL);
    job_param(&j, fbits(eps));
    return vk_run_rows(c, &j);
}

gr_status vk_layernorm_backward(void *bctx, const gr_tensor *dx, const gr_tensor *dw, const gr_tensor *db,
                                const gr_tensor *dy, const gr_tensor *x, const gr_tensor *w, const gr_tensor *mean,
                                const gr_tensor *rstd)
{
    vk_ctx *c = bctx;
    int64_t rows, d;
    TRY(norm_shapes("layernorm_backward", x, &rows, &d));
    TRY(need_dtype("layernorm_backward", "dy", dy, GR_F32));
    TRY(need_numel("layernorm_backward", "dy", dy, rows * d));
    TRY(need_dtype("layernorm_backward", "mean", mean, GR_F32));
    TRY(need_numel("layernorm_backward", "mean", mean, rows));
    TRY(need_dtype("layernorm_backward", "rstd", rstd, GR_F32));
    TRY(need_numel("layernorm_backward", "rstd", rstd, rows));
    TRY(opt_f32("layernorm_backward", "dx", dx, rows * d));
    TRY(opt_f32("layernorm_backward", "w", w, d));
    TRY(opt_f32("layernorm_backward", "dw", dw, d));
    TRY(opt_f32("layernorm_backward", "db", db, d));
    if (d == 0) return GR_OK;
    if (dx && rows > 0) {
        gr_tensor et = err_tensor(c);
        vk_pipeline *p;
        uint32_t wg = row_wg(c, d);
        TRY(pipe(c, "layernorm_backward.comp", "", wg, 6, &p));
        vk_rowjob j;
        job_init(&j, "layernorm_backward", p, rows);
        j.groups_per_row = 1;
        job_arg(&j, dx, d, 1);
        job_arg(&j, dy, d, 0);
        job_arg(&j, x, d, 0);
        job_arg(&j, w ? w : &et, 0, 0);
        job_arg(&j, mean, 1, 0);
        job_arg(&j, rstd, 1, 0);
        job_param(&j, (uint32_t)d);
        job_param(&j, w != NULL);
        TRY(vk_run_rows(c, &j));
    }
    return norm_param_grad(c, 0, dw, db, dy, x, mean, rstd, rows, d);
}

gr_status vk_rmsnorm(void *bctx, const gr_tensor *out, const gr_tensor *rstd, const gr_tensor *x,
                     const gr_tensor *w, float eps)
{
    vk_ctx *c = bctx;
    int64_t rows, d;
    TRY(norm_shapes("rmsnorm", x, &rows, &d));
    TRY(opt_f32("rmsnorm", "out", out, rows * d));
    TRY(opt_f32("rmsnorm", "rstd", rstd, rows));
    TRY(opt_f32("rmsnorm", "w", w, d));
    if (!out || !rstd) return gr_fail(GR_ERR_INVALID, "vulkan: rmsnorm: out and rstd are required");
    if (rows == 0 || d == 0) return GR_OK;
    gr_tensor et = err_tensor(c);
    vk_pipeline *p;
    TRY(pipe(c, "rmsnorm.comp", "", row_wg(c, d), 4, &p));
    vk_rowjob j;
    job_init(&j, "rmsnorm", p, rows);
    j.groups_per_row = 1;
    job_arg(&j, out, d, 1);
    job_arg(&j, rstd, 1, 1);
    job_arg(&j, x, d, 0);
    job_arg(&j, w ? w : &et, 0, 0);
    job_param(&j, (uint32_t)d);
    job_param(&j, w != NULL);
    job_param(&j, fbits(eps));
    return vk_run_rows(c, &j);
}

gr_status vk_rmsnorm_backward(void *bctx, const gr_tensor *dx, const gr_tensor *dw, const gr_tensor *dy,
                              const gr_tensor *x, const gr_tensor *w, const gr_tensor *rstd)
{
    vk_ctx *c = bctx;
    int64_t rows, d;
    TRY(norm_shapes("rmsnorm_backward", x, &rows, &d));
    TRY(need_dtype("rmsnorm_backward", "dy", dy, GR_F32));
    TRY(need_numel("rmsnorm_backward", "dy", dy, rows * d));
    TRY(need_dtype("rmsnorm_backward", "rstd", rstd, GR_F32));
    TRY(need_numel("rmsnorm_backward", "rstd", rstd, rows));
    TRY(opt_f32("rmsnorm_backward", "dx", dx, rows * d));
    TRY(opt_f32("rmsnorm_backward", "w", w, d));
    TRY(opt_f32("rmsnorm_backward", "dw", dw, d));
    if (d == 0) return GR_OK;
    if (dx && rows > 0) {
        gr_tensor et = err_tensor(c);
        vk_pipeline *p;
        TRY(pipe(c, "rmsnorm_backward.comp", "", row_wg(c, d), 5, &p));
        vk_rowjob j;
        job_init(&j, "rmsnorm_backward", p, rows);
        j.groups_per_row = 1;
        job_arg(&j, dx, d, 1);
        job_arg(&j, dy, d, 0);
        job_arg(&j, x, d, 0);
        job_arg(&j, w ? w : &et, 0, 0);
        job_arg(&j, rstd, 1, 0);
        job_param(&j, (uint32_t)d);
        job_param(&j, w != NULL);
        TRY(vk_run_rows(c, &j));
    }
    return norm_param_grad(c, 1, dw, NULL, dy, x, NULL, rstd, rows, d);
}

/* ------------------------------------------------------------ softmax ---- */

gr_status vk_softmax(void *bctx, const gr_tensor *out, const gr_tensor *in)
{
    vk_ctx *c = bctx;
    int64_t rows, n;
    TRY(norm_shapes("softmax", in, &rows, &n));
    TRY(need_dtype("softmax", "out", out, GR_F32));
    TRY(need_numel("softmax", "out", out, rows * n));
    if (rows == 0 || n == 0) return GR_OK;
    vk_pipeline *p;
    TRY(pipe(c, "softmax.comp", "", row_wg(c, n), 2, &p));
    vk_rowjob j;
    job_init(&j, "softmax", p, rows);
    j.groups_per_row = 1;
    job_arg(&j, out, n, 1);
    job_arg(&j, in, n, 0);
    job_param(&j, (uint32_t)n);
    return vk_run_rows(c, &j);
}

gr_status vk_softmax_backward(void *bctx, const gr_tensor *dx, const gr_tensor *y, const gr_tensor *dy)
{
    vk_ctx *c = bctx;
    int64_t rows, n;
    TRY(norm_shapes("softmax_backward", y, &rows, &n));
    TRY(need_dtype("softmax_backward", "dx", dx, GR_F32));
    TRY(need_numel("softmax_backward", "dx", dx, rows * n));
    TRY(need_dtype("softmax_backward", "dy", dy, GR_F32));
    TRY(need_numel("softmax_backward", "dy", dy, rows * n));
    if (rows == 0 || n == 0) return GR_OK;
    vk_pipeline *p;
    TRY(pipe(c, "softmax_backward.comp", "", row_wg(c, n), 3, &p));
    vk_rowjob j;
    job_init(&j, "softmax_backward", p, rows);
    j.groups_per_row = 1;
    job_arg(&j, dx, n, 1);
    job_arg(&j, y, n, 0);
    job_arg(&j, dy, n, 0);
    job_param(&j, (uint32_t)n);
    return vk_run_rows(c, &j);
}

/* ------------------------------------------------------------ rope ---- */

gr_status vk_rope(void *bctx, const gr_tensor *out, const gr_tensor *x, const gr_tensor *cos, const gr_tensor *sin,
                  int rot_dim, int inverse)
{
    vk_ctx *c = bctx;
    TRY(need_dtype("rope", "x", x, GR_F32));
    TRY(need_dtype("rope", "out", out, GR_F32));
    TRY(need_dtype("rope", "cos", cos, GR_F32));
    TRY(need_dtype("rope", "sin", sin, GR_F32));
    if (x->ndim != 4) return gr_fail(GR_ERR_SHAPE, "vulkan: rope: x %s must be [B, T, H, D]", tn(x));
    int64_t B = x->shape[0], T = x->shape[1], H = x->shape[2], D = x->shape[3];
    if (rot_dim < 0 || rot_dim > D || rot_dim % 2)
        return gr_fail(GR_ERR_SHAPE, "vulkan: rope: rot_dim %d must be even and <= head dim %lld", rot_dim, (long long)D);
    int64_t half = rot_dim / 2;
    TRY(need_numel("rope", "out", out, B * T * H * D));
    TRY(need_numel("rope", "cos", cos, B * T * half));
    TRY(need_numel("rope", "sin", sin, B * T * half));
    if (B * T * H * D == 0) return GR_OK;
    gr_tensor et = err_tensor(c);
    vk_pipeline *p;
    TRY(pipe(c, "rope.comp", "", wg_limit(c, 256), 4, &p));
    vk_rowjob j;
    job_init(&j, "rope", p, B * T);
    j.elems_per_row = H * D;
    job_arg(&j, out, H * D, 1);
    job_arg(&j, x, H * D, 0);
    job_arg(&j, half ? cos : &et, half ? half : 0, 0);
    job_arg(&j, half ? sin : &et, half ? half : 0, 0);
    job_param(&j, (uint32_t)H);
    job_param(&j, (uint32_t)D);
    job_param(&j, (uint32_t)rot_dim);
    job_param(&j, inverse != 0);
    return vk_run_rows(c, &j);
}

/* ------------------------------------------------------------ copy_strided ---- */

typedef struct copy_plan {
    vk_pipeline *pipe;
    const gr_copy_args *a;
    size_t dsz, ssz;
} copy_plan;

/* Element span [lo, hi] touched by an index box (offsets relative to the tensor). */
static void span_of(int nd, const int64_t *shape, const int64_t *strides, int64_t origin, int64_t *lo, int64_t *hi)
{
    *lo = *hi = origin;
    for (int k = 0; k < nd; k++) {
        int64_t e = (shape[k] - 1) * strides[k];
        if (e < 0) *lo += e;
        else *hi += e;
    }
}

static gr_status copy_box(vk_ctx *c, const copy_plan *cp, const int64_t *shape, int64_t dorg, int64_t sorg)
{
    const gr_copy_args *a = cp->a;
    int nd = a->ndim;
    int64_t dlo, dhi, slo, shi, n = 1;
    for (int k = 0; k < nd; k++) n *= shape[k];
    if (n == 0) return GR_OK;
    span_of(nd, shape, a->dst_strides, dorg, &dlo, &dhi);
    span_of(nd, shape, a->src_strides, sorg, &slo, &shi);
    VkDeviceSize budget = vk_budget(c);
    if ((VkDeviceSize)(dhi - dlo + 1) * cp->dsz > budget || (VkDeviceSize)(shi - slo + 1) * cp->ssz > budget ||
        n > ((int64_t)1 << 30)) {
        /* Split the outermost dim that has more than one index. */
        for (int k = 0; k < nd; k++) {
            if (shape[k] < 2) continue;
            int64_t sub[GR_MAX_DIMS];
            memcpy(sub, shape, sizeof sub);
            int64_t h = shape[k] / 2;
            sub[k] = h;
            TRY(copy_box(c, cp, sub, dorg, sorg));
            sub[k] = shape[k] - h;
            return copy_box(c, cp, sub, dorg + h * a->dst_strides[k], sorg + h * a->src_strides[k]);
        }
    }
    uint32_t push[VK_PUSH_WORDS] = {0};
    vk_bind b[2];
    uint32_t dbase, sbase;
    TRY(vk_window(c, a->dst, (VkDeviceSize)dlo * cp->dsz, (VkDeviceSize)(dhi + 1) * cp->dsz, cp->dsz, 1, &b[0], &dbase));
    TRY(vk_window(c, a->src, (VkDeviceSize)slo * cp->ssz, (VkDeviceSize)(shi + 1) * cp->ssz, cp->ssz, 0, &b[1], &sbase));
    push[0] = dbase + (uint32_t)(dorg - dlo);
    push[1] = sbase + (uint32_t)(sorg - slo);
    push[8] = (uint32_t)(nd ? nd : 1);
    push[9] = a->accumulate != 0;
    for (int k = 0; k < 6; k++) {
        push[10 + k] = k < nd ? (uint32_t)shape[k] : 1;
        push[16 + k] = k < nd && shape[k] > 1 ? (uint32_t)(int32_t)a->dst_strides[k] : 0;
        push[22 + k] = k < nd && shape[k] > 1 ? (uint32_t)(int32_t)a->src_strides[k] : 0;
    }
    uint32_t wg = cp->pipe->local_size;
    return vk_dispatch(c, cp->pipe, b, 2, push, 28, (uint32_t)((n + wg - 1) / wg));
}

gr_status vk_copy_strided(void *bctx, const gr_copy_args *a)
{
    vk_ctx *c = bctx;
    if (!a || !a->dst || !a->src) return gr_fail(GR_ERR_INVALID, "vulkan: copy_strided: NULL tensor");
    if (a->ndim < 0 || a->ndim > 6) return gr_fail(GR_ERR_SHAPE, "vulkan: copy_strided: ndim %d", a->ndim);
    gr_dtype dt = a->dst->dtype, st = a->src->dtype;
    const char *defs = NULL;
    if (dt == st) {
        switch (dt) {
        case GR_F32: defs = a->accumulate ? "E32 ACC_F32" : "E32"; break;
        case GR_I32: defs = a->accumulate ? "E32 ACC_I32" : "E32"; break;
        case GR_F16: defs = a->accumulate ? "E16 ACC_F16" : "E16"; break;
        case GR_BF16: defs = a->accumulate ? "E16 ACC_BF16" : "E16"; break;
        case GR_U8: defs = a->accumulate ? "E8 ACC_U8" : "E8"; break;
        case GR_I64: defs = a->accumulate ? "E64 ACC_I64" : "E64"; break;
        case GR_F64: defs = a->accumulate ? "E64 ACC_F64" : "E64"; break;
        default: break;
        }
    } else if (dt == GR_F32 && st == GR_F16) {
        defs = "SRC_F16";
    } else if (dt == GR_F32 && st == GR_BF16) {
        defs = "SRC_BF16";
    }
    if (!defs)
        return gr_fail(GR_ERR_UNSUPPORTED, "vulkan: copy_strided: %s -> %s (%s) is not supported",
                       gr_dtype_name(st), gr_dtype_name(dt), tn(a->dst));
    if ((dt == GR_F16 || dt == GR_BF16 || st == GR_F16 || st == GR_BF16) && !c->feat.fp16_storage)
        return need_16bit(c, "copy_strided", st == GR_F16 || st == GR_BF16 ? a->src : a->dst);
    if (dt == GR_U8 && !c->feat.int8_storage)
        return gr_fail(GR_ERR_UNSUPPORTED, "vulkan: copy_strided: U8 needs storageBuffer8BitAccess on %s",
                       c->props.deviceName);
    if (dt == GR_F64 && a->accumulate && !c->feat.fp64)
        return gr_fail(GR_ERR_UNSUPPORTED, "vulkan: copy_strided: F64 accumulation needs shaderFloat64 on %s",
                       c->props.deviceName);
    for (int k = 0; k < a->ndim; k++)
        if (a->shape[k] < 0) return gr_fail(GR_ERR_SHAPE, "vulkan: copy_strided: negative extent in dim %d", k);
    copy_plan cp = {NULL, a, gr_dtype_size(dt), gr_dtype_size(st)};
    TRY(pipe(c, "copy_strided.comp", defs, wg_limit(c, 256), 2, &cp.pipe));
    int64_t shape[GR_MAX_DIMS];
    for (int k = 0; k < GR_MAX_DIMS; k++) shape[k] = k < a->ndim ? a->shape[k] : 1;
    /* The spans must lie inside the tensors (checked once for the whole box). */
    int64_t lo, hi, n = 1;
    for (int k = 0; k < a->ndim; k++) n *= shape[k];
    if (n == 0) return GR_OK;
    span_of(a->ndim, shape, a->dst_strides, 0, &lo, &hi);
    if (lo < 0 || (VkDeviceSize)(a->dst->offset + (size_t)(hi + 1) * cp.dsz) > a->dst->buffer->size)
        return gr_fail(GR_ERR_SHAPE, "vulkan: copy_strided: the index space leaves dst %s", tn(a->dst));
    span_of(a->ndim, shape, a->src_strides, 0, &lo, &hi);
    if (lo < 0 || (VkDeviceSize)(a->src->offset + (size_t)(hi + 1) * cp.ssz) > a->src->buffer->size)
        return gr_fail(GR_ERR_SHAPE, "vulkan: copy_strided: the index space leaves src %s", tn(a->src));
    return copy_box(c, &cp, shape, 0, 0);
}

/* ------------------------------------------------------------ cross entropy ---- */

static gr_status ce_common(vk_ctx *c, int bwd, const gr_tensor *out, const gr_tensor *logits, const gr_tensor *labels,
                           int32_t ignore_index, float scale)
{
    const char *k = bwd ? "cross_entropy_backward" : "cross_entropy";
    TRY(need_dtype(k, "logits", logits, GR_F32));
    TRY(need_dtype(k, "labels", labels, GR_I32));
    TRY(need_dtype(k, bwd ? "dlogits" : "loss", out, GR_F32));
    if (logits->ndim != 2) return gr_fail(GR_ERR_SHAPE, "vulkan: %s: logits %s must be [n, v]", k, tn(logits));
    int64_t n = logits->shape[0], v = logits->shape[1];
    TRY(need_numel(k, "labels", labels, n));
    TRY(need_numel(k, bwd ? "dlogits" : "loss", out, bwd ? n * v : n));
    if (n == 0) return GR_OK;
    gr_tensor et = err_tensor(c);
    vk_pipeline *p;
    TRY(pipe(c, "cross_entropy.comp", bwd ? "BWD" : "", row_wg(c, v), 4, &p));
    vk_rowjob j;
    job_init(&j, k, p, n);
    j.groups_per_row = 1;
    job_arg(&j, out, bwd ? v : 1, 1);
    job_arg(&j, logits, v, 0);
    job_arg(&j, labels, 1, 0);
    job_arg(&j, &et, 0, 1);
    job_param(&j, (uint32_t)v);
    job_param(&j, (uint32_t)ignore_index);
    job_param(&j, fbits(scale));
    job_param(&j, 1);
    return index_checked(c, vk_run_rows(c, &j));
}

gr_status vk_cross_entropy(void *bctx, const gr_tensor *loss, const gr_tensor *logits, const gr_tensor *labels,
                           int32_t ignore_index)
{
    return ce_common(bctx, 0, loss, logits, labels, ignore_index, 1.0f);
}

gr_status vk_cross_entropy_backward(void *bctx, const gr_tensor *dlogits, const gr_tensor *logits,
                                    const gr_tensor *labels, int32_t ignore_index, float scale)
{
    return ce_common(bctx, 1, dlogits, logits, labels, ignore_index, scale);
}
