/* Vision-tower pretraining on the synthetic world: labels, task, held-out check (see task_vision.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fsutil.h"
#include "base/json_file.h"
#include "data/dataset.h"
#include "data/rng.h"
#include "data/synth.h"
#include "train/task_vision.h"

enum { SPLIT_TRAIN, SPLIT_VAL, N_SPLITS };
enum { ATTR_COLOR, ATTR_SHAPE, ATTR_SIZE, N_ATTRS };
static const char *const attr_names[N_ATTRS] = {"color", "shape", "size"};

/* Val images are kept preprocessed with their labels; train images as the world drew them
 * (pixels, sample owners, object classes), so every batch can shift / flip and relabel them. */
typedef struct split {
    int64_t n, cap;
    float *pixels;                  /* n x 3 x H x W (val) */
    int32_t *labels[N_ATTRS];       /* n x N (val; train: of the unaugmented image, for stats) */
    uint8_t *rgb;                   /* n x H x W x 3 (train) */
    int8_t *map;                    /* n x 4H x 4W sample owners (train) */
    int8_t (*cls)[GR_SYNTH_MAX_OBJECTS][N_ATTRS]; /* per object: colour, shape, size class (train) */
    int32_t (*box)[4];              /* object pixels' x0, x1, y0, y1 inclusive; x0 = -1 if none */
    uint8_t (*bg)[3];               /* background colour; box[0] = -1 also when none is visible */
} split;

struct gr_vision_task {
    gr_vision_task_config cfg;
    gr_vision_info info;
    int64_t image_size, grid, npatch, chw;
    int n_colors, n_shapes;
    int64_t classes[N_ATTRS];       /* colours + 1, shapes + 1, 3: the last class is background */
    split sp[N_SPLITS];
    gr_tensor *heads[2 * N_ATTRS];  /* weight, bias per attribute */
    int64_t *order;                 /* epoch order of the training images */
    int64_t order_epoch;
    int32_t *lab_buf;               /* one batch of labels per attribute */
    float *pix_buf;                 /* one batch of preprocessed pixels */
    int8_t *map_buf;
    int *owner_buf;
    gr_image img_buf;
    float *eval_logits;
};

/* ---------------------------------------------------------------- world ---- */

/* Index of `name` in a JSON array of strings, or -1. */
static int find_name(const json_t *list, const char *name)
{
    size_t i;
    const json_t *v;
    json_array_foreach(list, i, v)
        if (json_is_string(v) && strcmp(json_string_value(v), name) == 0) return (int)i;
    return -1;
}

#define GROW(field, per)                                                                    \
    do {                                                                                    \
        void *p_ = realloc(s->field, (size_t)(cap * (per)) * sizeof *s->field);             \
        if (!p_) return gr_fail(GR_ERR_NOMEM, "pretrain-vision: out of memory for %lld images", (long long)cap); \
        s->field = p_;                                                                      \
    } while (0)

static gr_status split_grow(split *s, int train, int64_t hw, int64_t npatch)
{
    if (s->n < s->cap) return GR_OK;
    int64_t cap = s->cap ? 2 * s->cap : 64;
    for (int a = 0; a < N_ATTRS; a++) GROW(labels[a], npatch);
    if (train) {
        GROW(rgb, 3 * hw);
        GROW(map, 16 * hw);
        GROW(cls, 1);
        GROW(box, 1);
        GROW(bg, 1);
    } else {
        GROW(pixels, 3 * hw);
    }
    s->cap = cap;
    return GR_OK;
}
#undef GROW

