/* `graft synth` output: PNG images (rendered on worker threads), COCO captions, LAVIS
 * Karpathy-style split files, VQAv2 questions/annotations, JSONL, scenes, a text corpus.
 *
 * Layout under DIR (image ids start at 1; file names are the zero-padded id):
 *   images/000000000001.png ...                         all splits, like COCO's folders
 *   annotations/captions_{train,val,test}.json          COCO captions (image root: DIR/images)
 *   annotations/coco_karpathy_{train,val,test}.json     LAVIS format (image root: DIR)
 *   annotations/vqa_{split}_questions.json, vqa_{split}_annotations.json
 *                                                       VQAv2 (pattern "{image_id:012}.png", root DIR/images)
 *   captions_{split}.jsonl, vqa_{split}.jsonl           JSONL (image root: DIR)
 *   scenes.jsonl                                        ground truth objects per image
 *   corpus.txt, corpus_val.txt                          text for pretraining tiny LMs
 *   knowledge.txt                                       every colour and shape fact once (to up-weight)
 *   world.json                                          the configuration and counts */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fsutil.h"
#include "data/rng.h"
#include "data/synth.h"
#include "data/synth_text.h"

static const char *const split_names[3] = {"train", "val", "test"};

typedef struct strbuf { char *p; size_t len, cap; int oom; } strbuf;

