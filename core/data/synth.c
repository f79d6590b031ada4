/* The synthetic world: scenes, the rasteriser, and the caption / question grammar.
 *
 * Everything is a pure function of (config, image index) through graft's own generator, and the
 * rasteriser uses fixed polygon tables, 4x4 supersampling and integer blending, so the same
 * seed gives the same PNG pixels on every machine (no libm call touches pixel coverage). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "data/rng.h"
#include "data/synth.h"
#include "data/synth_text.h"

static const char *const color_names[GR_SYNTH_N_COLORS] = {"red",  "green", "blue", "yellow", "purple", "orange",
                                                           "pink", "cyan",  "brown", "white", "black"};
static const uint8_t color_rgb[GR_SYNTH_N_COLORS][3] = {
    {220, 30, 30}, {30, 170, 40}, {30, 60, 220}, {240, 220, 30}, {140, 40, 170}, {245, 140, 20},
    {250, 140, 190}, {40, 220, 230}, {120, 70, 30}, {250, 250, 250}, {15, 15, 15}};
static const char *const shape_names[GR_SYNTH_N_SHAPES] = {"circle", "square",  "triangle", "diamond",
                                                           "star",   "hexagon", "cross"};

const char *gr_synth_color_name(int c) { return c >= 0 && c < GR_SYNTH_N_COLORS ? color_names[c] : "?"; }
const char *gr_synth_shape_name(int s) { return s >= 0 && s < GR_SYNTH_N_SHAPES ? shape_names[s] : "?"; }

void gr_synth_config_defaults(gr_synth_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->seed = 0;
    cfg->size = 1000;
    cfg->image_size = 64;
    cfg->min_objects = 1;
    cfg->max_objects = 3;
    cfg->n_colors = 8;
    cfg->n_shapes = 6;
    cfg->distractors = 0;
    cfg->captions_per_image = 5;
    cfg->questions_per_image = 3;
    cfg->val_fraction = 0.1;
    cfg->test_fraction = 0.1;
    cfg->png_compression = 3;
    cfg->threads = 2;
}

gr_status gr_synth_check_config(const gr_synth_config *c)
{
    if (c->size < 3 || c->size > 10000000) return gr_fail(GR_ERR_INVALID, "synth: --size must be in 3..10000000");
    if (c->image_size < 16 || c->image_size > 1024) return gr_fail(GR_ERR_INVALID, "synth: --image-size must be in 16..1024");
    if (c->min_objects < 1 || c->max_objects > GR_SYNTH_MAX_OBJECTS || c->min_objects > c->max_objects)
        return gr_fail(GR_ERR_INVALID, "synth: objects per image must satisfy 1 <= min <= max <= %d", GR_SYNTH_MAX_OBJECTS);
    if (c->n_colors < 2 || c->n_colors > GR_SYNTH_N_COLORS)
        return gr_fail(GR_ERR_INVALID, "synth: --colors must be in 2..%d", GR_SYNTH_N_COLORS);
    if (c->n_shapes < 2 || c->n_shapes > GR_SYNTH_N_SHAPES)
        return gr_fail(GR_ERR_INVALID, "synth: --shapes must be in 2..%d", GR_SYNTH_N_SHAPES);
    if (c->distractors < 0 || c->distractors >= c->max_objects)
        return gr_fail(GR_ERR_INVALID, "synth: --distractors must be in 0..max_objects-1");
    if (c->captions_per_image < 1 || c->captions_per_image > 20 || c->questions_per_image < 1 ||
        c->questions_per_image > 20)
        return gr_fail(GR_ERR_INVALID, "synth: captions and questions per image must be in 1..20");
    if (!(c->val_fraction >= 0 && c->test_fraction >= 0 && c->val_fraction + c->test_fraction < 0.9))
        return gr_fail(GR_ERR_INVALID, "synth: val and test fractions must be >= 0 and sum below 0.9");
    if (c->png_compression < 0 || c->png_compression > 9 || c->threads < 1 || c->threads > 64)
        return gr_fail(GR_ERR_INVALID, "synth: png compression must be 0..9 and threads 1..64");
    return GR_OK;
}

/* ---- scenes ------------------------------------------------------------------------------- */

