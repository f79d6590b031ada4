/* Image parity against PIL + numpy (HF's CLIP/BLIP preprocessing).
 *
 * usage: test_image_parity CASES.jsonl IMAGE_DIR
 * Each line of CASES.jsonl (written by make_expected.py) is one of:
 *   decode:     {"image", "width", "height", "decode_fnv1a64"}  exact RGB after convert("RGB")
 *   preprocess: {"image", "config", "expected" (PNG), "expected_f32"?}
 *   crop+resize:{"image", "crop": [l, t, w, h], "resize": [w, h], "expected"}
 * Bound: max abs difference <= 1 (of 255) in uint8; float32 within 1/255/std. Prints the
 * number of differing samples so an exact match is visible. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fsutil.h"
#include "image/image.h"

static int failures;

static uint64_t fnv1a64(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

static void fail(const char *name, const char *what)
{
    printf("FAIL %s: %s\n", name, what);
    failures++;
}

/* Writes the case's config object to a temporary file and loads it the way users do. */
static gr_status load_config(json_t *cfg, gr_image_preproc *pp)
{
    char path[] = "/tmp/graft_parity_cfg_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return gr_fail(GR_ERR_IO, "mkstemp failed");
    FILE *f = fdopen(fd, "w");
    json_dumpf(cfg, f, 0);
    fclose(f);
    gr_status st = gr_image_preproc_load(path, pp);
    remove(path);
    return st;
}

static void compare_u8(const char *name, const gr_image *got, const gr_image *want)
{
    char msg[256];
    if (got->width != want->width || got->height != want->height) {
        snprintf(msg, sizeof msg, "size %dx%d, expected %dx%d", got->width, got->height, want->width, want->height);
        fail(name, msg);
        return;
    }
    size_t n = (size_t)got->width * got->height * 3, ndiff = 0;
    int maxd = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)got->rgb[i] - (int)want->rgb[i]);
        if (d) ndiff++;
        if (d > maxd) maxd = d;
    }
    printf("%s %s: %dx%d, %zu of %zu samples differ, max abs diff %d/255\n", maxd <= 1 ? "ok  " : "FAIL", name,
           got->width, got->height, ndiff, n, maxd);
    if (maxd > 1) failures++;
}

static void compare_f32(const char *name, const char *path, const gr_image_preproc *pp, const gr_image *u8)
{
    char *data;
    size_t len, n = (size_t)u8->width * u8->height * 3;
    if (gr_read_file(path, &data, &len) || len != n * 4) {
        fail(name, "expected_f32 missing or of the wrong size");
        if (len) free(data);
        return;
    }
    float *got = malloc(n * sizeof *got);
    gr_image_to_chw(pp, u8, got);
    double maxd = 0, bound = 1e-6;
    size_t nexact = 0;
    for (int c = 0; c < 3; c++) {
        double b = 1.0 / 255.0 / pp->image_std[c] + 1e-6;
        if (b > bound) bound = b;
    }
    for (size_t i = 0; i < n; i++) {
        float want;
        memcpy(&want, data + i * 4, 4); /* little-endian host assumed (x86-64, arm64) */
        double d = fabs((double)got[i] - (double)want);
        if (d == 0) nexact++;
        if (d > maxd) maxd = d;
    }
    printf("%s %s (float32 CHW): %zu of %zu bit-identical, max abs diff %g\n", maxd <= bound ? "ok  " : "FAIL",
           name, nexact, n, maxd);
    if (maxd > bound) failures++;
    free(got);
    free(data);
}

static void run_case(json_t *c, const char *cases_dir, const char *image_dir)
{
    const char *name = json_string_value(json_object_get(c, "name"));
    const char *image = json_string_value(json_object_get(c, "image"));
    if (!name || !image) {
        fail("?", "case without name/image");
        return;
    }
    char *ipath = gr_path_join(image_dir, image);
    gr_image img;
    if (gr_image_load(ipath, &img)) {
        fail(name, gr_last_error());
        free(ipath);
        return;
    }
    free(ipath);
    json_t *hash = json_object_get(c, "decode_fnv1a64");
    if (hash) {
        char got[32];
        snprintf(got, sizeof got, "%016llx",
                 (unsigned long long)fnv1a64(img.rgb, (size_t)img.width * img.height * 3));
        int ok = img.width == json_integer_value(json_object_get(c, "width")) &&
                 img.height == json_integer_value(json_object_get(c, "height")) &&
                 strcmp(got, json_string_value(hash)) == 0;
        printf("%s %s: %dx%d RGB %s\n", ok ? "ok  " : "FAIL", name, img.width, img.height,
               ok ? "identical to PIL" : "differs from PIL");
        if (!ok) failures++;
        gr_image_free(&img);
        return;
    }
    gr_image got = {0, 0, NULL}, want = {0, 0, NULL};
    gr_image_preproc pp;
    gr_status st;
    json_t *crop = json_object_get(c, "crop");
    if (crop) {
        gr_image tmp;
        json_t *rs = json_object_get(c, "resize");
        st = gr_image_crop(&img, (int)json_integer_value(json_array_get(crop, 0)),
                           (int)json_integer_value(json_array_get(crop, 1)),
                           (int)json_integer_value(json_array_get(crop, 2)),
                           (int)json_integer_value(json_array_get(crop, 3)), &tmp);
        if (!st) {
            st = gr_image_resize(&tmp, (int)json_integer_value(json_array_get(rs, 0)),
                                 (int)json_integer_value(json_array_get(rs, 1)), GR_RESAMPLE_BICUBIC, NULL, &got);
            gr_image_free(&tmp);
        }
    } else {
        st = load_config(json_object_get(c, "config"), &pp);
        if (!st) st = gr_image_preprocess_u8(&pp, NULL, 0, &img, &got);
    }
    char *epath = gr_path_join(cases_dir, json_string_value(json_object_get(c, "expected")));
    if (st) fail(name, gr_last_error());
    else if (gr_image_load(epath, &want)) fail(name, gr_last_error());
    else {
        compare_u8(name, &got, &want);
        json_t *f32 = json_object_get(c, "expected_f32");
        if (f32) {
            char *fpath = gr_path_join(cases_dir, json_string_value(f32));
            compare_f32(name, fpath, &pp, &got);
            free(fpath);
        }
    }
    free(epath);
    gr_image_free(&got);
    gr_image_free(&want);
    gr_image_free(&img);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s CASES.jsonl IMAGE_DIR\n", argv[0]);
        return 2;
    }
    char *dir = strdup(argv[1]);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else strcpy(dir, ".");
    FILE *f = fopen(argv[1], "r");
    if (!f) {
        fprintf(stderr, "%s: cannot open\n", argv[1]);
        return 1;
    }
    char line[8192];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        json_error_t err;
        json_t *c = json_loads(line, 0, &err);
        if (!c) {
            fail(argv[1], err.text);
            continue;
        }
        run_case(c, dir, argv[2]);
        json_decref(c);
        n++;
    }
    fclose(f);
    free(dir);
    if (n == 0) fail(argv[1], "no cases");
    printf("image parity: %d passed, %d failed\n", n - failures, failures);
    return failures ? 1 : 0;
}
