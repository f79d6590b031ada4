/* The training engine (graft/engine.h): model roles, stages over the trainer, evaluation,
 * resume across stages, report. */
#include <fnmatch.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fsutil.h"
#include "base/log.h"
#include "graft/strategy.h"
#include "plugin/registry.h"
#include "dist/dist.h"
#include "run/runlog.h"
#include "train/checkpoint.h"
#include "train/engine_internal.h"

/* ------------------------------------------------------------------------- keys ---- */

#define ROLE_KEYS(R)                                                                                 \
    {"model." R ".blip2", GR_CFG_STRING, "", "BLIP-2 HF directory (config.json + weights); else the parts below"}, \
    {"model." R ".vision", GR_CFG_STRING, "clip-vit", "vision tower plugin (clip-vit, blip2-vit)"},    \
    {"model." R ".vision_dir", GR_CFG_STRING, "", "vision tower directory: config.json [+ model.safetensors]"}, \
    {"model." R ".qformer", GR_CFG_STRING, "qformer", "Q-Former plugin (\"\": none)"},               \
    {"model." R ".qformer_dir", GR_CFG_STRING, "", "Q-Former directory: config.json [+ weights]"},  \
    {"model." R ".projector", GR_CFG_STRING, "linear", "projector plugin (linear, mlp)"},            \
    {"model." R ".lm", GR_CFG_STRING, "opt", "language-model plugin (opt, t5, llama)"},              \
    {"model." R ".lm_dir", GR_CFG_STRING, "", "language-model directory: config.json, weights, tokenizer"}, \
    {"model." R ".tokenizer", GR_CFG_STRING, "", "tokenizer directory (\"\": lm_dir or blip2)"},     \
    {"model." R ".init", GR_CFG_STRING, "", "trained tensors to load after opening: safetensors file or run directory"}, \
    {"model." R ".seed", GR_CFG_INT, "0", "seed of random initialisation"}

static const gr_config_key engine_keys[] = {
    ROLE_KEYS("target"),
    ROLE_KEYS("source"),
    {"strategy.name", GR_CFG_STRING, "scratch", "strategy plugin that runs the stages"},
    {"data.format", GR_CFG_STRING, "karpathy", "annotation format: karpathy, jsonl, coco, vqav2"},
    {"data.train", GR_CFG_STRING, "", "training annotations"},
    {"data.val", GR_CFG_STRING, "", "validation annotations (evaluation during training)"},
    {"data.test", GR_CFG_STRING, "", "test annotations (graft eval --split test)"},
    {"data.image_root", GR_CFG_STRING, "", "directory image names are relative to (\"\": the annotation file's)"},
    {"data.preprocessor", GR_CFG_STRING, "", "preprocessor_config.json (\"\": the vision dir's, else CLIP-style at the tower's size)"},
    {"data.batch_size", GR_CFG_INT, "16", "training batch (micro-batch) size"},
    {"data.eval_batch_size", GR_CFG_INT, "16", "evaluation batch size"},
    {"data.eval_limit", GR_CFG_INT, "0", "evaluate on the first N samples only (0: all)"},
    {"data.seed", GR_CFG_INT, "0", "data order, augmentation and prefix-LM splits"},
    {"data.augment", GR_CFG_BOOL, "false", "RandomResizedCrop + flip in training (LAVIS)"},
    {"data.cache_features", GR_CFG_BOOL, "true", "keep the frozen vision tower's outputs in memory (off with augmentation)"},
    {"data.max_text_tokens", GR_CFG_INT, "64", "truncate training texts to this many tokens"},
    {"train.task", GR_CFG_STRING, "caption", "caption or vqa"},
    {"train.prompt", GR_CFG_STRING, "", "VQA training input template (\"\": \"Question: {} Answer:\", Flan-T5 \"Question: {} Short answer:\")"},
    {"train.trainable", GR_CFG_STRING_LIST, "[\"query_tokens\", \"qformer.*\", \"language_projection.*\"]", "fnmatch patterns of trainable tensors"},
    {"train.lr_mult_patterns", GR_CFG_STRING_LIST, "[]", "patterns with their own lr multiplier (train.lr_mults)"},
    {"train.lr_mults", GR_CFG_FLOAT_LIST, "[]", "lr multipliers of train.lr_mult_patterns"},
    {"train.epochs", GR_CFG_INT, "5", "epochs (unless train.steps > 0)"},
    {"train.steps", GR_CFG_INT, "0", "optimizer steps (> 0: wins over epochs)"},
    {"train.schedule", GR_CFG_STRING, "cosine", "constant or cosine"},
    {"train.per_epoch", GR_CFG_BOOL, "true", "cosine stepped per epoch with warm-up in epoch 0 (LAVIS); false: per iteration"},
    {"train.lr", GR_CFG_FLOAT, "1e-4", "base learning rate"},
    {"train.min_lr", GR_CFG_FLOAT, "1e-5", "cosine end"},
    {"train.warmup_lr", GR_CFG_FLOAT, "1e-6", "start of the linear warm-up"},
    {"train.warmup_steps", GR_CFG_INT, "0", "warm-up steps (0: none)"},
    {"train.weight_decay", GR_CFG_FLOAT, "0.05", "AdamW weight decay (not on biases, norms, 1-D tensors)"},
    {"train.beta1", GR_CFG_FLOAT, "0.9", "AdamW beta1"},
    {"train.beta2", GR_CFG_FLOAT, "0.999", "AdamW beta2"},
    {"train.eps", GR_CFG_FLOAT, "1e-8", "AdamW eps"},
    {"train.grad_clip", GR_CFG_FLOAT, "0", "max global gradient norm (0: none)"},
    {"train.accum", GR_CFG_INT, "1", "micro-batches per optimizer step"},
    {"train.eval_every_steps", GR_CFG_INT, "0", "evaluate every N steps (0: never by steps)"},
    {"train.eval_every_epoch", GR_CFG_BOOL, "true", "evaluate after every epoch"},
    {"train.eval_at_start", GR_CFG_BOOL, "false", "evaluate before the first step"},
    {"train.ckpt_every_steps", GR_CFG_INT, "0", "checkpoint every N steps (0: at epoch ends only)"},
    {"train.ckpt_keep", GR_CFG_INT, "2", "checkpoints kept"},
    {"train.max_nonfinite", GR_CFG_INT, "5", "stop after this many non-finite steps in a row"},
    {"train.progress", GR_CFG_STRING, "auto", "auto, bar, lines or quiet"},
    {"gen.prompt", GR_CFG_STRING, "", "generation prompt template for captions (\"{}\" = question)"},
    {"gen.vqa_prompt", GR_CFG_STRING, "", "generation prompt template for VQA (\"\": as train.prompt's default)"},
    {"gen.num_beams", GR_CFG_INT, "5", "beam size (1: greedy)"},
    {"gen.max_new_tokens", GR_CFG_INT, "30", "caption length limit (VQA: gen.vqa_max_new_tokens)"},
    {"gen.min_new_tokens", GR_CFG_INT, "8", "captions: EOS forbidden before this many tokens"},
    {"gen.length_penalty", GR_CFG_FLOAT, "1.0", "beam score = logprob / length^penalty (captions)"},
    {"gen.vqa_max_new_tokens", GR_CFG_INT, "10", "VQA answer length limit"},
    {"gen.vqa_min_new_tokens", GR_CFG_INT, "1", "VQA minimum answer length"},
    {"gen.vqa_length_penalty", GR_CFG_FLOAT, "-1.0", "VQA length penalty (LAVIS: -1)"},
};

