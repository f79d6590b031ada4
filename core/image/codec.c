/* PNG and JPEG decoding (libpng, libjpeg-turbo) to 8-bit RGB, and PNG encoding.
 *
 * Both libraries report fatal errors by calling back; we longjmp out of them, free what was
 * allocated and return a one-line message naming the file. Everything the error path frees
 * lives in a heap context (not in locals modified after setjmp), so no `volatile` games.
 * Sizes are checked before any pixel buffer is allocated (decompression bombs), and libpng's
 * own chunk limits stay on. Colour conversion follows PIL's Image.convert("RGB"), which is
 * what HF and LAVIS apply after Image.open. */
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#include "base/fsutil.h"
#include "image/image.h"

gr_status gr_image_alloc(gr_image *img, int width, int height)
{
    img->width = width;
    img->height = height;
    img->rgb = NULL;
    if (width < 1 || height < 1 || width > GR_IMAGE_MAX_SIDE || height > GR_IMAGE_MAX_SIDE ||
        (long long)width * height > GR_IMAGE_MAX_PIXELS)
        return gr_fail(GR_ERR_INVALID, "image size %dx%d is out of range", width, height);
    img->rgb = malloc((size_t)width * (size_t)height * 3);
    if (!img->rgb) return gr_fail(GR_ERR_NOMEM, "image %dx%d: out of memory", width, height);
    return GR_OK;
}

void gr_image_free(gr_image *img)
{
    if (!img) return;
    free(img->rgb);
    img->rgb = NULL;
    img->width = img->height = 0;
}

static gr_status check_size(const char *name, long long w, long long h)
{
    if (w < 1 || h < 1) return gr_fail(GR_ERR_FORMAT, "%s: image has no pixels (%lldx%lld)", name, w, h);
    if (w > GR_IMAGE_MAX_SIDE || h > GR_IMAGE_MAX_SIDE || w * h > GR_IMAGE_MAX_PIXELS)
        return gr_fail(GR_ERR_FORMAT, "%s: image of %lldx%lld pixels is larger than graft accepts", name, w, h);
    return GR_OK;
}

/* ---- PNG ---------------------------------------------------------------------------------- */

typedef struct png_ctx {
    const uint8_t *data;
    size_t len, pos;
    jmp_buf jb;
    char msg[200];
    uint8_t **rows;
    gr_image img;
} png_ctx;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    longjmp(c->jb, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg; /* ancillary-chunk problems: PIL ignores them too */
}

static void png_on_read(png_structp png, png_bytep out, size_t n)
{
    png_ctx *c = png_get_io_ptr(png);
    if (n > c->len - c->pos) png_error(png, "file is truncated");
    memcpy(out, c->data + c->pos, n);
    c->pos += n;
}

