/* `graft pretrain-vision` end to end on a small world written by `graft synth`: the output
 * directory's files and config.json, held-out colour accuracy well above the majority baseline,
 * the directory loading with the clip-vit plugin (`graft verify` on the case the command wrote),
 * its tensors equal to the trained ones of the final checkpoint (heads not exported), and
 * one-line errors. Usage: test_pretrain_vision GRAFT_BIN TMP_DIR */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "base/fsutil.h"
#include "graft/weights.h"

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

static const char *graft, *tmp;

static int sh(const char *log, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sh(const char *log, const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd - 600, fmt, ap);
    va_end(ap);
    snprintf(cmd + n, sizeof cmd - (size_t)n, " > '%s' 2>&1", log);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *path)
{
    char *t = NULL;
    if (gr_read_file(path, &t, NULL)) return strdup("");
    return t;
}

static void show(const char *log)
{
    char *t = slurp(log);
    printf("---- %s\n%s----\n", log, t);
    free(t);
}

/* Exit status 1 and exactly one stderr line "graft: ...NEEDLE..." */
static void expect_error(const char *what, const char *needle, const char *fmt, const char *arg)
{
    char log[1024], cmd[4096];
    snprintf(log, sizeof log, "%s/err.txt", tmp);
    snprintf(cmd, sizeof cmd, fmt, arg);
    int rc = sh(log, "cd '%s' && '%s' pretrain-vision -c pv.cfg %s", tmp, graft, cmd);
    char *t = slurp(log);
    int lines = 0;
    for (char *p = t; *p; p++) lines += *p == '\n';
    int ok = rc == 1 && lines == 1 && strncmp(t, "graft: ", 7) == 0 && strstr(t, needle);
    CHECK(ok, "%s: exit %d, %d lines, expected one line naming '%s': %s", what, rc, lines, needle, t);
    if (ok) printf("ok   error: %s: %s", what, t);
    free(t);
}

static void write_text(const char *path, const char *text)
{
    if (gr_write_file_atomic(path, text, strlen(text))) { failures++; printf("FAIL cannot write %s\n", path); }
}

static const char *tower_json(int size)
{
    static char buf[512];
    snprintf(buf, sizeof buf,
             "{\"model_type\": \"clip_vision_model\", \"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 2,"
             " \"num_attention_heads\": 2, \"num_channels\": 3, \"image_size\": %d, \"patch_size\": 8, \"hidden_act\": \"quick_gelu\"}\n",
             size);
    return buf;
}

