/* Datasets for vision-language training and evaluation, and the batch loader the trainer calls.
 *
 * A gr_dataset is the parsed annotation index (image paths and texts, in one string arena);
 * images are read only when a batch needs them. A gr_loader turns a dataset into a stream of
 * batches: a deterministic epoch order (seed + epoch, then a per-rank shard), images decoded
 * and preprocessed on worker threads into float32 CHW host tensors a few batches ahead, so
 * the trainer does not wait on JPEG decoding. Typical use:
 *
 *     gr_dataset_spec spec = {.format = GR_DATASET_KARPATHY, .path = "coco_karpathy_train.json",
 *                             .image_root = "coco/images"};
 *     gr_dataset *ds; gr_loader *ld; gr_loader_config cfg;
 *     gr_dataset_open(&spec, &ds);
 *     gr_loader_config_defaults(&cfg);            // CLIP preprocessing, batch 32, 2 workers
 *     gr_image_preproc_load("vit_dir", &cfg.preproc);
 *     gr_loader_create(ds, &cfg, &ld);
 *     for (int epoch = 0; epoch < E; epoch++) {
 *         gr_loader_start_epoch(ld, epoch);
 *         const gr_batch *b;
 *         while (gr_loader_next(ld, &b) == GR_OK && b) { ... b->pixels, b->samples[i]->texts ... }
 *     }
 *     gr_loader_free(ld); gr_dataset_free(ds);
 */
#ifndef GRAFT_CORE_DATA_DATASET_H
#define GRAFT_CORE_DATA_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "graft/status.h"
#include "image/image.h"

typedef enum gr_dataset_format {
    GR_DATASET_COCO_CAPTIONS, /* captions_*.json: {"images": [{id, file_name}], "annotations": [{image_id, caption}]} */
    GR_DATASET_KARPATHY,      /* LAVIS coco_karpathy_*.json: [{"image", "caption": str | [str], "image_id"?}] */
    GR_DATASET_VQAV2,         /* VQAv2 questions JSON (+ annotations JSON, absent for the test split) */
    GR_DATASET_JSONL          /* {"image", "caption"} or {"image", "question", "answers"} per line */
} gr_dataset_format;

typedef struct gr_dataset_spec {
    gr_dataset_format format;
    const char *path;        /* the annotation file; for VQAv2 the questions file */
    const char *annotations; /* VQAv2 annotations file, NULL for questions only */
    const char *image_root;  /* directory image names are relative to; NULL: the directory of `path` */
    /* VQAv2 image file names (the format stores only ids): "{data_subtype}", "{image_id}" and
     * "{image_id:012}" are replaced. NULL: "COCO_{data_subtype}_{image_id:012}.jpg" (the
     * official layout). */
    const char *image_pattern;
    int group_captions;      /* COCO captions: one sample per image holding all its captions */
} gr_dataset_spec;

/* One training/evaluation example. Strings live as long as the dataset. */
typedef struct gr_sample {
    const char *image;        /* image_root/file */
    const char *image_key;    /* the image id as written in the file ("391895", "coco_391895"), or "" */
    int64_t image_id;         /* its numeric value (trailing digits), -1 when none */
    int64_t question_id;      /* VQA, -1 for captions */
    const char *question;     /* VQA question, NULL for captions */
    const char *answer;       /* VQA multiple_choice_answer (or most frequent answer), NULL if unknown */
    const char *const *texts; /* captions, or VQA ground-truth answers in file order */
    int n_texts;
} gr_sample;

typedef struct gr_dataset gr_dataset;

/* Parses the annotation files (not the images). Errors are one line naming the file and the
 * entry: "captions.json: annotations[17]: \"caption\" must be a string". */
gr_status gr_dataset_open(const gr_dataset_spec *spec, gr_dataset **out);
size_t gr_dataset_size(const gr_dataset *ds);
const gr_sample *gr_dataset_sample(const gr_dataset *ds, size_t i);
int gr_dataset_is_vqa(const gr_dataset *ds);
const char *gr_dataset_path(const gr_dataset *ds);
void gr_dataset_free(gr_dataset *ds);

/* The sample order of one epoch on one rank: a permutation of 0..n-1 fixed by (seed, epoch)
 * (identity when !shuffle), of which rank r of w takes positions r, r+w, r+2w, ... up to
 * floor(n/w) samples, so every rank sees the same number of samples and together they see
 * disjoint ones. malloc'd into *order. */
gr_status gr_epoch_order(size_t n, int shuffle, uint64_t seed, int epoch, int rank, int world_size,
                         size_t **order, size_t *count);

typedef enum gr_bad_image_policy {
    GR_BAD_IMAGE_FAIL = 0, /* a missing/corrupt image stops the epoch with an error naming it */
    GR_BAD_IMAGE_SKIP = 1  /* it is dropped from its batch, counted, and reported at epoch end */
} gr_bad_image_policy;

typedef struct gr_loader_config {
    size_t batch_size;
    int shuffle;
    uint64_t seed;
    int drop_last;       /* drop a final partial batch */
    int rank, world_size;/* data-parallel shard (0, 1 for a single process) */
    int workers;         /* decoding threads, >= 1 */
    int prefetch;        /* batches in flight, >= 1 */
    gr_bad_image_policy bad_images;
    gr_image_preproc preproc;
    gr_image_augment augment; /* train-time RandomResizedCrop + flip when .enabled */
} gr_loader_config;

/* batch 32, shuffle, seed 0, 2 workers, prefetch 4, fail on bad images, CLIP preprocessing,
 * no augmentation. */
void gr_loader_config_defaults(gr_loader_config *cfg);

typedef struct gr_batch {
    size_t index;              /* batch number within the epoch */
    size_t n;                  /* samples (fewer than batch_size at the end or after skips) */
    int height, width;
    float *pixels;             /* n x 3 x height x width, float32, host memory */
    const gr_sample **samples; /* n samples, in batch order */
    const size_t *sample_ids;  /* their indices in the dataset */
} gr_batch;

typedef struct gr_loader_stats {
    size_t samples;   /* delivered this epoch */
    size_t skipped;   /* bad images skipped this epoch */
    char first_skipped[1024]; /* the first skip's error message (names the path) */
} gr_loader_stats;

typedef struct gr_loader gr_loader;

gr_status gr_loader_create(const gr_dataset *ds, const gr_loader_config *cfg, gr_loader **out);
/* Starts producing epoch `epoch` (stopping any epoch in progress). */
gr_status gr_loader_start_epoch(gr_loader *ld, int epoch);
/* Batches in the epoch (skips may leave some shorter, never fewer batches). */
size_t gr_loader_num_batches(const gr_loader *ld);
/* The next batch, valid until the next call; *batch = NULL once the epoch is over (then the
 * skip count, if any, has been logged). An error (bad image under GR_BAD_IMAGE_FAIL) ends the
 * epoch. */
gr_status gr_loader_next(gr_loader *ld, const gr_batch **batch);
void gr_loader_get_stats(const gr_loader *ld, gr_loader_stats *stats);
void gr_loader_free(gr_loader *ld);

/* The augmentation seed of one sample: independent of thread timing and batch layout. */
uint64_t gr_sample_seed(uint64_t seed, int epoch, size_t sample_id);

#endif
