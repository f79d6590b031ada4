/* JSON readers for the metrics: COCO caption annotation/result files and VQA question/annotation/
 * result files, read as pycocotools' COCO/loadRes and the VQA helper read them, with the checks those
 * tools make (or crash on) turned into one-line errors naming the file and the entry. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/fsutil.h"
#include "metrics/metrics.h"

/* ---- shared helpers ---- */
typedef struct docs { json_t *j[3]; } docs;

static void docs_free(void *p)
{
    docs *d = p;
    if (!d) return;
    for (int i = 0; i < 3; i++) json_decref(d->j[i]);
    free(d);
}

static gr_status load_json(const char *path, json_t **out)
{
    char *data;
    size_t len;
    if (gr_is_dir(path)) return gr_fail(GR_ERR_IO, "%s: is a directory, not a JSON file", path);
    gr_status st = gr_read_file(path, &data, &len);
    if (st != GR_OK) return st;
    size_t i = 0;
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r')) i++;
    if (i == len) { free(data); return gr_fail(GR_ERR_FORMAT, "%s: empty file", path); }
    json_error_t err;
    *out = json_loadb(data, len, 0, &err);
    free(data);
    if (!*out) return gr_fail(GR_ERR_FORMAT, "%s: not valid JSON: line %d column %d: %s", path, err.line, err.column, err.text);
    return GR_OK;
}

/* An integer member of an object; 0 with *ok = 0 when missing or not an integer. */
static int get_int(json_t *obj, const char *key, long long *v)
{
    json_t *x = json_object_get(obj, key);
    if (!json_is_integer(x)) return 0;
    *v = (long long)json_integer_value(x);
    return 1;
}

static const char *get_str(json_t *obj, const char *key)
{
    json_t *x = json_object_get(obj, key);
    return json_is_string(x) ? json_string_value(x) : NULL;
}