/* One scenes.jsonl line: the scene in the rasteriser's terms plus each object's classes. */
static gr_status parse_scene(const json_t *colors, const json_t *shapes, const char *path, int64_t line,
                             const json_t *o, gr_synth_scene *sc, int cls[][N_ATTRS], json_int_t *id, const char **spl)
{
    const json_t *jid = json_object_get(o, "image_id"), *js = json_object_get(o, "split"), *objs = json_object_get(o, "objects");
    if (!json_is_integer(jid) || json_integer_value(jid) < 0 || !json_is_string(js) || !json_is_array(objs))
        return gr_fail(GR_ERR_FORMAT, "%s: line %lld: expected {\"image_id\": N, \"split\": S, \"objects\": [...]}", path, (long long)line);
    *id = json_integer_value(jid);
    *spl = json_string_value(js);
    if (json_array_size(objs) > GR_SYNTH_MAX_OBJECTS)
        return gr_fail(GR_ERR_FORMAT, "%s: line %lld: %zu objects, at most %d", path, (long long)line, json_array_size(objs),
                       GR_SYNTH_MAX_OBJECTS);
    memset(sc, 0, sizeof *sc);
    size_t k;
    const json_t *ob;
    json_array_foreach(objs, k, ob) {
        const char *shape = json_string_value(json_object_get(ob, "shape")), *color = json_string_value(json_object_get(ob, "color"));
        const char *size = json_string_value(json_object_get(ob, "size"));
        const json_t *x = json_object_get(ob, "x"), *y = json_object_get(ob, "y"), *r = json_object_get(ob, "r");
        if (!shape || !color || !size || !json_is_number(x) || !json_is_number(y) || !json_is_number(r) || !(json_number_value(r) > 0))
            return gr_fail(GR_ERR_FORMAT, "%s: line %lld: object %zu needs shape, color, size (strings) and x, y, r > 0", path,
                           (long long)line, k);
        int c = find_name(colors, color), s = find_name(shapes, shape);
        int z = strcmp(size, "small") == 0 ? 0 : strcmp(size, "big") == 0 ? 1 : -1;
        if (c < 0) return gr_fail(GR_ERR_FORMAT, "%s: line %lld: colour '%s' is not in world.json's colors", path, (long long)line, color);
        if (s < 0) return gr_fail(GR_ERR_FORMAT, "%s: line %lld: shape '%s' is not in world.json's shapes", path, (long long)line, shape);
        if (z < 0) return gr_fail(GR_ERR_FORMAT, "%s: line %lld: size '%s' is neither small nor big", path, (long long)line, size);
        /* geometry: the rasteriser's shape of that name (the class index is the world's) */
        int geom = -1;
        for (int g = 0; g < GR_SYNTH_N_SHAPES; g++)
            if (strcmp(gr_synth_shape_name(g), shape) == 0) geom = g;
        if (geom < 0) return gr_fail(GR_ERR_FORMAT, "%s: line %lld: shape '%s' is not one graft synth draws", path, (long long)line, shape);
        gr_synth_object *so = &sc->obj[sc->n++];
        so->shape = geom;
        so->color = c;
        so->large = z;
        /* the file holds the rasteriser's floats printed exactly: converting back is lossless */
        so->cx = (float)json_number_value(x);
        so->cy = (float)json_number_value(y);
        so->r = (float)json_number_value(r);
        cls[k][ATTR_COLOR] = c;
        cls[k][ATTR_SHAPE] = s;
        cls[k][ATTR_SIZE] = z;
    }
    return GR_OK;
}

static gr_status load_image(gr_vision_task *t, const char *world, json_int_t id, uint8_t *rgb, float *out)
{
    char rel[64];
    snprintf(rel, sizeof rel, "images/%012lld.png", (long long)id);
    char *path = gr_path_join(world, rel);
    if (!path) return gr_fail(GR_ERR_NOMEM, "out of memory");
    gr_image img = {0};
    gr_status s = gr_image_load(path, &img);
    if (!s && (img.width != t->image_size || img.height != t->image_size))
        s = gr_fail(GR_ERR_SHAPE, "%s: %dx%d pixels, but world.json says image_size %lld", path, img.width, img.height,
                    (long long)t->image_size);
    if (!s && rgb) memcpy(rgb, img.rgb, (size_t)(3 * t->image_size * t->image_size));
    if (!s && out) {
        s = gr_image_preprocess(t->cfg.preproc, NULL, 0, &img, out);
        if (s) gr_fail_context(s, "%s", path);
    }
    gr_image_free(&img);
    free(path);
    return s;
}

/* A training image's sample owners (t->map_buf), object classes, the objects' pixel box (where
 * shifting may move them) and a background pixel (to fill what a shift uncovers), as entry d->n. */
