/* safetensors reader (single file and sharded) and host-side writer.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON, then the data section.
 * Every tensor's bytes are addressed by data_offsets relative to the data section. Files are
 * mmap'd read-only and tensors stay in their stored dtype: a checkpoint costs address space,
 * not memory, until a tensor is read.
 *
 * The reader is strict, because a wrong offset silently becomes wrong numbers: the header must
 * lie within the file and be <= 100 MB of valid UTF-8 JSON without duplicate keys; each tensor
 * needs a known dtype, a shape of non-negative integers, data_offsets inside the data section
 * whose span equals dtype size x numel, and no two tensors may share a byte. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/json_file.h"
#include "base/fsutil.h"
#include "graft/weights.h"
#include "io/safetensors.h"

typedef struct st_file {
    char *path;
    void *map;
    size_t size;
} st_file;

struct gr_weights {
    st_file *files;
    int nfiles;
    gr_weight_info *infos;
    int count, cap;
    int *sorted;          /* indices into infos, by name */
    char **meta;          /* key, value pairs */
    int nmeta;
};

/* ------------------------------------------------------------------ helpers ---- */

/* Offset of the first byte that breaks UTF-8 (overlongs, surrogates and > U+10FFFF included),
 * or len when the buffer is valid. */
static size_t utf8_invalid_at(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t n;
        unsigned min;
        if ((c & 0xe0) == 0xc0) { n = 1; min = 0x80; c &= 0x1f; }
        else if ((c & 0xf0) == 0xe0) { n = 2; min = 0x800; c &= 0x0f; }
        else if ((c & 0xf8) == 0xf0) { n = 3; min = 0x10000; c &= 0x07; }
        else return i;
        if (i + n >= len) return i; /* truncated sequence */
        for (size_t k = 1; k <= n; k++) {
            if (i + k >= len || (s[i + k] & 0xc0) != 0x80) return i;
            c = (c << 6) | (s[i + k] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return i;
        i += n + 1;
    }
    return len;
}

/* The printable ASCII run before offset `at` back to the last quote (the name being read). */
static void name_before(const unsigned char *s, size_t at, char *out, size_t cap)
{
    size_t start = at;
    while (start > 0 && s[start - 1] != '"' && at - start < 60) start--;
    size_t o = 0;
    for (size_t i = start; i < at && o + 1 < cap; i++)
        out[o++] = (s[i] >= 0x20 && s[i] < 0x7f) ? (char)s[i] : '?';
    out[o] = '\0';
}

static void shape_text(const int64_t *shape, int ndim, char *buf, size_t cap)
{
    size_t used = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (used < cap) snprintf(buf + used, cap - used, "]");
}

static gr_status add_info(gr_weights *w, const gr_weight_info *info)
{
    if (w->count == w->cap) {
        int cap = w->cap ? w->cap * 2 : 64;
        gr_weight_info *p = realloc(w->infos, (size_t)cap * sizeof *p);
        if (!p) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", info->file);
        w->infos = p;
        w->cap = cap;
    }
    w->infos[w->count++] = *info;
    return GR_OK;
}

/* ------------------------------------------------------------------ one file ---- */

/* Element sizes of the safetensors dtypes graft has no gr_dtype for (0: not a dtype). */
static size_t other_dtype_size(const char *d)
{
    static const struct { const char *name; size_t size; } t[] = {
        {"BOOL", 1}, {"I8", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"F8_E8M0", 1},
        {"I16", 2}, {"U16", 2}, {"U32", 4}, {"U64", 8}, {"C64", 8},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcmp(d, t[i].name) == 0) return t[i].size;
    return 0;
}

typedef struct span { size_t begin, end; int idx; } span;

static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static gr_status meta_add(gr_weights *w, const char *key, const char *value, const char *path)
{
    for (int i = 0; i < w->nmeta; i++)
        if (strcmp(w->meta[2 * i], key) == 0) return GR_OK; /* first shard wins */
    char **p = realloc(w->meta, (size_t)(w->nmeta + 1) * 2 * sizeof *p);
    if (!p) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", path);
    w->meta = p;
    p[2 * w->nmeta] = strdup(key);
    p[2 * w->nmeta + 1] = strdup(value);
    w->nmeta++;
    if (!p[2 * w->nmeta - 2] || !p[2 * w->nmeta - 1])
        return gr_fail(GR_ERR_NOMEM, "%s: out of memory", path);
    return GR_OK;
}

/* Parses one tensor entry of the header into info (name and file set by the caller). */
static gr_status parse_entry(const char *path, const char *name, json_t *e, const uint8_t *data,
                             size_t data_len, gr_weight_info *info, size_t *begin_out)
{
    if (!json_is_object(e))
        return gr_fail(GR_ERR_FORMAT, "%s: tensor '%s': header entry is not an object", path, name);
    json_t *jd = json_object_get(e, "dtype"), *js = json_object_get(e, "shape"),
           *jo = json_object_get(e, "data_offsets");
    if (!json_is_string(jd))
        return gr_fail(GR_ERR_FORMAT, "%s: tensor '%s': missing or non-string dtype", path, name);
    const char *dname = json_string_value(jd);
    int dt = gr_dtype_parse(dname);
    size_t esize = dt >= 0 ? gr_dtype_size((gr_dtype)dt) : other_dtype_size(dname);
    if (esize == 0)
        return gr_fail(GR_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%s'", path, name, dname);
    if (!json_is_array(js))
        return gr_fail(GR_ERR_FORMAT, "%s: tensor '%s': missing or non-array shape", path, name);
    size_t nd = json_array_size(js);
    if (nd > GR_MAX_DIMS)
        return gr_fail(GR_ERR_UNSUPPORTED, "%s: tensor '%s': %zu dimensions (at most %d supported)",
                       path, name, nd, GR_MAX_DIMS);
    /* A dtype of the spec that graft does not compute with (BOOL, I8, F8_*...) is checked like
     * any other and marked with dtype = GR_DTYPE_COUNT: opening succeeds (HF ignores buffers a
     * model does not use), asking for the tensor fails with its dtype named. */
    info->dtype = dt >= 0 ? (gr_dtype)dt : GR_DTYPE_COUNT;
    info->ndim = (int)nd;
    uint64_t numel = 1;
    int overflow = 0;
    for (size_t i = 0; i < nd; i++) {
        json_t *d = json_array_get(js, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return gr_fail(GR_ERR_FORMAT, "%s: tensor '%s': shape[%zu] is not a non-negative integer",
                           path, name, i);
        info->shape[i] = (int64_t)json_integer_value(d);
        uint64_t dim = (uint64_t)info->shape[i];
        if (dim && numel > UINT64_MAX / dim) overflow = 1;
        else numel *= dim;
    }
    if (!json_is_array(jo) || json_array_size(jo) != 2 || !json_is_integer(json_array_get(jo, 0)) ||
        !json_is_integer(json_array_get(jo, 1)))
        return gr_fail(GR_ERR_FORMAT, "%s: tensor '%s': data_offsets must be two integers", path, name);
    json_int_t b = json_integer_value(json_array_get(jo, 0)), en = json_integer_value(json_array_get(jo, 1));
    if (b < 0 || en < b)
        return gr_fail(GR_ERR_FORMAT, "%s: tensor '%s': data_offsets [%lld, %lld] are not ordered",
                       path, name, (long long)b, (long long)en);
    if ((uint64_t)en > data_len)
        return gr_fail(GR_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets [%lld, %lld] run past the end of the data "
                       "section (%zu bytes; file truncated?)",
                       path, name, (long long)b, (long long)en, data_len);
    char sh[160];
    shape_text(info->shape, info->ndim, sh, sizeof sh);
    if (overflow || numel > UINT64_MAX / esize)
        return gr_fail(GR_ERR_FORMAT, "%s: tensor '%s': shape %s has too many elements", path, name, sh);
    if (numel * esize != (uint64_t)(en - b))
        return gr_fail(GR_ERR_FORMAT,
                       "%s: tensor '%s': %s x %s needs %llu bytes but data_offsets [%lld, %lld] span %lld",
                       path, name, dname, sh, (unsigned long long)(numel * esize), (long long)b,
                       (long long)en, (long long)(en - b));
    info->data = data + b;
    info->nbytes = (size_t)(en - b);
    *begin_out = (size_t)b;
    return GR_OK;
}

static gr_status open_file(gr_weights *w, const char *path, int *first_info)
{
    *first_info = w->count;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return gr_fail(errno == ENOENT ? GR_ERR_NOT_FOUND : GR_ERR_IO, "%s: cannot open: %s",
                               path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return gr_fail(GR_ERR_IO, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    if (size < 8) {
        close(fd);
        return gr_fail(GR_ERR_FORMAT, "%s: truncated: %zu bytes, too short for the 8-byte header length",
                       path, size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return gr_fail(GR_ERR_IO, "%s: cannot mmap: %s", path, strerror(errno));

    st_file *files = realloc(w->files, (size_t)(w->nfiles + 1) * sizeof *files);
    if (!files) { munmap(map, size); return gr_fail(GR_ERR_NOMEM, "%s: out of memory", path); }
    w->files = files;
    st_file *f = &files[w->nfiles];
    f->path = strdup(path);
    f->map = map;
    f->size = size;
    w->nfiles++;
    if (!f->path) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", path);

    const uint8_t *bytes = map;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | bytes[i];
    if (n > GR_SAFETENSORS_MAX_HEADER)
        return gr_fail(GR_ERR_FORMAT, "%s: header length %llu exceeds the 100 MB limit", path,
                       (unsigned long long)n);
    if (n > size - 8)
        return gr_fail(GR_ERR_FORMAT,
                       "%s: header length %llu runs past the end of the file (%zu bytes; truncated?)",
                       path, (unsigned long long)n, size);
    const unsigned char *hdr = bytes + 8;
    size_t bad = utf8_invalid_at(hdr, (size_t)n);
    if (bad < n) {
        char before[64];
        name_before(hdr, bad, before, sizeof before);
        return gr_fail(GR_ERR_FORMAT, "%s: header byte %zu: invalid UTF-8 in the name starting \"%s\"",
                       path, bad + 8, before);
    }
    json_error_t jerr;
    json_t *root = json_loadb((const char *)hdr, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return gr_fail(GR_ERR_FORMAT, "%s: header is not valid JSON: %s (header byte %d)", path,
                       jerr.text, jerr.position);
    if (!json_is_object(root)) {
        json_decref(root);
        return gr_fail(GR_ERR_FORMAT, "%s: header is not a JSON object", path);
    }
    const uint8_t *data = bytes + 8 + n;
    size_t data_len = size - 8 - (size_t)n;
    size_t ntensors = json_object_size(root);
    span *spans = calloc(ntensors ? ntensors : 1, sizeof *spans);
    if (!spans) { json_decref(root); return gr_fail(GR_ERR_NOMEM, "%s: out of memory", path); }
    int nspans = 0;
    gr_status s = GR_OK;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(val)) {
                s = gr_fail(GR_ERR_FORMAT, "%s: __metadata__ is not an object", path);
                break;
            }
            const char *mk;
            json_t *mv;
            json_object_foreach(val, mk, mv) {
                if (!json_is_string(mv)) {
                    s = gr_fail(GR_ERR_FORMAT, "%s: __metadata__ value '%s' is not a string", path, mk);
                    break;
                }
                if ((s = meta_add(w, mk, json_string_value(mv), path)) != GR_OK) break;
            }
            if (s != GR_OK) break;
            continue;
        }
        if (key[0] == '\0') { s = gr_fail(GR_ERR_FORMAT, "%s: a tensor has an empty name", path); break; }
        gr_weight_info info;
        memset(&info, 0, sizeof info);
        size_t begin = 0;
        if ((s = parse_entry(path, key, val, data, data_len, &info, &begin)) != GR_OK) break;
        info.name = strdup(key);
        info.file = f->path;
        if (!info.name) { s = gr_fail(GR_ERR_NOMEM, "%s: out of memory", path); break; }
        if ((s = add_info(w, &info)) != GR_OK) { free((char *)info.name); break; }
        spans[nspans].begin = begin;
        spans[nspans].end = begin + info.nbytes;
        spans[nspans].idx = w->count - 1;
        nspans++;
    }
    json_decref(root);
    if (s == GR_OK) {
        qsort(spans, (size_t)nspans, sizeof *spans, span_cmp);
        size_t prev_end = 0;
        int prev = -1;
        for (int i = 0; i < nspans; i++) {
            if (spans[i].begin == spans[i].end) continue; /* empty tensors own no bytes */
            if (prev >= 0 && spans[i].begin < prev_end) {
                s = gr_fail(GR_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap (bytes %zu..%zu)", path,
                            w->infos[spans[prev].idx].name, w->infos[spans[i].idx].name,
                            spans[i].begin, prev_end < spans[i].end ? prev_end : spans[i].end);
                break;
            }
            prev_end = spans[i].end;
            prev = i;
        }
    }
    free(spans);
    return s;
}

/* ------------------------------------------------------------------ lookup ---- */

static int name_cmp(const void *a, const void *b, void *arg)
{
    const gr_weights *w = arg;
    return strcmp(w->infos[*(const int *)a].name, w->infos[*(const int *)b].name);
}

static gr_status build_index(gr_weights *w)
{
    w->sorted = malloc((size_t)(w->count ? w->count : 1) * sizeof *w->sorted);
    if (!w->sorted) return gr_fail(GR_ERR_NOMEM, "out of memory indexing tensors");
    for (int i = 0; i < w->count; i++) w->sorted[i] = i;
    qsort_r(w->sorted, (size_t)w->count, sizeof *w->sorted, name_cmp, w);
    for (int i = 1; i < w->count; i++) {
        const gr_weight_info *a = &w->infos[w->sorted[i - 1]], *b = &w->infos[w->sorted[i]];
        if (strcmp(a->name, b->name) == 0)
            return gr_fail(GR_ERR_FORMAT, "%s: tensor '%s' is also stored in %s", b->file, b->name,
                           a->file);
    }
    return GR_OK;
}

const gr_weight_info *gr_weights_find(const gr_weights *w, const char *name)
{
    int lo = 0, hi = w->count - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const gr_weight_info *info = &w->infos[w->sorted[mid]];
        int c = strcmp(name, info->name);
        if (c == 0) return info;
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

int gr_weights_count(const gr_weights *w) { return w->count; }

const gr_weight_info *gr_weights_at(const gr_weights *w, int i)
{
    return (i >= 0 && i < w->count) ? &w->infos[i] : NULL;
}

const char *gr_weights_metadata(const gr_weights *w, const char *key)
{
    for (int i = 0; i < w->nmeta; i++)
        if (strcmp(w->meta[2 * i], key) == 0) return w->meta[2 * i + 1];
    return NULL;
}

void gr_weights_close(gr_weights *w)
{
    if (!w) return;
    for (int i = 0; i < w->count; i++) free((char *)w->infos[i].name);
    for (int i = 0; i < w->nfiles; i++) {
        munmap(w->files[i].map, w->files[i].size);
        free(w->files[i].path);
    }
    for (int i = 0; i < 2 * w->nmeta; i++) free(w->meta[i]);
    free(w->meta);
    free(w->files);
    free(w->infos);
    free(w->sorted);
    free(w);
}

const gr_weight_info *gr_weights_expect(const gr_weights *w, const char *name, int ndim,
                                        const int64_t *shape)
{
    const gr_weight_info *info = gr_weights_find(w, name);
    if (!info) {
        const char *where = w->nfiles == 1 ? w->files[0].path : "the checkpoint";
        if (w->nfiles > 1) {
            /* name the directory of the shards */
            gr_fail(GR_ERR_NOT_FOUND, "%s: missing tensor '%s' (sharded checkpoint, %d files)",
                    w->files[0].path, name, w->nfiles);
        } else {
            gr_fail(GR_ERR_NOT_FOUND, "%s: missing tensor '%s'", where, name);
        }
        return NULL;
    }
    if (info->dtype == GR_DTYPE_COUNT) {
        gr_fail(GR_ERR_UNSUPPORTED, "%s: tensor '%s' is stored in a dtype graft cannot compute with "
                "(F32, F16, BF16, F64, I64, I32 and U8 are supported)", info->file, name);
        return NULL;
    }
    if (ndim < 0) return info;
    int same = info->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = info->shape[i] == shape[i];
    if (!same) {
        char want[160], got[160];
        shape_text(shape, ndim, want, sizeof want);
        shape_text(info->shape, info->ndim, got, sizeof got);
        gr_fail(GR_ERR_SHAPE, "%s: tensor '%s' has shape %s, the config implies %s", info->file, name,
                got, want);
        return NULL;
    }
    return info;
}

/* ------------------------------------------------------------------ sharded ---- */

static gr_status open_index(gr_weights *w, const char *dir, const char *index_path)
{
    json_t *root;
    gr_status ls = gr_json_load(index_path, JSON_REJECT_DUPLICATES, &root);
    if (ls != GR_OK) return ls;
    json_t *map = json_object_get(root, "weight_map");
    gr_status s = GR_OK;
    if (!json_is_object(map)) {
        s = gr_fail(GR_ERR_FORMAT, "%s: missing or non-object weight_map", index_path);
        goto done;
    }
    /* Open each shard once, in order of first mention. */
    const char *key;
    json_t *val;
    char **opened = NULL;
    int nopened = 0;
    json_object_foreach(map, key, val) {
        if (!json_is_string(val)) {
            s = gr_fail(GR_ERR_FORMAT, "%s: weight_map['%s'] is not a file name", index_path, key);
            break;
        }
        const char *shard = json_string_value(val);
        if (shard[0] == '\0' || shard[0] == '/' || strstr(shard, "..")) {
            s = gr_fail(GR_ERR_FORMAT, "%s: weight_map['%s'] = '%s' is not a file inside %s", index_path,
                        key, shard, dir);
            break;
        }
        int seen = 0;
        for (int i = 0; i < nopened && !seen; i++) seen = strcmp(opened[i], shard) == 0;
        if (seen) continue;
        char **p = realloc(opened, (size_t)(nopened + 1) * sizeof *p);
        if (!p) { s = gr_fail(GR_ERR_NOMEM, "%s: out of memory", index_path); break; }
        opened = p;
        opened[nopened++] = (char *)shard;
        char *full = gr_path_join(dir, shard);
        if (!full) { s = gr_fail(GR_ERR_NOMEM, "%s: out of memory", index_path); break; }
        int first;
        s = open_file(w, full, &first);
        free(full);
        if (s != GR_OK) { gr_fail_context(s, "%s", index_path); break; }
    }
    free(opened);
    if (s == GR_OK) s = build_index(w);
    if (s == GR_OK) {
        /* Every mapped tensor must be in the shard the index names. */
        json_object_foreach(map, key, val) {
            const gr_weight_info *info = gr_weights_find(w, key);
            const char *shard = json_string_value(val);
            size_t fl = strlen(info ? info->file : ""), sl = strlen(shard);
            if (!info || fl < sl || strcmp(info->file + fl - sl, shard) != 0 ||
                (fl > sl && info->file[fl - sl - 1] != '/')) {
                s = gr_fail(GR_ERR_NOT_FOUND, "%s: tensor '%s' is mapped to %s, which does not contain it",
                            index_path, key, shard);
                break;
            }
        }
    }
done:
    json_decref(root);
    return s;
}

gr_status gr_weights_open(const char *path, gr_weights **out)
{
    *out = NULL;
    gr_weights *w = calloc(1, sizeof *w);
    if (!w) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", path);
    gr_status s;
    if (gr_is_dir(path)) {
        char *single = gr_path_join(path, "model.safetensors");
        char *index = gr_path_join(path, "model.safetensors.index.json");
        if (!single || !index) s = gr_fail(GR_ERR_NOMEM, "%s: out of memory", path);
        else if (gr_path_exists(single)) {
            int first;
            s = open_file(w, single, &first);
            if (s == GR_OK) s = build_index(w);
        } else if (gr_path_exists(index)) {
            s = open_index(w, path, index);
        } else {
            s = gr_fail(GR_ERR_NOT_FOUND, "%s: no model.safetensors or model.safetensors.index.json", path);
        }
        free(single);
        free(index);
    } else {
        int first;
        s = open_file(w, path, &first);
        if (s == GR_OK) s = build_index(w);
    }
    if (s != GR_OK) {
        gr_weights_close(w);
        return s;
    }
    *out = w;
    return GR_OK;
}

/* ------------------------------------------------------------------ writer ---- */

static gr_status write_all(int fd, const void *buf, size_t len, const char *path)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return gr_fail(GR_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        p += n;
        len -= (size_t)n;
    }
    return GR_OK;
}

gr_status gr_st_write_entries(const char *path, const gr_st_entry *entries, int count,
                              const char *const *metadata)
{
    json_t *root = json_object();
    if (!root) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", path);
    gr_status s = GR_OK;
    if (metadata && metadata[0]) {
        json_t *m = json_object();
        for (int i = 0; m && metadata[i] && metadata[i + 1]; i += 2)
            json_object_set_new(m, metadata[i], json_string(metadata[i + 1]));
        json_object_set_new(root, "__metadata__", m);
    }
    /* Data is laid out by decreasing element size (stable), so with the 8-byte aligned header
     * every tensor starts aligned to its element: readers may use the mapping in place. */
    size_t *sizes = calloc((size_t)(count ? count : 1), sizeof *sizes);
    size_t *offsets = calloc((size_t)(count ? count : 1), sizeof *offsets);
    int *order = calloc((size_t)(count ? count : 1), sizeof *order);
    if (!sizes || !offsets || !order) {
        free(sizes); free(offsets); free(order); json_decref(root);
        return gr_fail(GR_ERR_NOMEM, "%s: out of memory", path);
    }
    int no = 0;
    for (size_t esz = 8; esz >= 1; esz /= 2)
        for (int i = 0; i < count; i++)
            if (gr_dtype_size(entries[i].dtype) == esz) order[no++] = i;
    if (no != count) s = gr_fail(GR_ERR_INVALID, "%s: a tensor has an invalid dtype", path);
    size_t offset = 0;
    for (int k = 0; k < count && s == GR_OK; k++) {
        const gr_st_entry *e = &entries[order[k]];
        size_t n = gr_dtype_size(e->dtype);
        for (int d = 0; d < e->ndim; d++) n *= (size_t)e->shape[d];
        sizes[order[k]] = n;
        offsets[order[k]] = offset;
        offset += n;
    }
    for (int i = 0; i < count && s == GR_OK; i++) {
        const gr_st_entry *e = &entries[i];
        if (!e->name || !e->name[0] || strcmp(e->name, "__metadata__") == 0 ||
            utf8_invalid_at((const unsigned char *)e->name, strlen(e->name)) != strlen(e->name)) {
            s = gr_fail(GR_ERR_INVALID, "%s: tensor %d has an invalid name", path, i);
            break;
        }
        if (json_object_get(root, e->name)) {
            s = gr_fail(GR_ERR_INVALID, "%s: tensor '%s' is written twice", path, e->name);
            break;
        }
        json_t *shape = json_array();
        for (int d = 0; d < e->ndim; d++) json_array_append_new(shape, json_integer(e->shape[d]));
        json_t *ent = json_object();
        json_object_set_new(ent, "dtype", json_string(gr_dtype_name(e->dtype)));
        json_object_set_new(ent, "shape", shape);
        json_object_set_new(ent, "data_offsets", json_pack("[II]", (json_int_t)offsets[i],
                                                           (json_int_t)(offsets[i] + sizes[i])));
        json_object_set_new(root, e->name, ent);
    }
    free(offsets);
    char *hdr = s == GR_OK ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    if (s == GR_OK && !hdr) s = gr_fail(GR_ERR_NOMEM, "%s: out of memory", path);
    if (s != GR_OK) { free(sizes); free(order); free(hdr); return s; }

    size_t hlen = strlen(hdr), padded = (hlen + 7) / 8 * 8;
    size_t tl = strlen(path) + 32;
    char *tmp = malloc(tl);
    int fd = -1;
    if (tmp) {
        snprintf(tmp, tl, "%s.tmp.%ld", path, (long)getpid());
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    }
    if (fd < 0) {
        s = tmp ? gr_fail(GR_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno))
                : gr_fail(GR_ERR_NOMEM, "%s: out of memory", path);
        free(tmp); free(hdr); free(sizes); free(order);
        return s;
    }
    uint8_t lenbuf[8];
    for (int i = 0; i < 8; i++) lenbuf[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    s = write_all(fd, lenbuf, 8, tmp);
    if (s == GR_OK) s = write_all(fd, hdr, hlen, tmp);
    for (size_t i = hlen; s == GR_OK && i < padded; i++) s = write_all(fd, " ", 1, tmp);
    free(hdr);
    void *scratch = NULL;
    for (int k = 0; k < count && s == GR_OK; k++) {
        int i = order[k];
        const gr_st_entry *e = &entries[i];
        if (sizes[i] == 0) continue;
        if (e->data) {
            s = write_all(fd, e->data, sizes[i], tmp);
            continue;
        }
        void *p = realloc(scratch, sizes[i]);
        if (!p) { s = gr_fail(GR_ERR_NOMEM, "%s: tensor '%s': out of memory", path, e->name); break; }
        scratch = p;
        s = e->fill(e->user, i, scratch, sizes[i]);
        if (s == GR_OK) s = write_all(fd, scratch, sizes[i], tmp);
    }
    free(scratch);
    free(sizes);
    free(order);
    if (s == GR_OK && fsync(fd) != 0) s = gr_fail(GR_ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
    if (close(fd) != 0 && s == GR_OK) s = gr_fail(GR_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    if (s == GR_OK && rename(tmp, path) != 0)
        s = gr_fail(GR_ERR_IO, "%s: rename failed: %s", path, strerror(errno));
    if (s != GR_OK) unlink(tmp);
    free(tmp);
    return s;
}
