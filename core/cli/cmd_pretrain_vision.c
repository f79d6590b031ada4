/* graft pretrain-vision -c CFG: trains a CLIP vision tower (clip-vit plugin) from random init on
 * the synthetic world's per-patch attributes and saves it as a Hugging Face CLIPVisionModel
 * directory any VLM config can use as vision_dir (docs/pretraining.md). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fsutil.h"
#include "base/json_file.h"
#include "cli_config.h"
#include "commands.h"
#include "graft/model.h"
#include "plugin/registry.h"
#include "train/pretrain_run.h"
#include "train/task_vision.h"

extern const gr_command gr_cmd_pretrain_vision;

static const gr_config_key keys[] = {
    {"pretrain_vision.world", GR_CFG_STRING, NULL, "a `graft synth --out` directory: train split to train, val split for the held-out check"},
    {"pretrain_vision.tower", GR_CFG_STRING, NULL,
     "directory with the tower's config.json (clip_vision_model; its image_size must be the world's; weights there are not read: random init)"},
    {"pretrain_vision.out", GR_CFG_STRING, NULL, "output: a Hugging Face CLIPVisionModel directory (training run in OUT/run)"},
    {"pretrain_vision.seed", GR_CFG_INT, "0", "seed of the random init, the heads and the data order"},
    {"pretrain_vision.batch_size", GR_CFG_INT, "32", "images per step"},
    {"pretrain_vision.epochs", GR_CFG_INT, "1", "epochs over the train split (ignored when steps > 0)"},
    {"pretrain_vision.steps", GR_CFG_INT, "0", "optimizer steps (0: use epochs)"},
    {"pretrain_vision.lr", GR_CFG_FLOAT, "3e-3", "peak learning rate (AdamW)"},
    {"pretrain_vision.min_lr", GR_CFG_FLOAT, "3e-4", "cosine floor"},
    {"pretrain_vision.warmup_steps", GR_CFG_INT, "30", "linear warm-up steps"},
    {"pretrain_vision.weight_decay", GR_CFG_FLOAT, "0.01", "AdamW decoupled weight decay (not on biases, norms, 1-D tensors)"},
    {"pretrain_vision.grad_clip", GR_CFG_FLOAT, "1.0", "max global gradient norm (0: none)"},
    {"pretrain_vision.min_share", GR_CFG_FLOAT, "0.1", "share of a patch an object must cover to label it (else background)"},
    {"pretrain_vision.max_shift", GR_CFG_INT, "8", "training images shift by up to this many pixels, objects kept in the frame (0: none)"},
    {"pretrain_vision.hflip", GR_CFG_BOOL, "true", "mirror training images with probability 1/2 (the world's shapes are symmetric)"},
    {"pretrain_vision.eval_every", GR_CFG_INT, "0", "held-out patch accuracy every N steps (0: after each epoch)"},
    {"pretrain_vision.min_color_accuracy", GR_CFG_FLOAT, "0.9", "quality bar: held-out colour accuracy on object patches"},
    {"pretrain_vision.min_shape_accuracy", GR_CFG_FLOAT, "0.25", "quality bar: held-out shape accuracy on object patches"},
    {"pretrain_vision.require_quality", GR_CFG_BOOL, "false", "fail (exit 1) when the quality bar is not met"},
};

/* The tower's config: TOWER/config.json, a clip_vision_model (or the vision_config of a "clip"
 * composite). Returns a new reference to the vision part. */
static gr_status tower_config(const char *dir, char **path, json_t **out)
{
    *out = NULL;
    *path = gr_path_join(dir, "config.json");
    if (!*path) return gr_fail(GR_ERR_NOMEM, "out of memory");
    json_t *root = NULL;
    gr_status s = gr_json_load_object(*path, JSON_REJECT_DUPLICATES, &root);
    if (s) return gr_fail_context(s, "pretrain_vision.tower");
    const char *mt = json_string_value(json_object_get(root, "model_type"));
    json_t *v = root;
    if (mt && strcmp(mt, "clip") == 0) {
        v = json_object_get(root, "vision_config");
        if (!json_is_object(v)) { json_decref(root); return gr_fail(GR_ERR_FORMAT, "%s: vision_config: expected an object", *path); }
        mt = json_string_value(json_object_get(v, "model_type"));
    }
    if (mt && strcmp(mt, "clip_vision_model") != 0) {
        json_decref(root);
        return gr_fail(GR_ERR_INVALID, "%s: model_type '%s': pretrain-vision trains a CLIP vision tower (clip_vision_model)", *path, mt);
    }
    *out = json_deep_copy(v);
    json_decref(root);
    if (!*out) return gr_fail(GR_ERR_NOMEM, "out of memory");
    json_object_set_new(*out, "model_type", json_string("clip_vision_model"));
    return GR_OK;
}

