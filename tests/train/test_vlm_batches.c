/* The VLM task's training batches as the language model receives them (seen through the "spy"
 * LM plugin, which records every forward() and passes it on to the real plugin):
 *  - T5 captions: the encoder gets [soft prompt][first k words </s>] and the decoder target is
 *    [the other words </s>], k in [0, words/2]; which caption of a multi-caption sample and k
 *    are a function of (seed, epoch, sample id) only: the same with another batch size, another
 *    with another seed; over epochs k takes every allowed value. The soft prompt equals the
 *    VLM's image-only soft prompt of the batch's images, in batch order.
 *  - VQA: the input is the prompt template with the question ("Question: {} Answer:"; T5:
 *    "Question: {} Short answer:" by default), the target the answer. T5: encoder prompt </s>,
 *    decoder answer </s>. OPT: [BOS prompt answer "\n"] with labels -100 on BOS and the prompt.
 *  - padding: right padded, mask 0 and label -100 on padding.
 * Usage: test_vlm_batches WORK_DIR SPY_PLUGIN_DIR FIXTURES_DIR */
#include <dlfcn.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fsutil.h"
#include "data/dataset.h"
#include "plugin/registry.h"
#include "spy_lm.h"
#include "train/vlm_task.h"

static int failures, checks;
static gr_backend *backend;
static spy_record *rec;
static const char *work, *fixtures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                            \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)

/* ------------------------------------------------------------------ data ---- */

#define NIMG 6
static const char *const caption_lines[NIMG] = {
    "{\"image\": \"img0.png\", \"caption\": \"red\"}",
    "{\"image\": \"img1.png\", \"caption\": \"red cube\"}",
    "{\"image\": \"img2.png\", \"caption\": \"a red cube left of blue ball\"}",
    "{\"image\": \"img3.png\", \"caption\": [\"small green ball near the big cube\", \"green ball\"]}",
    "{\"image\": \"img4.png\", \"caption\": \"big blue cube\"}",
    "{\"image\": \"img5.png\", \"caption\": \"one two three four five six seven eight nine\"}",
};
static const char *const vqa_lines[3] = {
    "{\"image\": \"img0.png\", \"question\": \"what colour is the cube?\", \"answers\": [\"red\", \"red\", \"blue\"]}",
    "{\"image\": \"img2.png\", \"question\": \"where is the ball?\", \"answer\": \"left of the cube\", \"answers\": [\"left\"]}",
    "{\"image\": \"img5.png\", \"question\": \"how many?\", \"answers\": [\"nine\"]}",
};
static const char *const words[] = {"red", "cube", "a", "left", "of", "blue", "ball", "small", "green", "near", "the",
                                    "big", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                                    "what", "colour", "is", "where", "how", "many", "Question:", "Short", "answer:",
                                    "Answer:", "Q:", "A:"};

/* A word-level SentencePiece-style (Metaspace + Unigram) tokenizer of exactly `vocab` ids (filler
 * pieces after the words, so every id the LM can generate decodes). T5 style: "</s>" appended.
 * OPT style: "<s>" prepended, no "▁" prepended to the text (as a byte-level BPE, "\n" alone is
 * one token, which the EOS rule needs), bare and "▁" forms of every word. */
