/* HF image processors (CLIPImageProcessor, BlipImageProcessor, SiglipImageProcessor,
 * ViTImageProcessor) and LAVIS's train-time augmentation.
 *
 * HF's order: convert("RGB") -> resize (PIL, uint8) -> center crop -> rescale (float64
 * multiply, cast to float32) -> normalise ((x - mean) / std in float32) -> CHW. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/json_file.h"
#include "base/fsutil.h"
#include "data/rng.h"
#include "image/image.h"

static const float openai_clip_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float openai_clip_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

void gr_image_preproc_clip_defaults(gr_image_preproc *pp)
{
    memset(pp, 0, sizeof *pp);
    pp->do_convert_rgb = 1;
    pp->do_resize = 1;
    pp->resize_shortest_edge = 224;
    pp->resample = GR_RESAMPLE_BICUBIC;
    pp->do_center_crop = 1;
    pp->crop_height = pp->crop_width = 224;
    pp->do_rescale = 1;
    pp->rescale_factor = 1.0 / 255.0;
    pp->do_normalize = 1;
    memcpy(pp->image_mean, openai_clip_mean, sizeof pp->image_mean);
    memcpy(pp->image_std, openai_clip_std, sizeof pp->image_std);
}

void gr_image_augment_defaults(gr_image_augment *aug)
{
    aug->enabled = 1;
    aug->scale_min = 0.5;
    aug->scale_max = 1.0;
    aug->ratio_min = 3.0 / 4.0;
    aug->ratio_max = 4.0 / 3.0;
    aug->hflip = 1;
}

/* Defaults of each processor family, as in transformers' __init__ signatures. */
static int processor_defaults(const char *type, gr_image_preproc *pp)
{
    gr_image_preproc_clip_defaults(pp);
    if (!type || strncmp(type, "CLIP", 4) == 0 || strncmp(type, "ChineseCLIP", 11) == 0) return 1;
    if (strncmp(type, "Blip", 4) == 0) {
        pp->resize_shortest_edge = 0;
        pp->resize_height = pp->resize_width = 384;
        pp->do_center_crop = 0;
        return 1;
    }
    if (strncmp(type, "Siglip", 6) == 0 || strncmp(type, "ViT", 3) == 0) {
        pp->resize_shortest_edge = 0;
        pp->resize_height = pp->resize_width = 224;
        pp->do_center_crop = 0;
        pp->resample = type[0] == 'V' ? GR_RESAMPLE_BILINEAR : GR_RESAMPLE_BICUBIC;
        for (int c = 0; c < 3; c++) pp->image_mean[c] = pp->image_std[c] = 0.5f;
        return 1;
    }
    return 0;
}

static gr_status get_bool(const char *path, json_t *root, const char *key, int *out)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return GR_OK;
    if (!json_is_boolean(v)) return gr_fail(GR_ERR_FORMAT, "%s: \"%s\" must be true or false", path, key);
    *out = json_is_true(v);
    return GR_OK;
}

static gr_status get_positive_int(const char *path, const char *key, json_t *v, int *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > GR_IMAGE_MAX_SIDE)
        return gr_fail(GR_ERR_FORMAT, "%s: \"%s\" must be an integer in 1..%d", path, key, GR_IMAGE_MAX_SIDE);
    *out = (int)json_integer_value(v);
    return GR_OK;
}

/* "size"/"crop_size": an int (square, or shortest edge for CLIP's size) or a dict with
 * "shortest_edge" or "height"+"width". */