void gr_synth_make_scene(const gr_synth_config *cfg, size_t index, gr_synth_scene *sc)
{
    gr_rng r;
    gr_rng_seed(&r, gr_seed_mix(cfg->seed, 0x5343454e45ULL /* "SCENE" */, index));
    float P = (float)cfg->image_size;
    int want = cfg->min_objects + (int)gr_rng_below(&r, (uint64_t)(cfg->max_objects - cfg->min_objects + 1));
    int base = 96 + (int)gr_rng_below(&r, 64);
    for (int c = 0; c < 3; c++) sc->background[c] = (uint8_t)(base - 6 + (int)gr_rng_below(&r, 13));
    sc->n = 0;
    for (int k = 0; k < want; k++) {
        gr_synth_object o;
        o.shape = (int)gr_rng_below(&r, (uint64_t)cfg->n_shapes);
        o.color = (int)gr_rng_below(&r, (uint64_t)cfg->n_colors);
        if (k >= 1 && k <= cfg->distractors && sc->n > 0) {
            /* A distractor repeats one attribute of an earlier object and changes the other. */
            const gr_synth_object *p = &sc->obj[gr_rng_below(&r, (uint64_t)sc->n)];
            if (gr_rng_below(&r, 2)) {
                o.shape = p->shape;
                o.color = (p->color + 1 + (int)gr_rng_below(&r, (uint64_t)cfg->n_colors - 1)) % cfg->n_colors;
            } else {
                o.color = p->color;
                o.shape = (p->shape + 1 + (int)gr_rng_below(&r, (uint64_t)cfg->n_shapes - 1)) % cfg->n_shapes;
            }
        }
        o.large = (int)gr_rng_below(&r, 2);
        o.r = P * (o.large ? 0.17f : 0.10f) * (0.9f + 0.2f * (float)gr_rng_uniform(&r));
        int placed = 0;
        for (int attempt = 0; attempt < 60 && !placed; attempt++) {
            float margin = 1.0f, span = P - 2 * (o.r + margin);
            o.cx = o.r + margin + span * (float)gr_rng_uniform(&r);
            o.cy = o.r + margin + span * (float)gr_rng_uniform(&r);
            placed = 1;
            for (int j = 0; j < sc->n && placed; j++) {
                float dx = o.cx - sc->obj[j].cx, dy = o.cy - sc->obj[j].cy, md = o.r + sc->obj[j].r + 2.0f;
                if (dx * dx + dy * dy < md * md) placed = 0;
            }
        }
        if (placed) sc->obj[sc->n++] = o;
    }
}

/* ---- rasteriser --------------------------------------------------------------------------- */

typedef struct vec2 { float x, y; } vec2;
static const vec2 triangle_pts[] = {{0.0f, -1.0f}, {0.98f, 0.72f}, {-0.98f, 0.72f}};
static const vec2 star_pts[] = {{0.0f, -1.0f},     {0.2645f, -0.3641f}, {0.9511f, -0.309f}, {0.428f, 0.1391f},
                                {0.5878f, 0.809f}, {0.0f, 0.45f},       {-0.5878f, 0.809f}, {-0.428f, 0.1391f},
                                {-0.9511f, -0.309f}, {-0.2645f, -0.3641f}};
static const vec2 hexagon_pts[] = {{0.95f, 0.0f},   {0.475f, 0.8227f},  {-0.475f, 0.8227f},
                                   {-0.95f, 0.0f},  {-0.475f, -0.8227f}, {0.475f, -0.8227f}};

static int in_polygon(const vec2 *p, int n, float u, float v)
{
    int in = 0;
    for (int i = 0, j = n - 1; i < n; j = i++)
        if ((p[i].y > v) != (p[j].y > v) && u < (p[j].x - p[i].x) * (v - p[i].y) / (p[j].y - p[i].y) + p[i].x) in = !in;
    return in;
}

static int inside(int shape, float u, float v)
{
    float au = fabsf(u), av = fabsf(v);
    switch (shape) {
    case 0: return u * u + v * v <= 1.0f;
    case 1: return au <= 0.8f && av <= 0.8f;
    case 2: return in_polygon(triangle_pts, 3, u, v);
    case 3: return au + av <= 1.0f;
    case 4: return in_polygon(star_pts, 10, u, v);
    case 5: return in_polygon(hexagon_pts, 6, u, v);
    case 6: return (au <= 0.3f && av <= 0.9f) || (av <= 0.3f && au <= 0.9f);
    }
    return 0;
}

/* The rasteriser's geometry of one object at pixel (x, y): bit (sy * 4 + sx) is set when the
 * sample at (x + (sx + 0.5) / 4, y + (sy + 0.5) / 4) lies inside the shape. Pixels outside the
 * object's bounding box (as the renderer clips it) are 0. */