static gr_status make_tokenizer(int t5, int32_t vocab, gr_tokenizer **out)
{
    gr_tokenizer *tok;
    gr_status s = gr_tokenizer_new(GR_TOK_UNIGRAM, 0, &tok);
    int32_t id;
    static const char *const special[] = {"<pad>", "</s>", "<unk>", "<s>"};
    for (int i = 0; s == GR_OK && i < 4; i++)
        s = gr_tokenizer_add_piece(tok, special[i], strlen(special[i]), 0, i == 2 ? GR_PIECE_UNKNOWN : GR_PIECE_CONTROL, &id);
    for (int bare = 0; bare <= !t5; bare++)
        for (size_t i = 0; s == GR_OK && i < sizeof words / sizeof words[0]; i++) {
            char piece[64];
            snprintf(piece, sizeof piece, "%s%s", bare ? "" : "\xe2\x96\x81", words[i]);
            s = gr_tokenizer_add_piece(tok, piece, strlen(piece), -1.0f, GR_PIECE_NORMAL, &id);
        }
    if (s == GR_OK) s = gr_tokenizer_add_piece(tok, "?", 1, -2.0f, GR_PIECE_NORMAL, &id);
    if (s == GR_OK) s = gr_tokenizer_add_piece(tok, "\xe2\x96\x81", 3, -3.0f, GR_PIECE_NORMAL, &id);
    if (s == GR_OK) s = gr_tokenizer_add_piece(tok, "\n", 1, 0, GR_PIECE_USER_DEFINED, &id);
    for (int i = 0; s == GR_OK && gr_tokenizer_vocab_size(tok) < vocab; i++) {
        char piece[32];
        snprintf(piece, sizeof piece, "\xe2\x96\x81zq%d", i);
        s = gr_tokenizer_add_piece(tok, piece, strlen(piece), -20.0f, GR_PIECE_NORMAL, &id);
    }
    if (s == GR_OK) s = t5 ? gr_tokenizer_set_specials(tok, -1, 1, 0, 2, 0, 1) : gr_tokenizer_set_specials(tok, 3, 1, 0, 2, 1, 0);
    if (s == GR_OK && !t5) {
        /* Metaspace without the prepended "▁": through tokenizer.json */
        char dir[700], path[760];
        snprintf(dir, sizeof dir, "%s/opt_tokenizer", work);
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        gr_mkdirs(dir);
        s = gr_tokenizer_save_json(tok, path);
        json_t *j = s == GR_OK ? json_load_file(path, 0, NULL) : NULL;
        json_t *pre = json_object_get(j, "pre_tokenizer");
        if (s == GR_OK && !json_is_object(pre)) s = gr_fail(GR_ERR_FORMAT, "%s: no pre_tokenizer", path);
        if (s == GR_OK) json_object_set_new(pre, "prepend_scheme", json_string("never"));
        if (s == GR_OK && json_dump_file(j, path, 0) != 0) s = gr_fail(GR_ERR_IO, "%s: cannot write", path);
        json_decref(j);
        gr_tokenizer_free(tok);
        tok = NULL;
        if (s == GR_OK) s = gr_tokenizer_load(dir, &tok);
    }
    if (s != GR_OK) { gr_tokenizer_free(tok); return s; }
    *out = tok;
    return GR_OK;
}

static gr_status write_data(void)
{
    gr_status s = GR_OK;
    for (int i = 0; s == GR_OK && i < NIMG; i++) {
        gr_image img = {0};
        s = gr_image_alloc(&img, 16, 16);
        for (int p = 0; s == GR_OK && p < 16 * 16 * 3; p++) img.rgb[p] = (uint8_t)((p * (7 + 13 * i) + 40 * i) & 255);
        char path[700];
        snprintf(path, sizeof path, "%s/img%d.png", work, i);
        if (s == GR_OK) s = gr_image_write_png(path, &img, 1);
        free(img.rgb);
    }
    const char *const *sets[2] = {caption_lines, vqa_lines};
    const int counts[2] = {NIMG, 3};
    const char *names[2] = {"captions.jsonl", "vqa.jsonl"};
    for (int f = 0; s == GR_OK && f < 2; f++) {
        char text[4096] = "", path[700];
        for (int i = 0; i < counts[f]; i++) { strcat(text, sets[f][i]); strcat(text, "\n"); }
        snprintf(path, sizeof path, "%s/%s", work, names[f]);
        s = gr_write_file_atomic(path, text, strlen(text));
    }
    return s;
}

/* ------------------------------------------------------------------ model ---- */

typedef struct vlm_setup {
    json_t *root;
    gr_ctx *ctx;
    gr_vlm *vlm;
    gr_tokenizer *tok;
    gr_image_preproc pp;
} vlm_setup;