static const char *type_name(json_t *x)
{
    switch (json_typeof(x)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "a list";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* Sorted (id, index) pairs for look-ups. */
typedef struct idx { long long id; size_t at; } idx;
static int idx_cmp(const void *a, const void *b)
{
    const idx *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return x->at < y->at ? -1 : x->at > y->at;
}
static const idx *idx_find(const idx *v, size_t n, long long id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v[mid].id < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && v[lo].id == id ? &v[lo] : NULL;
}
/* Sorts and reports the first duplicate (the later entry) via *dup_at / *first_at. */
static int idx_sort_check(idx *v, size_t n, size_t *dup_at, size_t *first_at)
{
    qsort(v, n, sizeof *v, idx_cmp);
    int found = 0;
    for (size_t i = 1; i < n; i++)
        if (v[i].id == v[i - 1].id && (!found || v[i].at < *dup_at)) {
            found = 1;
            *dup_at = v[i].at;
            *first_at = v[i - 1].at;
        }
    return found;
}

/* ---- captions ---- */
void gr_caption_eval_free(gr_caption_eval *e)
{
    if (!e) return;
    if (e->images)
        for (size_t i = 0; i < e->n; i++) free((void *)e->images[i].refs);
    free(e->images);
    free(e->image_ids);
    docs_free(e->owner);
    memset(e, 0, sizeof *e);
}

gr_status gr_caption_eval_load(const char *refs_path, const char *pred_path, int subset, gr_caption_eval *out)
{
    memset(out, 0, sizeof *out);
    docs *d = calloc(1, sizeof *d);
    if (!d) return gr_fail(GR_ERR_NOMEM, "out of memory");
    out->owner = d;
    gr_status st;
    idx *img = NULL;
    size_t *nref = NULL, *pred_of = NULL;
    if ((st = load_json(refs_path, &d->j[0])) != GR_OK) goto fail;
    if ((st = load_json(pred_path, &d->j[1])) != GR_OK) goto fail;
    json_t *refs = d->j[0], *pred = d->j[1];

    /* the annotation file: {"images": [{"id"}...], "annotations": [{"image_id", "caption"}...]} */
    if (!json_is_object(refs)) {
        st = gr_fail(GR_ERR_FORMAT, "%s: expected a COCO caption annotation file (an object), found %s", refs_path, type_name(refs));
        goto fail;
    }
    json_t *images = json_object_get(refs, "images"), *anns = json_object_get(refs, "annotations");
    if (!json_is_array(images)) { st = gr_fail(GR_ERR_FORMAT, "%s: 'images' is missing or not a list", refs_path); goto fail; }
    if (!json_is_array(anns)) { st = gr_fail(GR_ERR_FORMAT, "%s: 'annotations' is missing or not a list", refs_path); goto fail; }
    size_t nimg = json_array_size(images), nann = json_array_size(anns);
    if (nimg == 0) { st = gr_fail(GR_ERR_FORMAT, "%s: 'images' is empty", refs_path); goto fail; }
    img = malloc(nimg * sizeof *img);
    nref = calloc(nimg, sizeof *nref);
    pred_of = malloc(nimg * sizeof *pred_of);
    if (!img || !nref || !pred_of) goto oom;
    long long *ids = malloc(nimg * sizeof *ids);
    if (!ids) goto oom;
    for (size_t i = 0; i < nimg; i++) {
        json_t *e = json_array_get(images, i);
        if (!json_is_object(e) || !get_int(e, "id", &ids[i])) {
            free(ids);
            st = gr_fail(GR_ERR_FORMAT, "%s: images[%zu]: 'id' is missing or not an integer", refs_path, i);
            goto fail;
        }
        img[i].id = ids[i];
        img[i].at = i;
        pred_of[i] = (size_t)-1;
    }
    size_t dup, first;
    if (idx_sort_check(img, nimg, &dup, &first)) {
        st = gr_fail(GR_ERR_FORMAT, "%s: images[%zu]: duplicate image id %lld (also images[%zu])", refs_path, dup, ids[dup], first);
        free(ids);
        goto fail;
    }
    for (size_t a = 0; a < nann; a++) {
        json_t *e = json_array_get(anns, a);
        long long id;
        if (!json_is_object(e) || !get_int(e, "image_id", &id)) {
            free(ids);
            st = gr_fail(GR_ERR_FORMAT, "%s: annotations[%zu]: 'image_id' is missing or not an integer", refs_path, a);
            goto fail;
        }
        if (!get_str(e, "caption")) {
            free(ids);
            st = gr_fail(GR_ERR_FORMAT, "%s: annotations[%zu] (image %lld): 'caption' is missing or not a string", refs_path, a, id);
            goto fail;
        }
        const idx *hit = idx_find(img, nimg, id);
        if (hit) nref[hit->at]++;
    }

    /* the result file: [{"image_id", "caption"}...] */
    if (!json_is_array(pred)) {
        free(ids);
        st = gr_fail(GR_ERR_FORMAT, "%s: expected a COCO result file (a list of {image_id, caption}), found %s", pred_path, type_name(pred));
        goto fail;
    }
    size_t np = json_array_size(pred);
    if (np == 0) { free(ids); st = gr_fail(GR_ERR_FORMAT, "%s: the result list is empty", pred_path); goto fail; }
    for (size_t p = 0; p < np; p++) {
        json_t *e = json_array_get(pred, p);
        long long id;
        if (!json_is_object(e) || !get_int(e, "image_id", &id)) {
            free(ids);
            st = gr_fail(GR_ERR_FORMAT, "%s: [%zu]: 'image_id' is missing or not an integer", pred_path, p);
            goto fail;
        }
        if (!get_str(e, "caption")) {
            free(ids);
            st = gr_fail(GR_ERR_FORMAT, "%s: [%zu] (image %lld): 'caption' is missing or not a string", pred_path, p, id);
            goto fail;
        }
        const idx *hit = idx_find(img, nimg, id);
        if (!hit) {
            free(ids);
            st = gr_fail(GR_ERR_FORMAT, "%s: [%zu]: image %lld is not in %s", pred_path, p, id, refs_path);
            goto fail;
        }
        if (pred_of[hit->at] != (size_t)-1) {
            free(ids);
            st = gr_fail(GR_ERR_FORMAT, "%s: [%zu]: second prediction for image %lld (first at [%zu])", pred_path, p, id, pred_of[hit->at]);
            goto fail;
        }
        pred_of[hit->at] = p;
    }

    /* the evaluated images, in the annotation file's image order */
    size_t n = 0;
    for (size_t i = 0; i < nimg; i++) {
        if (pred_of[i] == (size_t)-1) {
            if (subset) continue;
            st = gr_fail(GR_ERR_FORMAT, "%s: no prediction for image %lld (images[%zu] of %s); use --subset to score only "
                         "the images with one", pred_path, ids[i], i, refs_path);
            free(ids);
            goto fail;
        }
        if (nref[i] == 0) {
            st = gr_fail(GR_ERR_FORMAT, "%s: image %lld (images[%zu]) has no caption in 'annotations'", refs_path, ids[i], i);
            free(ids);
            goto fail;
        }
        n++;
    }
    out->images = calloc(n, sizeof *out->images);
    out->image_ids = malloc(n * sizeof *out->image_ids);
    size_t *slot = malloc(nimg * sizeof *slot);
    if (!out->images || !out->image_ids || !slot) { free(ids); free(slot); goto oom; }
    size_t k = 0;
    for (size_t i = 0; i < nimg; i++) {
        slot[i] = (size_t)-1;
        if (pred_of[i] == (size_t)-1) continue;
        slot[i] = k;
        out->image_ids[k] = ids[i];
        out->images[k].pred = get_str(json_array_get(pred, pred_of[i]), "caption");
        out->images[k].refs = malloc(nref[i] * sizeof(char *));
        if (!out->images[k].refs) { out->n = k; free(ids); free(slot); goto oom; }
        k++;
    }
    out->n = n;
    for (size_t a = 0; a < nann; a++) { /* references in annotation-file order */
        json_t *e = json_array_get(anns, a);
        long long id;
        get_int(e, "image_id", &id);
        const idx *hit = idx_find(img, nimg, id);
        if (!hit || slot[hit->at] == (size_t)-1) continue;
        gr_caption_image *im = &out->images[slot[hit->at]];
        ((const char **)im->refs)[im->n_refs++] = get_str(e, "caption");
    }
    free(slot);
    free(ids);
    free(img);
    free(nref);
    free(pred_of);
    return GR_OK;
oom:
    st = gr_fail(GR_ERR_NOMEM, "%s: out of memory", pred_path);
fail:
    free(img);
    free(nref);
    free(pred_of);
    gr_caption_eval_free(out);
    return st;
}

/* ---- VQA ---- */
void gr_vqa_eval_free(gr_vqa_eval *e)
{
    if (!e) return;
    if (e->items)
        for (size_t i = 0; i < e->n; i++) free((void *)e->items[i].answers);
    free(e->items);
    docs_free(e->owner);
    memset(e, 0, sizeof *e);
}

gr_status gr_vqa_eval_load(const char *qpath, const char *apath, const char *rpath, gr_vqa_eval *out)
{
    memset(out, 0, sizeof *out);
    docs *d = calloc(1, sizeof *d);
    if (!d) return gr_fail(GR_ERR_NOMEM, "out of memory");
    out->owner = d;
    gr_status st;
    idx *qi = NULL, *ai = NULL;
    size_t *res_of = NULL;
    if ((st = load_json(qpath, &d->j[0])) != GR_OK) goto fail;
    if ((st = load_json(apath, &d->j[1])) != GR_OK) goto fail;
    if ((st = load_json(rpath, &d->j[2])) != GR_OK) goto fail;
    json_t *qdoc = d->j[0], *adoc = d->j[1], *rdoc = d->j[2];

    json_t *qs = json_is_object(qdoc) ? json_object_get(qdoc, "questions") : NULL;
    if (!json_is_array(qs)) { st = gr_fail(GR_ERR_FORMAT, "%s: expected a VQA question file (an object with a 'questions' list)", qpath); goto fail; }
    size_t nq = json_array_size(qs);
    qi = malloc((nq + 1) * sizeof *qi);
    if (!qi) goto oom;
    for (size_t i = 0; i < nq; i++) {
        json_t *e = json_array_get(qs, i);
        if (!json_is_object(e) || !get_int(e, "question_id", &qi[i].id)) {
            st = gr_fail(GR_ERR_FORMAT, "%s: questions[%zu]: 'question_id' is missing or not an integer", qpath, i);
            goto fail;
        }
        qi[i].at = i;
    }
    size_t dup, first;
    if (idx_sort_check(qi, nq, &dup, &first)) {
        st = gr_fail(GR_ERR_FORMAT, "%s: questions[%zu]: duplicate question_id (also questions[%zu])", qpath, dup, first);
        goto fail;
    }

    json_t *as = json_is_object(adoc) ? json_object_get(adoc, "annotations") : NULL;
    if (!json_is_array(as)) { st = gr_fail(GR_ERR_FORMAT, "%s: expected a VQA annotation file (an object with an 'annotations' list)", apath); goto fail; }
    size_t n = json_array_size(as);
    if (n == 0) { st = gr_fail(GR_ERR_FORMAT, "%s: 'annotations' is empty", apath); goto fail; }
    out->items = calloc(n, sizeof *out->items);
    ai = malloc(n * sizeof *ai);
    res_of = malloc(n * sizeof *res_of);
    if (!out->items || !ai || !res_of) goto oom;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(as, i);
        gr_vqa_item *it = &out->items[i];
        out->n = i + 1;
        if (!json_is_object(e) || !get_int(e, "question_id", &it->question_id)) {
            st = gr_fail(GR_ERR_FORMAT, "%s: annotations[%zu]: 'question_id' is missing or not an integer", apath, i);
            goto fail;
        }
        if (!(it->question_type = get_str(e, "question_type")) || !(it->answer_type = get_str(e, "answer_type"))) {
            st = gr_fail(GR_ERR_FORMAT, "%s: annotations[%zu] (question %lld): 'question_type' or 'answer_type' is missing or not a string",
                         apath, i, it->question_id);
            goto fail;
        }
        json_t *ans = json_object_get(e, "answers");
        size_t na = json_array_size(ans);
        if (!json_is_array(ans) || na == 0) {
            st = gr_fail(GR_ERR_FORMAT, "%s: annotations[%zu] (question %lld): 'answers' is missing, empty or not a list", apath, i, it->question_id);
            goto fail;
        }
        gr_vqa_answer *va = calloc(na, sizeof *va);
        if (!va) goto oom;
        it->answers = va;
        it->n_answers = na;
        for (size_t k = 0; k < na; k++) {
            json_t *x = json_array_get(ans, k);
            if (!json_is_object(x) || !(va[k].answer = get_str(x, "answer"))) {
                st = gr_fail(GR_ERR_FORMAT, "%s: annotations[%zu] (question %lld): answers[%zu]: 'answer' is missing or not a string",
                             apath, i, it->question_id, k);
                goto fail;
            }
            va[k].confidence = get_str(x, "answer_confidence");
            if (!get_int(x, "answer_id", &va[k].id)) va[k].id = -1 - (long long)k;
        }
        if (!idx_find(qi, nq, it->question_id)) {
            st = gr_fail(GR_ERR_FORMAT, "%s: annotations[%zu]: question %lld is not in %s", apath, i, it->question_id, qpath);
            goto fail;
        }
        ai[i].id = it->question_id;
        ai[i].at = i;
        res_of[i] = (size_t)-1;
    }
    if (idx_sort_check(ai, n, &dup, &first)) {
        st = gr_fail(GR_ERR_FORMAT, "%s: annotations[%zu]: duplicate question %lld (also annotations[%zu])", apath, dup,
                     out->items[dup].question_id, first);
        goto fail;
    }

    if (!json_is_array(rdoc)) {
        st = gr_fail(GR_ERR_FORMAT, "%s: expected a VQA result file (a list of {question_id, answer}), found %s", rpath, type_name(rdoc));
        goto fail;
    }
    size_t nr = json_array_size(rdoc);
    for (size_t r = 0; r < nr; r++) {
        json_t *e = json_array_get(rdoc, r);
        long long id;
        if (!json_is_object(e) || !get_int(e, "question_id", &id)) {
            st = gr_fail(GR_ERR_FORMAT, "%s: [%zu]: 'question_id' is missing or not an integer", rpath, r);
            goto fail;
        }
        if (!get_str(e, "answer")) {
            st = gr_fail(GR_ERR_FORMAT, "%s: [%zu] (question %lld): 'answer' is missing or not a string", rpath, r, id);
            goto fail;
        }
        const idx *hit = idx_find(ai, n, id);
        if (!hit) {
            st = gr_fail(GR_ERR_FORMAT, "%s: [%zu]: question %lld is not in %s", rpath, r, id, apath);
            goto fail;
        }
        if (res_of[hit->at] != (size_t)-1) {
            st = gr_fail(GR_ERR_FORMAT, "%s: [%zu]: second answer for question %lld (first at [%zu])", rpath, r, id, res_of[hit->at]);
            goto fail;
        }
        res_of[hit->at] = r;
    }
    for (size_t i = 0; i < n; i++) {
        if (res_of[i] == (size_t)-1) {
            st = gr_fail(GR_ERR_FORMAT, "%s: no answer for question %lld (annotations[%zu] of %s)", rpath, out->items[i].question_id, i, apath);
            goto fail;
        }
        out->items[i].prediction = get_str(json_array_get(rdoc, res_of[i]), "answer");
    }
    free(qi);
    free(ai);
    free(res_of);
    return GR_OK;
oom:
    st = gr_fail(GR_ERR_NOMEM, "%s: out of memory", rpath);
fail:
    free(qi);
    free(ai);
    free(res_of);
    gr_vqa_eval_free(out);
    return st;
}
