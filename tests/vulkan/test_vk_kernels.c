/* Kernel-level tests of the Vulkan backend: every kernel of backend.h against the host
 * reference (backends/vulkan/vk_ref.c, plain loops in double), on random data, with tensors
 * at unaligned offsets. Run twice by ctest: with the device's own limits and with
 * GRAFT_VULKAN_MAX_RANGE=4096, which forces every splitting path (row chunks, table windows,
 * matmul blocks, copy boxes) on small tensors. Also checks: error reports for bad ids and
 * labels, the fully masked softmax row, the SPIR-V cache (second start compiles nothing),
 * debug_check. Exits 77 (ctest SKIP) only when no Vulkan device exists. */
#include <dlfcn.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "graft/plugin.h"
#include "vk_internal.h"

static const gr_backend_iface *B;
static void *ctx;
static int failures, checks;
static unsigned rng = 12345;

static float frand(void)
{
    rng = rng * 1664525u + 1013904223u;
    return (float)((rng >> 8) & 0xffff) / 32768.0f - 1.0f;
}

typedef struct tp {
    gr_tensor d, h;
    gr_buffer *buf;
    void *mem;
} tp;

static int aligned16; /* mk() places the next tensors at a 16-byte offset */

static tp *mk(gr_dtype dt, int ndim, const int64_t *shape, float lo, float hi)
{
    tp *t = calloc(1, sizeof *t);
    t->d.dtype = t->h.dtype = dt;
    t->d.ndim = t->h.ndim = ndim;
    for (int i = 0; i < ndim; i++) t->d.shape[i] = t->h.shape[i] = shape[i];
    size_t es = gr_dtype_size(dt), bytes = gr_nbytes(&t->d);
    size_t off = aligned16 ? 16 : es * (size_t)(1 + (rng >> 4) % 7); /* deliberately not 16-byte aligned */
    t->mem = calloc(1, bytes + 8);
    for (int64_t i = 0; i < gr_numel(&t->d); i++) {
        float v = lo + (hi - lo) * (frand() + 1) / 2;
        if (dt == GR_F32) ((float *)t->mem)[i] = v;
        else if (dt == GR_F16) ((uint16_t *)t->mem)[i] = gr_f32_to_f16(v);
        else if (dt == GR_BF16) ((uint16_t *)t->mem)[i] = gr_f32_to_bf16(v);
        else if (dt == GR_I32) ((int32_t *)t->mem)[i] = (int32_t)floorf(v);
        else if (dt == GR_I64) ((int64_t *)t->mem)[i] = (int64_t)floorf(v);
        else if (dt == GR_U8) ((uint8_t *)t->mem)[i] = (uint8_t)v;
    }
    if (B->buffer_alloc(ctx, off + bytes + 64, &t->buf) != GR_OK) {
        fprintf(stderr, "alloc failed: %s\n", gr_last_error());
        exit(1);
    }
    t->d.buffer = t->buf;
    t->d.offset = off;
    t->h.buffer = (gr_buffer *)t->mem;
    t->h.offset = 0;
    /* Garbage around and inside the device copy: kernels must overwrite, not accumulate. */
    char *junk = malloc(off + bytes + 64);
    memset(junk, 0x7f, off + bytes + 64);
    B->upload(ctx, t->buf, 0, junk, off + bytes + 64);
    free(junk);
    B->upload(ctx, t->buf, off, t->mem, bytes);
    return t;
}

static void set(tp *t, const void *data)
{
    memcpy(t->mem, data, gr_nbytes(&t->h));
    B->upload(ctx, t->buf, t->d.offset, data, gr_nbytes(&t->h));
}

static void drop(tp *t)
{
    if (!t) return;
    B->buffer_free(ctx, t->buf);
    free(t->mem);
    free(t);
}

static void ok(gr_status s, const char *what)
{
    if (s != GR_OK) {
        fprintf(stderr, "FAIL %s: %s\n", what, gr_last_error());
        failures++;
    }
}

