/* Images: safe PNG/JPEG decoding to 8-bit RGB, PIL-exact resampling, and the Hugging Face
 * CLIP/BLIP image preprocessing driven by preprocessor_config.json (see docs/data.md).
 *
 * Pixels are 8-bit RGB, row-major, interleaved (HWC) until the very last step, which writes a
 * float32 CHW tensor in host memory. Every step that HF does through PIL (RGB conversion,
 * resizing) is done here in uint8 with PIL's exact integer arithmetic, so the output matches
 * HF bit for bit in the uint8 stage and to float32 rounding after normalisation. */
#ifndef GRAFT_CORE_IMAGE_H
#define GRAFT_CORE_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "graft/status.h"

/* Decoding refuses images with a side above this or more than GR_IMAGE_MAX_PIXELS pixels
 * (a decompression bomb guard, the same order as PIL's MAX_IMAGE_PIXELS). */
#define GR_IMAGE_MAX_SIDE 32768
#define GR_IMAGE_MAX_PIXELS (89478485LL * 2)

typedef struct gr_image {
    int width, height;
    uint8_t *rgb; /* width * height * 3 bytes, malloc'd */
} gr_image;

/* PIL's resampling filters, numbered as PIL.Image.Resampling (HF's "resample" key). */
typedef enum gr_resample {
    GR_RESAMPLE_NEAREST = 0,
    GR_RESAMPLE_LANCZOS = 1,
    GR_RESAMPLE_BILINEAR = 2,
    GR_RESAMPLE_BICUBIC = 3,
    GR_RESAMPLE_BOX = 4,
    GR_RESAMPLE_HAMMING = 5
} gr_resample;

gr_status gr_image_alloc(gr_image *img, int width, int height);
void gr_image_free(gr_image *img);

/* Decodes PNG or JPEG (sniffed from the bytes) to RGB, as PIL's Image.convert("RGB") would:
 * grey is replicated, alpha and palette transparency are dropped (not composited), palettes
 * are expanded, 16-bit samples keep their high byte, Adobe/inverted CMYK and YCCK JPEGs are
 * converted with PIL's formula. `name` is only used in error messages. */
gr_status gr_image_decode(const char *name, const void *bytes, size_t len, gr_image *out);
/* Reads and decodes a file; errors name the path. */
gr_status gr_image_load(const char *path, gr_image *out);
/* Writes an 8-bit RGB PNG (atomically); compression 0-9. */
gr_status gr_image_write_png(const char *path, const gr_image *img, int compression);
/* Encodes an RGB PNG into a malloc'd buffer. */
gr_status gr_image_encode_png(const gr_image *img, int compression, uint8_t **data, size_t *len);

/* PIL's Image.resize(size, resample) on an RGB image, bit-exact (including the antialiasing
 * filter support when downscaling). `box` (left, top, right, bottom, may be NULL for the whole
 * image) resizes a sub-rectangle, as PIL's `box` argument. */
gr_status gr_image_resize(const gr_image *in, int width, int height, gr_resample filter,
                          const float box[4], gr_image *out);
/* Crops the rectangle [left, left+width) x [top, top+height); parts outside the image are
 * zero (HF's center_crop pads with zeros when the crop is larger than the image). */
gr_status gr_image_crop(const gr_image *in, int left, int top, int width, int height, gr_image *out);
void gr_image_flip_horizontal(gr_image *img);

/* HF image processor settings (CLIPImageProcessor, BlipImageProcessor and friends). */
typedef struct gr_image_preproc {
    int do_convert_rgb;     /* always RGB here; kept for completeness of the config */
    int do_resize;
    int resize_shortest_edge; /* > 0: resize the short side to this, keep aspect ratio */
    int resize_height, resize_width; /* used when resize_shortest_edge == 0 */
    gr_resample resample;
    int do_center_crop;
    int crop_height, crop_width;
    int do_rescale;
    double rescale_factor;
    int do_normalize;
    float image_mean[3], image_std[3];
} gr_image_preproc;

/* Train-time augmentation: torchvision's RandomResizedCrop + RandomHorizontalFlip, as LAVIS's
 * BlipImageTrainProcessor uses them, with graft's own seeded generator. */
typedef struct gr_image_augment {
    int enabled;
    double scale_min, scale_max; /* fraction of the area, default 0.5 .. 1 */
    double ratio_min, ratio_max; /* aspect ratio w/h, default 3/4 .. 4/3 */
    int hflip;                   /* flip with probability 1/2 */
} gr_image_augment;

/* CLIP's defaults (shortest_edge 224, bicubic, center crop 224, OpenAI mean/std). */
void gr_image_preproc_clip_defaults(gr_image_preproc *pp);
/* Reads preprocessor_config.json (a file, or a directory holding one). Keys not given keep
 * the defaults of the processor named by "image_processor_type" (CLIP or BLIP); unknown
 * processor types and malformed values fail naming the file and key. */
gr_status gr_image_preproc_load(const char *path, gr_image_preproc *pp);
void gr_image_augment_defaults(gr_image_augment *aug);

/* Size of the tensor the preprocessing produces (height, width); both are known from the
 * config alone except for resize-by-shortest-edge without a center crop, which fails. */
gr_status gr_image_preproc_output_size(const gr_image_preproc *pp, int *height, int *width);

/* The uint8 stage: RGB conversion, resize and center crop (HF's order). With `aug` enabled,
 * RandomResizedCrop to the output size + flip replace resize and crop; `seed` drives them. */
gr_status gr_image_preprocess_u8(const gr_image_preproc *pp, const gr_image_augment *aug,
                                 uint64_t seed, const gr_image *in, gr_image *out);
/* Rescale and normalise an RGB image into a float32 CHW tensor (3 * height * width floats),
 * with HF's float arithmetic: (float)(v * rescale_factor in double), then (x - mean) / std
 * in float32. */
void gr_image_to_chw(const gr_image_preproc *pp, const gr_image *img, float *out);
/* Both stages: `out` holds 3 * H * W floats for the size gr_image_preproc_output_size gives. */
gr_status gr_image_preprocess(const gr_image_preproc *pp, const gr_image_augment *aug,
                              uint64_t seed, const gr_image *in, float *out);

#endif
