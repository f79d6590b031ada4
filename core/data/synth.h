/* The synthetic world behind `graft synth`: images of coloured shapes with captions, VQA pairs,
 * a text corpus and train/val/test splits, all fixed by one seed (see docs/data.md). */
#ifndef GRAFT_CORE_DATA_SYNTH_H
#define GRAFT_CORE_DATA_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "graft/status.h"
#include "image/image.h"

#define GR_SYNTH_MAX_OBJECTS 8
#define GR_SYNTH_N_COLORS 11
#define GR_SYNTH_N_SHAPES 7

typedef struct gr_synth_config {
    uint64_t seed;
    int size;            /* images in all splits */
    int image_size;      /* square images of image_size x image_size pixels (16..1024) */
    int min_objects, max_objects; /* objects per image (1..GR_SYNTH_MAX_OBJECTS) */
    int n_colors;        /* colour vocabulary: the first n of the colour table (2..11) */
    int n_shapes;        /* shape vocabulary: the first n of the shape table (2..7) */
    int distractors;     /* objects per image forced to share a colour or a shape with another,
                            so that only attribute binding tells them apart */
    int captions_per_image;
    int questions_per_image;
    double val_fraction, test_fraction;
    int png_compression; /* 0..9 */
    int threads;         /* image rendering threads */
} gr_synth_config;

typedef struct gr_synth_object {
    int shape, color;
    int large;          /* 1 large, 0 small */
    float cx, cy, r;    /* centre and radius in pixels */
} gr_synth_object;

typedef struct gr_synth_scene {
    int n;
    gr_synth_object obj[GR_SYNTH_MAX_OBJECTS];
    uint8_t background[3];
} gr_synth_scene;

void gr_synth_config_defaults(gr_synth_config *cfg);
gr_status gr_synth_check_config(const gr_synth_config *cfg);
const char *gr_synth_color_name(int color);
const char *gr_synth_shape_name(int shape);

/* The scene of image `index` (0-based): a pure function of (cfg, index). */
void gr_synth_make_scene(const gr_synth_config *cfg, size_t index, gr_synth_scene *scene);
/* Renders a scene with graft's anti-aliased rasteriser (4x4 supersampling, integer blending):
 * identical bytes on every machine. `img` must be image_size x image_size. */
void gr_synth_render(const gr_synth_config *cfg, size_t index, const gr_synth_scene *scene, gr_image *img);

/* The rasteriser's geometry, for labels that agree with the pixels (graft pretrain-vision):
 * which of the 4x4 samples of pixel (x, y) object `o` covers (bit sy * 4 + sx; 0 outside the
 * box the renderer clips it to). gr_synth_render blends each object with popcount(mask) / 16. */
unsigned gr_synth_pixel_mask(const gr_synth_object *o, int image_size, int x, int y);
/* Which object each 4x4 supersample of the image shows: map[(4 * image_size)^2] (row-major),
 * the index of the last object drawn over the sample (the renderer's overlap order), or -1 for
 * background. A pixel whose 16 samples are all -1 has exactly the background colour. */
void gr_synth_sample_owners(const gr_synth_scene *sc, int image_size, int8_t *map);
/* Per patch of a grid of image_size / patch squared patches (row-major, as a ViT's tokens): the
 * object owning most of the patch's samples in `map` (gr_synth_sample_owners, or a shifted /
 * flipped copy of it), or -1 when that object owns less than `min_share` of the patch. Returns
 * the grid side (0 when patch is not in 1..image_size). */
int gr_synth_map_patch_owners(const int8_t *map, int image_size, int patch, double min_share, int *owner);

typedef struct gr_synth_summary {
    size_t images[3], captions[3], questions[3]; /* train, val, test */
    size_t corpus_sentences;
    size_t knowledge_facts;  /* lines of knowledge.txt */
} gr_synth_summary;

/* Writes the whole world under `dir` (created if needed). */
gr_status gr_synth_write(const char *dir, const gr_synth_config *cfg, gr_synth_summary *summary);

#endif