/* Device result vs reference: |d - h| <= atol * max(1, max|h|) + rtol * |h|; other dtypes exact. */
static void cmp(const char *what, tp *t, double rtol, double atol)
{
    size_t bytes = gr_nbytes(&t->d);
    void *dev = malloc(bytes + 4);
    gr_status s = B->download(ctx, t->buf, t->d.offset, dev, bytes);
    checks++;
    if (s != GR_OK) {
        fprintf(stderr, "FAIL %s: download: %s\n", what, gr_last_error());
        failures++;
        free(dev);
        return;
    }
    if (t->d.dtype == GR_F32 && (rtol > 0 || atol > 0)) {
        const float *a = dev, *h = t->mem;
        size_t n = bytes / 4;
        double maxabs = 1, worst = 0;
        for (size_t i = 0; i < n; i++) if (isfinite(h[i]) && fabs(h[i]) > maxabs) maxabs = fabs(h[i]);
        for (size_t i = 0; i < n; i++) {
            double e = fabs((double)a[i] - h[i]);
            if (!(e <= atol * maxabs + rtol * fabs(h[i])) && !(isnan(a[i]) && isnan(h[i])) && a[i] != h[i]) {
                fprintf(stderr, "FAIL %s: element %zu: device %.9g, reference %.9g\n", what, i, a[i], h[i]);
                failures++;
                free(dev);
                return;
            }
            if (e > worst) worst = e;
        }
        printf("ok   %-44s %8zu elements, max abs error %.3g\n", what, n, worst);
    } else {
        if (memcmp(dev, t->mem, bytes) != 0) {
            size_t i = 0;
            while (((char *)dev)[i] == ((char *)t->mem)[i]) i++;
            fprintf(stderr, "FAIL %s: byte %zu differs (%s)\n", what, i, gr_dtype_name(t->d.dtype));
            failures++;
        } else {
            printf("ok   %-44s %8zu bytes identical\n", what, bytes);
        }
    }
    free(dev);
}

#define R vk_ref_iface
#define S(...) ((const int64_t[]){__VA_ARGS__})

static void test_matmul(int ta, int tb, int64_t m, int64_t n, int64_t k, int64_t batch, float beta, int bcast_b)
{
    int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, ldc = n + 2;
    int64_t ra = ta ? k : m, rb = tb ? n : k;
    int64_t sa = ra * lda + 5, sb = bcast_b ? 0 : rb * ldb + 2, sc = m * ldc + 1;
    tp *A = mk(GR_F32, 1, S(sa * batch), -1, 1), *Bt = mk(GR_F32, 1, S(sb * batch + rb * ldb), -1, 1);
    tp *C = mk(GR_F32, 1, S(sc * batch), -1, 1);
    gr_matmul_args d = {&A->d, &Bt->d, &C->d, ta, tb, m, n, k, batch, lda, ldb, ldc, sa, sb, sc, 0.75f, beta};
    gr_matmul_args h = d;
    h.a = &A->h, h.b = &Bt->h, h.c = &C->h;
    char name[96];
    snprintf(name, sizeof name, "matmul %s%s %lldx%lldx%lld b%lld beta %g%s", ta ? "T" : "N", tb ? "T" : "N",
             (long long)m, (long long)n, (long long)k, (long long)batch, beta, bcast_b ? " bcast" : "");
    ok(B->matmul(ctx, &d), name);
    R.matmul(NULL, &h);
    cmp(name, C, 1e-5, 1e-5 * sqrt((double)k + 1));
    drop(A), drop(Bt), drop(C);
}