static void keep_train_image(gr_vision_task *t, split *d, const gr_synth_scene *sc, int cls[][N_ATTRS])
{
    int64_t H = t->image_size, hw = H * H, S = 4 * H;
    memcpy(d->map + d->n * 16 * hw, t->map_buf, (size_t)(16 * hw));
    for (int k = 0; k < sc->n; k++)
        for (int a = 0; a < N_ATTRS; a++) d->cls[d->n][k][a] = (int8_t)cls[k][a];
    int32_t *bx = d->box[d->n];
    bx[0] = bx[2] = (int32_t)H;
    bx[1] = bx[3] = -1;
    int have_bg = 0;
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < H; x++) {
            int any = 0;
            for (int64_t q = 0; q < 16 && !any; q++) any = t->map_buf[(4 * y + q / 4) * S + 4 * x + q % 4] >= 0;
            if (!any && !have_bg) {
                memcpy(d->bg[d->n], d->rgb + d->n * 3 * hw + 3 * (y * H + x), 3);
                have_bg = 1;
            }
            if (!any) continue;
            if (x < bx[0]) bx[0] = (int32_t)x;
            if (x > bx[1]) bx[1] = (int32_t)x;
            if (y < bx[2]) bx[2] = (int32_t)y;
            if (y > bx[3]) bx[3] = (int32_t)y;
        }
    if (bx[1] < 0 || !have_bg) bx[0] = -1; /* nothing to move, or no background to fill with */
}

static gr_status read_world(gr_vision_task *t)
{
    const char *world = t->cfg.world;
    char *wpath = gr_path_join(world, "world.json"), *spath = gr_path_join(world, "scenes.jsonl");
    json_t *w = NULL;
    char *text = NULL;
    int *owner = NULL;
    gr_status s = wpath && spath ? GR_OK : gr_fail(GR_ERR_NOMEM, "out of memory");
    if (!s && !gr_is_dir(world)) s = gr_fail(GR_ERR_NOT_FOUND, "%s: no such directory (pretrain_vision.world: a `graft synth --out` directory)", world);
    if (!s) s = gr_json_load_object(wpath, 0, &w);
    const json_t *colors = w ? json_object_get(w, "colors") : NULL, *shapes = w ? json_object_get(w, "shapes") : NULL;
    const json_t *isz = w ? json_object_get(w, "image_size") : NULL;
    if (!s && (!json_is_array(colors) || json_array_size(colors) < 1 || !json_is_array(shapes) || json_array_size(shapes) < 1))
        s = gr_fail(GR_ERR_FORMAT, "%s: \"colors\" and \"shapes\" must be non-empty arrays of names", wpath);
    if (!s && !json_is_integer(isz)) s = gr_fail(GR_ERR_FORMAT, "%s: \"image_size\" must be an integer", wpath);
    if (!s) {
        t->n_colors = (int)json_array_size(colors);
        t->n_shapes = (int)json_array_size(shapes);
        t->image_size = json_integer_value(isz);
        if (t->image_size != t->info.image_size)
            s = gr_fail(GR_ERR_SHAPE, "%s: image_size %lld differs from the tower's image_size %lld (pretrain_vision.tower)", wpath,
                        (long long)t->image_size, (long long)t->info.image_size);
    }
    if (!s) {
        int ph = 0, pw = 0;
        s = gr_image_preproc_output_size(t->cfg.preproc, &ph, &pw);
        if (!s && (ph != t->image_size || pw != t->image_size))
            s = gr_fail(GR_ERR_SHAPE, "%s: the preprocessing makes %dx%d images, the tower reads %lld", world, pw, ph,
                        (long long)t->image_size);
    }
    if (!s) {
        t->classes[ATTR_COLOR] = t->n_colors + 1;
        t->classes[ATTR_SHAPE] = t->n_shapes + 1;
        t->classes[ATTR_SIZE] = 3;
        t->grid = t->info.image_size / t->info.patch_size;
        t->npatch = t->grid * t->grid;
        t->chw = 3 * t->image_size * t->image_size;
        owner = malloc((size_t)t->npatch * sizeof *owner);
        t->map_buf = malloc((size_t)(16 * t->image_size * t->image_size));
        if (!owner || !t->map_buf) s = gr_fail(GR_ERR_NOMEM, "out of memory");
    }
    if (!s) s = gr_read_file(spath, &text, NULL);
    int64_t line = 0;
    for (char *p = s ? NULL : text; p && *p && !s;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = '\0';
        line++;
        if (*p) {
            json_error_t e;
            json_t *o = json_loads(p, 0, &e);
            gr_synth_scene sc;
            int cls[GR_SYNTH_MAX_OBJECTS][N_ATTRS];
            json_int_t id = 0;
            const char *spl = NULL;
            if (!o || !json_is_object(o)) s = gr_fail(GR_ERR_FORMAT, "%s: line %lld: not a JSON object%s%s", spath, (long long)line, o ? "" : ": ", o ? "" : e.text);
            if (!s) s = parse_scene(colors, shapes, spath, line, o, &sc, cls, &id, &spl);
            int which = s ? -1 : strcmp(spl, "train") == 0 ? SPLIT_TRAIN : strcmp(spl, "val") == 0 ? SPLIT_VAL : -1;
            if (which >= 0) {
                split *d = &t->sp[which];
                int64_t hw = t->image_size * t->image_size;
                s = split_grow(d, which == SPLIT_TRAIN, hw, t->npatch);
                if (!s) s = load_image(t, world, id, which == SPLIT_TRAIN ? d->rgb + d->n * 3 * hw : NULL,
                                       which == SPLIT_TRAIN ? NULL : d->pixels + d->n * 3 * hw);
                if (!s) {
                    gr_synth_sample_owners(&sc, (int)t->image_size, t->map_buf);
                    gr_synth_map_patch_owners(t->map_buf, (int)t->image_size, (int)t->info.patch_size, t->cfg.min_share, owner);
                    for (int64_t q = 0; q < t->npatch; q++)
                        for (int a = 0; a < N_ATTRS; a++)
                            d->labels[a][d->n * t->npatch + q] = owner[q] < 0 ? (int32_t)t->classes[a] - 1 : cls[owner[q]][a];
                }
                if (!s && which == SPLIT_TRAIN) keep_train_image(t, d, &sc, cls);
                if (!s) d->n++;
            }
            json_decref(o);
        }
        p = nl ? nl + 1 : NULL;
    }
    if (!s && t->sp[SPLIT_TRAIN].n == 0) s = gr_fail(GR_ERR_INVALID, "%s: no image of the train split", spath);
    free(owner);
    free(text);
    json_decref(w);
    free(wpath);
    free(spath);
    return s;
}