/* The VLM's preprocessing (gr_engine_model_preproc): TOWER/preprocessor_config.json when present,
 * else CLIP's at the tower's size. *file gets the file used (malloc'd) or NULL. */
static gr_status tower_preproc(const char *dir, int64_t size, gr_image_preproc *pp, char **file)
{
    *file = gr_path_join(dir, "preprocessor_config.json");
    if (!*file) return gr_fail(GR_ERR_NOMEM, "out of memory");
    if (gr_path_exists(*file)) return gr_image_preproc_load(*file, pp);
    free(*file);
    *file = NULL;
    gr_image_preproc_clip_defaults(pp);
    pp->resize_shortest_edge = (int)size;
    pp->crop_height = pp->crop_width = (int)size;
    return GR_OK;
}

static gr_status write_json(const char *dir, const char *name, const json_t *v)
{
    char *p = gr_path_join(dir, name);
    char *text = json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(6));
    gr_status s = !p || !text ? gr_fail(GR_ERR_NOMEM, "out of memory") : gr_write_file_atomic(p, text, strlen(text));
    free(p);
    free(text);
    return s;
}

/* Writes OUT: config.json (CLIPVisionModel), model.safetensors (every tower tensor, F32, HF
 * names), the preprocessor config when the tower had one. */
static gr_status export_tower(gr_ctx *ctx, const gr_vision_iface *vi, gr_vision *tower, const json_t *vcfg, const char *pp_file,
                              const char *out)
{
    json_t *c = json_deep_copy(vcfg);
    if (!c) return gr_fail(GR_ERR_NOMEM, "out of memory");
    json_object_set_new(c, "architectures", json_pack("[s]", "CLIPVisionModel"));
    json_object_set_new(c, "torch_dtype", json_string("float32"));
    gr_status s = gr_mkdirs(out);
    if (!s) s = write_json(out, "config.json", c);
    json_decref(c);
    gr_param_list pl;
    vi->params(tower, &pl);
    char *wp = gr_path_join(out, "model.safetensors");
    static const char *const meta[] = {"format", "pt", NULL};
    if (!s) s = wp ? gr_safetensors_write(ctx, wp, pl.items, NULL, pl.count, meta) : gr_fail(GR_ERR_NOMEM, "out of memory");
    free(wp);
    if (!s && pp_file) {
        char *text = NULL, *dst = gr_path_join(out, "preprocessor_config.json");
        size_t len = 0;
        s = dst ? gr_read_file(pp_file, &text, &len) : gr_fail(GR_ERR_NOMEM, "out of memory");
        if (!s) s = gr_write_file_atomic(dst, text, len);
        free(text);
        free(dst);
    }
    return s;
}

/* Opens OUT as any user would (config.json + model.safetensors + clip-vit) and compares its
 * last_hidden_state on two held-out images with the trained tower's, bit for bit; writes the
 * images and outputs as a `graft verify` case (family clip_vision). */