static void sb_add(strbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 16;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Appends one JSON value as a line (and frees it). */
static void sb_json_line(strbuf *b, json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    if (!s) {
        b->oom = 1;
        return;
    }
    sb_add(b, s, strlen(s));
    sb_add(b, "\n", 1);
    free(s);
}

static gr_status write_buf(const char *dir, const char *name, strbuf *b)
{
    char *path = gr_path_join(dir, name);
    gr_status st = !path || b->oom ? gr_fail(GR_ERR_NOMEM, "%s/%s: out of memory", dir, name)
                                   : gr_write_file_atomic(path, b->p ? b->p : "", b->len);
    free(path);
    free(b->p);
    memset(b, 0, sizeof *b);
    return st;
}

static gr_status write_json(const char *dir, const char *name, json_t *v)
{
    strbuf b = {0};
    char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (!s) return gr_fail(GR_ERR_NOMEM, "%s/%s: out of memory", dir, name);
    sb_add(&b, s, strlen(s));
    free(s);
    return write_buf(dir, name, &b);
}

/* ---- images ------------------------------------------------------------------------------- */

typedef struct render_job {
    const gr_synth_config *cfg;
    const char *image_dir;
    size_t begin, end;
    gr_status status;
    char error[1024];
} render_job;

static void *render_range(void *arg)
{
    render_job *job = arg;
    gr_image img;
    if ((job->status = gr_image_alloc(&img, job->cfg->image_size, job->cfg->image_size))) {
        snprintf(job->error, sizeof job->error, "%s", gr_last_error());
        return NULL;
    }
    char name[64];
    for (size_t i = job->begin; i < job->end; i++) {
        gr_synth_scene sc;
        gr_synth_make_scene(job->cfg, i, &sc);
        gr_synth_render(job->cfg, i, &sc, &img);
        uint8_t *png;
        size_t len;
        gr_status st = gr_image_encode_png(&img, job->cfg->png_compression, &png, &len);
        if (!st) {
            /* Plain writes: thousands of fsyncs would dominate the run time; the directory is
             * produced by one command and complete only when it exits 0. */
            snprintf(name, sizeof name, "%012zu.png", i + 1);
            char *path = gr_path_join(job->image_dir, name);
            FILE *f = path ? fopen(path, "wb") : NULL;
            int ok = f && fwrite(png, 1, len, f) == len;
            if (f && fclose(f) != 0) ok = 0;
            if (!ok) st = gr_fail(GR_ERR_IO, "%s: cannot write: %s", path ? path : name, strerror(errno));
            free(path);
            free(png);
        }
        if (st) {
            job->status = st;
            snprintf(job->error, sizeof job->error, "%s", gr_last_error());
            break;
        }
    }
    gr_image_free(&img);
    return NULL;
}

static gr_status render_all(const gr_synth_config *cfg, const char *image_dir)
{
    int nt = cfg->threads;
    if ((size_t)nt > (size_t)cfg->size) nt = cfg->size;
    render_job jobs[64];
    pthread_t th[64];
    int launched[64] = {0};
    for (int t = 0; t < nt; t++)
        jobs[t] = (render_job){cfg, image_dir, (size_t)cfg->size * t / nt, (size_t)cfg->size * (t + 1) / nt, GR_OK, ""};
    for (int t = 1; t < nt; t++) launched[t] = pthread_create(&th[t], NULL, render_range, &jobs[t]) == 0;
    for (int t = 0; t < nt; t++)
        if (!launched[t]) render_range(&jobs[t]); /* this thread's share, or a thread that could not start */
    for (int t = 1; t < nt; t++)
        if (launched[t]) pthread_join(th[t], NULL);
    for (int t = 0; t < nt; t++)
        if (jobs[t].status) return gr_fail(jobs[t].status, "%s", jobs[t].error);
    return GR_OK;
}

/* Shuffles a text buffer of paragraphs (blank-line separated documents) in place: the
 * paragraphs' order and the lines inside each, deterministically. A language model reading the
 * corpus front to back sees scenes and knowledge mixed, while the lines of one scene stay
 * together (pretrain.documents = "paragraphs" keeps them so). Every paragraph must end "\n\n". */
static void shuffle_paragraphs(strbuf *b, uint64_t seed)
{
    if (b->oom || !b->len) return;
    size_t n_lines = 0, n_par = 0;
    for (size_t i = 0; i < b->len; i++) {
        n_lines += b->p[i] == '\n' && (i == 0 || b->p[i - 1] != '\n');
        n_par += b->p[i] == '\n' && i > 0 && b->p[i - 1] == '\n';
    }
    char **lines = malloc((n_lines + 1) * sizeof *lines);
    size_t *first = malloc((n_par + 1) * sizeof *first), *order = malloc((n_par + 1) * sizeof *order);
    char *out = malloc(b->len + 1);
    if (!lines || !first || !order || !out) {
        free(lines), free(first), free(order), free(out);
        b->oom = 1;
        return;
    }
    size_t k = 0, par = 0;
    first[0] = 0; /* paragraph q is lines[first[q] .. first[q + 1]) */
    for (char *p = b->p; p < b->p + b->len;) {
        if (*p == '\n') { first[++par] = k; p++; continue; } /* a blank line ends paragraph par */
        lines[k++] = p;
        p = strchr(p, '\n') + 1;
    }
    gr_rng r;
    gr_rng_seed(&r, seed);
    for (size_t i = 0; i < n_par; i++) order[i] = i;
    for (size_t i = n_par; i > 1; i--) {
        size_t j = (size_t)gr_rng_below(&r, i), t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    size_t o = 0;
    for (size_t q = 0; q < n_par; q++) {
        char **L = lines + first[order[q]];
        size_t m = first[order[q] + 1] - first[order[q]];
        for (size_t i = m; i > 1; i--) {
            size_t j = (size_t)gr_rng_below(&r, i);
            char *t = L[i - 1];
            L[i - 1] = L[j];
            L[j] = t;
        }
        for (size_t i = 0; i < m; i++) {
            size_t len = (size_t)(strchr(L[i], '\n') - L[i]) + 1;
            memcpy(out + o, L[i], len);
            o += len;
        }
        out[o++] = '\n';
    }
    out[o] = '\0';
    free(lines), free(first), free(order);
    free(b->p);
    b->p = out;
    b->cap = b->len + 1;
}

/* One fact and a blank line: each fact is its own paragraph (document). */
static void add_paragraph(void *user, const char *line)
{
    strbuf *b = user;
    sb_add(b, line, strlen(line));
    sb_add(b, "\n\n", 2);
}

/* ---- annotations -------------------------------------------------------------------------- */

static json_t *info_object(const gr_synth_config *cfg)
{
    return json_pack("{s:s, s:I, s:s}", "description", "graft synthetic world of coloured shapes", "seed",
                     (json_int_t)cfg->seed, "version", "1");
}

static json_t *answers_array(const char *answer)
{
    json_t *a = json_array();
    for (int k = 1; k <= 10; k++)
        json_array_append_new(a, json_pack("{s:s, s:s, s:i}", "answer", answer, "answer_confidence", "yes", "answer_id", k));
    return a;
}

gr_status gr_synth_write(const char *dir, const gr_synth_config *cfg, gr_synth_summary *sum)
{
    gr_status st = gr_synth_check_config(cfg);
    if (st) return st;
    memset(sum, 0, sizeof *sum);
    char *image_dir = gr_path_join(dir, "images"), *ann_dir = gr_path_join(dir, "annotations");
    if (!image_dir || !ann_dir) {
        free(image_dir);
        free(ann_dir);
        return gr_fail(GR_ERR_NOMEM, "%s: out of memory", dir);
    }
    if ((st = gr_mkdirs(image_dir)) || (st = gr_mkdirs(ann_dir)) || (st = render_all(cfg, image_dir))) goto out;

    size_t n = (size_t)cfg->size;
    size_t n_val = (size_t)(cfg->val_fraction * (double)n + 0.5), n_test = (size_t)(cfg->test_fraction * (double)n + 0.5);
    size_t bounds[4] = {0, n - n_val - n_test, n - n_test, n};
    char (*caps)[GR_SYNTH_TEXT_CAP] = malloc((size_t)cfg->captions_per_image * sizeof *caps);
    gr_synth_qa *qa = malloc((size_t)cfg->questions_per_image * sizeof *qa);
    strbuf corpus[2] = {{0}, {0}}, scenes = {0};
    if (!caps || !qa) {
        st = gr_fail(GR_ERR_NOMEM, "%s: out of memory", dir);
        goto done;
    }
    size_t ann_id = 0;
    char name[64], rel[96], key[64], fname[128];
    for (int sp = 0; sp < 3 && !st; sp++) {
        json_t *images = json_array(), *anns = json_array(), *karpathy = json_array();
        json_t *questions = json_array(), *vqa_anns = json_array();
        strbuf cap_lines = {0}, vqa_lines = {0};
        for (size_t i = bounds[sp]; i < bounds[sp + 1]; i++) {
            size_t id = i + 1;
            gr_synth_scene sc;
            gr_synth_make_scene(cfg, i, &sc);
            snprintf(name, sizeof name, "%012zu.png", id);
            snprintf(rel, sizeof rel, "images/%s", name);
            snprintf(key, sizeof key, "synth_%zu", id);
            json_array_append_new(images, json_pack("{s:I, s:s, s:i, s:i}", "id", (json_int_t)id, "file_name", name,
                                                    "width", cfg->image_size, "height", cfg->image_size));
            gr_synth_captions(cfg, i, &sc, caps, cfg->captions_per_image);
            json_t *cap_list = json_array();
            for (int k = 0; k < cfg->captions_per_image; k++) {
                json_array_append_new(anns, json_pack("{s:I, s:I, s:s}", "id", (json_int_t)++ann_id, "image_id",
                                                      (json_int_t)id, "caption", caps[k]));
                json_array_append_new(cap_list, json_string(caps[k]));
                if (sp == 0)
                    json_array_append_new(karpathy, json_pack("{s:s, s:s, s:s}", "caption", caps[k], "image", rel,
                                                              "image_id", key));
                sb_json_line(&cap_lines, json_pack("{s:s, s:s, s:I}", "image", rel, "caption", caps[k], "image_id",
                                                   (json_int_t)id));
                strbuf *cb = &corpus[sp == 0 ? 0 : 1];
                if (sp < 2) {
                    sb_add(cb, caps[k], strlen(caps[k]));
                    sb_add(cb, "\n", 1);
                }
            }
            if (sp > 0) json_array_append_new(karpathy, json_pack("{s:s, s:o, s:s}", "image", rel, "caption", cap_list,
                                                                  "image_id", key));
            else json_decref(cap_list);
            sum->captions[sp] += (size_t)cfg->captions_per_image;
            int nq = gr_synth_questions(cfg, i, &sc, qa, cfg->questions_per_image);
            for (int k = 0; k < nq; k++) {
                json_int_t qid = (json_int_t)id * 1000 + k;
                json_array_append_new(questions, json_pack("{s:I, s:s, s:I}", "image_id", (json_int_t)id, "question",
                                                           qa[k].question, "question_id", qid));
                json_array_append_new(vqa_anns, json_pack("{s:s, s:s, s:o, s:I, s:s, s:I}", "question_type",
                                                          qa[k].question_type, "multiple_choice_answer", qa[k].answer,
                                                          "answers", answers_array(qa[k].answer), "image_id",
                                                          (json_int_t)id, "answer_type", qa[k].answer_type,
                                                          "question_id", qid));
                json_t *ten = json_array();
                for (int a = 0; a < 10; a++) json_array_append_new(ten, json_string(qa[k].answer));
                sb_json_line(&vqa_lines, json_pack("{s:s, s:s, s:o, s:I, s:I}", "image", rel, "question",
                                                   qa[k].question, "answers", ten, "question_id", qid, "image_id",
                                                   (json_int_t)id));
                if (sp == 0) {
                    sb_add(&corpus[0], qa[k].question, strlen(qa[k].question));
                    sb_add(&corpus[0], " ", 1);
                    sb_add(&corpus[0], qa[k].answer, strlen(qa[k].answer));
                    sb_add(&corpus[0], "\n", 1);
                }
            }
            sum->questions[sp] += (size_t)nq;
            if (sp < 2) sb_add(&corpus[sp == 0 ? 0 : 1], "\n", 1); /* the scene's paragraph ends */
            json_t *objs = json_array();
            for (int k = 0; k < sc.n; k++) {
                const gr_synth_object *o = &sc.obj[k];
                json_array_append_new(objs, json_pack("{s:s, s:s, s:s, s:f, s:f, s:f}", "shape",
                                                      gr_synth_shape_name(o->shape), "color",
                                                      gr_synth_color_name(o->color), "size", o->large ? "big" : "small",
                                                      "x", (double)o->cx, "y", (double)o->cy, "r", (double)o->r));
            }
            sb_json_line(&scenes, json_pack("{s:I, s:s, s:o}", "image_id", (json_int_t)id, "split", split_names[sp],
                                            "objects", objs));
        }
        sum->images[sp] = bounds[sp + 1] - bounds[sp];
        const char *spn = split_names[sp];
        json_t *coco = json_pack("{s:o, s:[], s:o, s:o}", "info", info_object(cfg), "licenses", "images", images,
                                 "annotations", anns);
        json_t *vq = json_pack("{s:o, s:s, s:s, s:s, s:o}", "info", info_object(cfg), "task_type", "Open-Ended",
                               "data_type", "synth", "data_subtype", spn, "questions", questions);
        json_t *va = json_pack("{s:o, s:s, s:s, s:o}", "info", info_object(cfg), "data_type", "synth", "data_subtype",
                               spn, "annotations", vqa_anns);
        snprintf(fname, sizeof fname, "captions_%s.json", spn);
        st = write_json(ann_dir, fname, coco);
        snprintf(fname, sizeof fname, "coco_karpathy_%s.json", spn);
        if (!st) st = write_json(ann_dir, fname, karpathy);
        else json_decref(karpathy);
        snprintf(fname, sizeof fname, "vqa_%s_questions.json", spn);
        if (!st) st = write_json(ann_dir, fname, vq);
        else json_decref(vq);
        snprintf(fname, sizeof fname, "vqa_%s_annotations.json", spn);
        if (!st) st = write_json(ann_dir, fname, va);
        else json_decref(va);
        snprintf(fname, sizeof fname, "captions_%s.jsonl", spn);
        if (!st) st = write_buf(dir, fname, &cap_lines);
        snprintf(fname, sizeof fname, "vqa_%s.jsonl", spn);
        if (!st) st = write_buf(dir, fname, &vqa_lines);
        free(cap_lines.p);
        free(vqa_lines.p);
    }
    if (st) goto done;
    /* Knowledge sentences: as many as there are caption lines (at least 2000), so colour and
     * shape words get contexts beyond the captions. */
    for (int c = 0; c < 2; c++) {
        gr_rng r;
        gr_rng_seed(&r, gr_seed_mix(cfg->seed, 0x4b4e4f57ULL /* "KNOW" */, (uint64_t)c));
        size_t k = c == 0 ? sum->captions[0] : sum->captions[1];
        if (k < (c == 0 ? 2000u : 200u)) k = c == 0 ? 2000 : 200;
        char line[GR_SYNTH_TEXT_CAP];
        for (size_t i = 0; i < k; i++) {
            gr_synth_knowledge(cfg, &r, line, sizeof line);
            sb_add(&corpus[c], line, strlen(line));
            sb_add(&corpus[c], "\n\n", 2); /* each fact its own paragraph */
        }
        if (c == 0) sum->corpus_sentences = k + sum->captions[0] + sum->questions[0];
    }
    shuffle_paragraphs(&corpus[0], gr_seed_mix(cfg->seed, 0x434f52505553ULL /* "CORPUS" */, 0));
    shuffle_paragraphs(&corpus[1], gr_seed_mix(cfg->seed, 0x434f52505553ULL, 1));
    strbuf facts = {0};
    gr_rng fr;
    gr_rng_seed(&fr, gr_seed_mix(cfg->seed, 0x4641435453ULL /* "FACTS" */, 0));
    sum->knowledge_facts = (size_t)gr_synth_knowledge_facts(cfg, &fr, add_paragraph, &facts);
    if ((st = write_buf(dir, "corpus.txt", &corpus[0])) || (st = write_buf(dir, "corpus_val.txt", &corpus[1])) ||
        (st = write_buf(dir, "knowledge.txt", &facts)) || (st = write_buf(dir, "scenes.jsonl", &scenes))) {
        free(facts.p);
        goto done;
    }
    json_t *colors = json_array(), *shapes = json_array();
    for (int c = 0; c < cfg->n_colors; c++) json_array_append_new(colors, json_string(gr_synth_color_name(c)));
    for (int s = 0; s < cfg->n_shapes; s++) json_array_append_new(shapes, json_string(gr_synth_shape_name(s)));
    json_t *counts = json_object();
    for (int sp = 0; sp < 3; sp++)
        json_object_set_new(counts, split_names[sp], json_pack("{s:I, s:I, s:I}", "images", (json_int_t)sum->images[sp],
                                                               "captions", (json_int_t)sum->captions[sp], "questions",
                                                               (json_int_t)sum->questions[sp]));
    json_t *world = json_pack(
        "{s:I, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:o, s:o, s:o, s:I, s:I, s:s, s:s}", "seed", (json_int_t)cfg->seed,
        "size", cfg->size, "image_size", cfg->image_size, "min_objects", cfg->min_objects, "max_objects",
        cfg->max_objects, "distractors", cfg->distractors, "captions_per_image", cfg->captions_per_image,
        "questions_per_image", cfg->questions_per_image, "png_compression", cfg->png_compression, "colors", colors,
        "shapes", shapes, "splits", counts, "corpus_sentences", (json_int_t)sum->corpus_sentences, "knowledge_facts",
        (json_int_t)sum->knowledge_facts, "vqa_image_pattern",
        "{image_id:012}.png", "generator", "graft synth");
    st = write_json(dir, "world.json", world);
done:
    free(corpus[0].p);
    free(corpus[1].p);
    free(scenes.p);
    free(caps);
    free(qa);
out:
    free(image_dir);
    free(ann_dir);
    return st;
}