/* ---------------------------------------------------------------- model ---- */

static gr_status make_heads(gr_vision_task *t, gr_ctx *ctx)
{
    int64_t d = t->info.hidden_size;
    gr_rng r;
    gr_rng_seed(&r, gr_seed_mix(t->cfg.seed, 0x4845414453ULL /* "HEADS" */, 0));
    for (int a = 0; a < N_ATTRS; a++) {
        char name[64];
        int64_t k = t->classes[a];
        snprintf(name, sizeof name, "heads.%s.weight", attr_names[a]);
        gr_tensor *w = gr_param_new(ctx, name, GR_F32, 2, (int64_t[]){k, d});
        snprintf(name, sizeof name, "heads.%s.bias", attr_names[a]);
        gr_tensor *b = gr_param_new(ctx, name, GR_F32, 1, (int64_t[]){k});
        float *host = malloc((size_t)(k * d) * sizeof *host);
        if (!w || !b || !host) {
            free(host);
            if (w) gr_tensor_free(ctx, w);
            if (b) gr_tensor_free(ctx, b);
            return gr_ctx_status(ctx) ? gr_ctx_status(ctx) : gr_fail(GR_ERR_NOMEM, "out of memory (heads)");
        }
        t->heads[2 * a] = w;
        t->heads[2 * a + 1] = b;
        /* nn.Linear as a classifier head: N(0, 0.02) weights (HF's initializer_range), zero bias */
        for (int64_t i = 0; i < k * d; i++) host[i] = (float)(0.02 * gr_rng_normal(&r));
        gr_status s = gr_upload(ctx, w, host);
        memset(host, 0, (size_t)k * sizeof *host);
        if (!s) s = gr_upload(ctx, b, host);
        free(host);
        if (s) return s;
        gr_set_trainable(w, 1);
        gr_set_trainable(b, 1);
    }
    return GR_OK;
}

/* Patch features -> logits of each attribute [b, N, K]; pixels from host. */
static gr_status forward_logits(gr_vision_task *t, gr_ctx *ctx, const float *pixels, int64_t b, gr_tensor *logits[N_ATTRS])
{
    int64_t H = t->image_size;
    gr_tensor *x = gr_from_host(ctx, GR_F32, 4, (int64_t[]){b, 3, H, H}, pixels);
    if (!x) return gr_ctx_status(ctx);
    gr_vision_outputs vo = {.struct_size = sizeof vo};
    gr_status s = t->cfg.vi->forward(t->cfg.tower, ctx, x, 0, &vo);
    if (s) return gr_fail_context(s, "clip-vit");
    /* what the Q-Former reads, without the CLS row */
    gr_tensor *feat = gr_slice(ctx, vo.last_hidden_state, 1, 1, t->npatch);
    for (int a = 0; a < N_ATTRS; a++) logits[a] = gr_linear(ctx, feat, t->heads[2 * a], t->heads[2 * a + 1]);
    return gr_ctx_status(ctx);
}