static void test_elementwise(int64_t n)
{
    tp *x = mk(GR_F32, 2, S(n / 8, 8), -6, 6), *y = mk(GR_F32, 2, S(n / 8, 8), -2, 2);
    tp *o = mk(GR_F32, 2, S(n / 8, 8), -1, 1);
    for (int op = 0; op < GR_ACT_COUNT; op++) {
        char name[64];
        snprintf(name, sizeof name, "unary op %d", op);
        ok(B->unary(ctx, (gr_unary_op)op, &o->d, &x->d), name);
        R.unary(NULL, (gr_unary_op)op, &o->h, &x->h);
        cmp(name, o, 2e-6, 1e-6);
        snprintf(name, sizeof name, "unary_backward op %d", op);
        ok(B->unary_backward(ctx, (gr_unary_op)op, &o->d, &x->d, &y->d), name);
        R.unary_backward(NULL, (gr_unary_op)op, &o->h, &x->h, &y->h);
        cmp(name, o, 1e-5, 2e-6);
    }
    set(o, o->mem); /* identical inputs: the comparison is then exact */
    ok(B->scale(ctx, &o->d, &x->d, -0.5f, 1), "scale acc");
    R.scale(NULL, &o->h, &x->h, -0.5f, 1);
    cmp("scale accumulate", o, 0, 0);
    ok(B->scale(ctx, &o->d, &y->d, 3.0f, 0), "scale");
    R.scale(NULL, &o->h, &y->h, 3.0f, 0);
    cmp("scale", o, 0, 0);
    ok(B->fill(ctx, &o->d, 2.5f), "fill");
    R.fill(NULL, &o->h, 2.5f);
    cmp("fill F32", o, 0, 0);
    tp *xi = mk(GR_I32, 1, S(n), -100, 100);
    ok(B->fill(ctx, &xi->d, -7.0f), "fill I32");
    R.fill(NULL, &xi->h, -7.0f);
    cmp("fill I32", xi, 0, 0);
    /* AdamW: exactly the formula, elementwise. */
    tp *p = mk(GR_F32, 1, S(n), -1, 1), *g = mk(GR_F32, 1, S(n), -1, 1), *m = mk(GR_F32, 1, S(n), -0.1f, 0.1f);
    tp *v = mk(GR_F32, 1, S(n), 0, 0.01f);
    gr_adamw_args ad = {&p->d, &g->d, &m->d, &v->d, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 0.271f, 0.00399f, 0.5f};
    gr_adamw_args ah = ad;
    ah.param = &p->h, ah.grad = &g->h, ah.m = &m->h, ah.v = &v->h;
    for (int step = 0; step < 3; step++) {
        ok(B->adamw(ctx, &ad), "adamw");
        R.adamw(NULL, &ah);
    }
    cmp("adamw param", p, 1e-6, 1e-7);
    cmp("adamw m", m, 1e-6, 1e-8);
    cmp("adamw v", v, 1e-6, 1e-9);
    tp *ss = mk(GR_F32, 1, S(1), 0, 1);
    ok(B->sum_squares(ctx, &ss->d, &x->d), "sum_squares");
    R.sum_squares(NULL, &ss->h, &x->h);
    cmp("sum_squares", ss, 1e-6, 0);
    drop(x), drop(y), drop(o), drop(xi), drop(p), drop(g), drop(m), drop(v), drop(ss);
}

