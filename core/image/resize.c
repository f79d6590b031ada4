/* PIL-exact resizing of RGB images (Pillow's Resample.c and Geometry.c semantics).
 *
 * Pillow resamples 8-bit images in two separable passes (horizontal first) with filter weights
 * computed in double, normalised to sum 1, then quantised to 22-bit fixed point; each pass
 * rounds and clips to uint8. When downscaling, the filter is stretched by the scale factor
 * ("antialiasing": support = filter support * scale), so every source pixel contributes.
 * HF's CLIP/BLIP processors resize through PIL in uint8, so reproducing this arithmetic to the
 * bit is what makes graft's pixels identical to HF's. NEAREST goes through Pillow's affine
 * scaling path instead, with its accumulated double coordinates. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image/image.h"

#define PRECISION_BITS (32 - 8 - 2)

typedef struct filter {
    double (*fn)(double x);
    double support;
} filter;

static double box_filter(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; }

static double bilinear_filter(double x)
{
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

static double hamming_filter(double x)
{
    if (x < 0.0) x = -x;
    if (x == 0.0) return 1.0;
    if (x >= 1.0) return 0.0;
    x = x * M_PI;
    /* Pillow writes these constants as float literals; keep their float values. */
    return sin(x) / x * (0.54f + 0.46f * cos(x));
}