/* ---------------------------------------------------------------- task ---- */

static int64_t n_batches(const gr_vision_task *t)
{
    return (t->sp[SPLIT_TRAIN].n + t->cfg.batch_size - 1) / t->cfg.batch_size;
}

static gr_status task_batches(void *u, int64_t epoch, int64_t *count)
{
    (void)epoch;
    *count = n_batches(u);
    return GR_OK;
}

static gr_status epoch_order(gr_vision_task *t, int64_t epoch)
{
    if (t->order_epoch == epoch) return GR_OK;
    size_t *ord = NULL, n = 0;
    gr_status s = gr_epoch_order((size_t)t->sp[SPLIT_TRAIN].n, 1, t->cfg.seed, (int)epoch, 0, 1, &ord, &n);
    if (s) return s;
    for (size_t i = 0; i < n; i++) t->order[i] = (int64_t)ord[i];
    free(ord);
    t->order_epoch = epoch;
    return GR_OK;
}

/* Training sample `img` as epoch `epoch` shows it: mirrored with probability 1/2 (hflip; every
 * shape of the world is left-right symmetric, so its class stays) and shifted by whole pixels
 * within +-max_shift, never moving an object out of the frame, the uncovered border filled with
 * the image's background. The sample-owner map moves with the pixels, so the labels are
 * recomputed exactly. Writes preprocessed pixels and the labels of every patch. */
static gr_status make_sample(gr_vision_task *t, int64_t epoch, int64_t img, float *pix, int32_t *lab[N_ATTRS])
{
    const split *tr = &t->sp[SPLIT_TRAIN];
    int64_t H = t->image_size, S = 4 * H, hw = H * H;
    const uint8_t *src = tr->rgb + img * 3 * hw;
    const int8_t *map = tr->map + img * 16 * hw;
    const int32_t *bx = tr->box[img];
    gr_rng r;
    gr_rng_seed(&r, gr_sample_seed(t->cfg.seed, (int)epoch, (size_t)img));
    int flip = t->cfg.hflip && gr_rng_below(&r, 2);
    int64_t dx = 0, dy = 0;
    if (t->cfg.max_shift > 0 && bx[0] >= 0) {
        /* the box after the flip; shifts keep it inside [0, H) */
        int64_t x0 = flip ? H - 1 - bx[1] : bx[0], x1 = flip ? H - 1 - bx[0] : bx[1], y0 = bx[2], y1 = bx[3], m = t->cfg.max_shift;
        int64_t lo_x = -x0 > -m ? -x0 : -m, hi_x = H - 1 - x1 < m ? H - 1 - x1 : m;
        int64_t lo_y = -y0 > -m ? -y0 : -m, hi_y = H - 1 - y1 < m ? H - 1 - y1 : m;
        dx = lo_x + (int64_t)gr_rng_below(&r, (uint64_t)(hi_x - lo_x + 1));
        dy = lo_y + (int64_t)gr_rng_below(&r, (uint64_t)(hi_y - lo_y + 1));
    }
    uint8_t *dst = t->img_buf.rgb;
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < H; x++) {
            int64_t sx = x - dx, sy = y - dy;
            if (flip) sx = H - 1 - sx;
            const uint8_t *p = sx >= 0 && sx < H && sy >= 0 && sy < H ? src + 3 * (sy * H + sx) : tr->bg[img];
            memcpy(dst + 3 * (y * H + x), p, 3);
        }
    for (int64_t y = 0; y < S; y++)
        for (int64_t x = 0; x < S; x++) {
            int64_t sx = x - 4 * dx, sy = y - 4 * dy;
            if (flip) sx = S - 1 - sx;
            t->map_buf[y * S + x] = sx >= 0 && sx < S && sy >= 0 && sy < S ? map[sy * S + sx] : -1;
        }
    gr_synth_map_patch_owners(t->map_buf, (int)H, (int)t->info.patch_size, t->cfg.min_share, t->owner_buf);
    for (int64_t q = 0; q < t->npatch; q++)
        for (int a = 0; a < N_ATTRS; a++) {
            int k = t->owner_buf[q];
            lab[a][q] = k < 0 ? (int32_t)t->classes[a] - 1 : tr->cls[img][k][a];
        }
    gr_status s = gr_image_preprocess(t->cfg.preproc, NULL, 0, &t->img_buf, pix);
    return s ? gr_fail_context(s, "pretrain-vision: training image %lld", (long long)img) : GR_OK;
}

