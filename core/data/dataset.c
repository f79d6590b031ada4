/* Annotation readers: COCO captions, LAVIS's Karpathy-split JSON, VQAv2 and JSONL.
 *
 * The JSON formats are parsed with jansson and immediately copied into a compact arena (one
 * sample struct per example plus its strings), so the jansson tree, several times larger, is
 * freed before training starts. JSONL is read line by line. Every error names the file and the
 * entry (array index or line number) and the key. */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json_file.h"
#include "data/dataset.h"

/* ---- arena ------------------------------------------------------------------------------ */

typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    _Alignas(16) char data[];
} arena_block;

struct gr_dataset {
    char *path;
    int vqa;
    arena_block *blocks;
    gr_sample *samples;
    size_t n, cap;
    const char *image_root;
};

static void *arena_alloc(gr_dataset *ds, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    arena_block *b = ds->blocks;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 60000 ? n : 60000;
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next = ds->blocks;
        b->used = 0;
        b->cap = cap;
        ds->blocks = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

static const char *arena_str(gr_dataset *ds, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = arena_alloc(ds, n);
    if (p) memcpy(p, s, n);
    return p;
}

static gr_sample *push_sample(gr_dataset *ds)
{
    if (ds->n == ds->cap) {
        size_t cap = ds->cap ? ds->cap * 2 : 1024;
        gr_sample *s = realloc(ds->samples, cap * sizeof *s);
        if (!s) return NULL;
        ds->samples = s;
        ds->cap = cap;
    }
    gr_sample *s = &ds->samples[ds->n++];
    memset(s, 0, sizeof *s);
    s->image_key = "";
    s->image_id = -1;
    s->question_id = -1;
    return s;
}

static gr_status oom(const gr_dataset *ds) { return gr_fail(GR_ERR_NOMEM, "%s: out of memory", ds->path); }

static const char *image_path(gr_dataset *ds, const char *file)
{
    if (file[0] == '/' || !ds->image_root[0]) return arena_str(ds, file);
    size_t a = strlen(ds->image_root), b = strlen(file);
    char *p = arena_alloc(ds, a + b + 2);
    if (!p) return NULL;
    memcpy(p, ds->image_root, a);
    p[a] = '/';
    memcpy(p + a + 1, file, b + 1);
    return p;
}

/* "coco_391895" -> 391895; "" or no trailing digits -> -1. */
static int64_t trailing_number(const char *s)
{
    size_t n = strlen(s), i = n;
    while (i > 0 && isdigit((unsigned char)s[i - 1])) i--;
    if (i == n || n - i > 18) return -1;
    return strtoll(s + i, NULL, 10);
}

/* Sets image_key/image_id from a JSON id that may be an integer or a string. */
static gr_status set_image_id(gr_dataset *ds, gr_sample *s, json_t *v, const char *where)
{
    if (!v || json_is_null(v)) return GR_OK;
    char buf[32];
    if (json_is_integer(v)) {
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
        s->image_id = json_integer_value(v);
        s->image_key = arena_str(ds, buf);
    } else if (json_is_string(v)) {
        s->image_key = arena_str(ds, json_string_value(v));
        s->image_id = trailing_number(json_string_value(v));
    } else {
        return gr_fail(GR_ERR_FORMAT, "%s: %s: \"image_id\" must be an integer or a string", ds->path, where);
    }
    return s->image_key ? GR_OK : oom(ds);
}

/* Copies a string or list of strings (or list of {"answer": str}) into the sample's texts. */
static gr_status set_texts(gr_dataset *ds, gr_sample *s, json_t *v, const char *key, const char *where)
{
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    if (!json_is_string(v) && !json_is_array(v))
        return gr_fail(GR_ERR_FORMAT, "%s: %s: \"%s\" must be a string or a list of strings", ds->path, where, key);
    if (n > 1000000) return gr_fail(GR_ERR_FORMAT, "%s: %s: \"%s\" has too many entries", ds->path, where, key);
    const char **t = arena_alloc(ds, (n ? n : 1) * sizeof *t);
    if (!t) return oom(ds);
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_is_array(v) ? json_array_get(v, i) : v;
        if (json_is_object(e)) e = json_object_get(e, "answer");
        if (!json_is_string(e))
            return gr_fail(GR_ERR_FORMAT, "%s: %s: \"%s\"[%zu] must be a string", ds->path, where, key, i);
        if (!(t[i] = arena_str(ds, json_string_value(e)))) return oom(ds);
    }
    s->texts = t;
    s->n_texts = (int)n;
    return GR_OK;
}