/* The BLIP-2 fixture's parts, randomly initialised, with the spy in front of its LM. */
static gr_status open_vlm(const char *fixture, int t5, vlm_setup *v)
{
    memset(v, 0, sizeof *v);
    char path[700];
    snprintf(path, sizeof path, "%s/%s/config.json", fixtures, fixture);
    json_error_t e;
    if (!(v->root = json_load_file(path, 0, &e))) return gr_fail(GR_ERR_FORMAT, "%s: %s", path, e.text);
    json_t *qf = json_object_get(v->root, "qformer_config");
    json_object_set(qf, "num_query_tokens", json_object_get(v->root, "num_query_tokens"));
    gr_vlm_parts parts = {.struct_size = sizeof parts};
    gr_model_source src = {.struct_size = sizeof src, .dir = work, .config_path = path, .prefix = "", .seed = 5};
    parts.vision = (gr_vlm_part){"blip2-vit", src};
    parts.vision.src.config = json_object_get(v->root, "vision_config");
    parts.qformer = (gr_vlm_part){"qformer", src};
    parts.qformer.src.config = qf;
    parts.projector = (gr_vlm_part){"linear", src};
    parts.lm = (gr_vlm_part){"spy", src};
    parts.lm.src.config = json_object_get(v->root, "text_config");
    v->ctx = gr_ctx_create(backend);
    gr_status s = gr_vlm_open_parts(v->ctx, &parts, &v->vlm);
    gr_vlm_info info;
    if (s == GR_OK) gr_vlm_get_info(v->vlm, &info);
    if (s == GR_OK) s = make_tokenizer(t5, (int32_t)info.lm.vocab_size, &v->tok);
    gr_image_preproc_clip_defaults(&v->pp);
    v->pp.resize_shortest_edge = 16;
    v->pp.crop_height = v->pp.crop_width = 16;
    return s;
}

static void close_vlm(vlm_setup *v)
{
    if (v->vlm) gr_vlm_close(v->vlm, v->ctx);
    if (v->ctx) gr_ctx_destroy(v->ctx);
    gr_tokenizer_free(v->tok);
    json_decref(v->root);
}

static gr_vlm_task *make_task(vlm_setup *v, const gr_dataset *ds, gr_vlm_task_kind kind, int64_t batch, uint64_t seed,
                              const char *prompt)
{
    gr_vlm_task_config tc = {.vlm = v->vlm, .tok = v->tok, .kind = kind, .train = ds, .batch_size = batch,
                             .seed = seed, .preproc = v->pp, .ctx = v->ctx, .train_prompt = prompt};
    gr_vlm_task *t = NULL;
    gr_status s = gr_vlm_task_create(&tc, &t);
    CHECK(s == GR_OK, "task: %s", gr_last_error());
    return t;
}

/* Runs micro-batch (epoch, index): the spy holds what the LM received. */
static gr_status run_batch(vlm_setup *v, gr_vlm_task *t, int64_t epoch, int64_t index)
{
    gr_task task;
    gr_vlm_task_bind(t, &task);
    int64_t n;
    gr_status s = task.epoch_batches(task.user, epoch, &n);
    gr_task_loss loss;
    int before = rec->forwards;
    if (s == GR_OK) s = task.forward(task.user, v->ctx, epoch, index, &loss);
    if (s == GR_OK && rec->forwards != before + 1) s = gr_fail(GR_ERR_INVALID, "the spy saw %d forwards", rec->forwards - before);
    gr_ctx_reset(v->ctx);
    return s;
}

/* Preprocessed pixels of dataset samples ids[0..n) into px [n, 3, 16, 16]. */
static void load_px(vlm_setup *v, const gr_dataset *ds, const size_t *ids, int64_t n, float *px)
{
    gr_image_augment none = {0};
    for (int64_t r = 0; r < n; r++) {
        gr_image img = {0};
        gr_status s = gr_image_load(gr_dataset_sample(ds, ids[r])->image, &img);
        if (s == GR_OK) s = gr_image_preprocess(&v->pp, &none, 0, &img, px + r * 3 * 16 * 16);
        CHECK(s == GR_OK, "image: %s", gr_last_error());
        free(img.rgb);
    }
}

