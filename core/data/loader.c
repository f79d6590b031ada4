/* The batch loader: deterministic epoch order, per-rank shards, worker threads that read,
 * decode and preprocess images into a ring of `prefetch` batch slots ahead of the trainer.
 *
 * Determinism does not depend on threads: batch b always holds the same samples (order[b*B ..])
 * and each sample's augmentation is seeded by (seed, epoch, sample id). Workers claim batch
 * numbers in increasing order; batch b may only be filled in slot b % prefetch once batch
 * b - prefetch has been handed back, and the consumer takes batches strictly in order. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "data/dataset.h"
#include "data/rng.h"

enum { SLOT_FREE, SLOT_FILLING, SLOT_READY };

typedef struct slot {
    int state;
    gr_batch batch;
    const gr_sample **samples;
    size_t *ids;
    gr_status status;
    size_t skipped;
    char error[1024]; /* first error (fail) or first skip message */
} slot;

struct gr_loader {
    const gr_dataset *ds;
    gr_loader_config cfg;
    int height, width;
    size_t pixels_per_image;
    int epoch;
    size_t *order, count, nbatches;
    slot *slots;
    pthread_t *threads;
    int nthreads;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_ready;
    size_t next_fill, next_out;
    slot *held;
    int stop, failed, sync_ready;
    gr_loader_stats stats;
};

uint64_t gr_sample_seed(uint64_t seed, int epoch, size_t sample_id)
{
    return gr_seed_mix(seed, (uint64_t)(int64_t)epoch, (uint64_t)sample_id);
}

void gr_loader_config_defaults(gr_loader_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->batch_size = 32;
    cfg->shuffle = 1;
    cfg->world_size = 1;
    cfg->workers = 2;
    cfg->prefetch = 4;
    cfg->bad_images = GR_BAD_IMAGE_FAIL;
    gr_image_preproc_clip_defaults(&cfg->preproc);
    gr_image_augment_defaults(&cfg->augment);
    cfg->augment.enabled = 0;
}

gr_status gr_epoch_order(size_t n, int shuffle, uint64_t seed, int epoch, int rank, int world_size, size_t **order,
                         size_t *count)
{
    if (world_size < 1 || rank < 0 || rank >= world_size)
        return gr_fail(GR_ERR_INVALID, "data loader: rank %d of world size %d is invalid", rank, world_size);
    size_t *perm = malloc((n ? n : 1) * sizeof *perm);
    if (!perm) return gr_fail(GR_ERR_NOMEM, "data loader: out of memory for %zu samples", n);
    for (size_t i = 0; i < n; i++) perm[i] = i;
    if (shuffle) {
        gr_rng r;
        gr_rng_seed(&r, gr_seed_mix(seed, 0x5348554646ULL /* "SHUFF" */, (uint64_t)(int64_t)epoch));
        for (size_t i = n; i > 1; i--) {
            size_t j = (size_t)gr_rng_below(&r, i);
            size_t t = perm[i - 1];
            perm[i - 1] = perm[j];
            perm[j] = t;
        }
    }
    size_t per_rank = n / (size_t)world_size;
    for (size_t k = 0; k < per_rank; k++) perm[k] = perm[(size_t)rank + k * (size_t)world_size];
    *order = perm;
    *count = per_rank;
    return GR_OK;
}

