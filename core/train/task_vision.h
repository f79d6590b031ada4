/* Vision-tower pretraining on the synthetic world (graft pretrain-vision, docs/pretraining.md):
 * per-patch attribute labels, the task for the generic trainer and the held-out check.
 *
 * Data. The world's train split (scenes.jsonl "split": "train") is the training set, its val
 * split the held-out set. Each image is preprocessed once as the VLM preprocesses it (the
 * caller passes the same gr_image_preproc) and kept in memory; a 600-image world of 32x32
 * images is 7 MB of floats.
 *
 * Labels. For each patch of the tower's grid (image_size / patch_size squared, row-major as the
 * tower's tokens) the owner is the object covering most of the patch's 4x4-supersampled pixels
 * with the rasteriser's own geometry and overlap order (gr_synth_patch_owners), or background
 * when no object covers `min_share` of it. A patch then has three classes: colour (the world's
 * colours + background), shape (the world's shapes + background) and size (small, big, none).
 * The class lists are world.json's "colors" and "shapes"; scenes name them.
 *
 * Model. Three linear heads on the tower's last_hidden_state without its CLS row — the tensor
 * the VLM's Q-Former reads (core/vlm/vlm.c) — trained with the tower; loss = sum of the three
 * mean per-patch cross-entropies. The heads are the task's parameters and are never exported.
 *
 * Augmentation. A training image is mirrored (p = 1/2; every shape of graft synth is left-right
 * symmetric) and shifted by whole pixels (up to max_shift, never moving an object out of the
 * frame; the border gets the image's background colour). The sample-owner map is moved with the
 * pixels and the labels recomputed from it, so they stay exact. Without it the tower memorises
 * the 480 training images: shape accuracy 0.59 on them, chance (0.21) held out.
 *
 * Batch `index` of `epoch` is the images order[index * B ...] of a permutation fixed by
 * (seed, epoch), each augmented by (seed, epoch, image): a pure function, as the trainer's exact
 * resume needs. */
#ifndef GRAFT_CORE_TASK_VISION_H
#define GRAFT_CORE_TASK_VISION_H

#include <jansson.h>
#include <stdint.h>

#include "graft/model.h"
#include "image/image.h"
#include "train/trainer.h"

typedef struct gr_vision_task_config {
    const gr_vision_iface *vi;
    gr_vision *tower;
    const char *world;              /* a `graft synth` directory */
    const gr_image_preproc *preproc;
    int64_t batch_size;
    uint64_t seed;                  /* data order and head init */
    double min_share;               /* share of a patch an object must cover (0..1] */
    int64_t max_shift;              /* training images shift by up to this many pixels (0: none) */
    int hflip;                      /* and are mirrored with probability 1/2 */
} gr_vision_task_config;

typedef struct gr_vision_task gr_vision_task;

/* Reads world.json, scenes.jsonl and the images of the train and val splits, labels every
 * patch, and creates the heads as trainable parameters in ctx. Errors name the file / line. */
gr_status gr_vision_task_create(gr_ctx *ctx, const gr_vision_task_config *cfg, gr_vision_task **out);
void gr_vision_task_free(gr_vision_task *t, gr_ctx *ctx);
/* The trainer's view; evaluate is the held-out accuracy (NULL without val images). */
gr_task gr_vision_task_iface(gr_vision_task *t);
/* The heads' parameters (weights and biases of colour, shape, size): 6 tensors. */
gr_tensor *const *gr_vision_task_heads(const gr_vision_task *t, int *count);

typedef struct gr_vision_task_stats {
    int64_t train_images, val_images, grid, batches_per_epoch;
    int64_t train_object_patches, val_object_patches; /* patches with an owner */
    int n_colors, n_shapes;
} gr_vision_task_stats;
void gr_vision_task_stats_get(const gr_vision_task *t, gr_vision_task_stats *out);

/* Held-out accuracies with the majority-class baselines beside them (the class most frequent
 * in the TRAIN labels, scored on val):
 * {"val_images", "val_patches", "val_object_patches",
 *  "color"|"shape"|"size": {"accuracy", "baseline"}            on object patches,
 *  "object": {"accuracy", "baseline"}                          background vs object, all patches
 *                                                              (object = colour head's arg-max
 *                                                              is not background),
 *  "all_patches": {"color", "shape", "size"}                   accuracy with background classes}.
 * GR_ERR_INVALID when the world has no val image. */
gr_status gr_vision_task_quality(gr_vision_task *t, gr_ctx *ctx, json_t **out);

/* The first `rows` held-out images as [rows, 3, H, W] host floats. */
gr_status gr_vision_task_fixed_pixels(const gr_vision_task *t, int64_t rows, float **pixels, int64_t shape[4]);

#endif