static gr_status required_string(const gr_dataset *ds, json_t *obj, const char *key, const char *where, const char **out)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return gr_fail(GR_ERR_FORMAT, "%s: %s: missing \"%s\"", ds->path, where, key);
    if (!json_is_string(v)) return gr_fail(GR_ERR_FORMAT, "%s: %s: \"%s\" must be a string", ds->path, where, key);
    *out = json_string_value(v);
    return GR_OK;
}

static gr_status load_json(const char *path, json_t **root)
{
    return gr_json_load(path, 0, root);
}

static json_t *get_array(const gr_dataset *ds, const char *file, json_t *root, const char *key, gr_status *st)
{
    json_t *a = json_is_object(root) ? json_object_get(root, key) : NULL;
    if (!json_is_array(a)) *st = gr_fail(GR_ERR_FORMAT, "%s: expected an object with a \"%s\" list", file, key);
    (void)ds;
    return a;
}

/* ---- COCO captions ------------------------------------------------------------------------ */

typedef struct id_file { int64_t id; const char *file; size_t n_caps; const char **caps; } id_file;

static int cmp_id(const void *a, const void *b)
{
    int64_t x = ((const id_file *)a)->id, y = ((const id_file *)b)->id;
    return (x > y) - (x < y);
}

static id_file *find_id(id_file *v, size_t n, int64_t id)
{
    id_file key = {id, NULL, 0, NULL};
    return bsearch(&key, v, n, sizeof *v, cmp_id);
}

static gr_status read_coco(gr_dataset *ds, json_t *root, int group)
{
    gr_status st = GR_OK;
    json_t *images = get_array(ds, ds->path, root, "images", &st);
    if (st) return st;
    json_t *anns = get_array(ds, ds->path, root, "annotations", &st);
    if (st) return st;
    size_t ni = json_array_size(images), na = json_array_size(anns);
    id_file *ids = calloc(ni ? ni : 1, sizeof *ids);
    if (!ids) return oom(ds);
    char where[64];
    for (size_t i = 0; i < ni && !st; i++) {
        json_t *im = json_array_get(images, i);
        snprintf(where, sizeof where, "images[%zu]", i);
        json_t *id = json_object_get(im, "id");
        if (!json_is_integer(id)) st = gr_fail(GR_ERR_FORMAT, "%s: %s: \"id\" must be an integer", ds->path, where);
        else if (!(st = required_string(ds, im, "file_name", where, &ids[i].file))) ids[i].id = json_integer_value(id);
    }
    if (!st) qsort(ids, ni, sizeof *ids, cmp_id);
    for (size_t i = 1; i < ni && !st; i++)
        if (ids[i].id == ids[i - 1].id)
            st = gr_fail(GR_ERR_FORMAT, "%s: images: id %lld appears twice", ds->path, (long long)ids[i].id);
    /* Pass 1: validate annotations and count captions per image. */
    for (size_t i = 0; i < na && !st; i++) {
        json_t *a = json_array_get(anns, i);
        snprintf(where, sizeof where, "annotations[%zu]", i);
        json_t *id = json_object_get(a, "image_id");
        const char *cap;
        if (!json_is_integer(id)) {
            st = gr_fail(GR_ERR_FORMAT, "%s: %s: \"image_id\" must be an integer", ds->path, where);
        } else if (!(st = required_string(ds, a, "caption", where, &cap))) {
            id_file *f = find_id(ids, ni, json_integer_value(id));
            if (!f) st = gr_fail(GR_ERR_FORMAT, "%s: %s: image_id %lld is not in \"images\"", ds->path, where,
                                 (long long)json_integer_value(id));
            else f->n_caps++;
        }
    }
    if (!st && group) {
        for (size_t i = 0; i < ni && !st; i++)
            if (ids[i].n_caps && !(ids[i].caps = arena_alloc(ds, ids[i].n_caps * sizeof(char *)))) st = oom(ds);
        for (size_t i = 0; i < ni; i++) ids[i].n_caps = 0;
    }
    char buf[32];
    for (size_t i = 0; i < na && !st; i++) {
        json_t *a = json_array_get(anns, i);
        int64_t id = json_integer_value(json_object_get(a, "image_id"));
        id_file *f = find_id(ids, ni, id);
        const char *cap = arena_str(ds, json_string_value(json_object_get(a, "caption")));
        if (!cap) st = oom(ds);
        else if (group) f->caps[f->n_caps++] = cap;
        else {
            gr_sample *s = push_sample(ds);
            const char **t = arena_alloc(ds, sizeof *t);
            snprintf(buf, sizeof buf, "%lld", (long long)id);
            if (!s || !t || !(s->image = image_path(ds, f->file)) || !(s->image_key = arena_str(ds, buf))) {
                st = oom(ds);
                break;
            }
            t[0] = cap;
            s->texts = t;
            s->n_texts = 1;
            s->image_id = id;
        }
    }
    if (!st && group) {
        for (size_t i = 0; i < ni && !st; i++) {
            if (!ids[i].n_caps) continue;
            gr_sample *s = push_sample(ds);
            snprintf(buf, sizeof buf, "%lld", (long long)ids[i].id);
            if (!s || !(s->image = image_path(ds, ids[i].file)) || !(s->image_key = arena_str(ds, buf))) st = oom(ds);
            else {
                s->texts = ids[i].caps;
                s->n_texts = (int)ids[i].n_caps;
                s->image_id = ids[i].id;
            }
        }
    }
    free(ids);
    return st;
}