static gr_status get_size(const char *path, json_t *root, const char *key, int int_is_shortest,
                          int *shortest, int *h, int *w)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return GR_OK;
    char k[64];
    if (json_is_integer(v)) {
        int s;
        gr_status st = get_positive_int(path, key, v, &s);
        if (st) return st;
        if (int_is_shortest && shortest) *shortest = s, *h = *w = 0;
        else *h = *w = s, shortest ? (void)(*shortest = 0) : (void)0;
        return GR_OK;
    }
    if (!json_is_object(v)) return gr_fail(GR_ERR_FORMAT, "%s: \"%s\" must be an integer or an object", path, key);
    if (json_object_get(v, "longest_edge") || json_object_get(v, "max_size"))
        return gr_fail(GR_ERR_UNSUPPORTED, "%s: \"%s\": longest_edge/max_size resizing is not supported", path, key);
    json_t *se = json_object_get(v, "shortest_edge");
    if (se) {
        if (!shortest) return gr_fail(GR_ERR_FORMAT, "%s: \"%s\" needs height and width", path, key);
        snprintf(k, sizeof k, "%s.shortest_edge", key);
        *h = *w = 0;
        return get_positive_int(path, k, se, shortest);
    }
    json_t *hv = json_object_get(v, "height"), *wv = json_object_get(v, "width");
    if (!hv || !wv) return gr_fail(GR_ERR_FORMAT, "%s: \"%s\" needs shortest_edge or height and width", path, key);
    snprintf(k, sizeof k, "%s.height", key);
    gr_status st = get_positive_int(path, k, hv, h);
    if (st) return st;
    snprintf(k, sizeof k, "%s.width", key);
    if ((st = get_positive_int(path, k, wv, w))) return st;
    if (shortest) *shortest = 0;
    return GR_OK;
}

static gr_status get_triple(const char *path, json_t *root, const char *key, float out[3], int positive)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return GR_OK;
    if (json_is_number(v)) {
        for (int c = 0; c < 3; c++) out[c] = (float)json_number_value(v);
    } else {
        if (!json_is_array(v) || json_array_size(v) != 3)
            return gr_fail(GR_ERR_FORMAT, "%s: \"%s\" must be a list of 3 numbers", path, key);
        for (int c = 0; c < 3; c++) {
            json_t *e = json_array_get(v, (size_t)c);
            if (!json_is_number(e)) return gr_fail(GR_ERR_FORMAT, "%s: \"%s\"[%d] is not a number", path, key, c);
            out[c] = (float)json_number_value(e);
        }
    }
    for (int c = 0; c < 3; c++)
        if (!isfinite(out[c]) || (positive && !(out[c] > 0)))
            return gr_fail(GR_ERR_FORMAT, "%s: \"%s\"[%d] must be a finite%s number", path, key, c,
                           positive ? " positive" : "");
    return GR_OK;
}

static gr_status parse_config(const char *path, json_t *root, gr_image_preproc *pp)
{
    if (!json_is_object(root)) return gr_fail(GR_ERR_FORMAT, "%s: not a JSON object", path);
    const char *type = json_string_value(json_object_get(root, "image_processor_type"));
    if (!type) type = json_string_value(json_object_get(root, "feature_extractor_type"));
    if (!processor_defaults(type, pp))
        return gr_fail(GR_ERR_UNSUPPORTED, "%s: image_processor_type \"%s\" is not supported (CLIP, Blip, Siglip, ViT)",
                       path, type);
    gr_status st;
    if ((st = get_bool(path, root, "do_convert_rgb", &pp->do_convert_rgb)) ||
        (st = get_bool(path, root, "do_resize", &pp->do_resize)) ||
        (st = get_bool(path, root, "do_center_crop", &pp->do_center_crop)) ||
        (st = get_bool(path, root, "do_rescale", &pp->do_rescale)) ||
        (st = get_bool(path, root, "do_normalize", &pp->do_normalize)))
        return st;
    int clip_like = pp->resize_shortest_edge > 0;
    if ((st = get_size(path, root, "size", clip_like, &pp->resize_shortest_edge, &pp->resize_height,
                       &pp->resize_width)) ||
        (st = get_size(path, root, "crop_size", 0, NULL, &pp->crop_height, &pp->crop_width)))
        return st;
    json_t *v = json_object_get(root, "resample");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 5)
            return gr_fail(GR_ERR_FORMAT, "%s: \"resample\" must be a PIL filter code 0..5", path);
        pp->resample = (gr_resample)json_integer_value(v);
    }
    v = json_object_get(root, "rescale_factor");
    if (v && !json_is_null(v)) {
        if (!json_is_number(v) || !(json_number_value(v) > 0) || !isfinite(json_number_value(v)))
            return gr_fail(GR_ERR_FORMAT, "%s: \"rescale_factor\" must be a positive number", path);
        pp->rescale_factor = json_number_value(v);
    }
    if ((st = get_triple(path, root, "image_mean", pp->image_mean, 0)) ||
        (st = get_triple(path, root, "image_std", pp->image_std, 1)))
        return st;
    return GR_OK;
}