gr_status gr_loader_create(const gr_dataset *ds, const gr_loader_config *cfg, gr_loader **out)
{
    *out = NULL;
    if (cfg->batch_size < 1 || cfg->workers < 1 || cfg->prefetch < 1 || cfg->workers > 64 || cfg->prefetch > 1024)
        return gr_fail(GR_ERR_INVALID, "data loader: batch_size, workers (1..64) and prefetch (1..1024) must be positive");
    if (cfg->world_size < 1 || cfg->rank < 0 || cfg->rank >= cfg->world_size)
        return gr_fail(GR_ERR_INVALID, "data loader: rank %d of world size %d is invalid", cfg->rank, cfg->world_size);
    gr_loader *ld = calloc(1, sizeof *ld);
    if (!ld) return gr_fail(GR_ERR_NOMEM, "data loader: out of memory");
    ld->ds = ds;
    ld->cfg = *cfg;
    gr_status st = gr_image_preproc_output_size(&cfg->preproc, &ld->height, &ld->width);
    if (st) {
        free(ld);
        return gr_fail_context(st, "data loader");
    }
    ld->pixels_per_image = (size_t)3 * ld->height * ld->width;
    ld->slots = calloc((size_t)cfg->prefetch, sizeof *ld->slots);
    ld->threads = calloc((size_t)cfg->workers, sizeof *ld->threads);
    if (!ld->slots || !ld->threads) goto oom;
    for (int i = 0; i < cfg->prefetch; i++) {
        slot *s = &ld->slots[i];
        s->batch.pixels = malloc(cfg->batch_size * ld->pixels_per_image * sizeof(float));
        s->samples = malloc(cfg->batch_size * sizeof *s->samples);
        s->ids = malloc(cfg->batch_size * sizeof *s->ids);
        if (!s->batch.pixels || !s->samples || !s->ids) goto oom;
    }
    pthread_mutex_init(&ld->mu, NULL);
    pthread_cond_init(&ld->cv_work, NULL);
    pthread_cond_init(&ld->cv_ready, NULL);
    ld->sync_ready = 1;
    *out = ld;
    return GR_OK;
oom:
    gr_loader_free(ld);
    return gr_fail(GR_ERR_NOMEM, "data loader: out of memory for %d batches of %zu images", cfg->prefetch,
                   cfg->batch_size);
}

/* Fills one batch (called without the lock). */
static void fill_batch(gr_loader *ld, size_t b, slot *s)
{
    const gr_loader_config *cfg = &ld->cfg;
    size_t first = b * cfg->batch_size, last = first + cfg->batch_size;
    if (last > ld->count) last = ld->count;
    s->batch.index = b;
    s->batch.n = 0;
    s->batch.height = ld->height;
    s->batch.width = ld->width;
    s->status = GR_OK;
    s->skipped = 0;
    s->error[0] = '\0';
    for (size_t k = first; k < last; k++) {
        size_t id = ld->order[k];
        const gr_sample *smp = gr_dataset_sample(ld->ds, id);
        gr_image img;
        gr_status st = gr_image_load(smp->image, &img);
        if (!st) {
            st = gr_image_preprocess(&cfg->preproc, &cfg->augment, gr_sample_seed(cfg->seed, ld->epoch, id), &img,
                                     s->batch.pixels + s->batch.n * ld->pixels_per_image);
            if (st) gr_fail_context(st, "%s", smp->image);
            gr_image_free(&img);
        }
        if (st) {
            if (!s->error[0]) snprintf(s->error, sizeof s->error, "%s", gr_last_error());
            if (cfg->bad_images == GR_BAD_IMAGE_FAIL) {
                s->status = st;
                return;
            }
            s->skipped++;
            continue;
        }
        s->samples[s->batch.n] = smp;
        s->ids[s->batch.n] = id;
        s->batch.n++;
    }
}

static void *worker(void *arg)
{
    gr_loader *ld = arg;
    pthread_mutex_lock(&ld->mu);
    for (;;) {
        while (!ld->stop && ld->next_fill < ld->nbatches &&
               ld->slots[ld->next_fill % (size_t)ld->cfg.prefetch].state != SLOT_FREE)
            pthread_cond_wait(&ld->cv_work, &ld->mu);
        if (ld->stop || ld->next_fill >= ld->nbatches) break;
        size_t b = ld->next_fill++;
        slot *s = &ld->slots[b % (size_t)ld->cfg.prefetch];
        s->state = SLOT_FILLING;
        pthread_mutex_unlock(&ld->mu);
        fill_batch(ld, b, s);
        pthread_mutex_lock(&ld->mu);
        s->state = SLOT_READY;
        pthread_cond_broadcast(&ld->cv_ready);
    }
    pthread_mutex_unlock(&ld->mu);
    return NULL;
}

static void stop_workers(gr_loader *ld)
{
    if (!ld->nthreads) return;
    pthread_mutex_lock(&ld->mu);
    ld->stop = 1;
    pthread_cond_broadcast(&ld->cv_work);
    pthread_mutex_unlock(&ld->mu);
    for (int i = 0; i < ld->nthreads; i++) pthread_join(ld->threads[i], NULL);
    ld->nthreads = 0;
    ld->stop = 0;
}