/* ---- LAVIS Karpathy split ----------------------------------------------------------------- */

static gr_status read_karpathy(gr_dataset *ds, json_t *root)
{
    if (!json_is_array(root)) return gr_fail(GR_ERR_FORMAT, "%s: expected a list of {\"image\", \"caption\"}", ds->path);
    char where[64];
    for (size_t i = 0; i < json_array_size(root); i++) {
        json_t *e = json_array_get(root, i);
        snprintf(where, sizeof where, "entry %zu", i);
        const char *image = NULL;
        gr_status st = required_string(ds, e, "image", where, &image);
        if (st) return st;
        json_t *cap = json_object_get(e, "caption");
        if (!cap) return gr_fail(GR_ERR_FORMAT, "%s: %s: missing \"caption\"", ds->path, where);
        gr_sample *s = push_sample(ds);
        if (!s || !(s->image = image_path(ds, image))) return oom(ds);
        if ((st = set_texts(ds, s, cap, "caption", where)) ||
            (st = set_image_id(ds, s, json_object_get(e, "image_id"), where)))
            return st;
    }
    return GR_OK;
}

/* ---- VQAv2 -------------------------------------------------------------------------------- */

typedef struct qa { int64_t qid; json_t *ann; } qa;

static int cmp_qa(const void *a, const void *b)
{
    int64_t x = ((const qa *)a)->qid, y = ((const qa *)b)->qid;
    return (x > y) - (x < y);
}

/* Expands the image file pattern for one image. */
static gr_status vqa_image_name(const gr_dataset *ds, const char *pattern, const char *subtype, int64_t id,
                                char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = pattern; *p;) {
        char piece[64];
        const char *add = NULL;
        if (strncmp(p, "{data_subtype}", 14) == 0) add = subtype, p += 14;
        else if (strncmp(p, "{image_id}", 10) == 0) snprintf(piece, sizeof piece, "%lld", (long long)id), add = piece, p += 10;
        else if (strncmp(p, "{image_id:012}", 14) == 0) snprintf(piece, sizeof piece, "%012lld", (long long)id), add = piece, p += 14;
        else piece[0] = *p++, piece[1] = '\0', add = piece;
        size_t n = strlen(add);
        if (o + n + 1 > cap) return gr_fail(GR_ERR_INVALID, "%s: image file pattern gives a too long name", ds->path);
        memcpy(out + o, add, n);
        o += n;
    }
    out[o] = '\0';
    return GR_OK;
}

