/* The batch loader: deterministic order and sharding, worker-thread results identical to a
 * direct single-threaded computation, skip/fail policies, augmentation determinism.
 *
 * usage: test_loader WORLD_DIR   (a `graft synth --size 60` output) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fsutil.h"
#include "data/dataset.h"

static int checks, failures;

#define CHECK(cond, ...)                                  \
    do {                                                  \
        checks++;                                         \
        if (!(cond)) {                                    \
            failures++;                                   \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);   \
            printf(__VA_ARGS__);                          \
            printf("\n");                                 \
        }                                                 \
    } while (0)

static void test_epoch_order(void)
{
    size_t *a, *b, *c, na, nb, nc;
    gr_epoch_order(1000, 1, 42, 0, 0, 1, &a, &na);
    gr_epoch_order(1000, 1, 42, 0, 0, 1, &b, &nb);
    gr_epoch_order(1000, 1, 42, 1, 0, 1, &c, &nc);
    char *seen = calloc(1000, 1);
    int perm = na == 1000;
    for (size_t i = 0; i < na && perm; i++) perm = a[i] < 1000 && !seen[a[i]]++;
    CHECK(perm, "epoch order is not a permutation");
    CHECK(memcmp(a, b, na * sizeof *a) == 0, "same seed and epoch give different orders");
    CHECK(memcmp(a, c, na * sizeof *a) != 0, "epochs 0 and 1 have the same order");
    size_t fixed = 0;
    for (size_t i = 0; i < na; i++) fixed += a[i] == i;
    CHECK(fixed < 20, "shuffle leaves %zu of 1000 in place", fixed);
    /* Three ranks: disjoint, equal sizes, all drawn from the rank-free permutation. */
    memset(seen, 0, 1000);
    size_t total = 0;
    for (int r = 0; r < 3; r++) {
        size_t *s, ns;
        gr_epoch_order(1000, 1, 42, 0, r, 3, &s, &ns);
        CHECK(ns == 333, "rank %d gets %zu samples", r, ns);
        for (size_t i = 0; i < ns; i++) {
            CHECK(!seen[s[i]], "sample %zu on two ranks", s[i]);
            seen[s[i]] = 1;
            CHECK(s[i] == a[(size_t)r + 3 * i], "rank %d position %zu is not the global order's", r, i);
            if (failures) break;
        }
        total += ns;
        free(s);
    }
    CHECK(total == 999, "ranks cover %zu samples", total);
    size_t *id, nid;
    gr_epoch_order(5, 0, 42, 3, 0, 1, &id, &nid);
    CHECK(nid == 5 && id[0] == 0 && id[4] == 4, "unshuffled order is not the identity");
    CHECK(gr_epoch_order(5, 1, 0, 0, 2, 2, &id, &nid) != GR_OK, "rank 2 of 2 accepted");
    free(id);
    free(seen);
    free(a);
    free(b);
    free(c);
}

static void small_config(gr_loader_config *cfg)
{
    gr_loader_config_defaults(cfg);
    cfg->batch_size = 7;
    cfg->seed = 1234;
    cfg->preproc.resize_shortest_edge = 0;
    cfg->preproc.resize_height = cfg->preproc.resize_width = 40;
    cfg->preproc.do_center_crop = 1;
    cfg->preproc.crop_height = cfg->preproc.crop_width = 32;
}

/* Runs one epoch and returns all pixels and sample ids concatenated. */
static size_t run_epoch(const gr_dataset *ds, const gr_loader_config *cfg, int epoch, float **pix, size_t **ids,
                        gr_loader_stats *stats)
{
    gr_loader *ld;
    if (gr_loader_create(ds, cfg, &ld)) {
        CHECK(0, "loader: %s", gr_last_error());
        return 0;
    }
    gr_loader_start_epoch(ld, epoch);
    size_t n = 0, per = 3 * 32 * 32, nb = 0;
    *pix = malloc(gr_dataset_size(ds) * per * sizeof(float));
    *ids = malloc(gr_dataset_size(ds) * sizeof(size_t));
    const gr_batch *b;
    gr_status st;
    while ((st = gr_loader_next(ld, &b)) == GR_OK && b) {
        CHECK(b->index == nb && b->height == 32 && b->width == 32, "batch %zu header", nb);
        memcpy(*pix + n * per, b->pixels, b->n * per * sizeof(float));
        memcpy(*ids + n, b->sample_ids, b->n * sizeof(size_t));
        for (size_t i = 0; i < b->n; i++)
            CHECK(b->samples[i] == gr_dataset_sample(ds, b->sample_ids[i]), "sample pointer/id mismatch");
        n += b->n;
        nb++;
    }
    CHECK(st == GR_OK, "epoch failed: %s", gr_last_error());
    CHECK(nb == gr_loader_num_batches(ld), "%zu batches, expected %zu", nb, gr_loader_num_batches(ld));
    if (stats) gr_loader_get_stats(ld, stats);
    gr_loader_free(ld);
    return n;
}

