/* matmul: picks a kernel, then covers the problem with dispatches whose operand windows fit
 * the device's limits.
 *
 * Kernels:
 *  - matmul_sg.comp, on CPU devices (lavapipe): register blocking across a subgroup, operands
 *    read as RGBA32F uniform texel buffers, no shared memory. lavapipe compiles every storage-
 *    buffer or shared-memory load into a loop over the SIMD lanes (~100 cycles a lane), which
 *    made the tiled kernel run at 0.3 GFLOP/s; texel fetches are vectorised gathers. Used when
 *    the operands are 16-byte aligned with leading dimensions that are multiples of 4 (every
 *    weight and activation of the models), else the tiled kernel runs.
 *  - matmul.comp: tiled through shared memory, tile shape from the device's limits (the
 *    portable path, and the one for GPUs). A cooperative-matrix kernel slots in beside it
 *    once the shader compiler supports GL_KHR_cooperative_matrix (Debian 12's glslang does
 *    not) and the device advertises it.
 * GRAFT_VULKAN_MATMUL=tiled forces the tiled kernel (the tests run both).
 *
 * Splitting: when the whole (batched) problem fits one window per operand, one dispatch does
 * everything (grid z = batch). Otherwise each batch item is cut into blocks of m, n and k
 * (halving whichever dimension keeps an operand's span too large); blocks along k after the
 * first accumulate into C with beta = 1. An LM head [V, d] larger than 128 MiB is then read
 * in slices of rows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vk_internal.h"

gr_status vk_dispatch3(vk_ctx *c, vk_pipeline *p, const vk_bind *binds, int nbind, const uint32_t *push,
                       int npush, uint32_t gx, uint32_t gy, uint32_t gz);

typedef struct mm_variant {
    const char *name;
    uint32_t bm, bn, bk, tm, tn;
} mm_variant;

static mm_variant choose_variant(const vk_ctx *c, int64_t m, int64_t n)
{
    mm_variant big = {"tiled64", 64, 64, 16, 4, 4};    /* 256 invocations, 8 KiB shared */
    mm_variant small = {"tiled32", 32, 32, 16, 2, 2};  /* 256 invocations, 4 KiB shared */
    mm_variant tiny = {"tiled32x4", 32, 32, 16, 4, 4}; /* 64 invocations: minimal devices */
    if (c->props.limits.maxComputeWorkGroupInvocations < 256 || c->props.limits.maxComputeWorkGroupSize[0] < 256)
        return tiny;
    /* Small outputs: smaller tiles give more workgroups to spread over the device. */
    if (m * n < 64 * 64 * 16) return small;
    return big;
}

static VkDeviceSize span(int64_t rows, int64_t cols, int64_t ld)
{
    return rows <= 0 || cols <= 0 ? 0 : (VkDeviceSize)((rows - 1) * ld + cols);
}

static const char *tname(const gr_tensor *t) { return t && t->name ? t->name : "tensor"; }

typedef struct mm_ctx {
    vk_ctx *c;
    const gr_matmul_args *a;
    vk_pipeline *pipe;
    mm_variant v;
} mm_ctx;

/* One dispatch: C block (i0, j0) of size mc x nc, k range [p0, p0 + kc), batch items
 * [b0, b0 + nb) (nb > 1 only when whole matrices are covered). */