/* ------------------------------------------------------------------ checks ---- */

static int32_t *enc(vlm_setup *v, const char *text, size_t *n)
{
    int32_t *ids = NULL;
    if (gr_tokenizer_encode(v->tok, text, strlen(text), GR_ENCODE_ADD_SPECIAL, &ids, n) != GR_OK) *n = 0;
    return ids;
}

/* Row r of a recorded [rows, cols] array equals want[0..n) then padding (pad value). */
static int row_is(const int32_t *a, int64_t cols, int64_t r, const int32_t *want, size_t n, int32_t pad)
{
    if ((int64_t)n > cols) return 0;
    for (int64_t j = 0; j < cols; j++)
        if (a[r * cols + j] != ((size_t)j < n ? want[j] : pad)) return 0;
    return 1;
}

/* Words of a caption joined by single spaces: [from, to). */
static void join_words(const char *caption, int from, int to, char *out)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", caption);
    out[0] = 0;
    int i = 0;
    for (char *w = strtok(buf, " "); w; w = strtok(NULL, " "), i++)
        if (i >= from && i < to) { if (out[0]) strcat(out, " "); strcat(out, w); }
}

static int count_words(const char *caption)
{
    int n = 0;
    for (const char *p = caption; *p;) {
        while (*p == ' ') p++;
        if (!*p) break;
        n++;
        while (*p && *p != ' ') p++;
    }
    return n;
}

/* The (caption, k) of row r of the last T5 caption batch: -1 when no split or several match. */
static int identify_split(vlm_setup *v, const gr_sample *sm, int64_t r, int *cap_out)
{
    int found = -1, matches = 0;
    for (int c = 0; c < sm->n_texts; c++) {
        int nw = count_words(sm->texts[c]);
        for (int k = 0; k <= nw; k++) {
            char in[256], out[256];
            join_words(sm->texts[c], 0, k, in);
            join_words(sm->texts[c], k, nw, out);
            size_t ni, no;
            int32_t *a = enc(v, in, &ni), *b = enc(v, out, &no);
            int ok = row_is(rec->ids, rec->seq, r, a, ni, 0) && row_is(rec->labels, rec->label_len, r, b, no, -100);
            int32_t ones[64];
            for (size_t j = 0; j < ni && j < 64; j++) ones[j] = 1;
            ok = ok && row_is(rec->mask, rec->seq, r, ones, ni, 0);
            if (ok) { matches++; found = k; *cap_out = c; }
            free(a);
            free(b);
        }
    }
    return matches == 1 ? found : -1;
}

#define EPOCHS 40

