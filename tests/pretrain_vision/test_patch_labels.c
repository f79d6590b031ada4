/* Patch labels of hand-made scenes against hand-computed owners (core/data/synth.c:
 * gr_synth_sample_owners + gr_synth_map_patch_owners), and the renderer agreeing with the map.
 *
 * Squares (shape 1) are |u|, |v| <= 0.8 in units of r: with r = 5 a square is 8 px wide. A
 * pixel's samples sit at +0.125, +0.375, +0.625, +0.875, so a square centred at 12 covers the
 * samples of pixels 8..15 exactly. The 32 px image has a 4x4 grid of 8 px patches; patch
 * index = row * 4 + col. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/synth.h"

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

static gr_synth_object square(float cx, float cy, float r)
{
    gr_synth_object o = {.shape = 1, .color = 0, .large = 1, .cx = cx, .cy = cy, .r = r};
    return o;
}

/* Owners of a scene; `expect` lists (patch, owner) pairs, every other patch must be -1. */
static void expect_owners(const char *what, const gr_synth_scene *sc, int size, int patch, double min_share, const int *expect, int n)
{
    int8_t *map = malloc((size_t)(16 * size * size));
    int owner[64], want[64];
    if (!map) { failures++; return; }
    gr_synth_sample_owners(sc, size, map);
    int grid = gr_synth_map_patch_owners(map, size, patch, min_share, owner);
    CHECK(grid == size / patch, "%s: grid %d, expected %d", what, grid, size / patch);
    for (int i = 0; i < grid * grid; i++) want[i] = -1;
    for (int i = 0; i < n; i++) want[expect[2 * i]] = expect[2 * i + 1];
    int ok = 1;
    for (int i = 0; i < grid * grid; i++)
        if (owner[i] != want[i]) { ok = 0; CHECK(0, "%s: patch %d owner %d, expected %d", what, i, owner[i], want[i]); }
    if (ok) printf("ok   %s\n", what);
    free(map);
}

int main(void)
{
    gr_synth_scene sc;
    memset(&sc, 0, sizeof sc);
    sc.background[0] = sc.background[1] = sc.background[2] = 128;

    /* one square exactly filling patch (1, 1) */
    sc.n = 1;
    sc.obj[0] = square(12, 12, 5);
    expect_owners("centred in a patch: patch 5 only", &sc, 32, 8, 0.1, (int[]){5, 0}, 1);

    /* straddling patches (1, 1) and (1, 2): half of each */
    sc.obj[0] = square(16, 12, 5);
    expect_owners("straddling two patches: 5 and 6", &sc, 32, 8, 0.1, (int[]){5, 0, 6, 0}, 2);

    /* x in [7.25, 15.25]: 3 samples a row of pixel 7 = 3/32 = 9.4% of patch 4 -> background at
     * 10%, the object's at 5% */
    sc.obj[0] = square(11.25f, 12, 5);
    expect_owners("9.4% of a patch is background at min_share 0.1", &sc, 32, 8, 0.1, (int[]){5, 0}, 1);
    expect_owners("... and the object's at min_share 0.05", &sc, 32, 8, 0.05, (int[]){4, 0, 5, 0}, 2);

    /* overlap: A fills patch 5, B (y in [11, 19]) covers rows 11..15 of it (62.5%) and rows
     * 16..18 of patch 9 (37.5%). Drawn A then B: B owns both. Drawn B then A: A is on top of
     * patch 5 (100%), B keeps patch 9. */
    sc.n = 2;
    sc.obj[0] = square(12, 12, 5);
    sc.obj[1] = square(12, 15, 5);
    expect_owners("overlap, later object on top: B owns 5 and 9", &sc, 32, 8, 0.1, (int[]){5, 1, 9, 1}, 2);
    sc.obj[0] = square(12, 15, 5);
    sc.obj[1] = square(12, 12, 5);
    expect_owners("overlap, order swapped: A owns 5, B 9", &sc, 32, 8, 0.1, (int[]){5, 1, 9, 0}, 2);

    /* two objects side by side in one patch: A 4x4 px (25%), B, drawn later, 3x3 px (14%): the
     * larger share wins, not the later object */
    sc.obj[0] = square(10, 12, 2.5f);
    sc.obj[1] = square(14.5f, 12, 1.875f);
    expect_owners("two objects in a patch: the larger share wins", &sc, 32, 8, 0.1, (int[]){5, 0}, 1);

    /* another grid: 48 px, 16 px patches (3x3), a 16 px square in the middle patch */
    sc.n = 1;
    sc.obj[0] = square(24, 24, 10);
    expect_owners("48 px / 16 px patches: the centre patch 4", &sc, 48, 16, 0.1, (int[]){4, 0}, 1);

    /* background everywhere without objects */
    sc.n = 0;
    expect_owners("no object: all background", &sc, 32, 8, 0.1, NULL, 0);

    /* the renderer and the map agree: a pixel differs from the background iff a sample of it
     * is owned (a generated scene with circles, stars, ...) */
    gr_synth_config cfg;
    gr_synth_config_defaults(&cfg);
    cfg.image_size = 32;
    int mismatches = 0, owned = 0;
    for (size_t idx = 0; idx < 20; idx++) {
        gr_synth_make_scene(&cfg, idx, &sc);
        gr_image img;
        int8_t map[16 * 32 * 32];
        if (gr_image_alloc(&img, 32, 32)) { failures++; break; }
        gr_synth_render(&cfg, idx, &sc, &img);
        gr_synth_sample_owners(&sc, 32, map);
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++) {
                int any = 0;
                for (int q = 0; q < 16; q++) any |= map[(4 * y + q / 4) * 128 + 4 * x + q % 4] >= 0;
                int differs = memcmp(img.rgb + 3 * (y * 32 + x), sc.background, 3) != 0;
                owned += any;
                /* an owned pixel may blend back to the background's value only by accident; an
                 * unowned one must be untouched */
                if (!any && differs) mismatches++;
            }
        gr_image_free(&img);
    }
    CHECK(mismatches == 0 && owned > 500, "renderer vs map: %d unowned pixels changed, %d owned", mismatches, owned);
    if (!mismatches) printf("ok   renderer leaves every unowned pixel at the background (%d owned pixels in 20 scenes)\n", owned);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