static gr_status mm_block(mm_ctx *x, int64_t b0, int64_t nb, int64_t i0, int64_t j0, int64_t p0, int64_t mc,
                          int64_t nc, int64_t kc, float beta)
{
    const gr_matmul_args *a = x->a;
    int64_t ao = b0 * a->stride_a + (a->trans_a ? p0 * a->lda + i0 : i0 * a->lda + p0);
    int64_t bo = b0 * a->stride_b + (a->trans_b ? j0 * a->ldb + p0 : p0 * a->ldb + j0);
    int64_t co = b0 * a->stride_c + i0 * a->ldc + j0;
    VkDeviceSize as = (VkDeviceSize)((nb - 1) * a->stride_a) +
                      (a->trans_a ? span(kc, mc, a->lda) : span(mc, kc, a->lda));
    VkDeviceSize bs = (VkDeviceSize)((nb - 1) * a->stride_b) +
                      (a->trans_b ? span(nc, kc, a->ldb) : span(kc, nc, a->ldb));
    VkDeviceSize cs = (VkDeviceSize)((nb - 1) * a->stride_c) + span(mc, nc, a->ldc);
    uint32_t push[VK_PUSH_WORDS] = {0};
    vk_bind b[3];
    gr_status s = vk_window(x->c, a->c, (VkDeviceSize)co * 4, (VkDeviceSize)(co + (int64_t)cs) * 4, 4, 1, &b[0], &push[0]);
    /* k == 0: A and B are not read; bind C in their place (a valid, non-empty window). */
    if (s == GR_OK && kc > 0)
        s = vk_window(x->c, a->a, (VkDeviceSize)ao * 4, (VkDeviceSize)(ao + (int64_t)as) * 4, 4, 0, &b[1], &push[1]);
    else b[1] = b[0], b[1].write = 0;
    if (s == GR_OK && kc > 0)
        s = vk_window(x->c, a->b, (VkDeviceSize)bo * 4, (VkDeviceSize)(bo + (int64_t)bs) * 4, 4, 0, &b[2], &push[2]);
    else b[2] = b[0], b[2].write = 0;
    if (s != GR_OK) return gr_fail_context(s, "vulkan: matmul");
    float alpha = a->alpha;
    push[8] = (uint32_t)mc;
    push[9] = (uint32_t)nc;
    push[10] = (uint32_t)kc;
    push[11] = (uint32_t)a->lda;
    push[12] = (uint32_t)a->ldb;
    push[13] = (uint32_t)a->ldc;
    push[14] = (uint32_t)a->stride_a;
    push[15] = (uint32_t)a->stride_b;
    push[16] = (uint32_t)a->stride_c;
    memcpy(&push[17], &alpha, 4);
    memcpy(&push[18], &beta, 4);
    uint32_t gx = (uint32_t)((nc + x->v.bn - 1) / x->v.bn), gy = (uint32_t)((mc + x->v.bm - 1) / x->v.bm);
    return vk_dispatch3(x->c, x->pipe, b, 3, push, 19, gx, gy, (uint32_t)nb);
}

/* ---- the subgroup kernel ---- */

/* Subgroups per workgroup and rows per invocation: 2 x 8 lanes x 4 columns by 16 rows on
 * lavapipe; the accumulators (16 vec4) stay in registers. */
enum { SG_NSG = 2, SG_ROWS = 16 };

/* A texel-buffer binding of `elems` floats of tensor t from element `first`, or 0 when the
 * operand does not meet the kernel's alignment rules. */
static int texel_window(const vk_ctx *c, const gr_tensor *t, int64_t first, int64_t elems, vk_bind *b,
                        uint32_t *base)
{
    VkDeviceSize align = c->props.limits.minTexelBufferOffsetAlignment;
    if (align < 16) align = 16;
    VkDeviceSize abs_lo = t->offset + (VkDeviceSize)first * 4, abs_hi = abs_lo + (VkDeviceSize)elems * 4;
    if ((t->buffer->off + abs_lo) % 16) return 0;
    /* A view starts at an aligned offset of the VkBuffer (the block), whole texels. */
    VkDeviceSize blk_lo = (t->buffer->off + abs_lo) / align * align;
    /* Relative to the gr_buffer; when the view starts before it (alignment > the buffer's),
     * the unsigned wrap-around cancels in off + lo (still inside the block). */
    VkDeviceSize lo = blk_lo - t->buffer->off;
    VkDeviceSize hi = (abs_hi + 15) / 16 * 16;
    if (hi > t->buffer->size || (hi - lo) / 16 > c->props.limits.maxTexelBufferElements)
        return 0;
    *b = (vk_bind){t->buffer, lo, hi, 0};
    *base = (uint32_t)((abs_lo - lo) / 16);
    return 1;
}