gr_status gr_engine_schema(void)
{
    static int done;
    if (done) return GR_OK;
    done = 1;
    return gr_config_schema_add(engine_keys, (int)(sizeof engine_keys / sizeof engine_keys[0]));
}

/* ------------------------------------------------------------------------ types ---- */

#define MAX_MODELS 4
#define MAX_STAGES 32

struct gr_engine_model {
    gr_engine *e;
    char role[32];
    gr_ctx *ctx;
    gr_vlm *vlm;
    gr_tokenizer *tok;
    json_t *configs[4];
    gr_weights *weights[4];
    char *vision_dir;
    uint8_t *touched;          /* per parameter: changed since opening (checkpointed as extra) */
};

typedef struct done_stage {
    char *name;
    char *role;
    gr_stage_result res;
    char *metric_names[16];
} done_stage;

struct gr_engine {
    gr_config *cfg;
    gr_backend *backend;
    char *run_dir;
    gr_runlog *log;
    gr_report *report;
    gr_engine_model *models[MAX_MODELS];
    int n_models;
    int64_t global_step;
    double epochs_done;
    /* resume */
    int resume;
    char *resume_ckpt;          /* latest checkpoint dir */
    char *resume_stage;
    int resume_index;           /* index of the stage the checkpoint belongs to */
    int stage_index;            /* next stage to run */
    done_stage done[MAX_STAGES];
    int n_done;
    char *config_text;
    const char *trainable_buf[64];
    double mults_buf[64];
    const char *mult_pat_buf[64];
};

const gr_config *gr_engine_config(const gr_engine *e) { return e->cfg; }
const char *gr_engine_run_dir(const gr_engine *e) { return e->run_dir; }

/* --------------------------------------------------------------------- models ---- */

static gr_status load_json(const char *path, json_t **out)
{
    json_error_t err;
    *out = json_load_file(path, 0, &err);
    if (!*out) return gr_fail(GR_ERR_FORMAT, "%s: %s (line %d)", path, err.text, err.line);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return gr_fail(GR_ERR_FORMAT, "%s: not a JSON object", path);
    }
    return GR_OK;
}

static int has_weights(const char *dir)
{
    char *a = gr_path_join(dir, "model.safetensors"), *b = gr_path_join(dir, "model.safetensors.index.json");
    int r = (a && gr_path_exists(a)) || (b && gr_path_exists(b));
    free(a);
    free(b);
    return r;
}

/* One part from a directory: config.json, weights when present. */
static gr_status open_part_src(gr_engine_model *m, int slot, const char *key, const char *dir, uint64_t seed,
                               gr_model_source *src)
{
    memset(src, 0, sizeof *src);
    src->struct_size = sizeof *src;
    src->seed = seed + (uint64_t)slot * 0x9e37u;
    src->prefix = "";
    if (!dir || !dir[0]) return gr_fail(GR_ERR_INVALID, "%s: a directory with config.json is required", key);
    char *path = gr_path_join(dir, "config.json");
    gr_status s = path ? load_json(path, &m->configs[slot]) : gr_fail(GR_ERR_NOMEM, "out of memory");
    free(path);
    if (s != GR_OK) return gr_fail_context(s, "%s", key);
    src->dir = dir;
    src->config = m->configs[slot];
    src->config_path = dir;
    if (has_weights(dir)) {
        s = gr_weights_open(dir, &m->weights[slot]);
        if (s != GR_OK) return gr_fail_context(s, "%s", key);
        src->weights = m->weights[slot];
    }
    return GR_OK;
}

static void model_free(gr_engine_model *m)
{
    if (!m) return;
    if (m->vlm) gr_vlm_close(m->vlm, m->ctx);
    if (m->ctx) gr_ctx_destroy(m->ctx);
    for (int i = 0; i < 4; i++) {
        if (m->weights[i]) gr_weights_close(m->weights[i]);
        if (m->configs[i]) json_decref(m->configs[i]);
    }
    if (m->tok) gr_tokenizer_free(m->tok);
    free(m->vision_dir);
    free(m->touched);
    free(m);
}

static const char *role_key(const char *role, const char *k, char *buf, size_t cap)
{
    snprintf(buf, cap, "model.%s.%s", role, k);
    return buf;
}

static int model_index(const gr_engine_model *m, const char *name)
{
    for (int i = 0; i < gr_vlm_param_count(m->vlm); i++) {
        const char *n;
        gr_vlm_param_at(m->vlm, i, &n);
        if (strcmp(n, name) == 0) return i;
    }
    return -1;
}

/* Checkpoint/stage-file names: HF names for the target, "role/NAME" for other roles. */
static char *ckpt_name(const gr_engine_model *m, const char *name)
{
    size_t n = strlen(m->role) + strlen(name) + 2;
    char *s = malloc(n);
    if (!s) return NULL;
    if (strcmp(m->role, "target") == 0) snprintf(s, n, "%s", name);
    else snprintf(s, n, "%s/%s", m->role, name);
    return s;
}