/* k[epoch][sample] and the caption chosen, for one task configuration. */
static int collect_splits(vlm_setup *v, const gr_dataset *ds, int64_t batch, uint64_t seed, int k[EPOCHS][NIMG],
                          int cap[EPOCHS][NIMG], int check_prefix)
{
    gr_vlm_task *t = make_task(v, ds, GR_VLM_CAPTION, batch, seed, NULL);
    if (!t) return 0;
    gr_vlm_info info;
    gr_vlm_get_info(v->vlm, &info);
    int ok = 1;
    for (int e = 0; e < EPOCHS && ok; e++) {
        size_t *order = NULL, count = 0;
        gr_epoch_order(NIMG, 1, seed, e, 0, 1, &order, &count);
        for (int64_t b = 0; b * batch < (int64_t)count && ok; b++) {
            gr_status s = run_batch(v, t, e, b);
            CHECK(s == GR_OK, "caption batch %d/%lld: %s", e, (long long)b, gr_last_error());
            if (s != GR_OK) { ok = 0; break; }
            int64_t n = (int64_t)count - b * batch < batch ? (int64_t)count - b * batch : batch;
            CHECK(rec->batch == n && rec->has_ids && rec->has_mask && rec->has_labels, "caption batch: %lld rows recorded",
                  (long long)rec->batch);
            for (int64_t r = 0; r < n && r < rec->batch; r++) {
                size_t id = order[b * batch + r];
                const gr_sample *sm = gr_dataset_sample(ds, id);
                int c = 0, kk = identify_split(v, sm, r, &c);
                CHECK(kk >= 0, "epoch %d sample %zu: the encoder/decoder texts are not one split of its caption", e, id);
                CHECK(kk <= count_words(sm->texts[c]) / 2, "epoch %d sample %zu: split at word %d of %d (beyond len/2)",
                      e, id, kk, count_words(sm->texts[c]));
                k[e][id] = kk;
                cap[e][id] = c;
            }
            if (check_prefix && e < 2) {
                /* the soft prompt: the VLM's own for these images, in batch order */
                int64_t P = info.prompt_len, E = info.prompt_dim;
                CHECK(rec->prefix_shape[0] == n && rec->prefix_shape[1] == P && rec->prefix_shape[2] == E,
                      "soft prompt shape [%lld, %lld, %lld], want [%lld, %lld, %lld]", (long long)rec->prefix_shape[0],
                      (long long)rec->prefix_shape[1], (long long)rec->prefix_shape[2], (long long)n, (long long)P,
                      (long long)E);
                float *px = malloc(sizeof(float) * (size_t)(n * 3 * 16 * 16)), *want = malloc(sizeof(float) * (size_t)(n * P * E));
                load_px(v, ds, order + b * batch, n, px);
                int was = gr_ctx_set_grad_enabled(v->ctx, 0);
                gr_vlm_inputs in = {.struct_size = sizeof in,
                                    .pixel_values = gr_from_host(v->ctx, GR_F32, 4, (int64_t[]){n, 3, 16, 16}, px)};
                gr_vlm_outputs o = {.struct_size = sizeof o};
                gr_status s2 = gr_vlm_forward(v->vlm, v->ctx, &in, &o);
                if (s2 == GR_OK) s2 = gr_to_host_f32(v->ctx, o.soft_prompt, want);
                gr_ctx_set_grad_enabled(v->ctx, was);
                gr_ctx_reset(v->ctx);
                double worst = s2 == GR_OK ? 0 : INFINITY;
                for (int64_t i = 0; s2 == GR_OK && i < n * P * E && rec->prefix_shape[0] == n; i++)
                    worst = fmax(worst, fabs((double)rec->prefix[i] - want[i]));
                CHECK(worst <= 1e-6, "soft prompt differs from the image-only forward by %.3g (%s)", worst,
                      s2 ? gr_last_error() : "ok");
                free(px);
                free(want);
            }
        }
        free(order);
    }
    gr_vlm_task_free(t);
    return ok;
}