/* Runs the whole product with matmul_sg.comp when it applies; *done = 0 otherwise. */
static gr_status mm_subgroup(vk_ctx *c, const gr_matmul_args *a, int *done)
{
    *done = 0;
    const char *force = getenv("GRAFT_VULKAN_MATMUL");
    if (force && strcmp(force, "tiled") == 0) return GR_OK;
    uint32_t sg = (uint32_t)c->feat.subgroup_size;
    if (!c->feat.cpu || !c->feat.subgroup_shuffle || !c->feat.texel_rgba32f || sg < 4 || sg % 4 || SG_ROWS % sg ||
        sg * SG_NSG > c->props.limits.maxComputeWorkGroupSize[0])
        return GR_OK;
    if (a->k == 0 || a->lda % 4 || a->ldb % 4 || (a->batch > 1 && (a->stride_a % 4 || a->stride_b % 4)))
        return GR_OK;
    /* Each view reaches the end of its last row's leading dimension. */
    int64_t ra = a->trans_a ? a->k : a->m, rb = a->trans_b ? a->n : a->k;
    vk_bind b[3];
    uint32_t push[VK_PUSH_WORDS] = {0};
    if (!texel_window(c, a->a, 0, (a->batch - 1) * a->stride_a + ra * a->lda, &b[1], &push[1]) ||
        !texel_window(c, a->b, 0, (a->batch - 1) * a->stride_b + rb * a->ldb, &b[2], &push[2]))
        return GR_OK;
    VkDeviceSize need_c = (VkDeviceSize)((a->batch - 1) * a->stride_c) + span(a->m, a->n, a->ldc);
    uint64_t cols = (uint64_t)SG_NSG * sg * 4;
    uint64_t gx = ((uint64_t)a->n + cols - 1) / cols, gy = ((uint64_t)a->m + SG_ROWS - 1) / SG_ROWS;
    if (need_c > vk_budget(c) / 4 || gx > c->props.limits.maxComputeWorkGroupCount[0] ||
        gy > c->props.limits.maxComputeWorkGroupCount[1])
        return GR_OK;
    gr_status s = vk_window(c, a->c, 0, need_c * 4, 4, 1, &b[0], &push[0]);
    if (s != GR_OK) return gr_fail_context(s, "vulkan: matmul");
    char defs[32];
    snprintf(defs, sizeof defs, "%s%s", a->trans_a ? "TRANS_A " : "", a->trans_b ? "TRANS_B" : "");
    uint32_t spec[4] = {SG_NSG * sg, sg, SG_ROWS, SG_NSG};
    vk_pipeline *pipe;
    if ((s = vk_pipeline_get_texel(c, "matmul_sg.comp", defs, spec, 4, 3, 6u, &pipe)) != GR_OK) return s;
    float alpha = a->alpha, beta = a->beta;
    push[8] = (uint32_t)a->m;
    push[9] = (uint32_t)a->n;
    push[10] = (uint32_t)a->k;
    push[11] = (uint32_t)a->lda;
    push[12] = (uint32_t)a->ldb;
    push[13] = (uint32_t)a->ldc;
    push[14] = (uint32_t)a->stride_a;
    push[15] = (uint32_t)a->stride_b;
    push[16] = (uint32_t)a->stride_c;
    memcpy(&push[17], &alpha, 4);
    memcpy(&push[18], &beta, 4);
    uint32_t maxz = c->props.limits.maxComputeWorkGroupCount[2];
    uint32_t b0 = push[0], a0 = push[1], bb0 = push[2];
    for (int64_t z0 = 0; z0 < a->batch; z0 += maxz) {
        int64_t nb = a->batch - z0 < maxz ? a->batch - z0 : maxz;
        push[0] = b0 + (uint32_t)(z0 * a->stride_c);
        push[1] = a0 + (uint32_t)(z0 * a->stride_a / 4);
        push[2] = bb0 + (uint32_t)(z0 * a->stride_b / 4);
        if ((s = vk_dispatch3(c, pipe, b, 3, push, 19, (uint32_t)gx, (uint32_t)gy, (uint32_t)nb)) != GR_OK) return s;
    }
    *done = 1;
    c->mm_subgroup++;
    return GR_OK;
}