static gr_status reload_check(gr_ctx *ctx, const gr_vision_iface *vi, gr_vision *tower, gr_vision_task *task, const char *out,
                              const char *run_dir, double *max_diff)
{
    float *pix = NULL, *a = NULL, *b = NULL;
    int64_t shape[4], n = 0;
    gr_status s = gr_vision_task_fixed_pixels(task, 2, &pix, shape);
    if (s) return s;
    int was = gr_ctx_set_grad_enabled(ctx, 0);
    gr_ctx_reset(ctx);
    gr_vision_outputs o1 = {.struct_size = sizeof o1}, o2 = {.struct_size = sizeof o2};
    gr_tensor *x = gr_from_host(ctx, GR_F32, 4, shape, pix);
    s = x ? vi->forward(tower, ctx, x, 0, &o1) : gr_ctx_status(ctx);
    if (!s) {
        n = gr_numel(o1.last_hidden_state);
        a = malloc((size_t)n * sizeof *a);
        b = malloc((size_t)n * sizeof *b);
        s = a && b ? gr_to_host_f32(ctx, o1.last_hidden_state, a) : gr_fail(GR_ERR_NOMEM, "out of memory");
    }
    char *case_path = gr_path_join(run_dir, "verify_case.safetensors");
    if (!s && !case_path) s = gr_fail(GR_ERR_NOMEM, "out of memory");
    if (!s) {
        gr_tensor *t[3] = {x, o1.last_hidden_state, o1.pooler_output};
        static const char *const names[3] = {"pixel_values", "last_hidden_state", "pooler_output"};
        const char *meta[] = {"family", "clip_vision", "inputs", "pixel_values", "source", "graft pretrain-vision", NULL};
        s = gr_safetensors_write(ctx, case_path, t, names, 3, meta);
    }
    free(case_path);
    json_t *cfg = NULL;
    gr_weights *w = NULL;
    gr_vision *v2 = NULL;
    char *cfg_path = gr_path_join(out, "config.json");
    if (!s) s = cfg_path ? gr_json_load_object(cfg_path, JSON_REJECT_DUPLICATES, &cfg) : gr_fail(GR_ERR_NOMEM, "out of memory");
    if (!s) s = gr_weights_open(out, &w);
    if (!s) {
        gr_model_source src = {.struct_size = sizeof src, .dir = out, .config = cfg, .config_path = cfg_path, .weights = w, .prefix = ""};
        s = vi->open(ctx, &src, &v2);
    }
    if (!s) s = vi->forward(v2, ctx, x, 0, &o2);
    if (!s && gr_numel(o2.last_hidden_state) != n) s = gr_fail(GR_ERR_SHAPE, "%s: the reloaded tower's output has another shape", out);
    if (!s) s = gr_to_host_f32(ctx, o2.last_hidden_state, b);
    if (!s) {
        double d = 0;
        for (int64_t i = 0; i < n; i++) {
            double e = a[i] > b[i] ? (double)a[i] - b[i] : (double)b[i] - a[i];
            if (!(e <= d)) d = e; /* NaN counts as a difference */
        }
        *max_diff = d;
    }
    gr_ctx_reset(ctx);
    gr_ctx_set_grad_enabled(ctx, was);
    if (v2) vi->close(v2, ctx);
    gr_weights_close(w);
    json_decref(cfg);
    free(cfg_path);
    free(pix);
    free(a);
    free(b);
    return s;
}

/* The attributes quality.json scores (object: background vs object over all patches) and
 * their report.json names. */
static const char *const attrs[4] = {"color", "shape", "size", "object"};
static const char *const attr_keys[4] = {"color_acc", "shape_acc", "size_acc", "object_acc"};

static double acc(const json_t *q, const char *attr, const char *field)
{
    return json_real_value(json_object_get(json_object_get(q, attr), field));
}