gr_status gr_image_preproc_load(const char *path, gr_image_preproc *pp)
{
    char *file = gr_is_dir(path) ? gr_path_join(path, "preprocessor_config.json") : strdup(path);
    if (!file) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", path);
    json_t *root;
    gr_status st = gr_json_load(file, JSON_REJECT_DUPLICATES, &root);
    if (st == GR_OK) st = parse_config(file, root, pp);
    json_decref(root);
    free(file);
    return st;
}

gr_status gr_image_preproc_output_size(const gr_image_preproc *pp, int *height, int *width)
{
    if (pp->do_center_crop) {
        *height = pp->crop_height;
        *width = pp->crop_width;
    } else if (pp->do_resize && pp->resize_shortest_edge == 0) {
        *height = pp->resize_height;
        *width = pp->resize_width;
    } else {
        return gr_fail(GR_ERR_UNSUPPORTED,
                       "image preprocessing: output size depends on the image (shortest_edge resize without crop)");
    }
    if (*height < 1 || *width < 1) return gr_fail(GR_ERR_INVALID, "image preprocessing: output size not set");
    return GR_OK;
}

gr_status gr_image_crop(const gr_image *in, int left, int top, int width, int height, gr_image *out)
{
    gr_status st = gr_image_alloc(out, width, height);
    if (st) return st;
    memset(out->rgb, 0, (size_t)width * height * 3);
    int x0 = left < 0 ? -left : 0, x1 = in->width - left < width ? in->width - left : width;
    for (int y = 0; y < height; y++) {
        int sy = top + y;
        if (sy < 0 || sy >= in->height || x1 <= x0) continue;
        memcpy(out->rgb + ((size_t)y * width + x0) * 3, in->rgb + ((size_t)sy * in->width + left + x0) * 3,
               (size_t)(x1 - x0) * 3);
    }
    return GR_OK;
}

void gr_image_flip_horizontal(gr_image *img)
{
    for (int y = 0; y < img->height; y++) {
        uint8_t *row = img->rgb + (size_t)y * img->width * 3;
        for (int a = 0, b = img->width - 1; a < b; a++, b--)
            for (int c = 0; c < 3; c++) {
                uint8_t t = row[a * 3 + c];
                row[a * 3 + c] = row[b * 3 + c];
                row[b * 3 + c] = t;
            }
    }
}

/* transformers' get_resize_output_image_size(default_to_square=False). */
static void shortest_edge_size(int h, int w, int size, int *oh, int *ow)
{
    int short_side = w <= h ? w : h, long_side = w <= h ? h : w;
    int new_long = (int)((double)((long long)size * long_side) / short_side);
    if (w <= h) *oh = new_long, *ow = size;
    else *oh = size, *ow = new_long;
}

/* torchvision RandomResizedCrop.get_params, with graft's generator. */
static void random_resized_crop_params(const gr_image_augment *aug, gr_rng *r, int height, int width, int *top,
                                       int *left, int *h, int *w)
{
    double area = (double)height * width;
    double log_lo = log(aug->ratio_min), log_hi = log(aug->ratio_max);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * (aug->scale_min + (aug->scale_max - aug->scale_min) * gr_rng_uniform(r));
        double ratio = exp(log_lo + (log_hi - log_lo) * gr_rng_uniform(r));
        int cw = (int)lround(sqrt(target * ratio));
        int ch = (int)lround(sqrt(target / ratio));
        if (cw > 0 && cw <= width && ch > 0 && ch <= height) {
            *top = (int)gr_rng_below(r, (uint64_t)(height - ch + 1));
            *left = (int)gr_rng_below(r, (uint64_t)(width - cw + 1));
            *h = ch;
            *w = cw;
            return;
        }
    }
    /* Fallback: central crop with the ratio clamped into range. */
    double in_ratio = (double)width / height;
    int cw = width, ch = height;
    if (in_ratio < aug->ratio_min) ch = (int)lround(cw / aug->ratio_min);
    else if (in_ratio > aug->ratio_max) cw = (int)lround(ch * aug->ratio_max);
    if (ch > height) ch = height;
    if (cw > width) cw = width;
    *top = (height - ch) / 2;
    *left = (width - cw) / 2;
    *h = ch;
    *w = cw;
}