gr_status gr_engine_load_params(gr_engine_model *m, const char *path, const char *pattern, int *loaded)
{
    char *file = NULL, *ck = NULL;
    gr_status s = GR_OK;
    if (gr_is_dir(path)) {
        s = gr_checkpoint_latest(path, &ck);
        if (s == GR_OK) file = gr_path_join(ck, "trainable.safetensors");
    } else {
        file = strdup(path);
    }
    gr_weights *w = NULL;
    if (s == GR_OK && !file) s = gr_fail(GR_ERR_NOMEM, "out of memory");
    if (s == GR_OK) s = gr_weights_open(file, &w);
    int count = 0;
    /* Every tensor of the file that matches the pattern must be a parameter of the model. */
    for (int i = 0; s == GR_OK && i < gr_weights_count(w); i++) {
        const gr_weight_info *wi = gr_weights_at(w, i);
        const char *name = wi->name;
        size_t rl = strlen(m->role);
        if (strcmp(m->role, "target") != 0) {
            if (strncmp(name, m->role, rl) != 0 || name[rl] != '/') continue;
            name += rl + 1;
        } else if (strchr(name, '/')) {
            continue;
        }
        if (fnmatch(pattern, name, 0) != 0) continue;
        int k = model_index(m, name);
        if (k < 0) { s = gr_fail(GR_ERR_NOT_FOUND, "%s: tensor '%s' is not a parameter of the %s model", file, wi->name, m->role); break; }
        gr_tensor *p = gr_vlm_param_at(m->vlm, k, NULL);
        const char *nm1[1] = {wi->name};
        s = gr_load_tensors(m->ctx, file, &p, nm1, 1);
        if (s == GR_OK) { m->touched[k] = 1; count++; }
    }
    if (s == GR_OK && count == 0) s = gr_fail(GR_ERR_NOT_FOUND, "%s: no tensor matches '%s'", file ? file : path, pattern);
    if (w) gr_weights_close(w);
    free(file);
    free(ck);
    if (loaded) *loaded = count;
    return s;
}

gr_status gr_engine_open_model(gr_engine *e, const char *role, gr_engine_model **out)
{
    for (int i = 0; i < e->n_models; i++)
        if (strcmp(e->models[i]->role, role) == 0) { *out = e->models[i]; return GR_OK; }
    if (e->n_models == MAX_MODELS) return gr_fail(GR_ERR_INVALID, "engine: too many models");
    char k[128];
    if (!gr_config_schema_find(role_key(role, "lm", k, sizeof k)))
        return gr_fail(GR_ERR_INVALID, "engine: unknown model role '%s' (target, source)", role);
    gr_engine_model *m = calloc(1, sizeof *m);
    if (!m) return gr_fail(GR_ERR_NOMEM, "out of memory");
    m->e = e;
    snprintf(m->role, sizeof m->role, "%s", role);
    m->ctx = gr_ctx_create(e->backend);
    gr_status s = m->ctx ? GR_OK : gr_fail(GR_ERR_NOMEM, "out of memory");
    const gr_config *c = e->cfg;
    uint64_t seed = (uint64_t)gr_config_int(c, role_key(role, "seed", k, sizeof k));
    const char *blip2 = gr_config_string(c, role_key(role, "blip2", k, sizeof k));
    const char *tokdir = gr_config_string(c, role_key(role, "tokenizer", k, sizeof k));
    if (s == GR_OK && blip2[0]) {
        s = gr_vlm_open_dir(m->ctx, blip2, &m->vlm);
        if (!tokdir[0]) tokdir = blip2;
        m->vision_dir = strdup(blip2);
    } else if (s == GR_OK) {
        gr_vlm_parts parts = {.struct_size = sizeof parts};
        char kv[128], kq[128], kl[128];
        const char *vdir = gr_config_string(c, role_key(role, "vision_dir", kv, sizeof kv));
        const char *qplug = gr_config_string(c, role_key(role, "qformer", k, sizeof k));
        const char *qdir = gr_config_string(c, role_key(role, "qformer_dir", kq, sizeof kq));
        const char *ldir = gr_config_string(c, role_key(role, "lm_dir", kl, sizeof kl));
        parts.vision.plugin = gr_config_string(c, role_key(role, "vision", k, sizeof k));
        s = open_part_src(m, 0, kv, vdir, seed, &parts.vision.src);
        if (s == GR_OK && qplug[0]) {
            parts.qformer.plugin = qplug;
            s = open_part_src(m, 1, kq, qdir, seed, &parts.qformer.src);
        }
        if (s == GR_OK) {
            parts.lm.plugin = gr_config_string(c, role_key(role, "lm", k, sizeof k));
            s = open_part_src(m, 2, kl, ldir, seed, &parts.lm.src);
        }
        if (s == GR_OK) {
            parts.projector.plugin = gr_config_string(c, role_key(role, "projector", k, sizeof k));
            parts.projector.src = (gr_model_source){.struct_size = sizeof(gr_model_source), .dir = ldir,
                                                    .config = m->configs[2], .config_path = ldir,
                                                    .prefix = "", .seed = seed + 3 * 0x9e37u};
            parts.projector_spec.struct_size = sizeof parts.projector_spec;
            parts.projector_spec.act = GR_ACT_GELU_ERF;
            s = gr_vlm_open_parts(m->ctx, &parts, &m->vlm);
        }
        if (!tokdir[0]) tokdir = ldir;
        m->vision_dir = strdup(vdir);
    }
    if (s == GR_OK) s = gr_tokenizer_load(tokdir, &m->tok);
    if (s == GR_OK && !(m->touched = calloc((size_t)gr_vlm_param_count(m->vlm) + 1, 1)))
        s = gr_fail(GR_ERR_NOMEM, "out of memory");
    const char *init = s == GR_OK ? gr_config_string(c, role_key(role, "init", k, sizeof k)) : "";
    if (s == GR_OK && init[0]) s = gr_engine_load_params(m, init, "*", NULL);
    if (s != GR_OK) {
        model_free(m);
        return gr_fail_context(s, "model.%s", role);
    }
    e->models[e->n_models++] = m;
    *out = m;
    return GR_OK;
}

int gr_engine_model_param_count(const gr_engine_model *m) { return gr_vlm_param_count(m->vlm); }
gr_tensor *gr_engine_model_param(const gr_engine_model *m, int i, const char **name) { return gr_vlm_param_at(m->vlm, i, name); }
gr_tensor *gr_engine_model_find(const gr_engine_model *m, const char *name) { return gr_vlm_param_find(m->vlm, name); }
gr_ctx *gr_engine_model_ctx(const gr_engine_model *m) { return m->ctx; }
gr_vlm *gr_engine_model_vlm(gr_engine_model *m) { return m->vlm; }
const gr_tokenizer *gr_engine_model_tokenizer(const gr_engine_model *m) { return m->tok; }