int main(int argc, char **argv)
{
    if (argc != 3) { fprintf(stderr, "usage: test_pretrain_vision GRAFT_BIN TMP_DIR\n"); return 2; }
    graft = argv[1];
    tmp = argv[2];
    char path[1024], log[1024];
    snprintf(path, sizeof path, "rm -rf '%s'", tmp);
    if (system(path) != 0 || gr_mkdirs(tmp)) { printf("FAIL cannot reset %s\n", tmp); return 1; }
    snprintf(log, sizeof log, "%s/log.txt", tmp);
    int rc = sh(log, "cd '%s' && '%s' synth --out world --size 300 --image-size 32 --seed 3", tmp, graft);
    CHECK(rc == 0, "graft synth exit %d", rc);
    snprintf(path, sizeof path, "%s/tower", tmp);
    gr_mkdirs(path);
    snprintf(path, sizeof path, "%s/tower/config.json", tmp);
    write_text(path, tower_json(32));
    snprintf(path, sizeof path, "%s/tower48", tmp);
    gr_mkdirs(path);
    snprintf(path, sizeof path, "%s/tower48/config.json", tmp);
    write_text(path, tower_json(48));
    snprintf(path, sizeof path, "%s/pv.cfg", tmp);
    write_text(path, "pretrain_vision: {\n  world = \"world\";\n  tower = \"tower\";\n  out = \"out\";\n  steps = 200;\n"
                     "  batch_size = 32;\n  warmup_steps = 20;\n  seed = 1;\n};\nbackend: { threads = 1; };\n");

    rc = sh(log, "cd '%s' && '%s' pretrain-vision -c pv.cfg", tmp, graft);
    CHECK(rc == 0, "pretrain-vision exit %d", rc);
    if (rc) show(log);
    static const char *const files[] = {"config.json", "model.safetensors", "quality.json", "run/report.json", "run/metrics.jsonl",
                                        "run/config.cfg", "run/verify_case.safetensors"};
    for (int i = 0; i < 7; i++) {
        snprintf(path, sizeof path, "%s/out/%s", tmp, files[i]);
        CHECK(gr_path_exists(path), "%s missing", files[i]);
    }
    /* config.json: a CLIPVisionModel config with the tower's sizes */
    json_error_t e;
    snprintf(path, sizeof path, "%s/out/config.json", tmp);
    json_t *c = json_load_file(path, 0, &e);
    CHECK(c && strcmp(json_string_value(json_object_get(c, "model_type")), "clip_vision_model") == 0 &&
              strcmp(json_string_value(json_array_get(json_object_get(c, "architectures"), 0)), "CLIPVisionModel") == 0 &&
              json_integer_value(json_object_get(c, "image_size")) == 32 && json_integer_value(json_object_get(c, "patch_size")) == 8,
          "config.json: model_type / architectures / sizes");
    json_decref(c);
    /* quality: colour well above the majority baseline on held-out object patches */
    snprintf(path, sizeof path, "%s/out/quality.json", tmp);
    json_t *q = json_load_file(path, 0, &e);
    double ca = json_real_value(json_object_get(json_object_get(q, "color"), "accuracy"));
    double cb = json_real_value(json_object_get(json_object_get(q, "color"), "baseline"));
    double oa = json_real_value(json_object_get(json_object_get(q, "object"), "accuracy"));
    double ob = json_real_value(json_object_get(json_object_get(q, "object"), "baseline"));
    CHECK(q && ca > cb + 0.4 && oa > ob + 0.05 && json_integer_value(json_object_get(q, "val_images")) == 30,
          "held-out colour accuracy %.3f vs baseline %.3f, object %.3f vs %.3f", ca, cb, oa, ob);
    printf("ok   held-out colour accuracy %.3f (baseline %.3f), background vs object %.3f (baseline %.3f)\n", ca, cb, oa, ob);
    json_decref(q);
    /* the directory loads with the clip-vit plugin and reproduces the trained features */
    rc = sh(log, "'%s' verify '%s/out' '%s/out/run/verify_case.safetensors'", graft, tmp, tmp);
    CHECK(rc == 0, "graft verify exit %d", rc);
    if (rc) show(log);
    else printf("ok   graft verify OUT OUT/run/verify_case.safetensors\n");
    rc = sh(log, "'%s' inspect '%s/out'", graft, tmp);
    CHECK(rc == 0, "graft inspect exit %d", rc);
    /* tensors: every trained tower tensor of the final checkpoint, bit for bit; no head */
    gr_weights *m = NULL, *k = NULL;
    snprintf(path, sizeof path, "%s/out", tmp);
    CHECK(gr_weights_open(path, &m) == GR_OK, "model.safetensors: %s", gr_last_error());
    snprintf(path, sizeof path, "%s/out/run/checkpoints/step-00000200/trainable.safetensors", tmp);
    CHECK(gr_weights_open(path, &k) == GR_OK, "checkpoint: %s", gr_last_error());
    if (m && k) {
        int same = 0, heads = 0, bad = 0;
        for (int i = 0; i < gr_weights_count(k); i++) {
            const gr_weight_info *a = gr_weights_at(k, i), *b = gr_weights_find(m, a->name);
            if (strncmp(a->name, "heads.", 6) == 0) { heads++; bad += b != NULL; continue; }
            if (!b || b->nbytes != a->nbytes || memcmp(a->data, b->data, a->nbytes) != 0) { bad++; printf("  differs: %s\n", a->name); }
            else same++;
        }
        int vm = 0;
        for (int i = 0; i < gr_weights_count(m); i++) vm += strncmp(gr_weights_at(m, i)->name, "vision_model.", 13) == 0;
        /* the file has the trained tensors plus post_layernorm (not trained: only the pooler reads it) */
        CHECK(bad == 0 && heads == 6 && same > 20 && vm == gr_weights_count(m) && vm == same + 2,
              "tensors: %d equal, %d differ, %d heads in the checkpoint, %d vision_model.* of %d in the file", same, bad, heads, vm,
              gr_weights_count(m));
        if (!bad) printf("ok   %d trained tensors equal in model.safetensors; heads not exported\n", same);
    }
    gr_weights_close(m);
    gr_weights_close(k);

    /* errors: one line naming the file or key */
    expect_error("missing world", "no_such_world", "-s pretrain_vision.world=%s", "no_such_world");
    expect_error("tower image_size differs from the world's", "image_size", "-s pretrain_vision.tower=%s", "tower48");
    expect_error("unknown key", "pretrain_vision.stepz", "-s %s=3", "pretrain_vision.stepz");
    expect_error("missing tower config", "nowhere/config.json", "-s pretrain_vision.tower=%s", "nowhere");
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