static void test_loader_threads(const char *world)
{
    char *path = gr_path_join(world, "captions_train.jsonl");
    gr_dataset_spec spec = {GR_DATASET_JSONL, path, NULL, NULL, NULL, 0};
    gr_dataset *ds;
    if (gr_dataset_open(&spec, &ds)) {
        CHECK(0, "%s", gr_last_error());
        free(path);
        return;
    }
    gr_loader_config one, many;
    small_config(&one);
    one.workers = 1;
    one.prefetch = 1;
    one.augment.enabled = 1;
    many = one;
    many.workers = 3;
    many.prefetch = 2;
    float *p1, *p2, *p3;
    size_t *i1, *i2, *i3;
    size_t n1 = run_epoch(ds, &one, 2, &p1, &i1, NULL), n2 = run_epoch(ds, &many, 2, &p2, &i2, NULL);
    size_t n3 = run_epoch(ds, &many, 3, &p3, &i3, NULL);
    size_t per = 3 * 32 * 32;
    CHECK(n1 == gr_dataset_size(ds) && n2 == n1 && n3 == n1, "sample counts %zu %zu %zu", n1, n2, n3);
    CHECK(memcmp(i1, i2, n1 * sizeof *i1) == 0, "1 and 3 workers deliver different orders");
    CHECK(memcmp(p1, p2, n1 * per * sizeof(float)) == 0, "1 and 3 workers deliver different pixels");
    CHECK(memcmp(i1, i3, n1 * sizeof *i1) != 0, "epochs 2 and 3 have the same order");
    /* Every delivered tensor equals a direct decode + preprocess with the sample's seed. */
    float *want = malloc(per * sizeof *want);
    size_t bad = 0;
    for (size_t k = 0; k < n1; k++) {
        gr_image img;
        const gr_sample *s = gr_dataset_sample(ds, i1[k]);
        if (gr_image_load(s->image, &img) ||
            gr_image_preprocess(&one.preproc, &one.augment, gr_sample_seed(one.seed, 2, i1[k]), &img, want)) {
            bad++;
            continue;
        }
        gr_image_free(&img);
        bad += memcmp(want, p1 + k * per, per * sizeof *want) != 0;
    }
    CHECK(bad == 0, "%zu loader tensors differ from direct preprocessing", bad);
    /* Without augmentation every epoch gives the same tensor per sample. */
    gr_loader_config plain = many;
    plain.augment.enabled = 0;
    plain.shuffle = 0;
    float *q;
    size_t *qi;
    size_t nq = run_epoch(ds, &plain, 5, &q, &qi, NULL);
    CHECK(nq == n1 && qi[0] == 0 && qi[nq - 1] == nq - 1, "unshuffled loader order");
    printf("loader: %zu samples, 1 vs 3 workers identical, matches direct preprocessing\n", n1);
    /* Restarting an epoch while workers are busy, then freeing mid-epoch: no hang, no leak. */
    gr_loader *ld;
    if (gr_loader_create(ds, &many, &ld) == GR_OK) {
        const gr_batch *b;
        gr_loader_start_epoch(ld, 0);
        gr_loader_next(ld, &b);
        gr_loader_start_epoch(ld, 1);
        CHECK(gr_loader_next(ld, &b) == GR_OK && b && b->index == 0, "restarted epoch does not start at batch 0");
        gr_loader_free(ld);
    }
    free(want);
    free(p1), free(p2), free(p3), free(q);
    free(i1), free(i2), free(i3), free(qi);
    gr_dataset_free(ds);
    free(path);
}