gr_status gr_engine_copy_params(gr_engine_model *dst, const gr_engine_model *src, const char *pattern, int *copied)
{
    int count = 0;
    gr_status s = GR_OK;
    for (int i = 0; s == GR_OK && i < gr_vlm_param_count(src->vlm); i++) {
        const char *name;
        gr_tensor *a = gr_vlm_param_at(src->vlm, i, &name);
        if (fnmatch(pattern, name, 0) != 0) continue;
        int k = model_index(dst, name);
        if (k < 0) { s = gr_fail(GR_ERR_NOT_FOUND, "copy: '%s' of the %s model has no counterpart in the %s model", name, src->role, dst->role); break; }
        gr_tensor *b = gr_vlm_param_at(dst->vlm, k, NULL);
        int same = a->ndim == b->ndim && a->dtype == b->dtype;
        for (int d = 0; same && d < a->ndim; d++) same = a->shape[d] == b->shape[d];
        if (!same) { s = gr_fail(GR_ERR_SHAPE, "copy: '%s' has another shape or dtype in the %s model", name, dst->role); break; }
        void *buf = malloc(gr_nbytes(a) + 1);
        s = buf ? gr_to_host(src->ctx, a, buf) : gr_fail(GR_ERR_NOMEM, "out of memory");
        if (s == GR_OK) s = gr_upload(dst->ctx, b, buf);
        free(buf);
        if (s == GR_OK) { dst->touched[k] = 1; count++; }
    }
    if (s == GR_OK && count == 0) s = gr_fail(GR_ERR_NOT_FOUND, "copy: no parameter of the %s model matches '%s'", src->role, pattern);
    if (copied) *copied = count;
    return s;
}

gr_status gr_engine_model_preproc(const gr_engine_model *m, gr_image_preproc *pp)
{
    const char *p = gr_config_string(m->e->cfg, "data.preprocessor");
    if (p[0]) return gr_image_preproc_load(p, pp);
    char *f = m->vision_dir ? gr_path_join(m->vision_dir, "preprocessor_config.json") : NULL;
    gr_status s = GR_OK;
    if (f && gr_path_exists(f)) {
        s = gr_image_preproc_load(f, pp);
    } else {
        gr_vlm_info info = {.struct_size = sizeof(gr_vlm_info)};
        gr_vlm_get_info(m->vlm, &info);
        gr_image_preproc_clip_defaults(pp);
        pp->resize_shortest_edge = (int)info.vision.image_size;
        pp->crop_height = pp->crop_width = (int)info.vision.image_size;
    }
    free(f);
    return s;
}

gr_status gr_engine_gen_config(const gr_engine *e, const gr_engine_model *m, const char *task, gr_vlm_gen *gen)
{
    const gr_config *c = e->cfg;
    memset(gen, 0, sizeof *gen);
    int vqa = strcmp(task, "vqa") == 0;
    gen->prompt = gr_config_string(c, vqa ? "gen.vqa_prompt" : "gen.prompt");
    if (vqa && !gen->prompt[0]) gen->prompt = gr_vlm_vqa_prompt(m->vlm); /* LAVIS: per LM family */
    gen->search.num_beams = (int)gr_config_int(c, "gen.num_beams");
    gen->search.max_new_tokens = (int)gr_config_int(c, vqa ? "gen.vqa_max_new_tokens" : "gen.max_new_tokens");
    gen->search.min_new_tokens = (int)gr_config_int(c, vqa ? "gen.vqa_min_new_tokens" : "gen.min_new_tokens");
    gen->search.length_penalty = gr_config_float(c, vqa ? "gen.vqa_length_penalty" : "gen.length_penalty");
    if (gen->search.num_beams < 1 || gen->search.num_beams > 32)
        return gr_fail(GR_ERR_INVALID, "gen.num_beams: %d is not in 1..32", gen->search.num_beams);
    if (gen->search.max_new_tokens < 1) return gr_fail(GR_ERR_INVALID, "gen.max_new_tokens must be >= 1");
    return gr_vlm_gen_eos(m->vlm, m->tok, &gen->search);
}

/* ------------------------------------------------------------------- datasets ---- */

static gr_status open_dataset(const gr_engine *e, const char *path, const char *task, gr_dataset **out)
{
    const char *fmt = gr_config_string(e->cfg, "data.format");
    gr_dataset_spec spec = {.path = path};
    const char *root = gr_config_string(e->cfg, "data.image_root");
    spec.image_root = root[0] ? root : NULL;
    if (strcmp(fmt, "karpathy") == 0) spec.format = GR_DATASET_KARPATHY;
    else if (strcmp(fmt, "jsonl") == 0) spec.format = GR_DATASET_JSONL;
    else if (strcmp(fmt, "coco") == 0) { spec.format = GR_DATASET_COCO_CAPTIONS; spec.group_captions = 1; }
    else if (strcmp(fmt, "vqav2") == 0) spec.format = GR_DATASET_VQAV2;
    else return gr_fail(GR_ERR_INVALID, "data.format: '%s' is not karpathy, jsonl, coco or vqav2", fmt);
    gr_status s = gr_dataset_open(&spec, out);
    if (s == GR_OK && (strcmp(task, "vqa") == 0) != gr_dataset_is_vqa(*out)) {
        gr_dataset_free(*out);
        *out = NULL;
        return gr_fail(GR_ERR_INVALID, "%s: a %s dataset, but the task is '%s'", path,
                       strcmp(task, "vqa") == 0 ? "caption" : "VQA", task);
    }
    return s;
}

static gr_status task_kind(const char *task, gr_vlm_task_kind *k)
{
    if (strcmp(task, "caption") == 0) { *k = GR_VLM_CAPTION; return GR_OK; }
    if (strcmp(task, "vqa") == 0) { *k = GR_VLM_VQA; return GR_OK; }
    return gr_fail(GR_ERR_INVALID, "train.task: '%s' is not caption or vqa", task);
}