static gr_status read_vqa(gr_dataset *ds, json_t *qroot, const gr_dataset_spec *spec)
{
    gr_status st = GR_OK;
    json_t *qs = get_array(ds, ds->path, qroot, "questions", &st);
    if (st) return st;
    const char *subtype = json_string_value(json_object_get(qroot, "data_subtype"));
    const char *pattern = spec->image_pattern ? spec->image_pattern : "COCO_{data_subtype}_{image_id:012}.jpg";
    if (!subtype && strstr(pattern, "{data_subtype}"))
        return gr_fail(GR_ERR_FORMAT, "%s: missing \"data_subtype\" needed by the image file pattern", ds->path);
    json_t *aroot = NULL;
    qa *index = NULL;
    size_t nann = 0;
    if (spec->annotations) {
        if ((st = load_json(spec->annotations, &aroot))) return st;
        json_t *anns = get_array(ds, spec->annotations, aroot, "annotations", &st);
        if (st) goto done;
        nann = json_array_size(anns);
        index = malloc((nann ? nann : 1) * sizeof *index);
        if (!index) {
            st = oom(ds);
            goto done;
        }
        for (size_t i = 0; i < nann; i++) {
            json_t *a = json_array_get(anns, i), *qid = json_object_get(a, "question_id");
            if (!json_is_integer(qid)) {
                st = gr_fail(GR_ERR_FORMAT, "%s: annotations[%zu]: \"question_id\" must be an integer", spec->annotations, i);
                goto done;
            }
            if (!json_is_array(json_object_get(a, "answers"))) {
                st = gr_fail(GR_ERR_FORMAT, "%s: annotations[%zu]: \"answers\" must be a list", spec->annotations, i);
                goto done;
            }
            index[i].qid = json_integer_value(qid);
            index[i].ann = a;
        }
        qsort(index, nann, sizeof *index, cmp_qa);
    }
    char where[64], name[1024];
    for (size_t i = 0; i < json_array_size(qs); i++) {
        json_t *q = json_array_get(qs, i), *qid = json_object_get(q, "question_id"), *iid = json_object_get(q, "image_id");
        snprintf(where, sizeof where, "questions[%zu]", i);
        const char *question = NULL;
        if ((st = required_string(ds, q, "question", where, &question))) goto done;
        if (!json_is_integer(qid) || !json_is_integer(iid)) {
            st = gr_fail(GR_ERR_FORMAT, "%s: %s: \"question_id\" and \"image_id\" must be integers", ds->path, where);
            goto done;
        }
        gr_sample *s = push_sample(ds);
        if (!s) {
            st = oom(ds);
            goto done;
        }
        if ((st = vqa_image_name(ds, pattern, subtype ? subtype : "", json_integer_value(iid), name, sizeof name)) ||
            (st = set_image_id(ds, s, iid, where)))
            goto done;
        s->question_id = json_integer_value(qid);
        if (!(s->image = image_path(ds, name)) || !(s->question = arena_str(ds, question))) {
            st = oom(ds);
            goto done;
        }
        if (index) {
            qa key = {s->question_id, NULL};
            qa *hit = bsearch(&key, index, nann, sizeof *index, cmp_qa);
            if (!hit) {
                st = gr_fail(GR_ERR_FORMAT, "%s: question_id %lld has no annotation", spec->annotations,
                             (long long)s->question_id);
                goto done;
            }
            snprintf(where, sizeof where, "annotation of question_id %lld", (long long)s->question_id);
            if ((st = set_texts(ds, s, json_object_get(hit->ann, "answers"), "answers", where))) goto done;
            json_t *mc = json_object_get(hit->ann, "multiple_choice_answer");
            if (json_is_string(mc) && !(s->answer = arena_str(ds, json_string_value(mc)))) {
                st = oom(ds);
                goto done;
            }
        }
    }
done:
    free(index);
    json_decref(aroot);
    return st;
}

/* ---- JSONL -------------------------------------------------------------------------------- */