static void test_t5_captions(void)
{
    vlm_setup v;
    gr_status s = open_vlm("blip2_hf_vision_t5", 1, &v);
    CHECK(s == GR_OK, "open T5 VLM: %s", gr_last_error());
    char path[700];
    snprintf(path, sizeof path, "%s/captions.jsonl", work);
    gr_dataset_spec spec = {.format = GR_DATASET_JSONL, .path = path};
    gr_dataset *ds = NULL;
    if (s == GR_OK) s = gr_dataset_open(&spec, &ds);
    CHECK(s == GR_OK, "captions: %s", gr_last_error());
    static int k1[EPOCHS][NIMG], c1[EPOCHS][NIMG], k2[EPOCHS][NIMG], c2[EPOCHS][NIMG], k3[EPOCHS][NIMG], c3[EPOCHS][NIMG];
    if (s == GR_OK && collect_splits(&v, ds, 3, 11, k1, c1, 1) && collect_splits(&v, ds, 2, 11, k2, c2, 0) &&
        collect_splits(&v, ds, 3, 12, k3, c3, 0)) {
        CHECK(memcmp(k1, k2, sizeof k1) == 0 && memcmp(c1, c2, sizeof c1) == 0,
              "the split or caption choice depends on the batch size, not only on (seed, epoch, sample)");
        CHECK(memcmp(k1, k3, sizeof k1) != 0, "another data seed gives the same splits");
        /* every allowed k is drawn over the epochs; both captions of the two-caption sample too */
        int seen[NIMG][8] = {{0}}, caps[2] = {0};
        for (int e = 0; e < EPOCHS; e++) {
            for (int i = 0; i < NIMG; i++)
                if (i != 3) seen[i][k1[e][i]]++;
            caps[c1[e][3]]++;
        }
        static const int maxk[NIMG] = {0, 1, 3, -1, 1, 4};
        for (int i = 0; i < NIMG; i++)
            for (int kk = 0; kk <= maxk[i]; kk++)
                CHECK(seen[i][kk] > 0, "sample %d: split at word %d never drawn in %d epochs", i, kk, EPOCHS);
        CHECK(caps[0] > 0 && caps[1] > 0, "a two-caption sample always trains on the same caption");
        /* the same batch twice: the same tokens */
        gr_vlm_task *t = make_task(&v, ds, GR_VLM_CAPTION, 3, 11, NULL);
        static spy_record first;
        if (t && run_batch(&v, t, 5, 1) == GR_OK) {
            first = *rec;
            CHECK(run_batch(&v, t, 5, 1) == GR_OK && memcmp(first.ids, rec->ids, sizeof first.ids) == 0 &&
                      memcmp(first.labels, rec->labels, sizeof first.labels) == 0,
                  "micro-batch (5, 1) differs when asked again");
        }
        gr_vlm_task_free(t);
        if (failures == 0)
            printf("ok   T5 captions: [soft prompt][first k words </s>] -> [rest </s>], k in [0, words/2], every k drawn"
               " in %d epochs; fixed by (seed, epoch, sample) across batch sizes, changed by the seed\n", EPOCHS);
    }
    gr_dataset_free(ds);
    close_vlm(&v);
}

/* VQA: T5 (encoder prompt </s>, decoder answer </s>) and OPT ([BOS prompt answer "\n"]). */
static void test_vqa(const char *fixture, int t5)
{
    vlm_setup v;
    gr_status s = open_vlm(fixture, t5, &v);
    CHECK(s == GR_OK, "open %s: %s", fixture, gr_last_error());
    char path[700];
    snprintf(path, sizeof path, "%s/vqa.jsonl", work);
    gr_dataset_spec spec = {.format = GR_DATASET_JSONL, .path = path};
    gr_dataset *ds = NULL;
    if (s == GR_OK) s = gr_dataset_open(&spec, &ds);
    CHECK(s == GR_OK, "vqa: %s", gr_last_error());
    gr_vlm_info info;
    if (s == GR_OK) gr_vlm_get_info(v.vlm, &info);
    int32_t pad = s == GR_OK && info.lm.pad_id >= 0 ? info.lm.pad_id : 0; /* text padding: the LM's pad id */
    const char *prompts[2] = {NULL, "Q: {} A:"};
    const char *expect_tmpl[2] = {t5 ? "Question: %s Short answer:" : "Question: %s Answer:", "Q: %s A:"};
    for (int p = 0; s == GR_OK && p < 2; p++) {
        gr_vlm_task *t = make_task(&v, ds, GR_VLM_VQA, 3, 3, prompts[p]);
        if (!t || (s = run_batch(&v, t, 0, 0)) != GR_OK) {
            CHECK(0, "%s VQA batch: %s", fixture, gr_last_error());
            gr_vlm_task_free(t);
            break;
        }
        size_t *order = NULL, count = 0;
        gr_epoch_order(3, 1, 3, 0, 0, 1, &order, &count);
        CHECK(rec->batch == 3, "%s VQA: %lld rows", fixture, (long long)rec->batch);
        for (int64_t r = 0; r < 3 && rec->batch == 3; r++) {
            const gr_sample *sm = gr_dataset_sample(ds, order[r]);
            const char *answer = order[r] == 1 ? "left of the cube" : sm->texts[0];
            char prompt[256], full[512];
            snprintf(prompt, sizeof prompt, expect_tmpl[p], sm->question);
            size_t np, nf, na;
            int32_t *pi = enc(&v, prompt, &np), *ai = enc(&v, answer, &na), *fi = NULL;
            int ok;
            if (t5) {
                ok = row_is(rec->ids, rec->seq, r, pi, np, pad) && row_is(rec->labels, rec->label_len, r, ai, na, -100);
            } else {
                snprintf(full, sizeof full, "%s %s\n", prompt, answer);
                fi = enc(&v, full, &nf);
                int32_t lab[128];
                for (size_t j = 0; j < nf && j < 128; j++) lab[j] = j < np ? -100 : fi[j];
                ok = np > 1 && pi[0] == 3 && fi[0] == 3 && fi[nf - 1] == gr_tokenizer_piece_id(v.tok, "\n", 1) &&
                     memcmp(fi, pi, sizeof(int32_t) * np) == 0 && row_is(rec->ids, rec->seq, r, fi, nf, pad) &&
                     row_is(rec->labels, rec->seq, r, lab, nf, -100);
            }
            CHECK(ok, "%s VQA row %lld: the LM did not get prompt \"%s\" with target \"%s\"", fixture, (long long)r,
                  prompt, answer);
            free(pi);
            free(ai);
            free(fi);
        }
        free(order);
        gr_vlm_task_free(t);
    }
    if (s == GR_OK && failures == 0)
        printf("ok   %s VQA: default prompt \"%s\", a given template used as is, the answer as target%s\n", fixture,
               t5 ? "Question: {} Short answer:" : "Question: {} Answer:", t5 ? " (encoder prompt </s>, decoder answer </s>)" : " (labels -100 on BOS + prompt)");
    gr_dataset_free(ds);
    close_vlm(&v);
}