static int run_pretrain_vision(int argc, char **argv)
{
    if (gr_cli_wants_help(argc, argv)) return gr_cli_usage(&gr_cmd_pretrain_vision, 0);
    gr_config *cfg = NULL;
    if (gr_config_schema_add(keys, (int)(sizeof keys / sizeof keys[0])) || gr_cli_config_open(&argc, argv, &cfg)) return gr_cli_error();
    int resume = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--resume") == 0) resume = 1;
        else {
            gr_config_free(cfg);
            fprintf(stderr, "graft: pretrain-vision: unexpected argument '%s' (see 'graft help pretrain-vision')\n", argv[i]);
            return 2;
        }
    }
    gr_status s = gr_config_validate(cfg);
    static const char *const required[] = {"pretrain_vision.world", "pretrain_vision.tower", "pretrain_vision.out"};
    for (int i = 0; i < 3 && !s; i++)
        if (!gr_config_is_set(cfg, required[i])) s = gr_fail(GR_ERR_INVALID, "%s: %s is required", gr_config_path(cfg), required[i]);
    if (!s) s = gr_config_check_int(cfg, "pretrain_vision.batch_size", 1, 1 << 16);
    if (!s) s = gr_config_check_int(cfg, "pretrain_vision.steps", 0, (int64_t)1 << 40);
    if (!s) s = gr_config_check_int(cfg, "pretrain_vision.epochs", 0, (int64_t)1 << 30);
    /* also checked by the trainer's config, but here it fails before the world is loaded */
    if (!s && gr_config_int(cfg, "pretrain_vision.epochs") < 1 && gr_config_int(cfg, "pretrain_vision.steps") < 1)
        s = gr_fail(GR_ERR_INVALID, "%s: pretrain_vision.epochs or pretrain_vision.steps must be > 0", gr_config_path(cfg));
    if (s) { gr_config_free(cfg); return gr_cli_error(); }

    gr_pretrain_run run;
    s = gr_pretrain_run_init(&run, "pretrain-vision", "pretrain_vision", cfg);
    const char *out = run.out, *tower_dir = gr_config_string(cfg, "pretrain_vision.tower");
    const char *world = gr_config_string(cfg, "pretrain_vision.world");
    char *tcfg_path = NULL, *pp_file = NULL;
    json_t *vcfg = NULL, *quality = NULL;
    gr_backend *backend = NULL;
    gr_ctx *ctx = NULL;
    const gr_vision_iface *vi = NULL;
    gr_vision *tower = NULL;
    gr_vision_task *task = NULL;
    gr_tensor **params = NULL;
    int count = 0, quality_ok = 0;
    gr_image_preproc pp;

    if (!s) s = tower_config(tower_dir, &tcfg_path, &vcfg);
    if (!s) {
        gr_backend_options bo;
        gr_cli_backend_options(cfg, &bo);
        gr_plugins_scan();
        s = gr_backend_open(gr_config_string(cfg, "backend.name"), &bo, &backend);
    }
    if (!s && !(ctx = gr_ctx_create(backend))) s = gr_fail(GR_ERR_NOMEM, "cannot create a compute context");
    const void *iface = NULL;
    if (!s) s = gr_plugin_iface(GR_PLUGIN_VISION_ENCODER, "clip-vit", &iface);
    if (!s) {
        vi = iface;
        gr_model_source src = {.struct_size = sizeof src, .dir = tower_dir, .config = vcfg, .config_path = tcfg_path, .weights = NULL,
                               .prefix = "", .seed = (uint64_t)gr_config_int(cfg, "pretrain_vision.seed")};
        s = vi->open(ctx, &src, &tower); /* random init, as HF's _init_weights */
    }
    gr_vision_info info = {.struct_size = sizeof info};
    if (!s) {
        vi->info(tower, &info);
        s = tower_preproc(tower_dir, info.image_size, &pp, &pp_file);
    }
    if (!s) {
        gr_vision_task_config tc = {.vi = vi, .tower = tower, .world = world, .preproc = &pp,
                                    .batch_size = gr_config_int(cfg, "pretrain_vision.batch_size"),
                                    .seed = (uint64_t)gr_config_int(cfg, "pretrain_vision.seed"),
                                    .min_share = gr_config_float(cfg, "pretrain_vision.min_share"),
                                    .max_shift = gr_config_int(cfg, "pretrain_vision.max_shift"),
                                    .hflip = gr_config_bool(cfg, "pretrain_vision.hflip")};
        s = gr_vision_task_create(ctx, &tc, &task);
    }
    /* trainable: every tower tensor the patch features depend on (post_layernorm only feeds the
     * pooler, which the VLM does not read) and the heads */
    int64_t n_tower = 0;
    if (!s) {
        gr_param_list pl;
        vi->params(tower, &pl);
        int nh = 0;
        gr_tensor *const *heads = gr_vision_task_heads(task, &nh);
        params = calloc((size_t)(pl.count + nh), sizeof *params);
        if (!params) s = gr_fail(GR_ERR_NOMEM, "out of memory");
        for (int i = 0; i < pl.count && !s; i++) {
            if (strstr(pl.items[i]->name, "post_layernorm.")) continue;
            gr_set_trainable(pl.items[i], 1);
            params[count++] = pl.items[i];
            n_tower += gr_numel(pl.items[i]);
        }
        for (int i = 0; i < nh && !s; i++) params[count++] = heads[i];
    }
    if (!s) {
        gr_vision_task_stats st;
        gr_vision_task_stats_get(task, &st);
        printf("pretrain-vision: clip-vit %dx%lld, %lld px / %lld px patches (%lldx%lld grid, %.3fM tower parameters) on %s: "
               "%lld train images (%lld object patches), %lld val images (%lld); %d colours, %d shapes, %lld batches an epoch\n",
               info.num_layers, (long long)info.hidden_size, (long long)info.image_size, (long long)info.patch_size, (long long)st.grid,
               (long long)st.grid, (double)n_tower / 1e6, world, (long long)st.train_images, (long long)st.train_object_patches,
               (long long)st.val_images, (long long)st.val_object_patches, st.n_colors, st.n_shapes, (long long)st.batches_per_epoch);
        if (st.val_images == 0) s = gr_fail(GR_ERR_INVALID, "%s: no image of the val split for the held-out check", world);
        fflush(stdout);
    }
    if (!s) s = gr_pretrain_run_open(&run, resume);
    if (!s) {
        gr_task tk = gr_vision_task_iface(task);
        s = gr_pretrain_run_train(&run, ctx, &tk, params, count);
    }
    /* export (the tower only: the heads stay in the run's checkpoints), reload check, quality */
    double diff = -1;
    if (!s) s = export_tower(ctx, vi, tower, vcfg, pp_file, out);
    if (!s) s = reload_check(ctx, vi, tower, task, out, run.run_dir, &diff);
    if (!s && diff != 0)
        s = gr_fail(GR_ERR_NUMERIC, "%s: reloaded tower differs from the trained one (max |diff| %g)", out, diff);
    if (!s) printf("pretrain-vision: saved %s (config.json, model.safetensors); reloaded features identical\n", out);
    if (!s) s = gr_vision_task_quality(task, ctx, &quality);
    if (!s) {
        double min_c = gr_config_float(cfg, "pretrain_vision.min_color_accuracy"), min_s = gr_config_float(cfg, "pretrain_vision.min_shape_accuracy");
        for (int i = 0; i < 4; i++)
            printf("pretrain-vision: held-out %-6s accuracy %.3f (majority baseline %.3f)%s\n", attrs[i], acc(quality, attrs[i], "accuracy"),
                   acc(quality, attrs[i], "baseline"), i == 3 ? ", background vs object over all patches" : " on object patches");
        quality_ok = acc(quality, "color", "accuracy") >= min_c && acc(quality, "shape", "accuracy") >= min_s;
        json_object_set_new(quality, "ok", json_boolean(quality_ok));
        json_object_set_new(quality, "min_color_accuracy", json_real(min_c));
        json_object_set_new(quality, "min_shape_accuracy", json_real(min_s));
        json_object_set_new(quality, "steps", json_integer((json_int_t)run.res.steps));
        json_object_set_new(quality, "train_seconds", json_real(run.t_train));
        s = write_json(out, "quality.json", quality);
    }
    if (!s) {
        gr_metric qm[4];
        for (int i = 0; i < 4; i++) qm[i] = (gr_metric){attr_keys[i], acc(quality, attrs[i], "accuracy")};
        s = gr_pretrain_run_finish(&run, qm, 4, quality_ok, "tower");
    }
    int rc = s ? gr_cli_error() : 0;
    gr_pretrain_run_free(&run);
    gr_vision_task_free(task, ctx);
    json_decref(quality);
    if (tower) vi->close(tower, ctx);
    if (ctx) gr_ctx_destroy(ctx);
    if (backend) gr_backend_close(backend);
    json_decref(vcfg);
    free(params);
    free(tcfg_path);
    free(pp_file);
    gr_config_free(cfg);
    return rc;
}