static gr_status task_forward(void *u, gr_ctx *ctx, int64_t epoch, int64_t index, gr_task_loss *out)
{
    gr_vision_task *t = u;
    gr_status s = epoch_order(t, epoch);
    if (s) return s;
    const split *tr = &t->sp[SPLIT_TRAIN];
    int64_t B = t->cfg.batch_size, first = index * B, b = tr->n - first < B ? tr->n - first : B, N = t->npatch;
    if (b < 1) return gr_fail(GR_ERR_INVALID, "pretrain-vision: batch %lld is past the epoch", (long long)index);
    for (int64_t i = 0; i < b && !s; i++) {
        int32_t *lab[N_ATTRS];
        for (int a = 0; a < N_ATTRS; a++) lab[a] = t->lab_buf + (a * B + i) * N;
        s = make_sample(t, epoch, t->order[first + i], t->pix_buf + i * t->chw, lab);
    }
    if (s) return s;
    gr_tensor *logits[N_ATTRS];
    s = forward_logits(t, ctx, t->pix_buf, b, logits);
    if (s) return s;
    gr_tensor *loss = NULL;
    for (int a = 0; a < N_ATTRS; a++) {
        gr_tensor *lab = gr_from_host(ctx, GR_I32, 2, (int64_t[]){b, N}, t->lab_buf + a * B * N);
        gr_tensor *ce = gr_cross_entropy(ctx, logits[a], lab, -100);
        loss = loss ? gr_add(ctx, loss, ce) : ce;
    }
    if ((s = gr_ctx_status(ctx))) return s;
    out->loss = loss;
    out->tokens = b * N;
    out->examples = b;
    return GR_OK;
}

typedef struct counts {
    int64_t patches, objects;
    int64_t right_obj[N_ATTRS];     /* correct on object patches */
    int64_t right_all[N_ATTRS];     /* correct on every patch (background classes included) */
    int64_t right_fg;               /* background vs object right (colour head) */
    int64_t base_obj[N_ATTRS], base_fg;
} counts;

static int64_t argmax(const float *row, int64_t k)
{
    int64_t best = 0;
    for (int64_t i = 1; i < k; i++)
        if (row[i] > row[best]) best = i;
    return best;
}

/* The most frequent class of each attribute among the training object patches, and whether
 * most training patches are objects. */
static void majority(const gr_vision_task *t, int32_t major[N_ATTRS], int *major_fg)
{
    const split *tr = &t->sp[SPLIT_TRAIN];
    int64_t n = tr->n * t->npatch, fg = 0;
    for (int a = 0; a < N_ATTRS; a++) {
        int64_t *hist = calloc((size_t)t->classes[a], sizeof *hist);
        major[a] = 0;
        if (!hist) continue; /* baseline then scores class 0: reported, never fatal */
        for (int64_t i = 0; i < n; i++)
            if (tr->labels[ATTR_COLOR][i] != t->classes[ATTR_COLOR] - 1) hist[tr->labels[a][i]]++;
        for (int64_t c = 1; c < t->classes[a]; c++)
            if (hist[c] > hist[major[a]]) major[a] = (int32_t)c;
        free(hist);
    }
    for (int64_t i = 0; i < n; i++) fg += tr->labels[ATTR_COLOR][i] != t->classes[ATTR_COLOR] - 1;
    *major_fg = 2 * fg > n;
}