static gr_status make_task(gr_engine *e, gr_engine_model *m, const char *task, const gr_dataset *train,
                           const gr_dataset *ev, int64_t batch, gr_vlm_task **out)
{
    const gr_config *c = e->cfg;
    gr_vlm_task_config tc;
    memset(&tc, 0, sizeof tc);
    tc.vlm = m->vlm;
    tc.tok = m->tok;
    tc.ctx = m->ctx;
    gr_status s = task_kind(task, &tc.kind);
    tc.train = train;
    tc.eval = ev;
    tc.batch_size = batch > 0 ? batch : gr_config_int(c, "data.batch_size");
    tc.eval_batch_size = gr_config_int(c, "data.eval_batch_size");
    tc.seed = (uint64_t)gr_config_int(c, "data.seed");
    tc.rank = gr_dist_rank(); /* data parallel: this rank's shard (docs/distributed.md) */
    tc.world_size = gr_dist_world();
    tc.eval_limit = gr_config_int(c, "data.eval_limit");
    tc.max_text_tokens = (int)gr_config_int(c, "data.max_text_tokens");
    tc.train_prompt = gr_config_string(c, "train.prompt");
    gr_image_augment_defaults(&tc.augment);
    tc.augment.enabled = gr_config_bool(c, "data.augment");
    int trainable_vision = 0;
    for (int i = 0; i < gr_vlm_param_count(m->vlm); i++) {
        const char *n;
        gr_tensor *p = gr_vlm_param_at(m->vlm, i, &n);
        if (gr_is_trainable(p) && strncmp(n, "vision_model.", 13) == 0) trainable_vision = 1;
    }
    tc.cache_features = gr_config_bool(c, "data.cache_features") && !tc.augment.enabled && !trainable_vision;
    if (s == GR_OK) s = gr_engine_model_preproc(m, &tc.preproc);
    if (s == GR_OK) s = gr_engine_gen_config(e, m, task, &tc.gen);
    if (s == GR_OK) s = gr_vlm_task_create(&tc, out);
    return s;
}

gr_status gr_engine_eval_file(gr_engine *e, gr_engine_model *m, const char *task, const char *path, int blind,
                              gr_vlm_eval_out *out)
{
    gr_dataset *ds = NULL;
    gr_vlm_task *t = NULL;
    gr_status s = open_dataset(e, path, task, &ds);
    if (s == GR_OK) s = make_task(e, m, task, NULL, ds, 0, &t);
    if (s == GR_OK) {
        gr_vlm_task_set_blind(t, blind);
        s = gr_vlm_task_evaluate(t, m->ctx, out, 1);
    }
    gr_vlm_task_free(t);
    gr_dataset_free(ds);
    return s;
}

/* ---------------------------------------------------------------------- stages ---- */

void gr_engine_stage_defaults(const gr_engine *e, gr_stage_spec *sp)
{
    const gr_config *c = e->cfg;
    gr_engine *me = (gr_engine *)e;
    memset(sp, 0, sizeof *sp);
    sp->struct_size = sizeof *sp;
    sp->name = "train";
    sp->task = gr_config_string(c, "train.task");
    int nt = gr_config_list_count(c, "train.trainable");
    if (nt > 64) nt = 64;
    for (int i = 0; i < nt; i++) me->trainable_buf[i] = gr_config_list_string(c, "train.trainable", i);
    sp->trainable = me->trainable_buf;
    sp->n_trainable = nt;
    int np = gr_config_list_count(c, "train.lr_mult_patterns"), nm = gr_config_list_count(c, "train.lr_mults");
    if (np > 64) np = 64;
    for (int i = 0; i < np; i++) {
        me->mult_pat_buf[i] = gr_config_list_string(c, "train.lr_mult_patterns", i);
        me->mults_buf[i] = i < nm ? gr_config_list_float(c, "train.lr_mults", i) : 1.0;
    }
    sp->lr_mult_patterns = me->mult_pat_buf;
    sp->lr_mults = me->mults_buf;
    sp->n_lr_mults = np;
    sp->schedule = gr_config_string(c, "train.schedule");
    sp->lr = gr_config_float(c, "train.lr");
    sp->min_lr = gr_config_float(c, "train.min_lr");
    sp->warmup_lr = gr_config_float(c, "train.warmup_lr");
    sp->warmup_steps = gr_config_int(c, "train.warmup_steps");
    sp->per_epoch = gr_config_bool(c, "train.per_epoch");
    sp->weight_decay = gr_config_float(c, "train.weight_decay");
    sp->grad_clip = gr_config_float(c, "train.grad_clip");
    sp->beta1 = gr_config_float(c, "train.beta1");
    sp->beta2 = gr_config_float(c, "train.beta2");
    sp->eps = gr_config_float(c, "train.eps");
    sp->accum = (int)gr_config_int(c, "train.accum");
    sp->epochs = gr_config_int(c, "train.epochs");
    sp->steps = gr_config_int(c, "train.steps");
    sp->batch_size = gr_config_int(c, "data.batch_size");
    sp->eval_every_steps = gr_config_int(c, "train.eval_every_steps");
    sp->eval_every_epoch = gr_config_bool(c, "train.eval_every_epoch");
    sp->eval_at_start = gr_config_bool(c, "train.eval_at_start");
}

static void copy_eval(gr_stage_result *res, const gr_task_eval *ev)
{
    res->n_metrics = ev->count < 16 ? ev->count : 16;
    for (int i = 0; i < res->n_metrics; i++) {
        res->metric_names[i] = ev->metrics[i].name;
        res->metric_values[i] = ev->metrics[i].value;
    }
}

