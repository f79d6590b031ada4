/* Dataset readers on files written by `graft synth`, and on hand-made malformed files.
 *
 * usage: test_datasets WORLD_DIR MALFORMED_DIR
 * WORLD_DIR is a fresh `graft synth --size 60` output (ctest fixture). */
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

static gr_dataset *open_ds(gr_dataset_format fmt, const char *dir, const char *file, const char *ann,
                           const char *root, const char *pattern, int group)
{
    char *path = gr_path_join(dir, file), *annp = ann ? gr_path_join(dir, ann) : NULL;
    char *rootp = root ? gr_path_join(dir, root) : NULL;
    gr_dataset_spec spec = {fmt, path, annp, rootp, pattern, group};
    gr_dataset *ds = NULL;
    gr_status st = gr_dataset_open(&spec, &ds);
    CHECK(st == GR_OK, "%s: %s", file, gr_last_error());
    free(path);
    free(annp);
    free(rootp);
    return ds;
}

static void check_images_exist(gr_dataset *ds, const char *what)
{
    size_t missing = 0;
    for (size_t i = 0; i < gr_dataset_size(ds); i++) missing += !gr_path_exists(gr_dataset_sample(ds, i)->image);
    CHECK(missing == 0, "%s: %zu image paths do not exist (first %s)", what, missing, gr_dataset_sample(ds, 0)->image);
}

static void test_synth_world(const char *w)
{
    /* world.json says 60 images: 48 train, 6 val, 6 test, 5 captions each. */
    gr_dataset *coco = open_ds(GR_DATASET_COCO_CAPTIONS, w, "annotations/captions_train.json", NULL, "images", NULL, 0);
    gr_dataset *grouped = open_ds(GR_DATASET_COCO_CAPTIONS, w, "annotations/captions_val.json", NULL, "images", NULL, 1);
    gr_dataset *kt = open_ds(GR_DATASET_KARPATHY, w, "annotations/coco_karpathy_train.json", NULL, ".", NULL, 0);
    gr_dataset *kv = open_ds(GR_DATASET_KARPATHY, w, "annotations/coco_karpathy_val.json", NULL, ".", NULL, 0);
    gr_dataset *cj = open_ds(GR_DATASET_JSONL, w, "captions_train.jsonl", NULL, NULL, NULL, 0);
    gr_dataset *vqa = open_ds(GR_DATASET_VQAV2, w, "annotations/vqa_train_questions.json",
                              "annotations/vqa_train_annotations.json", "images", "{image_id:012}.png", 0);
    gr_dataset *vq_only = open_ds(GR_DATASET_VQAV2, w, "annotations/vqa_test_questions.json", NULL, "images",
                                  "{image_id:012}.png", 0);
    gr_dataset *vj = open_ds(GR_DATASET_JSONL, w, "vqa_train.jsonl", NULL, NULL, NULL, 0);
    if (!coco || !grouped || !kt || !kv || !cj || !vqa || !vq_only || !vj) goto out;
    CHECK(gr_dataset_size(coco) == 48 * 5, "coco train: %zu samples", gr_dataset_size(coco));
    CHECK(gr_dataset_size(grouped) == 6, "coco val grouped: %zu samples", gr_dataset_size(grouped));
    CHECK(gr_dataset_sample(grouped, 0)->n_texts == 5, "grouped: %d captions", gr_dataset_sample(grouped, 0)->n_texts);
    CHECK(gr_dataset_size(kt) == 48 * 5 && gr_dataset_size(kv) == 6, "karpathy sizes %zu %zu", gr_dataset_size(kt),
          gr_dataset_size(kv));
    CHECK(gr_dataset_sample(kv, 0)->n_texts == 5, "karpathy val captions");
    CHECK(gr_dataset_sample(kt, 0)->image_id == 1 && strcmp(gr_dataset_sample(kt, 0)->image_key, "synth_1") == 0,
          "karpathy image_id %lld key %s", (long long)gr_dataset_sample(kt, 0)->image_id,
          gr_dataset_sample(kt, 0)->image_key);
    CHECK(gr_dataset_size(cj) == gr_dataset_size(coco), "jsonl captions %zu", gr_dataset_size(cj));
    check_images_exist(coco, "coco");
    check_images_exist(grouped, "coco grouped");
    check_images_exist(kt, "karpathy");
    check_images_exist(cj, "jsonl captions");
    check_images_exist(vqa, "vqa");
    check_images_exist(vj, "jsonl vqa");
    /* The same caption and image through every caption format. */
    for (size_t i = 0; i < gr_dataset_size(coco); i += 37) {
        const gr_sample *a = gr_dataset_sample(coco, i), *b = gr_dataset_sample(kt, i), *c = gr_dataset_sample(cj, i);
        CHECK(strcmp(a->texts[0], b->texts[0]) == 0 && strcmp(a->texts[0], c->texts[0]) == 0, "caption %zu differs", i);
        char *ra = realpath(a->image, NULL), *rb = realpath(b->image, NULL), *rc = realpath(c->image, NULL);
        CHECK(ra && rb && rc && strcmp(ra, rb) == 0 && strcmp(ra, rc) == 0, "image %zu differs", i);
        CHECK(a->image_id == b->image_id && a->image_id == c->image_id, "image id %zu", i);
        free(ra);
        free(rb);
        free(rc);
    }
    CHECK(gr_dataset_is_vqa(vqa) && gr_dataset_is_vqa(vj) && !gr_dataset_is_vqa(coco), "vqa flags");
    CHECK(gr_dataset_size(vqa) == gr_dataset_size(vj) && gr_dataset_size(vqa) >= 48, "vqa sizes %zu %zu",
          gr_dataset_size(vqa), gr_dataset_size(vj));
    for (size_t i = 0; i < gr_dataset_size(vqa); i++) {
        const gr_sample *a = gr_dataset_sample(vqa, i), *b = gr_dataset_sample(vj, i);
        CHECK(a->n_texts == 10 && b->n_texts == 10 && a->answer && strcmp(a->answer, a->texts[0]) == 0 &&
                  strcmp(a->question, b->question) == 0 && strcmp(a->texts[3], b->texts[3]) == 0 &&
                  a->question_id == b->question_id && a->question_id / 1000 == a->image_id,
              "vqa sample %zu disagrees between formats", i);
        if (failures) break;
    }
    CHECK(gr_dataset_sample(vq_only, 0)->n_texts == 0 && gr_dataset_sample(vq_only, 0)->answer == NULL,
          "questions-only VQA has no answers");
    printf("synth world: %zu COCO, %zu Karpathy, %zu VQA samples read and cross-checked\n", gr_dataset_size(coco),
           gr_dataset_size(kt), gr_dataset_size(vqa));
out:
    gr_dataset_free(coco);
    gr_dataset_free(grouped);
    gr_dataset_free(kt);
    gr_dataset_free(kv);
    gr_dataset_free(cj);
    gr_dataset_free(vqa);
    gr_dataset_free(vq_only);
    gr_dataset_free(vj);
}