static gr_status count_val(gr_vision_task *t, gr_ctx *ctx, counts *c)
{
    memset(c, 0, sizeof *c);
    const split *v = &t->sp[SPLIT_VAL];
    int64_t B = t->cfg.batch_size, N = t->npatch, kmax = 0;
    for (int a = 0; a < N_ATTRS; a++) kmax = t->classes[a] > kmax ? t->classes[a] : kmax;
    if (!t->eval_logits && !(t->eval_logits = malloc((size_t)(B * N * kmax) * sizeof *t->eval_logits)))
        return gr_fail(GR_ERR_NOMEM, "out of memory");
    int32_t major[N_ATTRS];
    int major_fg;
    majority(t, major, &major_fg);
    int was = gr_ctx_set_grad_enabled(ctx, 0);
    gr_status s = GR_OK;
    for (int64_t first = 0; first < v->n && !s; first += B) {
        int64_t b = v->n - first < B ? v->n - first : B;
        gr_ctx_reset(ctx);
        gr_tensor *logits[N_ATTRS];
        s = forward_logits(t, ctx, v->pixels + first * t->chw, b, logits);
        int32_t *pred[N_ATTRS] = {NULL, NULL, NULL};
        for (int a = 0; a < N_ATTRS && !s; a++) {
            int64_t k = t->classes[a];
            s = gr_to_host_f32(ctx, logits[a], t->eval_logits);
            pred[a] = s ? NULL : malloc((size_t)(b * N) * sizeof *pred[a]);
            if (!s && !pred[a]) s = gr_fail(GR_ERR_NOMEM, "out of memory");
            for (int64_t i = 0; !s && i < b * N; i++) pred[a][i] = (int32_t)argmax(t->eval_logits + i * k, k);
        }
        for (int64_t i = 0; !s && i < b * N; i++) {
            int64_t g = first * N + i;
            int is_obj = v->labels[ATTR_COLOR][g] != t->classes[ATTR_COLOR] - 1;
            int said_obj = pred[ATTR_COLOR][i] != t->classes[ATTR_COLOR] - 1;
            c->patches++;
            c->objects += is_obj;
            c->right_fg += is_obj == said_obj;
            c->base_fg += is_obj == major_fg;
            for (int a = 0; a < N_ATTRS; a++) {
                int right = pred[a][i] == v->labels[a][g];
                c->right_all[a] += right;
                if (is_obj) {
                    c->right_obj[a] += right;
                    c->base_obj[a] += v->labels[a][g] == major[a];
                }
            }
        }
        for (int a = 0; a < N_ATTRS; a++) free(pred[a]);
    }
    gr_ctx_reset(ctx);
    gr_ctx_set_grad_enabled(ctx, was);
    return s ? gr_fail_context(s, "pretrain-vision: held-out accuracy") : GR_OK;
}

static double ratio(int64_t a, int64_t b) { return b ? (double)a / (double)b : 0.0; }

static gr_status task_eval(void *u, gr_ctx *ctx, gr_task_eval *ev)
{
    gr_vision_task *t = u;
    counts c;
    gr_status s = count_val(t, ctx, &c);
    if (s) return s;
    ev->split = "val";
    ev->metrics[0] = (gr_metric){"color_acc", ratio(c.right_obj[ATTR_COLOR], c.objects)};
    ev->metrics[1] = (gr_metric){"shape_acc", ratio(c.right_obj[ATTR_SHAPE], c.objects)};
    ev->metrics[2] = (gr_metric){"size_acc", ratio(c.right_obj[ATTR_SIZE], c.objects)};
    ev->metrics[3] = (gr_metric){"object_acc", ratio(c.right_fg, c.patches)};
    ev->count = 4;
    return GR_OK;
}

gr_task gr_vision_task_iface(gr_vision_task *t)
{
    gr_task k = {.user = t, .epoch_batches = task_batches, .forward = task_forward,
                 .evaluate = t->sp[SPLIT_VAL].n > 0 ? task_eval : NULL};
    return k;
}

gr_status gr_vision_task_quality(gr_vision_task *t, gr_ctx *ctx, json_t **out)
{
    *out = NULL;
    if (t->sp[SPLIT_VAL].n == 0) return gr_fail(GR_ERR_INVALID, "%s: no image of the val split for the held-out check", t->cfg.world);
    counts c;
    gr_status s = count_val(t, ctx, &c);
    if (s) return s;
    json_t *q = json_pack("{s:I, s:I, s:I}", "val_images", (json_int_t)t->sp[SPLIT_VAL].n, "val_patches", (json_int_t)c.patches,
                          "val_object_patches", (json_int_t)c.objects);
    json_t *all = json_object();
    if (!q || !all) { json_decref(q); json_decref(all); return gr_fail(GR_ERR_NOMEM, "out of memory"); }
    for (int a = 0; a < N_ATTRS; a++) {
        json_object_set_new(q, attr_names[a], json_pack("{s:f, s:f}", "accuracy", ratio(c.right_obj[a], c.objects), "baseline",
                                                        ratio(c.base_obj[a], c.objects)));
        json_object_set_new(all, attr_names[a], json_real(ratio(c.right_all[a], c.patches)));
    }
    json_object_set_new(q, "object", json_pack("{s:f, s:f}", "accuracy", ratio(c.right_fg, c.patches), "baseline", ratio(c.base_fg, c.patches)));
    json_object_set_new(q, "all_patches", all);
    *out = q;
    return GR_OK;
}

