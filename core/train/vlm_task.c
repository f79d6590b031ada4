/* The VLM captioning / VQA task and VLM generation (see vlm_task.h). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/rng.h"
#include "train/vlm_task.h"

struct gr_vlm_task {
    gr_vlm_task_config cfg;
    gr_vlm_info info;
    int height, width;
    int64_t feat_n, feat_d;        /* encoder output rows and width (cache) */
    float **cache;                 /* per training-dataset sample, or NULL */
    float **eval_cache;
    size_t *canon;                 /* training sample -> first sample of the same image */
    int warmed;
    int blind;
    /* per-evaluation metric names live here */
};

/* ------------------------------------------------------------------ helpers ---- */

char *gr_prompt_fill(const char *tmpl, const char *question)
{
    if (!tmpl) tmpl = "";
    if (!question) question = "";
    size_t n = 1, ql = strlen(question);
    for (const char *p = tmpl; *p; p++) n += (p[0] == '{' && p[1] == '}') ? ql : 1;
    char *out = malloc(n), *o = out;
    if (!out) return NULL;
    for (const char *p = tmpl; *p; p++) {
        if (p[0] == '{' && p[1] == '}') {
            memcpy(o, question, ql);
            o += ql;
            p++;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return out;
}

const char *gr_vlm_vqa_prompt(const gr_vlm *vlm)
{
    gr_vlm_info info;
    gr_vlm_get_info(vlm, &info);
    return info.lm.is_encoder_decoder ? "Question: {} Short answer:" : "Question: {} Answer:";
}

static gr_status encode(const gr_tokenizer *tok, const char *text, unsigned flags, int32_t **ids, size_t *n)
{
    return gr_tokenizer_encode(tok, text, strlen(text), flags, ids, n);
}

gr_status gr_caption_newline_id(const gr_tokenizer *tok, int32_t *id)
{
    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    gr_status s = encode(tok, "\n", 0, &a, &na);
    if (s == GR_OK && na == 1) {
        *id = a[0];
        free(a);
        return GR_OK;
    }
    /* Metaspace tokenizers (Llama 2) encode a lone "\n" as "\u2581" + "<0x0A>", but after text
     * (where a caption ends) as one token: take what "a\n" adds to "a". */
    free(a);
    a = NULL;
    if (s == GR_OK) s = encode(tok, "a", 0, &a, &na);
    if (s == GR_OK) s = encode(tok, "a\n", 0, &b, &nb);
    int one = s == GR_OK && nb == na + 1 && memcmp(a, b, na * sizeof *a) == 0;
    if (one) *id = b[na];
    free(a);
    free(b);
    if (s != GR_OK) return s;
    return one ? GR_OK : gr_fail(GR_ERR_UNSUPPORTED, "tokenizer: \"\\n\" after a word is not one token; cannot stop captions at it");
}

gr_status gr_vlm_gen_eos(const gr_vlm *vlm, const gr_tokenizer *tok, gr_gen_config *search)
{
    gr_vlm_info info = {.struct_size = sizeof(gr_vlm_info)};
    gr_vlm_get_info(vlm, &info);
    search->n_eos = 0;
    if (!info.lm.is_encoder_decoder) {
        int32_t nl;
        gr_status s = gr_caption_newline_id(tok, &nl);
        if (s != GR_OK) return s;
        search->eos_ids[search->n_eos++] = nl;
    }
    int32_t eos = info.lm.eos_id >= 0 ? info.lm.eos_id : gr_tokenizer_eos_id(tok);
    if (eos >= 0 && (search->n_eos == 0 || search->eos_ids[0] != eos)) search->eos_ids[search->n_eos++] = eos;
    search->pad_id = info.lm.pad_id >= 0 ? info.lm.pad_id : (eos >= 0 ? eos : 0);
    return GR_OK;
}

static void trim(char *s)
{
    size_t n = strlen(s), a = 0;
    while (a < n && isspace((unsigned char)s[a])) a++;
    while (n > a && isspace((unsigned char)s[n - 1])) n--;
    memmove(s, s + a, n - a);
    s[n - a] = '\0';
}

gr_status gr_vlm_generate(gr_vlm *vlm, gr_ctx *ctx, const gr_tokenizer *tok, const float *pixels,
                          const float *embeds, int64_t n, int height, int width,
                          const char *const *prompts, const gr_gen_config *search, char **texts)
{
    gr_vlm_info info = {.struct_size = sizeof(gr_vlm_info)};
    gr_vlm_get_info(vlm, &info);
    for (int64_t i = 0; i < n; i++) texts[i] = NULL;
    int was = gr_ctx_set_grad_enabled(ctx, 0);
    gr_vlm_inputs in = {.struct_size = sizeof in};
    if (embeds) {
        int64_t shp[3] = {n, info.vision.num_tokens, info.vision.hidden_size};
        in.image_embeds = gr_from_host(ctx, GR_F32, 3, shp, embeds);
    } else {
        int64_t shp[4] = {n, 3, height, width};
        in.pixel_values = gr_from_host(ctx, GR_F32, 4, shp, pixels);
    }
    gr_vlm_outputs out = {.struct_size = sizeof out};
    gr_status s = gr_ctx_status(ctx);
    if (s == GR_OK) s = gr_vlm_forward(vlm, ctx, &in, &out);
    int32_t **rows = calloc((size_t)n, sizeof *rows);
    size_t *lens = calloc((size_t)n, sizeof *lens);
    int32_t *ids = NULL, *mask = NULL, *gen = NULL;
    int *glen = calloc((size_t)n, sizeof *glen);
    if (!rows || !lens || !glen) s = gr_fail(GR_ERR_NOMEM, "generate: out of memory");
    size_t maxlen = 0;
    for (int64_t i = 0; s == GR_OK && i < n; i++) {
        s = encode(tok, prompts && prompts[i] ? prompts[i] : "", GR_ENCODE_ADD_SPECIAL, &rows[i], &lens[i]);
        if (lens[i] > maxlen) maxlen = lens[i];
    }
    int32_t pad = search->pad_id;
    if (s == GR_OK && maxlen > 0) {
        ids = malloc(sizeof *ids * (size_t)n * maxlen);
        mask = malloc(sizeof *mask * (size_t)n * maxlen);
        if (!ids || !mask) s = gr_fail(GR_ERR_NOMEM, "generate: out of memory");
        for (int64_t i = 0; s == GR_OK && i < n; i++) {
            size_t off = maxlen - lens[i]; /* left padding */
            for (size_t j = 0; j < maxlen; j++) {
                ids[i * (int64_t)maxlen + (int64_t)j] = j < off ? pad : rows[i][j - off];
                mask[i * (int64_t)maxlen + (int64_t)j] = j >= off;
            }
        }
    }
    if (s == GR_OK) {
        gr_lm_inputs p = {.struct_size = sizeof p, .batch = n, .seq = (int64_t)maxlen, .ids = maxlen ? ids : NULL,
                          .mask = maxlen ? mask : NULL, .prefix = out.soft_prompt};
        s = gr_generate(gr_vlm_lm_iface(vlm), gr_vlm_lm(vlm), ctx, &p, search, &gen, glen);
    }
    for (int64_t i = 0; s == GR_OK && i < n; i++) {
        size_t tl = 0;
        s = gr_tokenizer_decode(tok, gen + i * search->max_new_tokens, (size_t)glen[i], GR_DECODE_SKIP_SPECIAL,
                                &texts[i], &tl);
        if (s == GR_OK) trim(texts[i]);
    }
    if (s != GR_OK)
        for (int64_t i = 0; i < n; i++) { free(texts[i]); texts[i] = NULL; }
    for (int64_t i = 0; rows && i < n; i++) free(rows[i]);
    free(rows); free(lens); free(ids); free(mask); free(gen); free(glen);
    gr_ctx_set_grad_enabled(ctx, was);
    return s;
}

/* -------------------------------------------------------------------- task ---- */

static const gr_dataset *sort_ds;
static int by_image(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    int c = strcmp(gr_dataset_sample(sort_ds, x)->image, gr_dataset_sample(sort_ds, y)->image);
    return c ? c : (x < y ? -1 : x > y);
}

/* Samples that share an image (one per caption) share one cache entry. */
static gr_status canon_images(gr_vlm_task *t)
{
    size_t n = gr_dataset_size(t->cfg.train);
    size_t *idx = malloc(sizeof *idx * (n + 1));
    t->canon = malloc(sizeof *t->canon * (n + 1));
    if (!idx || !t->canon) { free(idx); return gr_fail(GR_ERR_NOMEM, "task: out of memory"); }
    for (size_t i = 0; i < n; i++) idx[i] = i;
    sort_ds = t->cfg.train;
    qsort(idx, n, sizeof *idx, by_image);
    for (size_t i = 0; i < n; i++) {
        size_t first = (i > 0 && strcmp(gr_dataset_sample(t->cfg.train, idx[i])->image,
                                         gr_dataset_sample(t->cfg.train, idx[i - 1])->image) == 0)
                           ? t->canon[idx[i - 1]] : idx[i];
        t->canon[idx[i]] = first;
    }
    free(idx);
    return GR_OK;
}

gr_status gr_vlm_task_create(const gr_vlm_task_config *cfg, gr_vlm_task **out)
{
    gr_vlm_task *t = calloc(1, sizeof *t);
    if (!t) return gr_fail(GR_ERR_NOMEM, "task: out of memory");
    t->cfg = *cfg;
    if (t->cfg.batch_size < 1) t->cfg.batch_size = 8;
    if (t->cfg.eval_batch_size < 1) t->cfg.eval_batch_size = t->cfg.batch_size;
    if (t->cfg.max_text_tokens < 1) t->cfg.max_text_tokens = 64;
    gr_vlm_get_info(cfg->vlm, &t->info);
    gr_status s = gr_image_preproc_output_size(&cfg->preproc, &t->height, &t->width);
    if (s == GR_OK && (t->height != t->info.vision.image_size || t->width != t->info.vision.image_size))
        s = gr_fail(GR_ERR_SHAPE, "image preprocessing gives %dx%d images, the vision tower wants %lldx%lld "
                    "(set data.image_size)", t->width, t->height, (long long)t->info.vision.image_size,
                    (long long)t->info.vision.image_size);
    t->feat_n = t->info.vision.num_tokens;
    t->feat_d = t->info.vision.hidden_size;
    if (s == GR_OK && cfg->cache_features) {
        if (cfg->augment.enabled) s = gr_fail(GR_ERR_INVALID, "data.cache_features needs data.augment = false");
        for (int i = 0; s == GR_OK && i < gr_vlm_param_count(cfg->vlm); i++) {
            const char *name;
            gr_tensor *p = gr_vlm_param_at(cfg->vlm, i, &name);
            if (gr_is_trainable(p) && strncmp(name, "vision_model.", 13) == 0)
                s = gr_fail(GR_ERR_INVALID, "data.cache_features needs a frozen vision tower (%s is trainable)", name);
        }
        if (s == GR_OK && cfg->train && !(t->cache = calloc(gr_dataset_size(cfg->train), sizeof *t->cache)))
            s = gr_fail(GR_ERR_NOMEM, "task: out of memory");
        if (s == GR_OK && cfg->train && !cfg->ctx) s = gr_fail(GR_ERR_INVALID, "task: feature cache without a context");
        if (s == GR_OK && cfg->train) s = canon_images(t);
        if (s == GR_OK && cfg->eval && !(t->eval_cache = calloc(gr_dataset_size(cfg->eval), sizeof *t->eval_cache)))
            s = gr_fail(GR_ERR_NOMEM, "task: out of memory");
    }
    if (s != GR_OK) { gr_vlm_task_free(t); return s; }
    *out = t;
    return GR_OK;
}

void gr_vlm_task_free(gr_vlm_task *t)
{
    if (!t) return;
    if (t->cache) for (size_t i = 0; i < gr_dataset_size(t->cfg.train); i++) free(t->cache[i]);
    if (t->eval_cache) for (size_t i = 0; i < gr_dataset_size(t->cfg.eval); i++) free(t->eval_cache[i]);
    free(t->cache);
    free(t->eval_cache);
    free(t->canon);
    free(t);
}

void gr_vlm_task_set_blind(gr_vlm_task *t, int blind) { t->blind = blind; }

/* Pixels of `n` samples into px (n x 3 x H x W). */
static gr_status load_pixels(gr_vlm_task *t, const gr_dataset *ds, const size_t *ids, int64_t n, int train,
                             int64_t epoch, float *px)
{
    size_t plane = (size_t)3 * (size_t)t->height * (size_t)t->width;
    if (t->blind) {
        memset(px, 0, sizeof(float) * plane * (size_t)n);
        return GR_OK;
    }
    for (int64_t i = 0; i < n; i++) {
        const gr_sample *sm = gr_dataset_sample(ds, ids[i]);
        gr_image img = {0};
        gr_status s = gr_image_load(sm->image, &img);
        gr_image_augment none = {0};
        const gr_image_augment *aug = train ? &t->cfg.augment : &none;
        if (s == GR_OK)
            s = gr_image_preprocess(&t->cfg.preproc, aug, gr_sample_seed(t->cfg.seed, (int)epoch, ids[i]), &img,
                                    px + plane * (size_t)i);
        gr_image_free(&img);
        if (s != GR_OK) return s;
    }
    return GR_OK;
}

/* Encoder features of samples (cached) into a host array [n, N, D]. */
static gr_status cached_features(gr_vlm_task *t, gr_ctx *ctx, const gr_dataset *ds, float **cache,
                                 const size_t *ids_in, int64_t n, float *dst)
{
    size_t ids[1];
    size_t per = (size_t)(t->feat_n * t->feat_d);
    size_t plane = (size_t)3 * (size_t)t->height * (size_t)t->width;
    for (int64_t j = 0; j < n; j++) {
        const int64_t i = 0;
        ids[0] = (cache == t->cache && t->canon) ? t->canon[ids_in[j]] : ids_in[j];
        if (!cache[ids[i]]) {
            float *px = malloc(sizeof(float) * plane);
            float *f = malloc(sizeof(float) * per);
            gr_status s = (px && f) ? load_pixels(t, ds, &ids[i], 1, 0, 0, px) : gr_fail(GR_ERR_NOMEM, "task: out of memory");
            if (s == GR_OK) {
                int was = gr_ctx_set_grad_enabled(ctx, 0);
                gr_vlm_inputs in = {.struct_size = sizeof in};
                in.pixel_values = gr_from_host(ctx, GR_F32, 4, (int64_t[]){1, 3, t->height, t->width}, px);
                gr_vlm_outputs o = {.struct_size = sizeof o};
                s = gr_ctx_status(ctx);
                if (s == GR_OK) s = gr_vlm_forward(t->cfg.vlm, ctx, &in, &o);
                if (s == GR_OK) s = gr_to_host_f32(ctx, o.image_embeds, f);
                gr_ctx_set_grad_enabled(ctx, was);
            }
            free(px);
            if (s != GR_OK) { free(f); return s; }
            cache[ids[i]] = f;
        }
        memcpy(dst + per * (size_t)j, cache[ids[i]], sizeof(float) * per);
    }
    return GR_OK;
}

/* Number of whitespace-separated words, and the byte offset where word k starts. */
static size_t word_split(const char *s, size_t k, size_t *offset)
{
    size_t words = 0, i = 0, n = strlen(s);
    *offset = n;
    while (i < n) {
        while (i < n && isspace((unsigned char)s[i])) i++;
        if (i >= n) break;
        if (words == k) *offset = i;
        words++;
        while (i < n && !isspace((unsigned char)s[i])) i++;
    }
    return words;
}

typedef struct text_batch {
    int32_t *ids, *mask, *labels;
    int64_t seq, label_len, tokens;
} text_batch;

static void text_batch_free(text_batch *b) { free(b->ids); free(b->mask); free(b->labels); }

/* Texts of one training batch, LAVIS style (see vlm_task.h). */
static gr_status build_text(gr_vlm_task *t, const size_t *ids, int64_t n, int64_t epoch, text_batch *tb)
{
    const gr_dataset *ds = t->cfg.train;
    const int enc_dec = t->info.lm.is_encoder_decoder;
    const int64_t L = t->cfg.max_text_tokens;
    int32_t pad = t->info.lm.pad_id >= 0 ? t->info.lm.pad_id : 0;
    int32_t **in_ids = calloc((size_t)n, sizeof *in_ids), **out_ids = calloc((size_t)n, sizeof *out_ids);
    size_t *in_n = calloc((size_t)n, sizeof *in_n), *out_n = calloc((size_t)n, sizeof *out_n),
           *masked = calloc((size_t)n, sizeof *masked);
    gr_status s = (in_ids && out_ids && in_n && out_n && masked) ? GR_OK : gr_fail(GR_ERR_NOMEM, "task: out of memory");
    memset(tb, 0, sizeof *tb);
    for (int64_t i = 0; s == GR_OK && i < n; i++) {
        const gr_sample *sm = gr_dataset_sample(ds, ids[i]);
        gr_rng r;
        gr_rng_seed(&r, gr_seed_mix(t->cfg.seed ^ 0x7e47u, (uint64_t)epoch, ids[i]));
        const char *input = "", *output;
        char *filled = NULL, *joined = NULL;
        if (t->cfg.kind == GR_VLM_VQA) {
            if (!sm->question) { s = gr_fail(GR_ERR_INVALID, "%s: sample %zu has no question (a caption dataset for a VQA task?)", gr_dataset_path(ds), ids[i]); break; }
            output = sm->answer ? sm->answer : (sm->n_texts ? sm->texts[0] : "");
            const char *tmpl = t->cfg.train_prompt && t->cfg.train_prompt[0] ? t->cfg.train_prompt
                                                                              : gr_vlm_vqa_prompt(t->cfg.vlm);
            filled = gr_prompt_fill(tmpl, sm->question);
            input = filled ? filled : "";
        } else {
            if (sm->n_texts < 1) { s = gr_fail(GR_ERR_INVALID, "%s: sample %zu has no caption", gr_dataset_path(ds), ids[i]); break; }
            output = sm->texts[sm->n_texts > 1 ? gr_rng_below(&r, (uint64_t)sm->n_texts) : 0];
        }
        if (enc_dec) {
            char *split_in = NULL;
            if (t->cfg.kind == GR_VLM_CAPTION) {
                /* prefix-LM: the first k words go to the encoder, k uniform in [0, words/2] */
                size_t off = 0, words = word_split(output, 0, &off);
                size_t k = (size_t)gr_rng_below(&r, (uint64_t)(words / 2 + 1));
                word_split(output, k, &off);
                split_in = strndup(output, off);
                if (split_in) trim(split_in);
                input = split_in ? split_in : "";
                output += off;
            }
            s = encode(t->cfg.tok, input, GR_ENCODE_ADD_SPECIAL, &in_ids[i], &in_n[i]);
            if (s == GR_OK) s = encode(t->cfg.tok, output, GR_ENCODE_ADD_SPECIAL, &out_ids[i], &out_n[i]);
            free(split_in);
        } else {
            /* LAVIS: tokenizer(prompt + text + "\n"), the prompt's tokens (with BOS) masked */
            size_t a = strlen(input), b = strlen(output);
            joined = malloc(a + b + 3);
            if (!joined) s = gr_fail(GR_ERR_NOMEM, "task: out of memory");
            else snprintf(joined, a + b + 3, "%s%s%s\n", input, a && b ? " " : "", output);
            int32_t *pid = NULL;
            if (s == GR_OK) s = encode(t->cfg.tok, input, GR_ENCODE_ADD_SPECIAL, &pid, &masked[i]);
            free(pid);
            if (s == GR_OK) s = encode(t->cfg.tok, joined, GR_ENCODE_ADD_SPECIAL, &in_ids[i], &in_n[i]);
        }
        free(filled);
        free(joined);
        if ((int64_t)in_n[i] > L) in_n[i] = (size_t)L;
        if ((int64_t)out_n[i] > L) out_n[i] = (size_t)L;
        if ((int64_t)in_n[i] > tb->seq) tb->seq = (int64_t)in_n[i];
        if ((int64_t)out_n[i] > tb->label_len) tb->label_len = (int64_t)out_n[i];
    }
    if (s == GR_OK && tb->seq < 1) tb->seq = 1;
    if (s == GR_OK) {
        int64_t lcols = enc_dec ? (tb->label_len > 0 ? tb->label_len : 1) : tb->seq;
        tb->ids = malloc(sizeof(int32_t) * (size_t)(n * tb->seq));
        tb->mask = malloc(sizeof(int32_t) * (size_t)(n * tb->seq));
        tb->labels = malloc(sizeof(int32_t) * (size_t)(n * lcols));
        if (!tb->ids || !tb->mask || !tb->labels) s = gr_fail(GR_ERR_NOMEM, "task: out of memory");
        for (int64_t i = 0; s == GR_OK && i < n; i++) {
            for (int64_t j = 0; j < tb->seq; j++) { /* right padding */
                int real = j < (int64_t)in_n[i];
                tb->ids[i * tb->seq + j] = real ? in_ids[i][j] : pad;
                tb->mask[i * tb->seq + j] = real;
                if (!enc_dec) {
                    int lab = real && j >= (int64_t)masked[i];
                    tb->labels[i * tb->seq + j] = lab ? in_ids[i][j] : -100;
                    tb->tokens += lab;
                }
            }
            if (enc_dec) {
                for (int64_t j = 0; j < lcols; j++) {
                    int real = j < (int64_t)out_n[i];
                    tb->labels[i * lcols + j] = real ? out_ids[i][j] : -100;
                    tb->tokens += real;
                }
            }
        }
        if (enc_dec) tb->label_len = lcols;
    }
    for (int64_t i = 0; i < n; i++) {
        if (in_ids) free(in_ids[i]);
        if (out_ids) free(out_ids[i]);
    }
    free(in_ids); free(out_ids); free(in_n); free(out_n); free(masked);
    if (s != GR_OK) {
        text_batch_free(tb);
        memset(tb, 0, sizeof *tb);
    }
    return s;
}

static gr_status task_batches(void *u, int64_t epoch, int64_t *count)
{
    (void)epoch;
    gr_vlm_task *t = u;
    if (!t->cfg.train) return gr_fail(GR_ERR_INVALID, "task: no training dataset");
    size_t n = gr_dataset_size(t->cfg.train);
    if (t->cache && !t->warmed) {
        /* every image's features before the first step: step FLOPs then never include the
         * frozen tower, whatever was cached before a resume */
        float *tmp = malloc(sizeof(float) * (size_t)(t->feat_n * t->feat_d));
        gr_status s = tmp ? GR_OK : gr_fail(GR_ERR_NOMEM, "task: out of memory");
        for (size_t i = 0; s == GR_OK && i < n; i++) {
            s = cached_features(t, t->cfg.ctx, t->cfg.train, t->cache, &i, 1, tmp);
            gr_ctx_reset(t->cfg.ctx);
        }
        free(tmp);
        if (s != GR_OK) return s;
        t->warmed = 1;
    }
    /* this rank's shard: n / world samples (gr_epoch_order drops the remainder) */
    size_t world = t->cfg.world_size > 1 ? (size_t)t->cfg.world_size : 1;
    if (n / world < 1) return gr_fail(GR_ERR_INVALID, "task: %zu training samples cannot feed %zu ranks", n, world);
    *count = (int64_t)((n / world + (size_t)t->cfg.batch_size - 1) / (size_t)t->cfg.batch_size);
    return GR_OK;
}

static gr_status task_forward(void *u, gr_ctx *ctx, int64_t epoch, int64_t index, gr_task_loss *out)
{
    gr_vlm_task *t = u;
    size_t *order = NULL, count = 0;
    gr_status s = gr_epoch_order(gr_dataset_size(t->cfg.train), 1, t->cfg.seed, (int)epoch, t->cfg.rank,
                                  t->cfg.world_size > 1 ? t->cfg.world_size : 1, &order, &count);
    if (s != GR_OK) return s;
    int64_t lo = index * t->cfg.batch_size;
    int64_t n = (int64_t)count - lo < t->cfg.batch_size ? (int64_t)count - lo : t->cfg.batch_size;
    if (n <= 0) { free(order); return gr_fail(GR_ERR_INVALID, "task: batch %lld is past the epoch's end", (long long)index); }
    const size_t *ids = order + lo;
    text_batch tb;
    s = build_text(t, ids, n, epoch, &tb);
    float *host = NULL;
    gr_vlm_inputs in = {.struct_size = sizeof in, .seq = tb.seq, .ids = tb.ids, .mask = tb.mask,
                        .labels = tb.labels, .label_len = tb.label_len};
    if (s == GR_OK) {
        if (t->cache) {
            host = malloc(sizeof(float) * (size_t)(n * t->feat_n * t->feat_d));
            s = host ? cached_features(t, ctx, t->cfg.train, t->cache, ids, n, host) : gr_fail(GR_ERR_NOMEM, "task: out of memory");
            if (s == GR_OK) in.image_embeds = gr_from_host(ctx, GR_F32, 3, (int64_t[]){n, t->feat_n, t->feat_d}, host);
        } else {
            host = malloc(sizeof(float) * (size_t)n * 3 * (size_t)t->height * (size_t)t->width);
            s = host ? load_pixels(t, t->cfg.train, ids, n, 1, epoch, host) : gr_fail(GR_ERR_NOMEM, "task: out of memory");
            if (s == GR_OK) in.pixel_values = gr_from_host(ctx, GR_F32, 4, (int64_t[]){n, 3, t->height, t->width}, host);
        }
    }
    gr_vlm_outputs o = {.struct_size = sizeof o};
    if (s == GR_OK) s = gr_ctx_status(ctx);
    if (s == GR_OK) s = gr_vlm_forward(t->cfg.vlm, ctx, &in, &o);
    if (s == GR_OK && !o.lm.loss) s = gr_fail(GR_ERR_BACKEND, "task: the model returned no loss");
    if (s == GR_OK) {
        out->loss = o.lm.loss;
        out->tokens = tb.tokens;
        out->examples = n;
    }
    free(host);
    text_batch_free(&tb);
    free(order);
    return s;
}

gr_status gr_vlm_task_evaluate(gr_vlm_task *t, gr_ctx *ctx, gr_vlm_eval_out *out, int keep_preds)
{
    memset(out, 0, sizeof *out);
    const gr_dataset *ds = t->cfg.eval;
    if (!ds) return gr_fail(GR_ERR_INVALID, "evaluation: no dataset");
    size_t n = gr_dataset_size(ds);
    if (t->cfg.eval_limit > 0 && (size_t)t->cfg.eval_limit < n) n = (size_t)t->cfg.eval_limit;
    if (n == 0) return gr_fail(GR_ERR_INVALID, "%s: no samples to evaluate", gr_dataset_path(ds));
    gr_gen_config search = t->cfg.gen.search;
    gr_status s = GR_OK;
    if (search.n_eos == 0) s = gr_vlm_gen_eos(t->cfg.vlm, t->cfg.tok, &search);
    char **preds = calloc(n, sizeof *preds);
    char **prompts = calloc((size_t)t->cfg.eval_batch_size, sizeof *prompts);
    size_t *ids = calloc((size_t)t->cfg.eval_batch_size, sizeof *ids);
    size_t plane = (size_t)3 * (size_t)t->height * (size_t)t->width;
    size_t per = t->eval_cache ? (size_t)(t->feat_n * t->feat_d) : plane;
    if (per < plane) per = plane; /* blind evaluations feed pixels even with a cache */
    float *host = malloc(sizeof(float) * per * (size_t)t->cfg.eval_batch_size);
    if (!preds || !prompts || !ids || !host) s = gr_fail(GR_ERR_NOMEM, "evaluation: out of memory");
    for (size_t lo = 0; s == GR_OK && lo < n; lo += (size_t)t->cfg.eval_batch_size) {
        int64_t b = (int64_t)(n - lo < (size_t)t->cfg.eval_batch_size ? n - lo : (size_t)t->cfg.eval_batch_size);
        for (int64_t i = 0; i < b; i++) {
            ids[i] = lo + (size_t)i;
            const gr_sample *sm = gr_dataset_sample(ds, ids[i]);
            prompts[i] = gr_prompt_fill(t->cfg.gen.prompt, sm->question);
        }
        gr_ctx_reset(ctx);
        if (t->eval_cache && !t->blind) s = cached_features(t, ctx, ds, t->eval_cache, ids, b, host);
        else s = load_pixels(t, ds, ids, b, 0, 0, host);
        if (s == GR_OK)
            s = gr_vlm_generate(t->cfg.vlm, ctx, t->cfg.tok, (t->eval_cache && !t->blind) ? NULL : host,
                                (t->eval_cache && !t->blind) ? host : NULL, b, t->height, t->width,
                                (const char *const *)prompts, &search, preds + lo);
        for (int64_t i = 0; i < b; i++) { free(prompts[i]); prompts[i] = NULL; }
        gr_ctx_reset(ctx);
    }
    if (s == GR_OK && t->cfg.kind == GR_VLM_CAPTION) {
        gr_caption_image *imgs = calloc(n, sizeof *imgs);
        gr_caption_scores sc;
        if (!imgs) s = gr_fail(GR_ERR_NOMEM, "evaluation: out of memory");
        for (size_t i = 0; s == GR_OK && i < n; i++) {
            const gr_sample *sm = gr_dataset_sample(ds, i);
            if (sm->n_texts < 1) s = gr_fail(GR_ERR_INVALID, "%s: sample %zu has no reference caption", gr_dataset_path(ds), i);
            imgs[i] = (gr_caption_image){preds[i], sm->texts, (size_t)sm->n_texts};
        }
        if (s == GR_OK) s = gr_caption_score(imgs, n, &sc, NULL, NULL);
        free(imgs);
        if (s == GR_OK) {
            static const char *const names[] = {"CIDEr", "Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L"};
            double v[] = {sc.cider, sc.bleu[0], sc.bleu[1], sc.bleu[2], sc.bleu[3], sc.rouge_l};
            for (int i = 0; i < 6; i++) out->eval.metrics[i] = (gr_metric){names[i], v[i]};
            out->eval.count = 6;
        }
    } else if (s == GR_OK) {
        gr_vqa_item *items = calloc(n, sizeof *items);
        gr_vqa_answer *ans = NULL;
        size_t total = 0;
        for (size_t i = 0; i < n; i++) total += (size_t)gr_dataset_sample(ds, i)->n_texts;
        ans = calloc(total + 1, sizeof *ans);
        if (!items || !ans) s = gr_fail(GR_ERR_NOMEM, "evaluation: out of memory");
        size_t k = 0;
        for (size_t i = 0; s == GR_OK && i < n; i++) {
            const gr_sample *sm = gr_dataset_sample(ds, i);
            if (sm->n_texts < 1) { s = gr_fail(GR_ERR_INVALID, "%s: question %zu has no answers", gr_dataset_path(ds), i); break; }
            items[i] = (gr_vqa_item){sm->question_id, "", "", ans + k, (size_t)sm->n_texts, preds[i]};
            for (int j = 0; j < sm->n_texts; j++) ans[k++] = (gr_vqa_answer){sm->texts[j], NULL, j + 1};
        }
        gr_vqa_scores vs;
        memset(&vs, 0, sizeof vs);
        if (s == GR_OK) s = gr_vqa_score(items, n, t->cfg.vqa_evaluator, &vs);
        if (s == GR_OK) {
            out->eval.metrics[0] = (gr_metric){"vqa_acc", vs.overall};
            out->eval.count = 1;
        }
        gr_vqa_scores_free(&vs);
        free(items);
        free(ans);
    }
    out->eval.split = "val";
    free(prompts); free(ids); free(host);
    if (s == GR_OK && keep_preds) {
        out->preds = preds;
        out->n = n;
    } else {
        for (size_t i = 0; preds && i < n; i++) free(preds[i]);
        free(preds);
    }
    return s;
}

void gr_vlm_eval_out_free(gr_vlm_eval_out *o)
{
    for (size_t i = 0; o->preds && i < o->n; i++) free(o->preds[i]);
    free(o->preds);
    o->preds = NULL;
}

static gr_status task_evaluate(void *u, gr_ctx *ctx, gr_task_eval *ev)
{
    gr_vlm_eval_out o;
    gr_status s = gr_vlm_task_evaluate(u, ctx, &o, 0);
    if (s == GR_OK) *ev = o.eval;
    return s;
}

void gr_vlm_task_bind(gr_vlm_task *t, gr_task *out)
{
    memset(out, 0, sizeof *out);
    out->user = t;
    out->epoch_batches = task_batches;
    out->forward = task_forward;
    out->evaluate = t->cfg.eval ? task_evaluate : NULL;
}