static gr_status decode_png(const char *name, const uint8_t *data, size_t len, gr_image *out)
{
    png_ctx *c = calloc(1, sizeof *c);
    if (!c) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", name);
    c->data = data;
    c->len = len;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, c, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    gr_status st = GR_OK;
    if (!info) {
        st = gr_fail(GR_ERR_NOMEM, "%s: out of memory", name);
        goto done;
    }
    if (setjmp(c->jb)) {
        st = gr_fail(GR_ERR_FORMAT, "%s: corrupt PNG: %s", name, c->msg);
        goto done;
    }
    png_set_read_fn(png, c, png_on_read);
    png_set_user_limits(png, GR_IMAGE_MAX_SIDE, GR_IMAGE_MAX_SIDE);
    png_read_info(png, info);
    png_uint_32 w, h;
    int depth, color, interlace;
    png_get_IHDR(png, info, &w, &h, &depth, &color, &interlace, NULL, NULL);
    if ((st = check_size(name, w, h))) goto done;
    /* PIL: 16-bit samples keep their high byte, palettes expand, alpha and tRNS are dropped
     * by convert("RGB"), grey is replicated. No gamma correction (PIL ignores gAMA). */
    if (depth == 16) png_set_strip_16(png);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if ((color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) && depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (color & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
    if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 3) {
        st = gr_fail(GR_ERR_FORMAT, "%s: unsupported PNG layout (color type %d, depth %d)", name, color, depth);
        goto done;
    }
    if ((st = gr_image_alloc(&c->img, (int)w, (int)h))) goto done;
    c->rows = malloc(h * sizeof *c->rows);
    if (!c->rows) {
        st = gr_fail(GR_ERR_NOMEM, "%s: out of memory", name);
        goto done;
    }
    for (png_uint_32 y = 0; y < h; y++) c->rows[y] = c->img.rgb + (size_t)y * w * 3;
    png_read_image(png, c->rows);
    *out = c->img;
    c->img.rgb = NULL;
done:
    png_destroy_read_struct(png ? &png : NULL, info ? &info : NULL, NULL);
    free(c->rows);
    gr_image_free(&c->img);
    free(c);
    return st;
}

typedef struct png_wbuf {
    uint8_t *data;
    size_t len, cap;
    int oom;
} png_wbuf;

static void png_on_write(png_structp png, png_bytep in, size_t n)
{
    png_wbuf *b = png_get_io_ptr(png);
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        uint8_t *p = realloc(b->data, cap);
        if (!p) {
            b->oom = 1;
            png_error(png, "out of memory");
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, in, n);
    b->len += n;
}

static void png_on_flush(png_structp png) { (void)png; }

typedef struct png_wctx {
    jmp_buf jb;
    char msg[200];
    png_wbuf buf;
    uint8_t **rows;
} png_wctx;

static void png_on_werror(png_structp png, png_const_charp msg)
{
    png_wctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    longjmp(c->jb, 1);
}

gr_status gr_image_encode_png(const gr_image *img, int compression, uint8_t **data, size_t *len)
{
    png_wctx *c = calloc(1, sizeof *c);
    if (!c) return gr_fail(GR_ERR_NOMEM, "png: out of memory");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, c, png_on_werror, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    gr_status st = GR_OK;
    if (!info) {
        st = gr_fail(GR_ERR_NOMEM, "png: out of memory");
        goto done;
    }
    c->rows = malloc((size_t)img->height * sizeof *c->rows);
    if (!c->rows) {
        st = gr_fail(GR_ERR_NOMEM, "png: out of memory");
        goto done;
    }
    for (int y = 0; y < img->height; y++) c->rows[y] = img->rgb + (size_t)y * img->width * 3;
    if (setjmp(c->jb)) {
        st = gr_fail(c->buf.oom ? GR_ERR_NOMEM : GR_ERR_INVALID, "png encoding failed: %s", c->msg);
        goto done;
    }
    png_set_write_fn(png, &c->buf, png_on_write, png_on_flush);
    png_set_compression_level(png, compression);
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    png_write_image(png, c->rows);
    png_write_end(png, NULL);
    *data = c->buf.data;
    *len = c->buf.len;
    c->buf.data = NULL;
done:
    png_destroy_write_struct(png ? &png : NULL, info ? &info : NULL);
    free(c->buf.data);
    free(c->rows);
    free(c);
    return st;
}

gr_status gr_image_write_png(const char *path, const gr_image *img, int compression)
{
    uint8_t *data;
    size_t len;
    gr_status st = gr_image_encode_png(img, compression, &data, &len);
    if (st) return gr_fail_context(st, "%s", path);
    st = gr_write_file_atomic(path, data, len);
    free(data);
    return st;
}

/* ---- JPEG --------------------------------------------------------------------------------- */

typedef struct jpeg_ctx {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
    int truncated;
    struct jpeg_decompress_struct cinfo;
    uint8_t *line; /* CMYK scanline */
    gr_image img;
} jpeg_ctx;

static void jpeg_on_error(j_common_ptr cinfo)
{
    jpeg_ctx *c = (jpeg_ctx *)cinfo->err;
    c->pub.format_message(cinfo, c->msg);
    longjmp(c->jb, 1);
}

static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    jpeg_ctx *c = (jpeg_ctx *)cinfo->err;
    /* libjpeg pads a truncated stream with an EOI and only warns; PIL refuses such files
     * ("image file is truncated"), and so do we. Other warnings (extraneous bytes) PIL accepts. */
    if (level < 0 && c->pub.msg_code == JWRN_JPEG_EOF) c->truncated = 1;
}