static double bicubic_filter(double x)
{
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static double sinc_filter(double x)
{
    if (x == 0.0) return 1.0;
    x = x * M_PI;
    return sin(x) / x;
}

static double lanczos_filter(double x)
{
    if (-3.0 <= x && x < 3.0) return sinc_filter(x) * sinc_filter(x / 3);
    return 0.0;
}

/* Weights for one axis: for each output index, `bounds` = (first source index, count) and
 * ksize fixed-point weights. Returns ksize, or 0 when out of memory. */
static int precompute_coeffs(int in_size, float in0, float in1, int out_size, const filter *f,
                             int **boundsp, int32_t **kkp)
{
    double scale = (double)(in1 - in0) / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = f->support * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double *kk = malloc((size_t)out_size * (size_t)ksize * sizeof(double));
    int *bounds = malloc((size_t)out_size * 2 * sizeof(int));
    int32_t *kq = malloc((size_t)out_size * (size_t)ksize * sizeof(int32_t));
    if (!kk || !bounds || !kq) {
        free(kk);
        free(bounds);
        free(kq);
        return 0;
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = in0 + (xx + 0.5) * scale;
        double ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double *k = &kk[(size_t)xx * ksize];
        int x;
        for (x = 0; x < xmax; x++) {
            double w = f->fn((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        for (; x < ksize; x++) k[x] = 0;
        bounds[xx * 2 + 0] = xmin;
        bounds[xx * 2 + 1] = xmax;
    }
    for (size_t i = 0; i < (size_t)out_size * (size_t)ksize; i++)
        kq[i] = (int32_t)(kk[i] < 0 ? -0.5 + kk[i] * (1 << PRECISION_BITS)
                                    : 0.5 + kk[i] * (1 << PRECISION_BITS));
    free(kk);
    *boundsp = bounds;
    *kkp = kq;
    return ksize;
}

static inline uint8_t clip8(int v)
{
    if (v >= (1 << PRECISION_BITS << 8)) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> PRECISION_BITS);
}

/* out: out_w x rows; source rows start at `offset`. */
static void resample_horizontal(uint8_t *out, int out_w, int rows, const gr_image *in, int offset,
                                int ksize, const int *bounds, const int32_t *kk)
{
    for (int yy = 0; yy < rows; yy++) {
        const uint8_t *src = in->rgb + (size_t)(yy + offset) * in->width * 3;
        uint8_t *dst = out + (size_t)yy * out_w * 3;
        for (int xx = 0; xx < out_w; xx++) {
            int xmin = bounds[xx * 2], xmax = bounds[xx * 2 + 1];
            const int32_t *k = &kk[(size_t)xx * ksize];
            int s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int x = 0; x < xmax; x++) {
                const uint8_t *p = src + (size_t)(x + xmin) * 3;
                s0 += p[0] * k[x];
                s1 += p[1] * k[x];
                s2 += p[2] * k[x];
            }
            dst[xx * 3 + 0] = clip8(s0);
            dst[xx * 3 + 1] = clip8(s1);
            dst[xx * 3 + 2] = clip8(s2);
        }
    }
}

static void resample_vertical(uint8_t *out, int out_h, const uint8_t *in, int w, int ksize,
                              const int *bounds, const int32_t *kk)
{
    size_t stride = (size_t)w * 3;
    for (int yy = 0; yy < out_h; yy++) {
        const int32_t *k = &kk[(size_t)yy * ksize];
        int ymin = bounds[yy * 2], ymax = bounds[yy * 2 + 1];
        uint8_t *dst = out + (size_t)yy * stride;
        for (size_t xc = 0; xc < stride; xc++) {
            int s = 1 << (PRECISION_BITS - 1);
            const uint8_t *p = in + (size_t)ymin * stride + xc;
            for (int y = 0; y < ymax; y++) s += p[(size_t)y * stride] * k[y];
            dst[xc] = clip8(s);
        }
    }
}

static gr_status resize_nearest(const gr_image *in, const float box[4], gr_image *out)
{
    int w = out->width, h = out->height;
    double a0 = (double)(box[2] - box[0]) / w, a2 = box[0];
    double a4 = (double)(box[3] - box[1]) / h, a5 = box[1];
    int *xin = malloc((size_t)w * sizeof(int));
    if (!xin) return gr_fail(GR_ERR_NOMEM, "resize: out of memory");
    int xmin = w, xmax = 0;
    double xo = a2 + a0 * 0.5;
    for (int x = 0; x < w; x++) {
        int xi = xo < 0.0 ? -1 : (int)xo;
        if (xi >= 0 && xi < in->width) {
            xmax = x + 1;
            if (x < xmin) xmin = x;
            xin[x] = xi;
        }
        xo += a0;
    }
    memset(out->rgb, 0, (size_t)w * h * 3);
    double yo = a5 + a4 * 0.5;
    for (int y = 0; y < h; y++) {
        int yi = yo < 0.0 ? -1 : (int)yo;
        if (yi >= 0 && yi < in->height) {
            const uint8_t *src = in->rgb + (size_t)yi * in->width * 3;
            uint8_t *dst = out->rgb + (size_t)y * w * 3;
            for (int x = xmin; x < xmax; x++) memcpy(dst + x * 3, src + (size_t)xin[x] * 3, 3);
        }
        yo += a4;
    }
    free(xin);
    return GR_OK;
}

gr_status gr_image_resize(const gr_image *in, int width, int height, gr_resample resample,
                          const float boxp[4], gr_image *out)
{
    static const filter filters[] = {
        [GR_RESAMPLE_LANCZOS] = {lanczos_filter, 3.0}, [GR_RESAMPLE_BILINEAR] = {bilinear_filter, 1.0},
        [GR_RESAMPLE_BICUBIC] = {bicubic_filter, 2.0}, [GR_RESAMPLE_BOX] = {box_filter, 0.5},
        [GR_RESAMPLE_HAMMING] = {hamming_filter, 1.0},
    };
    out->rgb = NULL;
    if (width < 1 || height < 1 || width > GR_IMAGE_MAX_SIDE || height > GR_IMAGE_MAX_SIDE)
        return gr_fail(GR_ERR_INVALID, "resize: bad output size %dx%d", width, height);
    if ((int)resample < 0 || (int)resample > GR_RESAMPLE_HAMMING)
        return gr_fail(GR_ERR_INVALID, "resize: unknown resample filter %d", (int)resample);
    float box[4] = {0, 0, (float)in->width, (float)in->height};
    if (boxp) memcpy(box, boxp, sizeof box);
    if (box[0] < 0 || box[1] < 0 || box[2] > in->width || box[3] > in->height || box[2] - box[0] < 0 ||
        box[3] - box[1] < 0)
        return gr_fail(GR_ERR_INVALID, "resize: box is outside the %dx%d image", in->width, in->height);
    gr_status st = gr_image_alloc(out, width, height);
    if (st) return st;
    if (in->width == width && in->height == height && box[0] == 0 && box[1] == 0 && box[2] == width &&
        box[3] == height) {
        memcpy(out->rgb, in->rgb, (size_t)width * height * 3);
        return GR_OK;
    }
    if (resample == GR_RESAMPLE_NEAREST) {
        st = resize_nearest(in, box, out);
        if (st) gr_image_free(out);
        return st;
    }
    const filter *f = &filters[resample];
    int need_h = width != in->width || box[0] != 0 || box[2] != width;
    int need_v = height != in->height || box[1] != 0 || box[3] != height;
    int *bh = NULL, *bv = NULL;
    int32_t *kh = NULL, *kv = NULL;
    uint8_t *tmp = NULL;
    int ksh = precompute_coeffs(in->width, box[0], box[2], width, f, &bh, &kh);
    int ksv = ksh ? precompute_coeffs(in->height, box[1], box[3], height, f, &bv, &kv) : 0;
    if (!ksh || !ksv) goto oom;
    int yfirst = bv[0], ylast = bv[height * 2 - 2] + bv[height * 2 - 1];
    if (need_h) {
        for (int i = 0; i < height; i++) bv[i * 2] -= yfirst;
        int rows = ylast - yfirst;
        uint8_t *dst = need_v ? (tmp = malloc((size_t)width * rows * 3)) : out->rgb;
        if (!dst) goto oom;
        resample_horizontal(dst, width, rows, in, yfirst, ksh, bh, kh);
        if (need_v) resample_vertical(out->rgb, height, tmp, width, ksv, bv, kv);
    } else {
        resample_vertical(out->rgb, height, in->rgb, width, ksv, bv, kv);
    }
    free(tmp);
    free(bh);
    free(bv);
    free(kh);
    free(kv);
    return GR_OK;
oom:
    free(tmp);
    free(bh);
    free(bv);
    free(kh);
    free(kv);
    gr_image_free(out);
    return gr_fail(GR_ERR_NOMEM, "resize: out of memory for %dx%d", width, height);
}