/* ---------------------------------------------------------------- lifecycle ---- */

gr_status gr_vision_task_create(gr_ctx *ctx, const gr_vision_task_config *cfg, gr_vision_task **out)
{
    *out = NULL;
    if (cfg->batch_size < 1) return gr_fail(GR_ERR_INVALID, "pretrain-vision: batch_size must be >= 1");
    if (!(cfg->min_share > 0 && cfg->min_share <= 1)) return gr_fail(GR_ERR_INVALID, "pretrain-vision: min_share must be in (0, 1]");
    gr_vision_task *t = calloc(1, sizeof *t);
    if (!t) return gr_fail(GR_ERR_NOMEM, "out of memory");
    t->cfg = *cfg;
    t->order_epoch = -1;
    t->info.struct_size = sizeof t->info;
    cfg->vi->info(cfg->tower, &t->info);
    gr_status s = read_world(t);
    if (!s) {
        t->order = malloc((size_t)t->sp[SPLIT_TRAIN].n * sizeof *t->order);
        t->lab_buf = malloc((size_t)(N_ATTRS * cfg->batch_size * t->npatch) * sizeof *t->lab_buf);
        t->pix_buf = malloc((size_t)(cfg->batch_size * t->chw) * sizeof *t->pix_buf);
        t->owner_buf = malloc((size_t)t->npatch * sizeof *t->owner_buf);
        if (!t->order || !t->lab_buf || !t->pix_buf || !t->owner_buf) s = gr_fail(GR_ERR_NOMEM, "out of memory");
    }
    if (!s) s = gr_image_alloc(&t->img_buf, (int)t->image_size, (int)t->image_size);
    if (!s) s = make_heads(t, ctx);
    if (s) { gr_vision_task_free(t, ctx); return s; }
    *out = t;
    return GR_OK;
}

void gr_vision_task_free(gr_vision_task *t, gr_ctx *ctx)
{
    if (!t) return;
    for (int i = 0; i < 2 * N_ATTRS; i++)
        if (t->heads[i]) gr_tensor_free(ctx, t->heads[i]);
    for (int k = 0; k < N_SPLITS; k++) {
        split *d = &t->sp[k];
        free(d->pixels);
        for (int a = 0; a < N_ATTRS; a++) free(d->labels[a]);
        free(d->rgb);
        free(d->map);
        free(d->cls);
        free(d->box);
        free(d->bg);
    }
    free(t->order);
    free(t->lab_buf);
    free(t->pix_buf);
    free(t->map_buf);
    free(t->owner_buf);
    gr_image_free(&t->img_buf);
    free(t->eval_logits);
    free(t);
}

gr_tensor *const *gr_vision_task_heads(const gr_vision_task *t, int *count)
{
    *count = 2 * N_ATTRS;
    return t->heads;
}

void gr_vision_task_stats_get(const gr_vision_task *t, gr_vision_task_stats *o)
{
    memset(o, 0, sizeof *o);
    o->train_images = t->sp[SPLIT_TRAIN].n;
    o->val_images = t->sp[SPLIT_VAL].n;
    o->grid = t->grid;
    o->batches_per_epoch = n_batches(t);
    o->n_colors = t->n_colors;
    o->n_shapes = t->n_shapes;
    for (int k = 0; k < N_SPLITS; k++) {
        int64_t n = 0;
        for (int64_t i = 0; i < t->sp[k].n * t->npatch; i++) n += t->sp[k].labels[ATTR_COLOR][i] != t->classes[ATTR_COLOR] - 1;
        if (k == SPLIT_TRAIN) o->train_object_patches = n;
        else o->val_object_patches = n;
    }
}

gr_status gr_vision_task_fixed_pixels(const gr_vision_task *t, int64_t rows, float **pixels, int64_t shape[4])
{
    const split *s = &t->sp[SPLIT_VAL];
    if (rows < 1 || s->n < rows) return gr_fail(GR_ERR_INVALID, "pretrain-vision: fewer than %lld val images", (long long)rows);
    *pixels = malloc((size_t)(rows * t->chw) * sizeof **pixels);
    if (!*pixels) return gr_fail(GR_ERR_NOMEM, "out of memory");
    memcpy(*pixels, s->pixels, (size_t)(rows * t->chw) * sizeof **pixels);
    shape[0] = rows;
    shape[1] = 3;
    shape[2] = shape[3] = t->image_size;
    return GR_OK;
}