static void test_malformed(const char *dir)
{
    char *cases = gr_path_join(dir, "cases.txt");
    FILE *f = fopen(cases, "r");
    CHECK(f != NULL, "%s missing", cases);
    free(cases);
    if (!f) return;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        char *fields[4];
        char *save, *p = line;
        for (int k = 0; k < 4; k++) {
            char *t = strtok_r(p, "|\n", &save);
            p = NULL;
            while (t && *t == ' ') t++;
            if (t) {
                char *e = t + strlen(t);
                while (e > t && e[-1] == ' ') *--e = '\0';
            }
            fields[k] = t;
        }
        if (!fields[3]) continue;
        gr_dataset_format fmt = strcmp(fields[0], "coco") == 0       ? GR_DATASET_COCO_CAPTIONS
                                : strcmp(fields[0], "karpathy") == 0 ? GR_DATASET_KARPATHY
                                : strcmp(fields[0], "vqa") == 0      ? GR_DATASET_VQAV2
                                                                     : GR_DATASET_JSONL;
        char *path = gr_path_join(dir, fields[1]);
        char *ann = strcmp(fields[2], "-") ? gr_path_join(dir, fields[2]) : NULL;
        gr_dataset_spec spec = {fmt, path, ann, NULL, NULL, 0};
        gr_dataset *ds = NULL;
        gr_clear_error();
        gr_status st = gr_dataset_open(&spec, &ds);
        const char *msg = gr_last_error();
        const char *named = ann ? fields[2] : fields[1];
        int ok = st != GR_OK && ds == NULL && strstr(msg, named) && strstr(msg, fields[3]) && !strchr(msg, '\n');
        CHECK(ok, "%s: expected an error naming %s with '%s', got '%s'", fields[1], named, fields[3], msg);
        if (ok) printf("ok   %s -> %s\n", fields[1], msg);
        gr_dataset_free(ds);
        free(path);
        free(ann);
        n++;
    }
    fclose(f);
    CHECK(n >= 15, "only %d malformed cases", n);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s WORLD_DIR MALFORMED_DIR\n", argv[0]);
        return 2;
    }
    test_synth_world(argv[1]);
    test_malformed(argv[2]);
    printf("datasets: %d passed, %d failed\n", checks - failures, failures);
    return failures ? 1 : 0;
}