gr_status gr_loader_start_epoch(gr_loader *ld, int epoch)
{
    stop_workers(ld);
    free(ld->order);
    ld->order = NULL;
    gr_status st = gr_epoch_order(gr_dataset_size(ld->ds), ld->cfg.shuffle, ld->cfg.seed, epoch, ld->cfg.rank,
                                  ld->cfg.world_size, &ld->order, &ld->count);
    if (st) return st;
    ld->epoch = epoch;
    size_t bs = ld->cfg.batch_size;
    ld->nbatches = ld->cfg.drop_last ? ld->count / bs : (ld->count + bs - 1) / bs;
    ld->next_fill = ld->next_out = 0;
    ld->held = NULL;
    ld->failed = 0;
    memset(&ld->stats, 0, sizeof ld->stats);
    for (int i = 0; i < ld->cfg.prefetch; i++) ld->slots[i].state = SLOT_FREE;
    int want = ld->cfg.workers;
    if ((size_t)want > ld->nbatches) want = (int)ld->nbatches;
    for (int i = 0; i < want; i++) {
        if (pthread_create(&ld->threads[i], NULL, worker, ld) != 0) {
            stop_workers(ld);
            return gr_fail(GR_ERR_NOMEM, "data loader: cannot start worker thread %d", i);
        }
        ld->nthreads = i + 1;
    }
    return GR_OK;
}

size_t gr_loader_num_batches(const gr_loader *ld) { return ld->nbatches; }

gr_status gr_loader_next(gr_loader *ld, const gr_batch **batch)
{
    *batch = NULL;
    if (!ld->order) return gr_fail(GR_ERR_INVALID, "data loader: gr_loader_start_epoch was not called");
    pthread_mutex_lock(&ld->mu);
    if (ld->held) {
        ld->held->state = SLOT_FREE;
        ld->held = NULL;
        pthread_cond_broadcast(&ld->cv_work);
    }
    if (ld->failed || ld->next_out >= ld->nbatches) {
        pthread_mutex_unlock(&ld->mu);
        if (!ld->failed && ld->next_out == ld->nbatches) {
            ld->next_out++; /* log once */
            if (ld->stats.skipped)
                gr_log(GR_LOG_WARN, "%s: epoch %d: skipped %zu unreadable images (first: %s)", gr_dataset_path(ld->ds),
                       ld->epoch, ld->stats.skipped, ld->stats.first_skipped);
        }
        return GR_OK;
    }
    slot *s = &ld->slots[ld->next_out % (size_t)ld->cfg.prefetch];
    while (!(s->state == SLOT_READY && s->batch.index == ld->next_out)) pthread_cond_wait(&ld->cv_ready, &ld->mu);
    ld->next_out++;
    pthread_mutex_unlock(&ld->mu);
    if (s->skipped) {
        if (!ld->stats.skipped) snprintf(ld->stats.first_skipped, sizeof ld->stats.first_skipped, "%s", s->error);
        ld->stats.skipped += s->skipped;
    }
    if (s->status) {
        ld->failed = 1;
        pthread_mutex_lock(&ld->mu);
        s->state = SLOT_FREE;
        pthread_mutex_unlock(&ld->mu);
        stop_workers(ld);
        return gr_fail(s->status, "%s", s->error);
    }
    ld->stats.samples += s->batch.n;
    s->batch.samples = s->samples;
    s->batch.sample_ids = s->ids;
    ld->held = s;
    *batch = &s->batch;
    return GR_OK;
}

void gr_loader_get_stats(const gr_loader *ld, gr_loader_stats *stats) { *stats = ld->stats; }

void gr_loader_free(gr_loader *ld)
{
    if (!ld) return;
    if (ld->sync_ready) {
        stop_workers(ld);
        pthread_mutex_destroy(&ld->mu);
        pthread_cond_destroy(&ld->cv_work);
        pthread_cond_destroy(&ld->cv_ready);
    }
    if (ld->slots)
        for (int i = 0; i < ld->cfg.prefetch; i++) {
            free(ld->slots[i].batch.pixels);
            free(ld->slots[i].samples);
            free(ld->slots[i].ids);
        }
    free(ld->slots);
    free(ld->threads);
    free(ld->order);
    free(ld);
}