/* VLM generation: the EOS rules (OPT: "\n" and </s>; T5: </s>) and a batch of questions of
 * different lengths (left padded, beam and greedy) giving each row's answer alone. */
static void test_vlm_generate(const char *fixture, int t5)
{
    vlm_setup v;
    gr_status s = open_vlm(fixture, t5, &v);
    char path[700];
    snprintf(path, sizeof path, "%s/vqa.jsonl", work);
    gr_dataset_spec spec = {.format = GR_DATASET_JSONL, .path = path};
    gr_dataset *ds = NULL;
    if (s == GR_OK) s = gr_dataset_open(&spec, &ds);
    CHECK(s == GR_OK, "%s: %s", fixture, gr_last_error());
    gr_gen_config g = {.max_new_tokens = 5, .length_penalty = -1.0};
    if (s == GR_OK) s = gr_vlm_gen_eos(v.vlm, v.tok, &g);
    int32_t nl = gr_tokenizer_piece_id(v.tok, "\n", 1), eos = 1;
    CHECK(s == GR_OK && (t5 ? (g.n_eos == 1 && g.eos_ids[0] == eos) : (g.n_eos == 2 && g.eos_ids[0] == nl && g.eos_ids[1] == 2)),
          "%s: EOS ids %d: %d %d", fixture, g.n_eos, g.eos_ids[0], g.eos_ids[1]);
    size_t ids[3] = {0, 1, 2};
    float *px = malloc(sizeof(float) * 3 * 3 * 16 * 16);
    if (s == GR_OK) load_px(&v, ds, ids, 3, px);
    char *prompts[3];
    for (int i = 0; i < 3; i++) prompts[i] = gr_prompt_fill(gr_vlm_vqa_prompt(v.vlm), gr_dataset_sample(ds, ids[i])->question);
    int same = 0;
    for (int K = 1; s == GR_OK && K <= 3; K += 2) {
        g.num_beams = K;
        char *batch[3] = {0}, *alone[3] = {0};
        s = gr_vlm_generate(v.vlm, v.ctx, v.tok, px, NULL, 3, 16, 16, (const char *const *)prompts, &g, batch);
        gr_ctx_reset(v.ctx);
        for (int i = 0; s == GR_OK && i < 3; i++) {
            s = gr_vlm_generate(v.vlm, v.ctx, v.tok, px + i * 3 * 16 * 16, NULL, 1, 16, 16,
                                (const char *const *)&prompts[i], &g, &alone[i]);
            gr_ctx_reset(v.ctx);
            CHECK(s == GR_OK && strcmp(batch[i], alone[i]) == 0, "%s K %d row %d: batched \"%s\", alone \"%s\" (%s)", fixture,
                  K, i, batch[i] ? batch[i] : "", alone[i] ? alone[i] : "", s ? gr_last_error() : "ok");
            same += s == GR_OK && strcmp(batch[i], alone[i]) == 0;
        }
        CHECK(s == GR_OK, "%s: generate: %s", fixture, gr_last_error());
        for (int i = 0; i < 3; i++) { free(batch[i]); free(alone[i]); }
    }
    if (same == 6) printf("ok   %s: EOS rule, batched VLM generation (greedy, beam 3) = each question alone\n", fixture);
    for (int i = 0; i < 3; i++) free(prompts[i]);
    free(px);
    gr_dataset_free(ds);
    close_vlm(&v);
}