/* PIL's cmyk2rgb on Adobe ("CMYK;I", inverted) or plain CMYK samples. */
static inline uint8_t muldiv255(int a, int b)
{
    int t = a * b + 128;
    return (uint8_t)(((t >> 8) + t) >> 8);
}

static gr_status decode_jpeg(const char *name, const uint8_t *data, size_t len, gr_image *out)
{
    jpeg_ctx *c = calloc(1, sizeof *c);
    if (!c) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", name);
    gr_status st = GR_OK;
    c->cinfo.err = jpeg_std_error(&c->pub);
    c->pub.error_exit = jpeg_on_error;
    c->pub.emit_message = jpeg_on_message;
    if (setjmp(c->jb)) {
        st = gr_fail(GR_ERR_FORMAT, "%s: corrupt JPEG: %s", name, c->msg);
        goto done;
    }
    jpeg_create_decompress(&c->cinfo);
    jpeg_mem_src(&c->cinfo, data, (unsigned long)len);
    jpeg_read_header(&c->cinfo, TRUE);
    struct jpeg_decompress_struct *ci = &c->cinfo;
    if ((st = check_size(name, ci->image_width, ci->image_height))) goto done;
    int cmyk = ci->jpeg_color_space == JCS_CMYK || ci->jpeg_color_space == JCS_YCCK;
    int inverted = cmyk && ci->saw_Adobe_marker;
    ci->out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    ci->dct_method = JDCT_ISLOW; /* PIL's choice outside draft mode */
    jpeg_start_decompress(ci);
    if (ci->output_components != (cmyk ? 4 : 3)) {
        st = gr_fail(GR_ERR_FORMAT, "%s: unsupported JPEG with %d components", name, ci->output_components);
        goto done;
    }
    if ((st = gr_image_alloc(&c->img, (int)ci->output_width, (int)ci->output_height))) goto done;
    if (cmyk && !(c->line = malloc((size_t)ci->output_width * 4))) {
        st = gr_fail(GR_ERR_NOMEM, "%s: out of memory", name);
        goto done;
    }
    while (ci->output_scanline < ci->output_height) {
        uint8_t *row = c->img.rgb + (size_t)ci->output_scanline * ci->output_width * 3;
        JSAMPROW rp = cmyk ? c->line : row;
        if (jpeg_read_scanlines(ci, &rp, 1) != 1) break;
        if (cmyk) {
            for (JDIMENSION x = 0; x < ci->output_width; x++) {
                const uint8_t *p = c->line + x * 4;
                int cc = p[0], m = p[1], y = p[2], k = p[3];
                if (inverted) cc = 255 - cc, m = 255 - m, y = 255 - y, k = 255 - k;
                int nk = 255 - k;
                row[x * 3 + 0] = (uint8_t)(nk - muldiv255(cc, nk));
                row[x * 3 + 1] = (uint8_t)(nk - muldiv255(m, nk));
                row[x * 3 + 2] = (uint8_t)(nk - muldiv255(y, nk));
            }
        }
    }
    if (c->truncated || ci->output_scanline < ci->output_height) {
        st = gr_fail(GR_ERR_FORMAT, "%s: corrupt JPEG: file is truncated", name);
        goto done;
    }
    *out = c->img;
    c->img.rgb = NULL;
done:
    jpeg_destroy_decompress(&c->cinfo);
    free(c->line);
    gr_image_free(&c->img);
    free(c);
    return st;
}

/* ---- entry points ------------------------------------------------------------------------- */

gr_status gr_image_decode(const char *name, const void *bytes, size_t len, gr_image *out)
{
    const uint8_t *b = bytes;
    out->rgb = NULL;
    out->width = out->height = 0;
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len >= 8 && memcmp(b, png_sig, 8) == 0) return decode_png(name, b, len, out);
    if (len >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return decode_jpeg(name, b, len, out);
    if (len == 0) return gr_fail(GR_ERR_FORMAT, "%s: empty image file", name);
    return gr_fail(GR_ERR_FORMAT, "%s: not a PNG or JPEG image", name);
}

gr_status gr_image_load(const char *path, gr_image *out)
{
    char *data;
    size_t len;
    out->rgb = NULL;
    gr_status st = gr_read_file(path, &data, &len);
    if (st) return st;
    st = gr_image_decode(path, data, len, out);
    free(data);
    return st;
}