static void test_binary(void)
{
    struct { int nd; int64_t o[4], a[4], b[4]; } cases[] = {
        {3, {4, 33, 20}, {4, 33, 20}, {4, 33, 20}},
        {3, {4, 33, 20}, {4, 33, 20}, {1, 1, 20}},
        {3, {4, 33, 20}, {1, 33, 1}, {4, 1, 20}},
        {4, {2, 3, 17, 9}, {2, 1, 17, 9}, {1, 3, 1, 1}},
        {2, {1, 500}, {1, 500}, {1, 1}},
        {1, {1000}, {1000}, {1}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int op = 0; op < 3; op++) {
            tp *o = mk(GR_F32, cases[c].nd, cases[c].o, 0, 1), *a = mk(GR_F32, cases[c].nd, cases[c].a, -2, 2);
            tp *b = mk(GR_F32, cases[c].nd, cases[c].b, -2, 2);
            char name[64];
            snprintf(name, sizeof name, "binary case %zu op %d", c, op);
            ok(B->binary(ctx, (gr_binary_op)op, &o->d, &a->d, &b->d), name);
            R.binary(NULL, (gr_binary_op)op, &o->h, &a->h, &b->h);
            cmp(name, o, 0, 0);
            drop(o), drop(a), drop(b);
        }
    struct { int nd; int64_t i[4], o[4]; } red[] = {
        {2, {300, 40}, {1, 40}}, {2, {300, 40}, {300, 1}}, {3, {6, 50, 7}, {1, 50, 1}},
        {3, {6, 50, 7}, {6, 1, 7}}, {3, {6, 50, 7}, {1, 1, 1}}, {2, {5, 4}, {5, 4}},
    };
    for (size_t c = 0; c < sizeof red / sizeof red[0]; c++) {
        tp *in = mk(GR_F32, red[c].nd, red[c].i, -1, 1), *o = mk(GR_F32, red[c].nd, red[c].o, 0, 1);
        char name[64];
        snprintf(name, sizeof name, "reduce_to case %zu", c);
        ok(B->reduce_to(ctx, &o->d, &in->d), name);
        R.reduce_to(NULL, &o->h, &in->h);
        cmp(name, o, 1e-6, 1e-6);
        drop(in), drop(o);
    }
}

static void test_rows(int64_t rows, int64_t d)
{
    tp *x = mk(GR_F32, 3, S(2, rows / 2, d), -3, 3), *w = mk(GR_F32, 1, S(d), -1, 1), *b = mk(GR_F32, 1, S(d), -1, 1);
    tp *o = mk(GR_F32, 3, S(2, rows / 2, d), 0, 1), *mean = mk(GR_F32, 1, S(rows), 0, 1);
    tp *rstd = mk(GR_F32, 1, S(rows), 0, 1), *dy = mk(GR_F32, 3, S(2, rows / 2, d), -1, 1);
    tp *dx = mk(GR_F32, 3, S(2, rows / 2, d), 0, 1), *dw = mk(GR_F32, 1, S(d), 0, 1), *db = mk(GR_F32, 1, S(d), 0, 1);
    char name[80];
    for (int withw = 0; withw < 2; withw++) {
        const gr_tensor *wd = withw ? &w->d : NULL, *bd = withw ? &b->d : NULL;
        const gr_tensor *wh = withw ? &w->h : NULL, *bh = withw ? &b->h : NULL;
        snprintf(name, sizeof name, "layernorm %lldx%lld w=%d", (long long)rows, (long long)d, withw);
        ok(B->layernorm(ctx, &o->d, &mean->d, &rstd->d, &x->d, wd, bd, 1e-5f), name);
        R.layernorm(NULL, &o->h, &mean->h, &rstd->h, &x->h, wh, bh, 1e-5f);
        cmp(name, o, 1e-5, 1e-5);
        cmp("  mean", mean, 1e-5, 1e-6);
        cmp("  rstd", rstd, 1e-5, 1e-6);
        snprintf(name, sizeof name, "layernorm_backward w=%d", withw);
        ok(B->layernorm_backward(ctx, &dx->d, &dw->d, &db->d, &dy->d, &x->d, wd, &mean->d, &rstd->d), name);
        R.layernorm_backward(NULL, &dx->h, &dw->h, &db->h, &dy->h, &x->h, wh, &mean->h, &rstd->h);
        cmp(name, dx, 1e-4, 1e-5);
        cmp("  dw", dw, 1e-4, 1e-5);
        cmp("  db", db, 1e-4, 1e-5);
        snprintf(name, sizeof name, "rmsnorm %lldx%lld w=%d", (long long)rows, (long long)d, withw);
        ok(B->rmsnorm(ctx, &o->d, &rstd->d, &x->d, wd, 1e-6f), name);
        R.rmsnorm(NULL, &o->h, &rstd->h, &x->h, wh, 1e-6f);
        cmp(name, o, 1e-5, 1e-5);
        cmp("  rstd", rstd, 1e-5, 1e-6);
        snprintf(name, sizeof name, "rmsnorm_backward w=%d", withw);
        ok(B->rmsnorm_backward(ctx, &dx->d, &dw->d, &dy->d, &x->d, wd, &rstd->d), name);
        R.rmsnorm_backward(NULL, &dx->h, &dw->h, &dy->h, &x->h, wh, &rstd->h);
        cmp(name, dx, 1e-4, 1e-5);
        cmp("  dw", dw, 1e-4, 1e-5);
    }
    /* layernorm_backward with only some outputs wanted */
    ok(B->layernorm_backward(ctx, NULL, NULL, &db->d, &dy->d, &x->d, &w->d, &mean->d, &rstd->d), "ln bwd db only");
    R.layernorm_backward(NULL, NULL, NULL, &db->h, &dy->h, &x->h, &w->h, &mean->h, &rstd->h);
    cmp("layernorm_backward db only", db, 1e-4, 1e-5);

    /* softmax with masked entries and one fully masked row */
    float *xm = x->mem;
    for (int64_t j = 0; j < d; j += 3) xm[j] = -FLT_MAX;
    for (int64_t j = 0; j < d; j++) xm[d + j] = -FLT_MAX;
    set(x, xm);
    snprintf(name, sizeof name, "softmax %lldx%lld (masked)", (long long)rows, (long long)d);
    ok(B->softmax(ctx, &o->d, &x->d), name);
    R.softmax(NULL, &o->h, &x->h);
    cmp(name, o, 1e-5, 1e-7);
    float row1[4096];
    B->download(ctx, o->buf, o->d.offset + (size_t)d * 4, row1, (size_t)d * 4);
    int uniform = 1;
    for (int64_t j = 0; j < d; j++) uniform &= fabsf(row1[j] - 1.0f / (float)d) < 1e-6f;
    checks++;
    if (!uniform) {
        fprintf(stderr, "FAIL softmax: fully masked row is not uniform (%g)\n", row1[0]);
        failures++;
    } else {
        printf("ok   %-44s uniform 1/%lld\n", "softmax fully masked row", (long long)d);
    }
    ok(B->softmax_backward(ctx, &dx->d, &o->d, &dy->d), "softmax_backward");
    R.softmax_backward(NULL, &dx->h, &o->h, &dy->h);
    cmp("softmax_backward", dx, 1e-5, 1e-6);

    /* cross entropy with an ignored row */
    int64_t n = rows, v = d;
    tp *logits = mk(GR_F32, 2, S(n, v), -4, 4), *labels = mk(GR_I32, 1, S(n), 0, (float)v - 0.01f);
    tp *loss = mk(GR_F32, 1, S(n), 0, 1), *dl = mk(GR_F32, 2, S(n, v), 0, 1);
    int32_t *lab = labels->mem;
    lab[1] = -100;
    set(labels, lab);
    ok(B->cross_entropy(ctx, &loss->d, &logits->d, &labels->d, -100), "cross_entropy");
    R.cross_entropy(NULL, &loss->h, &logits->h, &labels->h, -100);
    cmp("cross_entropy", loss, 1e-5, 1e-6);
    ok(B->cross_entropy_backward(ctx, &dl->d, &logits->d, &labels->d, -100, 0.25f), "cross_entropy_backward");
    R.cross_entropy_backward(NULL, &dl->h, &logits->h, &labels->h, -100, 0.25f);
    cmp("cross_entropy_backward", dl, 1e-5, 1e-7);
    drop(x), drop(w), drop(b), drop(o), drop(mean), drop(rstd), drop(dy), drop(dx), drop(dw), drop(db);
    drop(logits), drop(labels), drop(loss), drop(dl);
}

static void test_tables(int64_t rows, int64_t dim, int64_t n)
{
    gr_dtype dts[3] = {GR_F32, GR_F16, GR_BF16};
    tp *ids = mk(GR_I32, 2, S(2, n / 2), 0, (float)rows - 0.01f);
    tp *out = mk(GR_F32, 3, S(2, n / 2, dim), 0, 1);
    for (int t = 0; t < 3; t++) {
        tp *table = mk(dts[t], 2, S(rows, dim), -2, 2);
        char name[64];
        snprintf(name, sizeof name, "gather_rows %s %lldx%lld n=%lld", gr_dtype_name(dts[t]), (long long)rows,
                 (long long)dim, (long long)n);
        ok(B->gather_rows(ctx, &out->d, &table->d, &ids->d), name);
        R.gather_rows(NULL, &out->h, &table->h, &ids->h);
        cmp(name, out, 0, 0);
        drop(table);
    }
    tp *dt = mk(GR_F32, 2, S(rows, dim), -1, 1), *dout = mk(GR_F32, 2, S(n, dim), -1, 1);
    int32_t *im = ids->mem;
    im[0] = im[3] = im[5]; /* repeated ids accumulate */
    im[2] = 7;              /* skipped */
    set(ids, im);
    ok(B->scatter_add_rows(ctx, &dt->d, &ids->d, &dout->d, 7), "scatter_add_rows");
    R.scatter_add_rows(NULL, &dt->h, &ids->h, &dout->h, 7);
    cmp("scatter_add_rows (same order: exact)", dt, 0, 0);
    drop(ids), drop(out), drop(dt), drop(dout);
}

static void test_rope(void)
{
    int64_t Bn = 2, T = 5, H = 3, D = 16;
    for (int rot = 8; rot <= 16; rot += 8)
        for (int inv = 0; inv < 2; inv++) {
            tp *x = mk(GR_F32, 4, S(Bn, T, H, D), -1, 1), *o = mk(GR_F32, 4, S(Bn, T, H, D), 0, 1);
            tp *c = mk(GR_F32, 3, S(Bn, T, rot / 2), -1, 1), *s = mk(GR_F32, 3, S(Bn, T, rot / 2), -1, 1);
            char name[64];
            snprintf(name, sizeof name, "rope rot %d inverse %d", rot, inv);
            ok(B->rope(ctx, &o->d, &x->d, &c->d, &s->d, rot, inv), name);
            R.rope(NULL, &o->h, &x->h, &c->h, &s->h, rot, inv);
            cmp(name, o, 1e-6, 1e-7);
            /* in place: out aliases x */
            ok(B->rope(ctx, &x->d, &x->d, &c->d, &s->d, rot, inv), "rope in place");
            R.rope(NULL, &x->h, &x->h, &c->h, &s->h, rot, inv);
            cmp("rope in place", x, 1e-6, 1e-7);
            drop(x), drop(o), drop(c), drop(s);
        }
}

static void test_copy_convert(void)
{
    /* permute [4, 6, 10] -> [10, 4, 6] with accumulate, in each dtype family */
    gr_dtype dts[] = {GR_F32, GR_I32, GR_F16, GR_BF16, GR_U8, GR_I64};
    for (size_t t = 0; t < sizeof dts / sizeof dts[0]; t++)
        for (int acc = 0; acc < 2; acc++) {
            tp *src = mk(dts[t], 3, S(4, 6, 10), 0, 50), *dst = mk(dts[t], 3, S(10, 4, 6), 0, 50);
            gr_copy_args d = {&dst->d, &src->d, 3, {4, 6, 10}, {6, 1, 24}, {60, 10, 1}, acc};
            gr_copy_args h = d;
            h.dst = &dst->h, h.src = &src->h;
            char name[64];
            snprintf(name, sizeof name, "copy_strided permute %s acc %d", gr_dtype_name(dts[t]), acc);
            ok(B->copy_strided(ctx, &d), name);
            R.copy_strided(NULL, &h);
            cmp(name, dst, 0, 0);
            drop(src), drop(dst);
        }
    gr_dtype cv[] = {GR_F16, GR_BF16};
    for (int t = 0; t < 2; t++) {
        /* slice columns 3..9 of a [20, 12] half table into F32, accumulating */
        tp *src = mk(cv[t], 2, S(20, 12), -3, 3), *dst = mk(GR_F32, 2, S(20, 7), -1, 1);
        gr_copy_args d = {&dst->d, &src->d, 2, {20, 7}, {7, 1}, {12, 1}, 1};
        d.src = &src->d;
        tp shifted = *src;
        shifted.d.offset += 3 * 2;
        shifted.h.offset += 3 * 2;
        d.src = &shifted.d;
        gr_copy_args h = d;
        h.dst = &dst->h, h.src = &shifted.h;
        char name[64];
        snprintf(name, sizeof name, "copy_strided slice %s->F32 acc", gr_dtype_name(cv[t]));
        ok(B->copy_strided(ctx, &d), name);
        R.copy_strided(NULL, &h);
        cmp(name, dst, 0, 0);
        drop(src), drop(dst);
    }
    struct { gr_dtype from, to; } conv[] = {{GR_F32, GR_F16}, {GR_F32, GR_BF16}, {GR_F16, GR_F32}, {GR_BF16, GR_F32},
                                            {GR_F16, GR_BF16}, {GR_BF16, GR_F16}, {GR_I64, GR_I32}, {GR_F32, GR_F32}};
    for (size_t i = 0; i < sizeof conv / sizeof conv[0]; i++) {
        tp *in = mk(conv[i].from, 2, S(33, 31), -70000, 70000), *out = mk(conv[i].to, 2, S(33, 31), 0, 1);
        if (conv[i].from == GR_F32) {
            /* Rounding ties, subnormals, overflow and NaN for the narrowing paths. */
            float *f = in->mem;
            const float special[] = {1.0009765625f, 1.00048828125f, 6e-8f, 3e-5f, -2.9e-8f, 65519.0f, 65520.0f, 1e30f,
                                     NAN, -INFINITY, 0.0f, -0.0f, 1.00390625f, 1.0078125f};
            for (size_t s = 0; s < sizeof special / sizeof special[0]; s++) f[s] = special[s];
            for (int64_t j = 14; j < 33 * 31; j++) f[j] = f[j] * (float)pow(10.0, (double)(j % 13) - 8);
            set(in, f);
        }
        char name[64];
        snprintf(name, sizeof name, "convert %s -> %s", gr_dtype_name(conv[i].from), gr_dtype_name(conv[i].to));
        ok(B->convert(ctx, &out->d, &in->d), name);
        R.convert(NULL, &out->h, &in->h);
        cmp(name, out, 0, 0);
        drop(in), drop(out);
    }
}

static void expect_error(gr_status s, const char *what, const char *needle)
{
    if (s == GR_OK) s = B->synchronize(ctx);
    checks++;
    if (s == GR_OK || !strstr(gr_last_error(), needle)) {
        fprintf(stderr, "FAIL %s: expected an error containing '%s', got '%s'\n", what, needle,
                s == GR_OK ? "success" : gr_last_error());
        failures++;
    } else {
        printf("ok   %-44s graft: %s\n", what, gr_last_error());
    }
    gr_clear_error();
}

static void test_errors(void)
{
    tp *table = mk(GR_F32, 2, S(10, 4), 0, 1), *ids = mk(GR_I32, 1, S(3), 0, 9.9f), *out = mk(GR_F32, 2, S(3, 4), 0, 1);
    int32_t bad[3] = {1, 12, 2};
    set(ids, bad);
    expect_error(B->gather_rows(ctx, &out->d, &table->d, &ids->d), "gather_rows bad id", "id 12 at position 1");
    bad[1] = -3;
    set(ids, bad);
    expect_error(B->scatter_add_rows(ctx, &table->d, &ids->d, &out->d, -1), "scatter_add_rows bad id", "id -3");
    tp *logits = mk(GR_F32, 2, S(3, 5), 0, 1), *loss = mk(GR_F32, 1, S(3), 0, 1);
    int32_t lab[3] = {0, 4, 5};
    set(ids, lab);
    expect_error(B->cross_entropy(ctx, &loss->d, &logits->d, &ids->d, -100), "cross_entropy bad label",
                 "label 5 at position 2");
    expect_error(B->binary(ctx, GR_BIN_ADD, &out->d, &table->d, &out->d), "binary shape mismatch", "broadcast");
    /* After an error the backend keeps working (the scatter did add its valid rows). */
    set(table, table->mem);
    int32_t good[3] = {0, 1, 2};
    set(ids, good);
    ok(B->gather_rows(ctx, &out->d, &table->d, &ids->d), "gather after error");
    R.gather_rows(NULL, &out->h, &table->h, &ids->h);
    cmp("gather_rows after an error", out, 0, 0);
    drop(table), drop(ids), drop(out), drop(logits), drop(loss);
}

static int open_backend(const char *cache, int debug)
{
    gr_backend_options opt = {sizeof opt, 0, getenv("GRAFT_VULKAN_DEVICE") ? getenv("GRAFT_VULKAN_DEVICE") : "",
                              0, cache, debug};
    gr_status s = B->create(&opt, &ctx);
    if (s != GR_OK) {
        if (s == GR_ERR_UNSUPPORTED) {
            printf("SKIP: no Vulkan device: %s\n", gr_last_error());
            return 77;
        }
        fprintf(stderr, "FAIL create: %s\n", gr_last_error());
        return 1;
    }
    return 0;
}

/* The layouts of model weights and activations: leading dimensions and batch strides that are
 * multiples of 4, 16-byte aligned tensors. On a CPU device these run the subgroup kernel
 * (matmul_sg.comp); m, n, k that are not multiples of 4 and tiny sizes test its edges. */
static void test_matmul_aligned(int ta, int tb, int64_t m, int64_t n, int64_t k, int64_t batch, float beta,
                                int bcast_b)
{
    int64_t lda = ((ta ? m : k) + 3) / 4 * 4 + 4, ldb = ((tb ? k : n) + 3) / 4 * 4, ldc = n + 1;
    int64_t ra = ta ? k : m, rb = tb ? n : k;
    int64_t sa = ra * lda + 8, sb = bcast_b ? 0 : rb * ldb, sc = m * ldc + 3;
    aligned16 = 1;
    tp *A = mk(GR_F32, 1, S(sa * batch), -1, 1), *Bt = mk(GR_F32, 1, S(sb * batch + rb * ldb), -1, 1);
    tp *C = mk(GR_F32, 1, S(sc * batch), -1, 1);
    aligned16 = 0;
    gr_matmul_args d = {&A->d, &Bt->d, &C->d, ta, tb, m, n, k, batch, lda, ldb, ldc, sa, sb, sc, 1.25f, beta};
    gr_matmul_args h = d;
    h.a = &A->h, h.b = &Bt->h, h.c = &C->h;
    char name[96];
    snprintf(name, sizeof name, "matmul/4 %s%s %lldx%lldx%lld b%lld beta %g%s", ta ? "T" : "N", tb ? "T" : "N",
             (long long)m, (long long)n, (long long)k, (long long)batch, beta, bcast_b ? " bcast" : "");
    ok(B->matmul(ctx, &d), name);
    R.matmul(NULL, &h);
    cmp(name, C, 1e-5, 1e-5 * sqrt((double)k + 1));
    drop(A), drop(Bt), drop(C);
}

int main(int argc, char **argv)
{
    /* --probe: exit 0 when a Vulkan device exists, 77 (SKIP) when not. */
    int probe = argc > 1 && strcmp(argv[1], "--probe") == 0;
    const char *plugin = argc > 1 && !probe ? argv[1] : GRAFT_VK_PLUGIN;
    void *h = dlopen(plugin, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "FAIL: dlopen %s: %s\n", plugin, dlerror());
        return 1;
    }
    gr_plugin_entry_fn entry = (gr_plugin_entry_fn)dlsym(h, GR_PLUGIN_ENTRY_SYMBOL);
    const gr_plugin_descriptor *desc = entry ? entry() : NULL;
    if (!desc || desc->kind != GR_PLUGIN_BACKEND || strcmp(desc->name, "vulkan") != 0) {
        fprintf(stderr, "FAIL: %s is not the vulkan backend plugin\n", plugin);
        return 1;
    }
    B = desc->iface;
    char cache[] = "/tmp/graft-vk-test-XXXXXX";
    if (!mkdtemp(cache)) return 1;
    int rc = open_backend(cache, 0);
    if (rc || probe) {
        if (!rc) B->destroy(ctx);
        rmdir(cache);
        return rc;
    }
    char info[4096];
    B->describe(ctx, info, sizeof info);
    printf("%s\n", info);
    const char *mr = getenv("GRAFT_VULKAN_MAX_RANGE");
    printf("window: %s\n", mr ? mr : "device limit");

    test_matmul(0, 0, 70, 45, 33, 1, 0.0f, 0);
    test_matmul(1, 0, 64, 64, 64, 1, 0.5f, 0);
    test_matmul(0, 1, 130, 20, 17, 3, 1.0f, 0);
    test_matmul(1, 1, 5, 200, 9, 2, 0.0f, 1);
    test_matmul(0, 1, 100, 150, 70, 1, 0.0f, 0);
    test_matmul(0, 0, 3, 4, 0, 2, 0.5f, 0);
    for (int t = 0; t < 4; t++) {
        int ta = t >> 1, tb = t & 1;
        test_matmul_aligned(ta, tb, 96, 128, 64, 1, 0.0f, 0);
        test_matmul_aligned(ta, tb, 37, 70, 23, 2, 0.5f, 0);
        test_matmul_aligned(ta, tb, 1, 3, 5, 1, 0.0f, 0);
        test_matmul_aligned(ta, tb, 18, 1, 2, 3, 1.0f, 1);
        test_matmul_aligned(ta, tb, 5, 66, 1, 1, 0.0f, 0);
    }
    /* On a CPU device the aligned products ran the subgroup kernel (unless it is switched off). */
    {
        char d[4096];
        B->describe(ctx, d, sizeof d);
        const char *force = getenv("GRAFT_VULKAN_MATMUL");
        int want = strstr(d, "(CPU") && !(force && strcmp(force, "tiled") == 0);
        const char *line = strstr(d, "matmul:");
        checks++;
        if (!line || (want && strstr(line, "subgroup kernel 0 ")) || (!want && !strstr(line, "subgroup kernel 0 "))) {
            fprintf(stderr, "FAIL matmul kernel choice: %.80s\n", line ? line : "(no matmul line)");
            failures++;
        } else {
            printf("ok   %-44s %.70s\n", "matmul kernel choice", line);
        }
    }
    test_elementwise(4000);
    test_binary();
    test_rows(64, 100);
    test_rows(6, 1000);
    test_tables(300, 24, 40);
    test_rope();
    test_copy_convert();
    test_errors();

    /* Second start with the same cache directory compiles nothing. */
    B->destroy(ctx);
    if ((rc = open_backend(cache, 0))) return rc;
    test_matmul(0, 0, 70, 45, 33, 1, 0.0f, 0);
    test_elementwise(800);
    B->describe(ctx, info, sizeof info);
    checks++;
    if (!strstr(info, "shaders: 0 compiled")) {
        fprintf(stderr, "FAIL: the second start compiled shaders: %s\n", strstr(info, "shaders:"));
        failures++;
    } else {
        printf("ok   %-44s %.60s\n", "SPIR-V cache reused", strstr(info, "shaders:"));
    }
    B->destroy(ctx);

    /* debug_check: ops pass through the host comparison. */
    if ((rc = open_backend(cache, 1))) return rc;
    test_matmul(0, 1, 20, 30, 40, 1, 0.0f, 0);
    test_matmul_aligned(1, 0, 20, 30, 40, 1, 0.0f, 0);
    test_rows(8, 64);
    test_tables(50, 8, 10);
    B->destroy(ctx);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", cache);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", cache);

    printf("%d checks, %d failures\n", checks, failures);
    dlclose(h);
    return failures ? 1 : 0;
}