/* JSON of the engine's stage bookkeeping, stored in each checkpoint's state.json. */
static char *stage_extra(const gr_engine *e, const char *role, double epoch_offset)
{
    json_t *o = json_object();
    json_object_set_new(o, "stage_index", json_integer(e->stage_index));
    json_object_set_new(o, "role", json_string(role));
    json_object_set_new(o, "epoch_offset", json_real(epoch_offset));
    json_t *done = json_array();
    for (int i = 0; i < e->n_done; i++) {
        const done_stage *d = &e->done[i];
        json_t *x = json_object();
        json_object_set_new(x, "name", json_string(d->name));
        json_object_set_new(x, "role", json_string(d->role));
        json_object_set_new(x, "steps", json_integer(d->res.steps));
        json_object_set_new(x, "epochs", json_real(d->res.epochs));
        json_object_set_new(x, "last_loss", isfinite(d->res.last_loss) ? json_real(d->res.last_loss) : json_null());
        json_object_set_new(x, "flops", json_real(d->res.flops));
        json_t *ms = json_object();
        for (int k = 0; k < d->res.n_metrics; k++)
            json_object_set_new(ms, d->res.metric_names[k], json_real(d->res.metric_values[k]));
        json_object_set_new(x, "metrics", ms);
        json_array_append_new(done, x);
    }
    json_object_set_new(o, "done", done);
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

static gr_status record_done(gr_engine *e, const char *name, const char *role, const gr_stage_result *res)
{
    if (e->n_done == MAX_STAGES) return gr_fail(GR_ERR_INVALID, "engine: more than %d stages", MAX_STAGES);
    done_stage *d = &e->done[e->n_done++];
    d->name = strdup(name);
    d->role = strdup(role);
    d->res = *res;
    for (int k = 0; k < res->n_metrics; k++) {
        d->metric_names[k] = strdup(res->metric_names[k]);
        d->res.metric_names[k] = d->metric_names[k];
    }
    return GR_OK;
}

/* Touched tensors of a model to/from RUN_DIR/stages/NAME.safetensors (a finished stage). */
static gr_status stage_file(const gr_engine *e, const char *name, char **path)
{
    char *dir = gr_path_join(e->run_dir, "stages");
    char file[300];
    snprintf(file, sizeof file, "%s.safetensors", name);
    *path = dir ? gr_path_join(dir, file) : NULL;
    gr_status s = dir ? gr_mkdirs(dir) : GR_OK;
    free(dir);
    if (s == GR_OK && !*path) s = gr_fail(GR_ERR_NOMEM, "out of memory");
    return s;
}

static gr_status save_stage_tensors(gr_engine *e, gr_engine_model *m, const char *stage)
{
    char *path = NULL;
    gr_status s = stage_file(e, stage, &path);
    int n = gr_vlm_param_count(m->vlm), k = 0;
    gr_tensor **ts = calloc((size_t)n + 1, sizeof *ts);
    char **names = calloc((size_t)n + 1, sizeof *names);
    if (s == GR_OK && (!ts || !names)) s = gr_fail(GR_ERR_NOMEM, "out of memory");
    for (int i = 0; s == GR_OK && i < n; i++) {
        const char *nm;
        gr_tensor *p = gr_vlm_param_at(m->vlm, i, &nm);
        if (!m->touched[i]) continue;
        ts[k] = p;
        names[k++] = ckpt_name(m, nm);
    }
    const char *meta[] = {"format", "pt", "producer", "graft", "stage", stage, NULL};
    if (s == GR_OK && k > 0) s = gr_safetensors_write(m->ctx, path, ts, (const char *const *)names, k, meta);
    for (int i = 0; names && i < k; i++) free(names[i]);
    free(names);
    free(ts);
    free(path);
    return s;
}

static gr_status set_trainable(gr_engine_model *m, const gr_stage_spec *sp)
{
    for (int i = 0; i < gr_vlm_param_count(m->vlm); i++) gr_set_trainable(gr_vlm_param_at(m->vlm, i, NULL), 0);
    for (int j = 0; j < sp->n_trainable; j++) {
        if (gr_vlm_set_trainable(m->vlm, sp->trainable[j], 1) == 0)
            return gr_fail(GR_ERR_INVALID, "stage %s: trainable pattern '%s' matches no tensor of the %s model",
                           sp->name, sp->trainable[j], m->role);
    }
    return GR_OK;
}

gr_status gr_engine_run_stage(gr_engine *e, gr_engine_model *m, const gr_stage_spec *sp, gr_stage_result *res)
{
    memset(res, 0, sizeof *res);
    res->struct_size = sizeof *res;
    res->last_loss = NAN;
    if (!e->log) return gr_fail(GR_ERR_INVALID, "engine: no run directory to train in");
    if (!sp->name || !sp->name[0] || strchr(sp->name, '/'))
        return gr_fail(GR_ERR_INVALID, "stage: a name without '/' is required");
    for (int i = 0; e->stage_index >= e->n_done && i < e->n_done; i++)
        if (strcmp(e->done[i].name, sp->name) == 0)
            return gr_fail(GR_ERR_INVALID, "stage %s: run twice (stage names must be unique)", sp->name);
    /* A stage finished before the resumed run: restore its tensors and result. */
    if (e->stage_index < e->n_done) {
        done_stage *d = &e->done[e->stage_index];
        if (strcmp(d->name, sp->name) != 0)
            return gr_fail(GR_ERR_INVALID, "resume: the run's stage %d was '%s', the strategy now runs '%s' "
                           "(the configuration changed?)", e->stage_index, d->name, sp->name);
        char *path = NULL;
        gr_status s = stage_file(e, sp->name, &path);
        if (s == GR_OK && gr_path_exists(path)) s = gr_engine_load_params(m, path, "*", NULL);
        free(path);
        if (s != GR_OK) return s;
        *res = d->res;
        e->epochs_done += d->res.epochs;
        e->stage_index++;
        return GR_OK;
    }
    gr_status s = set_trainable(m, sp);
    gr_vlm_task_kind kind;
    if (s == GR_OK) s = task_kind(sp->task ? sp->task : "caption", &kind);
    gr_lr_kind lk = GR_LR_CONSTANT;
    if (s == GR_OK) s = gr_lr_kind_parse(sp->schedule ? sp->schedule : "constant", &lk);
    if (s != GR_OK) return s;
    const gr_config *c = e->cfg;
    const char *trainp = gr_config_string(c, "data.train"), *valp = gr_config_string(c, "data.val");
    if (!trainp[0]) return gr_fail(GR_ERR_INVALID, "data.train: no training annotations configured");
    gr_dataset *train = NULL, *val = NULL;
    gr_vlm_task *task = NULL;
    s = open_dataset(e, trainp, sp->task, &train);
    if (s == GR_OK && valp[0]) s = open_dataset(e, valp, sp->task, &val);
    if (s == GR_OK) s = make_task(e, m, sp->task, train, val, sp->batch_size, &task);

    /* trainable and extra tensors, with checkpoint names and lr multipliers */
    int n = gr_vlm_param_count(m->vlm), np = 0, ne = 0;
    gr_tensor **params = calloc((size_t)n + 1, sizeof *params), **extra = calloc((size_t)n + 1, sizeof *extra);
    char **pn = calloc((size_t)n + 1, sizeof *pn), **en = calloc((size_t)n + 1, sizeof *en);
    double *scale = calloc((size_t)n + 1, sizeof *scale);
    if (s == GR_OK && (!params || !extra || !pn || !en || !scale)) s = gr_fail(GR_ERR_NOMEM, "out of memory");
    for (int i = 0; s == GR_OK && i < n; i++) {
        const char *nm;
        gr_tensor *p = gr_vlm_param_at(m->vlm, i, &nm);
        if (gr_is_trainable(p)) {
            if (p->dtype != GR_F32) { s = gr_fail(GR_ERR_UNSUPPORTED, "stage %s: %s is %s; trainable tensors must be F32", sp->name, nm, gr_dtype_name(p->dtype)); break; }
            scale[np] = 1.0;
            for (int j = 0; j < sp->n_lr_mults; j++)
                if (fnmatch(sp->lr_mult_patterns[j], nm, 0) == 0) { scale[np] = sp->lr_mults[j]; break; }
            pn[np] = ckpt_name(m, nm);
            params[np++] = p;
            m->touched[i] = 1;
        } else if (m->touched[i]) {
            en[ne] = ckpt_name(m, nm);
            extra[ne++] = p;
        }
    }
    gr_trainer_config tc;
    gr_trainer_config_defaults(&tc);
    tc.stage = sp->name;
    tc.params = params;
    tc.names = (const char *const *)pn;
    tc.lr_scale = scale;
    tc.count = np;
    tc.extra = extra;
    tc.extra_names = (const char *const *)en;
    tc.extra_count = ne;
    tc.adamw = (gr_adamw_config){sp->beta1, sp->beta2, sp->eps, sp->weight_decay, sp->grad_clip};
    tc.lr = (gr_lr_schedule){.kind = lk, .base_lr = sp->lr, .min_lr = sp->min_lr, .warmup_lr = sp->warmup_lr,
                             .warmup_steps = sp->warmup_steps, .per_epoch = sp->per_epoch};
    tc.accum = sp->accum;
    tc.max_epochs = sp->epochs;
    tc.max_steps = sp->steps;
    tc.eval_every_steps = sp->eval_every_steps;
    tc.eval_every_epoch = sp->eval_every_epoch;
    tc.eval_at_start = sp->eval_at_start;
    tc.ckpt_every_steps = gr_config_int(c, "train.ckpt_every_steps");
    tc.ckpt_keep = (int)gr_config_int(c, "train.ckpt_keep");
    tc.max_nonfinite = (int)gr_config_int(c, "train.max_nonfinite");
    tc.step_offset = e->global_step;
    tc.epoch_offset = e->epochs_done;
    tc.config_text = e->config_text;
    const char *pm = gr_config_string(c, "train.progress");
    tc.progress.mode = strcmp(pm, "quiet") == 0 ? GR_PROGRESS_QUIET : strcmp(pm, "lines") == 0 ? GR_PROGRESS_LINES
                       : strcmp(pm, "bar") == 0 ? GR_PROGRESS_BAR : GR_PROGRESS_AUTO;
    char *extra_json = stage_extra(e, m->role, e->epochs_done);
    tc.state_extra = extra_json;
    gr_task gt;
    gr_trainer *tr = NULL;
    gr_trainer_result tres;
    memset(&tres, 0, sizeof tres);
    double flops_before = gr_runlog_flops_total(e->log);
    if (s == GR_OK) {
        gr_vlm_task_bind(task, &gt);
        s = gr_trainer_create(m->ctx, &tc, &gt, e->log, &tr);
    }
    int restored = 0;
    if (s == GR_OK && e->resume_ckpt && e->stage_index == e->resume_index) {
        s = gr_trainer_restore(tr, e->resume_ckpt);
        restored = s == GR_OK;
        if (restored) flops_before = NAN; /* recomputed below from the stage's records */
    }
    if (s == GR_OK) {
        if (!restored) gr_runlog_event(e->log, e->global_step, e->epochs_done, "stage_start", "%s", sp->name);
        s = gr_trainer_run(tr, &tres);
        res->steps = tres.steps;
        res->epochs = tres.epochs;
        res->last_loss = tres.last_loss;
        res->flops_total = tres.flops_total;
        copy_eval(res, &tres.last_eval);
    }
    if (s == GR_OK) {
        /* stage FLOPs: from the log (also right after a resume) */
        gr_run_data *d = NULL;
        res->flops = 0;
        if (gr_run_data_read(e->run_dir, &d) == GR_OK) {
            for (size_t i = 0; i < d->step_count; i++)
                if (d->steps[i].stage >= 0 && strcmp(d->stages[d->steps[i].stage], sp->name) == 0)
                    res->flops += d->steps[i].flops.fwd_frozen + d->steps[i].flops.fwd_trainable +
                                  d->steps[i].flops.bwd_input + d->steps[i].flops.bwd_param;
            gr_run_data_free(d);
        } else if (!isnan(flops_before)) {
            res->flops = tres.flops_total - flops_before;
        }
        e->global_step += tres.steps;
        e->epochs_done += tres.epochs;
        gr_runlog_event(e->log, e->global_step, e->epochs_done, "stage_end", "%s", sp->name);
        s = gr_dist_is_root() ? save_stage_tensors(e, m, sp->name) : GR_OK; /* rank 0 writes */
        if (s == GR_OK) s = record_done(e, sp->name, m->role, res);
        e->stage_index++;
        char key[300];
        snprintf(key, sizeof key, "stages.%s.steps", sp->name);
        gr_report_set_int(e->report, key, res->steps);
        snprintf(key, sizeof key, "stages.%s.flops", sp->name);
        gr_report_set_number(e->report, key, res->flops);
    }
    gr_trainer_result_free(&tres);
    gr_trainer_free(tr);
    for (int i = 0; i < np; i++) free(pn[i]);
    for (int i = 0; i < ne; i++) free(en[i]);
    free(params); free(extra); free(pn); free(en); free(scale);
    free(extra_json);
    gr_vlm_task_free(task);
    gr_dataset_free(train);
    gr_dataset_free(val);
    if (e->resume_ckpt && e->stage_index > e->resume_index) { free(e->resume_ckpt); e->resume_ckpt = NULL; }
    return s;
}

gr_status gr_engine_evaluate(gr_engine *e, gr_engine_model *m, const char *task, const char *split, gr_stage_result *res)
{
    memset(res, 0, sizeof *res);
    res->struct_size = sizeof *res;
    char key[64];
    snprintf(key, sizeof key, "data.%s", split);
    if (!gr_config_schema_find(key)) return gr_fail(GR_ERR_INVALID, "evaluate: unknown split '%s' (val, test)", split);
    const char *path = gr_config_string(e->cfg, key);
    if (!path[0]) return gr_fail(GR_ERR_INVALID, "%s: no annotations configured", key);
    gr_vlm_eval_out o;
    gr_status s = gr_engine_eval_file(e, m, task, path, 0, &o);
    if (s != GR_OK) return s;
    copy_eval(res, &o.eval);
    if (e->log) s = gr_runlog_eval(e->log, split, e->global_step, e->epochs_done, o.eval.metrics, o.eval.count);
    gr_vlm_eval_out_free(&o);
    return s;
}

gr_status gr_engine_report_number(gr_engine *e, const char *path, double value)
{
    return gr_report_set_number(e->report, path, value);
}

gr_status gr_engine_report_string(gr_engine *e, const char *path, const char *value)
{
    return gr_report_set_string(e->report, path, value);
}

gr_status gr_engine_event(gr_engine *e, const char *event, const char *message)
{
    if (!e->log) return GR_OK;
    return gr_runlog_event(e->log, e->global_step, e->epochs_done, event, "%s", message ? message : "");
}

/* ------------------------------------------------------------------- lifecycle ---- */

gr_status gr_engine_create_bare(gr_config *cfg, gr_backend *backend, gr_engine **out)
{
    gr_engine *e = calloc(1, sizeof *e);
    if (!e) {
        gr_config_free(cfg);
        return gr_fail(GR_ERR_NOMEM, "out of memory");
    }
    e->cfg = cfg;
    e->backend = backend;
    e->report = gr_report_new();
    *out = e;
    return GR_OK;
}

static gr_status read_resume(gr_engine *e)
{
    gr_status s = gr_checkpoint_latest(e->run_dir, &e->resume_ckpt);
    char *extra = NULL;
    int64_t g = 0;
    if (s == GR_OK) s = gr_checkpoint_read_state(e->resume_ckpt, &e->resume_stage, &g, &extra);
    json_t *o = s == GR_OK ? json_loads(extra, 0, NULL) : NULL;
    if (s == GR_OK && !json_is_object(o)) s = gr_fail(GR_ERR_FORMAT, "%s: state.json: \"extra\" is not an object", e->resume_ckpt);
    if (s == GR_OK) {
        json_t *si = json_object_get(o, "stage_index"), *done = json_object_get(o, "done"),
               *eo = json_object_get(o, "epoch_offset");
        if (!json_is_integer(si) || !json_is_array(done) || !json_is_number(eo))
            s = gr_fail(GR_ERR_FORMAT, "%s: state.json: not a checkpoint of graft train", e->resume_ckpt);
        else e->resume_index = (int)json_integer_value(si);
        size_t i;
        json_t *x;
        int64_t steps_before = 0;
        json_array_foreach(done, i, x) {
            if (s != GR_OK) break;
            gr_stage_result r = {.struct_size = sizeof r};
            json_t *ms = json_object_get(x, "metrics");
            r.steps = json_integer_value(json_object_get(x, "steps"));
            r.epochs = json_number_value(json_object_get(x, "epochs"));
            json_t *ll = json_object_get(x, "last_loss");
            r.last_loss = json_is_number(ll) ? json_number_value(ll) : NAN;
            r.flops = json_number_value(json_object_get(x, "flops"));
            const char *k;
            json_t *v;
            json_object_foreach(ms, k, v) {
                if (r.n_metrics == 16) break;
                r.metric_names[r.n_metrics] = k;
                r.metric_values[r.n_metrics++] = json_number_value(v);
            }
            s = record_done(e, json_string_value(json_object_get(x, "name")) ? json_string_value(json_object_get(x, "name")) : "?",
                            json_string_value(json_object_get(x, "role")) ? json_string_value(json_object_get(x, "role")) : "target", &r);
            steps_before += r.steps;
        }
        e->global_step = steps_before; /* the stages before the checkpoint's */
        if (s == GR_OK && e->n_done != e->resume_index)
            s = gr_fail(GR_ERR_FORMAT, "%s: state.json: %d finished stages but stage index %d", e->resume_ckpt, e->n_done, e->resume_index);
    }
    if (s == GR_OK) s = gr_runlog_truncate_after(e->log, g);
    if (s == GR_OK) s = gr_runlog_event(e->log, g, 0, "resume", "from %s", e->resume_ckpt);
    json_decref(o);
    free(extra);
    return s;
}

gr_status gr_engine_create(gr_config *cfg, gr_backend *backend, const char *run_dir, int resume, gr_engine **out)
{
    gr_engine *e = NULL;
    gr_status s = gr_engine_create_bare(cfg, backend, &e);
    if (s != GR_OK) return s;
    e->run_dir = strdup(run_dir);
    e->resume = resume;
    /* data parallel: rank 0 alone writes the run directory; the others follow its log */
    int root = gr_dist_is_root();
    s = gr_runlog_open(run_dir, !root ? GR_RUN_FOLLOW : resume ? GR_RUN_RESUME : GR_RUN_NEW, &e->log);
    char *cpath = s == GR_OK ? gr_runlog_path(e->log, GR_RUN_CONFIG) : NULL;
    if (s == GR_OK && !resume && root) s = gr_config_write(cfg, cpath);
    if (s == GR_OK && root) s = gr_read_file(cpath, &e->config_text, NULL);
    free(cpath);
    if (s == GR_OK && resume) s = read_resume(e);
    if (s != GR_OK) {
        gr_engine_free(e);
        return s;
    }
    *out = e;
    return GR_OK;
}

void gr_engine_free(gr_engine *e)
{
    if (!e) return;
    for (int i = 0; i < e->n_models; i++) model_free(e->models[i]);
    for (int i = 0; i < e->n_done; i++) {
        free(e->done[i].name);
        free(e->done[i].role);
        for (int k = 0; k < e->done[i].res.n_metrics; k++) free(e->done[i].metric_names[k]);
    }
    if (e->log) gr_runlog_close(e->log);
    gr_report_free(e->report);
    gr_config_free(e->cfg);
    free(e->run_dir);
    free(e->resume_ckpt);
    free(e->resume_stage);
    free(e->config_text);
    free(e);
}

gr_status gr_engine_run_strategy(gr_engine *e)
{
    const char *name = gr_config_string(e->cfg, "strategy.name");
    const void *iface = NULL;
    gr_status s = gr_plugin_iface(GR_PLUGIN_STRATEGY, name, &iface);
    if (s != GR_OK) return gr_fail_context(s, "strategy.name");
    const gr_strategy_iface *st = iface;
    s = st->run(e);
    if (s == GR_ERR_INTERRUPTED || s == GR_ERR_NUMERIC) return s;
    if (s == GR_OK && gr_dist_is_root()) { /* rank 0 alone writes the report */
        gr_run_data *d = NULL;
        s = gr_run_data_read(e->run_dir, &d);
        if (s == GR_OK) s = gr_report_fill_from_log(e->report, d);
        gr_run_data_free(d);
        gr_report_set_string(e->report, "strategy", name);
        char *path = gr_runlog_path(e->log, GR_RUN_REPORT);
        if (s == GR_OK) s = path ? gr_report_write(e->report, path) : gr_fail(GR_ERR_NOMEM, "out of memory");
        free(path);
    }
    return s;
}