const gr_command gr_cmd_pretrain_vision = {
    "pretrain-vision", run_pretrain_vision,
    "train a CLIP vision tower from random init on the synthetic world's per-patch attributes",
    "usage: graft pretrain-vision -c CONFIG [-s KEY=VALUE]... [--resume]\n\n"
    "Builds the clip-vit tower of pretrain_vision.tower/config.json with random init, labels\n"
    "every patch of every image of the `graft synth` world pretrain_vision.world (colour, shape\n"
    "and size of the object covering most of the patch, with the rasteriser's own geometry, or\n"
    "background), and trains the tower with three linear heads on its last_hidden_state (the\n"
    "features the VLM's Q-Former reads, CLS row dropped) on the train split: AdamW, warm-up +\n"
    "cosine, summed per-patch cross-entropies. Writes pretrain_vision.out as a Hugging Face\n"
    "CLIPVisionModel directory (config.json, model.safetensors; heads not exported) that a VLM\n"
    "config uses as vision_dir, and quality.json: held-out patch accuracy per attribute on the\n"
    "val split with the majority-class baseline beside it. The run (config.cfg, metrics.jsonl,\n"
    "checkpoints/, report.json, verify_case.safetensors) is OUT/run; --resume continues it from\n"
    "its newest checkpoint. Keys: graft help config, docs/pretraining.md.\n",
};