/* The caption stop id: a lone "\n" for byte-level BPE; for a metaspace tokenizer (Mistral /
 * Llama 2: "\n" alone is "\u2581" + "<0x0A>") the "<0x0A>" that ends a caption. */
static void test_newline_ids(const char *tokenize_data)
{
    static const char *const names[2] = {"llama3", "mistral7b"};
    for (int i = 0; i < 2; i++) {
        char dir[1400];
        snprintf(dir, sizeof dir, "%s/%s", tokenize_data, names[i]);
        gr_tokenizer *tok = NULL;
        int32_t id = -1, *ids = NULL;
        size_t n = 0;
        gr_status s = gr_tokenizer_load(dir, &tok);
        if (s == GR_OK) s = gr_caption_newline_id(tok, &id);
        if (s == GR_OK) s = gr_tokenizer_encode(tok, "a dog\n", 6, 0, &ids, &n);
        int want = i == 0 ? gr_tokenizer_piece_id(tok, "\xc4\x8a", 2) : gr_tokenizer_piece_id(tok, "<0x0A>", 6);
        CHECK(s == GR_OK && id >= 0 && id == want && n > 0 && ids[n - 1] == id, "%s: newline id %d, expected %d, last of \"a dog\\n\" %d (%s)",
              names[i], (int)id, want, n ? (int)ids[n - 1] : -1, s ? gr_last_error() : "ok");
        free(ids);
        gr_tokenizer_free(tok);
    }
    if (!failures) printf("ok   caption newline id: byte-level and metaspace tokenizers\n");
}

int main(int argc, char **argv)
{
    if (argc != 4) { fprintf(stderr, "usage: test_vlm_batches WORK_DIR SPY_PLUGIN_DIR FIXTURES_DIR\n"); return 2; }
    work = argv[1];
    fixtures = argv[3];
    gr_mkdirs(work);
    gr_plugins_add_path(argv[2]);
    gr_plugins_scan();
    const gr_plugin *spy = NULL;
    if (gr_plugin_find(GR_PLUGIN_LANGUAGE_MODEL, "spy", &spy) != GR_OK || gr_backend_open("cpu", NULL, &backend) != GR_OK) {
        printf("FAIL: setup: %s\n", gr_last_error());
        return 1;
    }
    spy_record_fn fn = (spy_record_fn)dlsym(spy->handle, SPY_RECORD_SYMBOL);
    if (!fn || write_data() != GR_OK) {
        printf("FAIL: setup: %s\n", fn ? gr_last_error() : "no " SPY_RECORD_SYMBOL " in the spy plugin");
        return 1;
    }
    rec = fn();
    char tokdata[700];
    snprintf(tokdata, sizeof tokdata, "%s/../tokenize/data", fixtures);
    test_newline_ids(tokdata);
    test_t5_captions();
    test_vqa("blip2_hf_vision_t5", 1);
    test_vqa("blip2_hf_vision_opt", 0);
    test_vlm_generate("blip2_hf_vision_t5", 1);
    test_vlm_generate("blip2_hf_vision_opt", 0);
    gr_backend_close(backend);
    printf("%s: %d checks, %d failures\n", failures ? "FAIL" : "PASS", checks, failures);
    return failures ? 1 : 0;
}