unsigned gr_synth_pixel_mask(const gr_synth_object *o, int image_size, int x, int y)
{
    int x0 = (int)floorf(o->cx - o->r) - 1, x1 = (int)ceilf(o->cx + o->r) + 1;
    int y0 = (int)floorf(o->cy - o->r) - 1, y1 = (int)ceilf(o->cy + o->r) + 1;
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > image_size) x1 = image_size;
    if (y1 > image_size) y1 = image_size;
    if (x < x0 || x >= x1 || y < y0 || y >= y1) return 0;
    float inv = 1.0f / o->r;
    unsigned mask = 0;
    for (int sy = 0; sy < 4; sy++)
        for (int sx = 0; sx < 4; sx++) {
            float u = ((float)x + (sx + 0.5f) * 0.25f - o->cx) * inv;
            float v = ((float)y + (sy + 0.5f) * 0.25f - o->cy) * inv;
            if (inside(o->shape, u, v)) mask |= 1u << (sy * 4 + sx);
        }
    return mask;
}

static int popcount16(unsigned m)
{
    int n = 0;
    for (; m; m &= m - 1) n++;
    return n;
}

void gr_synth_sample_owners(const gr_synth_scene *sc, int image_size, int8_t *map)
{
    int S = 4 * image_size;
    memset(map, -1, (size_t)S * (size_t)S);
    /* painted in drawing order: a later object covers an earlier one */
    for (int k = 0; k < sc->n; k++)
        for (int y = 0; y < image_size; y++)
            for (int x = 0; x < image_size; x++) {
                unsigned m = gr_synth_pixel_mask(&sc->obj[k], image_size, x, y);
                for (int b = 0; m; b++, m >>= 1)
                    if (m & 1u) map[(size_t)(4 * y + b / 4) * S + (size_t)(4 * x + b % 4)] = (int8_t)k;
            }
}

int gr_synth_map_patch_owners(const int8_t *map, int image_size, int patch, double min_share, int *owner)
{
    if (patch < 1 || patch > image_size) return 0;
    int grid = image_size / patch, S = 4 * image_size, P = 4 * patch; /* the tower's conv floors too */
    for (int py = 0; py < grid; py++)
        for (int px = 0; px < grid; px++) {
            int count[GR_SYNTH_MAX_OBJECTS] = {0};
            for (int y = py * P; y < (py + 1) * P; y++)
                for (int x = px * P; x < (px + 1) * P; x++) {
                    int k = map[(size_t)y * S + (size_t)x];
                    if (k >= 0 && k < GR_SYNTH_MAX_OBJECTS) count[k]++;
                }
            int best = -1;
            for (int k = 0; k < GR_SYNTH_MAX_OBJECTS; k++)
                if (count[k] > 0 && (best < 0 || count[k] >= count[best])) best = k; /* ties: the later object */
            if (best >= 0 && (double)count[best] < min_share * (double)(P * P)) best = -1;
            owner[py * grid + px] = best;
        }
    return grid;
}

void gr_synth_render(const gr_synth_config *cfg, size_t index, const gr_synth_scene *sc, gr_image *img)
{
    int P = cfg->image_size;
    for (size_t i = 0; i < (size_t)P * P; i++) memcpy(img->rgb + i * 3, sc->background, 3);
    gr_rng r;
    gr_rng_seed(&r, gr_seed_mix(cfg->seed, 0x434f4c4f52ULL /* "COLOR" */, index));
    for (int k = 0; k < sc->n; k++) {
        const gr_synth_object *o = &sc->obj[k];
        int col[3];
        for (int c = 0; c < 3; c++) {
            int v = color_rgb[o->color][c] - 12 + (int)gr_rng_below(&r, 25);
            col[c] = v < 0 ? 0 : v > 255 ? 255 : v;
        }
        int x0 = (int)floorf(o->cx - o->r) - 1, x1 = (int)ceilf(o->cx + o->r) + 1;
        int y0 = (int)floorf(o->cy - o->r) - 1, y1 = (int)ceilf(o->cy + o->r) + 1;
        if (x0 < 0) x0 = 0;
        if (y0 < 0) y0 = 0;
        if (x1 > P) x1 = P;
        if (y1 > P) y1 = P;
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++) {
                int hits = popcount16(gr_synth_pixel_mask(o, P, x, y));
                if (!hits) continue;
                uint8_t *p = img->rgb + ((size_t)y * P + x) * 3;
                for (int c = 0; c < 3; c++) p[c] = (uint8_t)((p[c] * (16 - hits) + col[c] * hits + 8) / 16);
            }
    }
}