gr_status vk_matmul(void *bctx, const gr_matmul_args *a)
{
    vk_ctx *c = bctx;
    if (!a || !a->a || !a->b || !a->c) return gr_fail(GR_ERR_INVALID, "vulkan: matmul: NULL operand");
    if (a->a->dtype != GR_F32 || a->b->dtype != GR_F32 || a->c->dtype != GR_F32)
        return gr_fail(GR_ERR_SHAPE, "vulkan: matmul: %s, %s and %s must be F32", tname(a->a), tname(a->b), tname(a->c));
    if (a->m < 0 || a->n < 0 || a->k < 0 || a->batch < 0 || a->stride_a < 0 || a->stride_b < 0 || a->stride_c < 0)
        return gr_fail(GR_ERR_SHAPE, "vulkan: matmul: negative size or stride");
    if (a->m == 0 || a->n == 0 || a->batch == 0) return GR_OK;
    int64_t ra = a->trans_a ? a->k : a->m, ca = a->trans_a ? a->m : a->k;
    int64_t rb = a->trans_b ? a->n : a->k, cb = a->trans_b ? a->k : a->n;
    if ((ca > 0 && a->lda < ca) || (cb > 0 && a->ldb < cb) || a->ldc < a->n)
        return gr_fail(GR_ERR_SHAPE, "vulkan: matmul: leading dimension too small (lda %lld, ldb %lld, ldc %lld)",
                       (long long)a->lda, (long long)a->ldb, (long long)a->ldc);
    /* Every operand must lie inside its tensor's buffer. */
    VkDeviceSize need_a = (VkDeviceSize)((a->batch - 1) * a->stride_a) + span(ra, ca, a->lda);
    VkDeviceSize need_b = (VkDeviceSize)((a->batch - 1) * a->stride_b) + span(rb, cb, a->ldb);
    VkDeviceSize need_c = (VkDeviceSize)((a->batch - 1) * a->stride_c) + span(a->m, a->n, a->ldc);
    if (a->k > 0 && (a->a->offset + need_a * 4 > a->a->buffer->size || a->b->offset + need_b * 4 > a->b->buffer->size))
        return gr_fail(GR_ERR_SHAPE, "vulkan: matmul: %s or %s is smaller than the product addresses", tname(a->a),
                       tname(a->b));
    if (a->c->offset + need_c * 4 > a->c->buffer->size)
        return gr_fail(GR_ERR_SHAPE, "vulkan: matmul: %s is smaller than the product addresses", tname(a->c));

    int done;
    gr_status s = mm_subgroup(c, a, &done);
    if (s != GR_OK || done) return s;

    c->mm_tiled++;
    mm_ctx x = {c, a, NULL, choose_variant(c, a->m, a->n)};
    char defs[32];
    snprintf(defs, sizeof defs, "%s%s", a->trans_a ? "TRANS_A " : "", a->trans_b ? "TRANS_B" : "");
    uint32_t spec[6] = {(x.v.bm / x.v.tm) * (x.v.bn / x.v.tn), x.v.bm, x.v.bn, x.v.bk, x.v.tm, x.v.tn};
    s = vk_pipeline_get(c, "matmul.comp", defs, spec, 6, 3, &x.pipe);
    if (s != GR_OK) return s;

    VkDeviceSize budget = vk_budget(c) / 4; /* in elements */
    uint32_t maxz = c->props.limits.maxComputeWorkGroupCount[2];
    uint32_t maxx = c->props.limits.maxComputeWorkGroupCount[0], maxy = c->props.limits.maxComputeWorkGroupCount[1];
    int whole_fits = (a->k == 0 || (need_a <= budget && need_b <= budget)) && need_c <= budget &&
                     (a->n + x.v.bn - 1) / x.v.bn <= maxx && (a->m + x.v.bm - 1) / x.v.bm <= maxy;
    if (whole_fits) {
        for (int64_t b0 = 0; b0 < a->batch; b0 += maxz) {
            int64_t nb = a->batch - b0 < maxz ? a->batch - b0 : maxz;
            if ((s = mm_block(&x, b0, nb, 0, 0, 0, a->m, a->n, a->k, a->beta)) != GR_OK) return s;
        }
        return GR_OK;
    }
    /* Block sizes: halve the dimension that makes an operand's span too large. */
    int64_t mc = a->m, nc = a->n, kc = a->k > 0 ? a->k : 1;
    for (int guard = 0; guard < 200; guard++) {
        VkDeviceSize as = a->trans_a ? span(kc, mc, a->lda) : span(mc, kc, a->lda);
        VkDeviceSize bs = a->trans_b ? span(nc, kc, a->ldb) : span(kc, nc, a->ldb);
        VkDeviceSize cs = span(mc, nc, a->ldc);
        int grid_ok = (nc + x.v.bn - 1) / x.v.bn <= maxx && (mc + x.v.bm - 1) / x.v.bm <= maxy;
        if ((a->k == 0 || (as <= budget && bs <= budget)) && cs <= budget && grid_ok) break;
        int64_t *dim = NULL;
        if (!grid_ok) dim = (nc + x.v.bn - 1) / x.v.bn > maxx ? &nc : &mc;
        else if (cs > budget) dim = mc > 1 ? &mc : &nc;
        else if (a->k > 0 && as > budget) dim = a->trans_a ? (kc > 1 ? &kc : &mc) : (mc > 1 ? &mc : &kc);
        else dim = a->trans_b ? (nc > 1 ? &nc : &kc) : (kc > 1 ? &kc : &nc);
        if (*dim <= 1)
            return gr_fail(GR_ERR_UNSUPPORTED, "vulkan: matmul: %s/%s/%s cannot be split to fit the device's "
                           "storage-buffer window", tname(a->a), tname(a->b), tname(a->c));
        *dim = (*dim + 1) / 2;
    }
    for (int64_t bi = 0; bi < a->batch; bi++)
        for (int64_t i0 = 0; i0 < a->m; i0 += mc)
            for (int64_t j0 = 0; j0 < a->n; j0 += nc) {
                int64_t mm = a->m - i0 < mc ? a->m - i0 : mc, nn = a->n - j0 < nc ? a->n - j0 : nc;
                if (a->k == 0) {
                    if ((s = mm_block(&x, bi, 1, i0, j0, 0, mm, nn, 0, a->beta)) != GR_OK) return s;
                    continue;
                }
                for (int64_t p0 = 0; p0 < a->k; p0 += kc) {
                    int64_t kk = a->k - p0 < kc ? a->k - p0 : kc;
                    if ((s = mm_block(&x, bi, 1, i0, j0, p0, mm, nn, kk, p0 == 0 ? a->beta : 1.0f)) != GR_OK)
                        return s;
                }
            }
    return GR_OK;
}