static gr_status read_jsonl(gr_dataset *ds)
{
    FILE *f = fopen(ds->path, "r");
    if (!f) return gr_fail(GR_ERR_IO, "%s: cannot open: %s", ds->path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    gr_status st = GR_OK;
    char where[64];
    for (size_t lineno = 1; (len = getline(&line, &cap, f)) >= 0; lineno++) {
        size_t k = 0;
        while (k < (size_t)len && isspace((unsigned char)line[k])) k++;
        if (k == (size_t)len) continue;
        snprintf(where, sizeof where, "line %zu", lineno);
        json_error_t err;
        json_t *e = json_loadb(line, (size_t)len, 0, &err);
        if (!e || !json_is_object(e)) {
            st = gr_fail(GR_ERR_FORMAT, "%s: %s: %s", ds->path, where, e ? "not a JSON object" : err.text);
            json_decref(e);
            break;
        }
        const char *image = NULL;
        gr_sample *s = NULL;
        json_t *q = json_object_get(e, "question"), *cap_v = json_object_get(e, "caption");
        if ((st = required_string(ds, e, "image", where, &image))) goto next;
        if (!(s = push_sample(ds)) || !(s->image = image_path(ds, image))) {
            st = oom(ds);
            goto next;
        }
        if (q) {
            const char *question = NULL;
            json_t *ans = json_object_get(e, "answers"), *qid = json_object_get(e, "question_id");
            if ((st = required_string(ds, e, "question", where, &question))) goto next;
            if (!(s->question = arena_str(ds, question))) {
                st = oom(ds);
                goto next;
            }
            if (ans && (st = set_texts(ds, s, ans, "answers", where))) goto next;
            if (json_is_integer(qid)) s->question_id = json_integer_value(qid);
            json_t *a = json_object_get(e, "answer");
            if (json_is_string(a)) s->answer = arena_str(ds, json_string_value(a));
            else if (s->n_texts) s->answer = s->texts[0];
            ds->vqa = 1;
        } else if (cap_v) {
            if ((st = set_texts(ds, s, cap_v, "caption", where))) goto next;
        } else {
            st = gr_fail(GR_ERR_FORMAT, "%s: %s: needs \"caption\" or \"question\"", ds->path, where);
            goto next;
        }
        st = set_image_id(ds, s, json_object_get(e, "image_id"), where);
    next:
        json_decref(e);
        if (st) break;
    }
    if (!st && ferror(f)) st = gr_fail(GR_ERR_IO, "%s: read error", ds->path);
    free(line);
    fclose(f);
    return st;
}

/* ---- public ------------------------------------------------------------------------------- */

gr_status gr_dataset_open(const gr_dataset_spec *spec, gr_dataset **out)
{
    *out = NULL;
    if (!spec->path) return gr_fail(GR_ERR_INVALID, "dataset: no annotation file given");
    gr_dataset *ds = calloc(1, sizeof *ds);
    if (!ds || !(ds->path = strdup(spec->path))) {
        free(ds);
        return gr_fail(GR_ERR_NOMEM, "%s: out of memory", spec->path);
    }
    if (spec->image_root) {
        ds->image_root = arena_str(ds, spec->image_root);
    } else {
        char *slash = strrchr(ds->path, '/');
        char *dir = strndup(ds->path, slash ? (size_t)(slash - ds->path) : 0);
        ds->image_root = dir ? arena_str(ds, dir) : NULL;
        free(dir);
    }
    gr_status st = ds->image_root ? GR_OK : oom(ds);
    json_t *root = NULL;
    if (!st) switch (spec->format) {
    case GR_DATASET_JSONL: st = read_jsonl(ds); break;
    case GR_DATASET_COCO_CAPTIONS:
    case GR_DATASET_KARPATHY:
    case GR_DATASET_VQAV2:
        if ((st = load_json(ds->path, &root))) break;
        if (spec->format == GR_DATASET_COCO_CAPTIONS) st = read_coco(ds, root, spec->group_captions);
        else if (spec->format == GR_DATASET_KARPATHY) st = read_karpathy(ds, root);
        else ds->vqa = 1, st = read_vqa(ds, root, spec);
        break;
    default: st = gr_fail(GR_ERR_INVALID, "%s: unknown dataset format %d", ds->path, (int)spec->format);
    }
    json_decref(root);
    if (!st && ds->n == 0) st = gr_fail(GR_ERR_FORMAT, "%s: no samples", ds->path);
    if (st) {
        gr_dataset_free(ds);
        return st;
    }
    *out = ds;
    return GR_OK;
}

size_t gr_dataset_size(const gr_dataset *ds) { return ds->n; }
const gr_sample *gr_dataset_sample(const gr_dataset *ds, size_t i) { return i < ds->n ? &ds->samples[i] : NULL; }
int gr_dataset_is_vqa(const gr_dataset *ds) { return ds->vqa; }
const char *gr_dataset_path(const gr_dataset *ds) { return ds->path; }

void gr_dataset_free(gr_dataset *ds)
{
    if (!ds) return;
    for (arena_block *b = ds->blocks, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(ds->samples);
    free(ds->path);
    free(ds);
}