gr_status gr_image_preprocess_u8(const gr_image_preproc *pp, const gr_image_augment *aug, uint64_t seed,
                                 const gr_image *in, gr_image *out)
{
    gr_status st;
    gr_image tmp = {0, 0, NULL};
    out->rgb = NULL;
    if (aug && aug->enabled) {
        int oh, ow, top, left, ch, cw;
        if ((st = gr_image_preproc_output_size(pp, &oh, &ow))) return st;
        gr_rng r;
        gr_rng_seed(&r, seed);
        random_resized_crop_params(aug, &r, in->height, in->width, &top, &left, &ch, &cw);
        int flip = aug->hflip && gr_rng_uniform(&r) < 0.5;
        /* torchvision crops first, then resizes the crop (the filter never reads outside it). */
        if ((st = gr_image_crop(in, left, top, cw, ch, &tmp))) return st;
        st = gr_image_resize(&tmp, ow, oh, GR_RESAMPLE_BICUBIC, NULL, out);
        gr_image_free(&tmp);
        if (st) return st;
        if (flip) gr_image_flip_horizontal(out);
        return GR_OK;
    }
    const gr_image *cur = in;
    if (pp->do_resize) {
        int oh = pp->resize_height, ow = pp->resize_width;
        if (pp->resize_shortest_edge > 0) shortest_edge_size(in->height, in->width, pp->resize_shortest_edge, &oh, &ow);
        if ((st = gr_image_resize(in, ow, oh, pp->resample, NULL, &tmp))) return st;
        cur = &tmp;
    }
    if (pp->do_center_crop) {
        /* transformers' center_crop: floor division for the offsets, zero padding when the
         * image is smaller than the crop (top/left may then be negative). */
        int dh = cur->height - pp->crop_height, dw = cur->width - pp->crop_width;
        int top = dh >= 0 ? dh / 2 : -((-dh + 1) / 2), left = dw >= 0 ? dw / 2 : -((-dw + 1) / 2);
        st = gr_image_crop(cur, left, top, pp->crop_width, pp->crop_height, out);
        gr_image_free(&tmp);
        return st;
    }
    if (cur == &tmp) {
        *out = tmp;
        return GR_OK;
    }
    st = gr_image_alloc(out, in->width, in->height);
    if (!st) memcpy(out->rgb, in->rgb, (size_t)in->width * in->height * 3);
    return st;
}

void gr_image_to_chw(const gr_image_preproc *pp, const gr_image *img, float *out)
{
    size_t plane = (size_t)img->width * img->height;
    float lut[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) {
            float x = pp->do_rescale ? (float)((double)v * pp->rescale_factor) : (float)v;
            if (pp->do_normalize) x = (x - pp->image_mean[c]) / pp->image_std[c];
            lut[c][v] = x;
        }
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++) out[c * plane + i] = lut[c][img->rgb[i * 3 + c]];
}

gr_status gr_image_preprocess(const gr_image_preproc *pp, const gr_image_augment *aug, uint64_t seed,
                              const gr_image *in, float *out)
{
    gr_image u8;
    gr_status st = gr_image_preprocess_u8(pp, aug, seed, in, &u8);
    if (st) return st;
    gr_image_to_chw(pp, &u8, out);
    gr_image_free(&u8);
    return GR_OK;
}