static void test_bad_images(const char *world)
{
    char dir[] = "/tmp/graft_loader_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char *corrupt = gr_path_join(dir, "corrupt.png"), *jsonl = gr_path_join(dir, "mixed.jsonl");
    char *missing = gr_path_join(dir, "missing.png");
    gr_write_file_atomic(corrupt, "\x89PNG\r\n\x1a\nnot really", 18);
    char buf[4096];
    int len = snprintf(buf, sizeof buf,
                       "{\"image\": \"%s/images/000000000001.png\", \"caption\": \"a\"}\n"
                       "{\"image\": \"missing.png\", \"caption\": \"b\"}\n"
                       "{\"image\": \"%s/images/000000000002.png\", \"caption\": \"c\"}\n"
                       "{\"image\": \"corrupt.png\", \"caption\": \"d\"}\n"
                       "{\"image\": \"%s/images/000000000003.png\", \"caption\": \"e\"}\n",
                       world, world, world);
    gr_write_file_atomic(jsonl, buf, (size_t)len);
    gr_dataset_spec spec = {GR_DATASET_JSONL, jsonl, NULL, NULL, NULL, 0};
    gr_dataset *ds;
    if (gr_dataset_open(&spec, &ds)) {
        CHECK(0, "%s", gr_last_error());
        return;
    }
    gr_loader_config cfg;
    small_config(&cfg);
    cfg.batch_size = 2;
    cfg.shuffle = 0;
    cfg.bad_images = GR_BAD_IMAGE_SKIP;
    float *p;
    size_t *ids;
    gr_loader_stats stats;
    size_t n = run_epoch(ds, &cfg, 0, &p, &ids, &stats);
    CHECK(n == 3 && stats.samples == 3 && stats.skipped == 2, "skip: %zu delivered, %zu skipped", n, stats.skipped);
    CHECK(strstr(stats.first_skipped, missing) != NULL, "skip report does not name %s: %s", missing,
          stats.first_skipped);
    CHECK(n == 3 && ids[0] == 0 && ids[1] == 2 && ids[2] == 4, "skip kept the wrong samples");
    printf("loader skip: %zu bad images skipped, first reported as: %s\n", stats.skipped, stats.first_skipped);
    free(p);
    free(ids);
    cfg.bad_images = GR_BAD_IMAGE_FAIL;
    gr_loader *ld;
    gr_loader_create(ds, &cfg, &ld);
    gr_loader_start_epoch(ld, 0);
    const gr_batch *b;
    gr_status st = gr_loader_next(ld, &b);
    CHECK(st != GR_OK && strstr(gr_last_error(), missing), "fail mode: %s", gr_last_error());
    printf("loader fail: %s\n", gr_last_error());
    CHECK(gr_loader_next(ld, &b) == GR_OK && b == NULL, "epoch continues after a failure");
    gr_loader_free(ld);
    gr_dataset_free(ds);
    unlink(corrupt);
    unlink(jsonl);
    rmdir(dir);
    free(corrupt);
    free(jsonl);
    free(missing);
}

static void test_augment(const char *world)
{
    char *path = gr_path_join(world, "images/000000000007.png");
    gr_image img, a, b, plain;
    if (gr_image_load(path, &img)) {
        CHECK(0, "%s", gr_last_error());
        free(path);
        return;
    }
    gr_image_preproc pp;
    gr_image_preproc_clip_defaults(&pp);
    pp.resize_shortest_edge = 0, pp.do_center_crop = 0, pp.resize_height = pp.resize_width = 48;
    gr_image_augment aug;
    gr_image_augment_defaults(&aug);
    gr_image_preprocess_u8(&pp, &aug, 99, &img, &a);
    gr_image_preprocess_u8(&pp, &aug, 99, &img, &b);
    CHECK(memcmp(a.rgb, b.rgb, 48 * 48 * 3) == 0, "same seed, different augmentation");
    int differ = 0;
    for (uint64_t s = 100; s < 110 && !differ; s++) {
        gr_image_free(&b);
        gr_image_preprocess_u8(&pp, &aug, s, &img, &b);
        differ = memcmp(a.rgb, b.rgb, 48 * 48 * 3) != 0;
    }
    CHECK(differ, "augmentation ignores the seed");
    /* Full-area crop at ratio 1: output is the plain resize or its mirror, both seen. */
    aug.scale_min = aug.scale_max = 1.0;
    aug.ratio_min = aug.ratio_max = 1.0;
    gr_image_preprocess_u8(&pp, NULL, 0, &img, &plain);
    int same = 0, mirrored = 0;
    for (uint64_t s = 0; s < 32; s++) {
        gr_image_free(&b);
        gr_image_preprocess_u8(&pp, &aug, s, &img, &b);
        if (memcmp(b.rgb, plain.rgb, 48 * 48 * 3) == 0) same++;
        gr_image_flip_horizontal(&b);
        if (memcmp(b.rgb, plain.rgb, 48 * 48 * 3) == 0) mirrored++;
    }
    CHECK(same + mirrored == 32 && same > 4 && mirrored > 4, "flip: %d plain, %d mirrored of 32", same, mirrored);
    printf("augment: deterministic per seed; flips %d of 32\n", mirrored);
    gr_image_free(&a);
    gr_image_free(&b);
    gr_image_free(&plain);
    gr_image_free(&img);
    free(path);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s WORLD_DIR\n", argv[0]);
        return 2;
    }
    char *world = realpath(argv[1], NULL); /* the hand-made JSONL below needs absolute paths */
    if (!world) {
        fprintf(stderr, "%s: not found\n", argv[1]);
        return 1;
    }
    test_epoch_order();
    test_loader_threads(world);
    test_bad_images(world);
    test_augment(world);
    free(world);
    printf("loader: %d passed, %d failed\n", checks - failures, failures);
    return failures ? 1 : 0;
}
