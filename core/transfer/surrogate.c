/* Surrogate layouts and `graft surrogate build` (see surrogate.h and docs/surrogate.md).
 *
 * The surrogate is written as a plain Hugging Face directory rather than as "the target plus a
 * layer list", so any HF loader builds it from scratch: its attention modules are numbered by
 * their new position, which is what rules out the original code's pitfall (a dropped-layer
 * model whose attention modules keep their old layer index). graft's own plugins index their
 * KV cache by position in the run order for the same reason (tests/surrogate checks both). */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fsutil.h"
#include "graft/weights.h"
#include "io/safetensors.h"
#include "transfer/surrogate.h"

/* ------------------------------------------------------------------ layout ---- */

gr_status gr_surrogate_parse_range(const char *text, const char *what, gr_surrogate_range *out)
{
    const char *p = text;
    long v[2];
    for (int i = 0; i < 2; i++) {
        if (!isdigit((unsigned char)*p))
            return gr_fail(GR_ERR_INVALID, "%s '%s': expected a:b with layer indices a < b", what, text);
        char *end;
        errno = 0;
        v[i] = strtol(p, &end, 10);
        if (errno || v[i] > INT_MAX / 2)
            return gr_fail(GR_ERR_INVALID, "%s '%s': layer index out of range", what, text);
        p = end;
        if (i == 0) {
            if (*p != ':') return gr_fail(GR_ERR_INVALID, "%s '%s': expected a:b with layer indices a < b", what, text);
            p++;
        }
    }
    if (*p) return gr_fail(GR_ERR_INVALID, "%s '%s': expected a:b with layer indices a < b", what, text);
    out->a = (int)v[0];
    out->b = (int)v[1];
    return GR_OK;
}

gr_status gr_surrogate_layout_make(int num_layers, const gr_surrogate_range *r, int count,
                                   gr_surrogate_layout *out)
{
    memset(out, 0, sizeof *out);
    if (num_layers < 1) return gr_fail(GR_ERR_INVALID, "surrogate: the target has %d layers", num_layers);
    for (int i = 0; i < count; i++) {
        if (r[i].a < 0 || r[i].a >= r[i].b)
            return gr_fail(GR_ERR_INVALID, "range %d:%d: need 0 <= a < b (translator a, layers a+1..b-1 dropped)",
                           r[i].a, r[i].b);
        if (r[i].b > num_layers)
            return gr_fail(GR_ERR_INVALID, "range %d:%d: b is past the target's %d layers", r[i].a, r[i].b, num_layers);
        for (int j = 0; j < i; j++)
            if (r[i].a < r[j].b && r[j].a < r[i].b)
                return gr_fail(GR_ERR_INVALID, "range %d:%d overlaps range %d:%d", r[i].a, r[i].b, r[j].a, r[j].b);
    }
    char *dropped = calloc((size_t)num_layers, 1);
    out->kept = malloc((size_t)num_layers * sizeof *out->kept);
    out->translators = malloc((size_t)(count ? count : 1) * sizeof *out->translators);
    if (!dropped || !out->kept || !out->translators) {
        free(dropped);
        gr_surrogate_layout_free(out);
        return gr_fail(GR_ERR_NOMEM, "surrogate: out of memory");
    }
    for (int i = 0; i < count; i++)
        for (int l = r[i].a + 1; l < r[i].b; l++) dropped[l] = 1;
    out->num_layers = num_layers;
    for (int l = 0; l < num_layers; l++)
        if (!dropped[l]) out->kept[out->num_kept++] = l;
    /* Translators in layer order, whatever order the ranges were given in. */
    for (int p = 0; p < out->num_kept; p++)
        for (int i = 0; i < count; i++)
            if (out->kept[p] == r[i].a) out->translators[out->num_translators++] = p;
    free(dropped);
    return GR_OK;
}

void gr_surrogate_layout_free(gr_surrogate_layout *l)
{
    if (!l) return;
    free(l->kept);
    free(l->translators);
    memset(l, 0, sizeof *l);
}

/* ------------------------------------------------------------------ names ---- */

/* The layer index of a tensor named "...layers.N.rest" (at the start or after a '.'); -1 for
 * tensors outside the layer stack. *idx_at / *idx_end get the digits' span. */
static long layer_of(const char *name, size_t *idx_at, size_t *idx_end)
{
    for (const char *p = strstr(name, "layers."); p; p = strstr(p + 1, "layers.")) {
        if (p != name && p[-1] != '.') continue;
        const char *d = p + 7, *e = d;
        while (isdigit((unsigned char)*e)) e++;
        if (e == d || *e != '.' || e - d > 9) continue;
        *idx_at = (size_t)(d - name);
        *idx_end = (size_t)(e - name);
        return strtol(d, NULL, 10);
    }
    return -1;
}

/* ------------------------------------------------------------------ build ---- */

/* Config keys holding one entry per decoder layer (transformers 4.5x: layer_types; Llama 4:
 * no_rope_layers). They are filtered like the layers. */
static const char *const per_layer_keys[] = {"layer_types", "no_rope_layers"};

/* Files a HF model directory carries besides its config and weights, copied unchanged. */
static const char *const side_files[] = {
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "vocab.json", "merges.txt", "tokenizer.model", "spiece.model", "generation_config.json",
    "chat_template.jinja", "chat_template.json",
};

static gr_status copy_file(const char *from, const char *to)
{
    char *data;
    size_t len;
    gr_status s = gr_read_file(from, &data, &len);
    if (s) return s;
    s = gr_write_file_atomic(to, data, len);
    free(data);
    return s;
}

static gr_status write_json(const char *path, const json_t *j)
{
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!text) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", path);
    size_t n = strlen(text);
    char *buf = realloc(text, n + 2);
    if (!buf) { free(text); return gr_fail(GR_ERR_NOMEM, "%s: out of memory", path); }
    buf[n] = '\n';
    buf[n + 1] = '\0';
    gr_status s = gr_write_file_atomic(path, buf, n + 1);
    free(buf);
    return s;
}

/* num_hidden_layers as the family's config holds it (HF default when absent). */
static gr_status config_layers(const json_t *cfg, const char *path, const char *family, int *L)
{
    const json_t *v = json_object_get(cfg, "num_hidden_layers");
    if (!v || json_is_null(v)) {
        *L = strcmp(family, "opt") == 0 ? 12 : 32;
        return GR_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 100000)
        return gr_fail(GR_ERR_INVALID, "%s: key 'num_hidden_layers' must be a positive integer", path);
    *L = (int)json_integer_value(v);
    return GR_OK;
}

static gr_status surrogate_config(json_t *cfg, const char *path, const gr_surrogate_layout *lay)
{
    if (json_object_set_new(cfg, "num_hidden_layers", json_integer(lay->num_kept)))
        return gr_fail(GR_ERR_NOMEM, "%s: out of memory", path);
    for (size_t k = 0; k < sizeof per_layer_keys / sizeof *per_layer_keys; k++) {
        json_t *v = json_object_get(cfg, per_layer_keys[k]);
        if (!v || json_is_null(v)) continue;
        if (!json_is_array(v) || json_array_size(v) != (size_t)lay->num_layers)
            return gr_fail(GR_ERR_FORMAT, "%s: key '%s' must list one entry per layer (%d)", path, per_layer_keys[k],
                           lay->num_layers);
        json_t *nv = json_array();
        for (int p = 0; nv && p < lay->num_kept; p++)
            json_array_append(nv, json_array_get(v, (size_t)lay->kept[p]));
        if (!nv || json_object_set_new(cfg, per_layer_keys[k], nv))
            return gr_fail(GR_ERR_NOMEM, "%s: out of memory", path);
    }
    return GR_OK;
}

static json_t *int_array(const int *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++) json_array_append_new(a, json_integer(v[i]));
    return a;
}

static gr_status write_meta(const char *path, const char *target_dir, const char *family,
                            const gr_surrogate_range *r, int count, const gr_surrogate_layout *lay)
{
    json_t *root = json_object(), *ranges = json_array(), *tr = json_array();
    for (int i = 0; ranges && i < count; i++) json_array_append_new(ranges, json_pack("[ii]", r[i].a, r[i].b));
    for (int i = 0; tr && i < lay->num_translators; i++)
        json_array_append_new(tr, json_pack("{s:i,s:i}", "position", lay->translators[i], "original_layer",
                                            lay->kept[lay->translators[i]]));
    json_t *kept = int_array(lay->kept, lay->num_kept);
    gr_status s = GR_OK;
    if (!root || !ranges || !tr || !kept) s = gr_fail(GR_ERR_NOMEM, "%s: out of memory", path);
    if (s == GR_OK) {
        json_object_set_new(root, "format", json_string("graft-surrogate-1"));
        json_object_set_new(root, "target", json_string(target_dir));
        json_object_set_new(root, "family", json_string(family));
        json_object_set_new(root, "target_num_layers", json_integer(lay->num_layers));
        json_object_set_new(root, "num_layers", json_integer(lay->num_kept));
        json_object_set_new(root, "ranges", ranges);
        json_object_set_new(root, "kept_layers", kept);
        json_object_set_new(root, "translators", tr);
        ranges = tr = kept = NULL;
        s = write_json(path, root);
    }
    json_decref(ranges);
    json_decref(tr);
    json_decref(kept);
    json_decref(root);
    return s;
}

/* The kept tensors under their new names, pointing into the target's mapping. */
static gr_status plan_tensors(const gr_weights *w, const char *wpath, const gr_surrogate_layout *lay,
                              gr_st_entry *entries, char **names, int *n_out)
{
    int *pos = malloc((size_t)lay->num_layers * sizeof *pos); /* original layer -> position */
    char *seen = calloc((size_t)lay->num_layers, 1);
    if (!pos || !seen) { free(pos); free(seen); return gr_fail(GR_ERR_NOMEM, "%s: out of memory", wpath); }
    for (int l = 0; l < lay->num_layers; l++) pos[l] = -1;
    for (int p = 0; p < lay->num_kept; p++) pos[lay->kept[p]] = p;
    gr_status s = GR_OK;
    int n = 0;
    for (int i = 0; i < gr_weights_count(w) && s == GR_OK; i++) {
        const gr_weight_info *t = gr_weights_at(w, i);
        size_t at, end;
        long l = layer_of(t->name, &at, &end);
        if (l >= lay->num_layers) {
            s = gr_fail(GR_ERR_FORMAT, "%s: tensor '%s' belongs to layer %ld but config.json has %d layers", t->file,
                        t->name, l, lay->num_layers);
            break;
        }
        if (l >= 0) seen[l] = 1;
        if (l >= 0 && pos[l] < 0) continue; /* dropped */
        size_t len = strlen(t->name);
        char *nm = malloc(len + 16);
        if (!nm) { s = gr_fail(GR_ERR_NOMEM, "%s: out of memory", wpath); break; }
        if (l >= 0)
            snprintf(nm, len + 16, "%.*s%d%s", (int)at, t->name, pos[l], t->name + end);
        else
            memcpy(nm, t->name, len + 1);
        names[n] = nm;
        gr_st_entry *e = &entries[n++];
        memset(e, 0, sizeof *e);
        e->name = nm;
        e->dtype = t->dtype;
        e->ndim = t->ndim;
        memcpy(e->shape, t->shape, sizeof e->shape);
        e->data = t->data;
    }
    /* A layer without any tensor means the names are not what this tool understands (a
     * renamed stack would otherwise be copied whole and silently keep every layer). */
    for (int l = 0; l < lay->num_layers && s == GR_OK; l++)
        if (!seen[l])
            s = gr_fail(GR_ERR_FORMAT, "%s: no tensor of decoder layer %d (expected names like "
                        "'model.layers.%d.*')", wpath, l, l);
    *n_out = n;
    free(pos);
    free(seen);
    return s;
}

static int same_dir(const char *a, const char *b)
{
    char ra[PATH_MAX], rb[PATH_MAX];
    if (!realpath(a, ra) || !realpath(b, rb)) return 0;
    return strcmp(ra, rb) == 0;
}

gr_status gr_surrogate_build(const char *target_dir, const gr_surrogate_range *ranges, int count,
                             const char *out_dir, gr_surrogate_layout *layout_out)
{
    if (layout_out) memset(layout_out, 0, sizeof *layout_out);
    char *cfg_path = gr_path_join(target_dir, "config.json");
    if (!cfg_path) return gr_fail(GR_ERR_NOMEM, "out of memory");
    json_error_t je;
    json_t *cfg = json_load_file(cfg_path, 0, &je);
    gr_status s = GR_OK;
    if (!cfg) {
        s = gr_path_exists(cfg_path) ? gr_fail(GR_ERR_FORMAT, "%s:%d: %s", cfg_path, je.line, je.text)
                                     : gr_fail(GR_ERR_NOT_FOUND, "%s: not found", cfg_path);
        free(cfg_path);
        return s;
    }
    const json_t *mt = json_object_get(cfg, "model_type");
    const char *family = json_is_string(mt) ? json_string_value(mt) : "";
    if (strcmp(family, "llama") != 0 && strcmp(family, "opt") != 0) {
        s = strcmp(family, "t5") == 0
                ? gr_fail(GR_ERR_UNSUPPORTED, "%s: model_type 't5': surrogates are built from decoder-only LMs "
                          "(llama, opt); T5 is not supported", cfg_path)
                : gr_fail(GR_ERR_UNSUPPORTED, "%s: model_type '%s': surrogates support llama and opt", cfg_path,
                          family);
        json_decref(cfg);
        free(cfg_path);
        return s;
    }
    int L = 0;
    gr_surrogate_layout lay;
    memset(&lay, 0, sizeof lay);
    gr_weights *w = NULL;
    gr_st_entry *entries = NULL;
    char **names = NULL;
    int n = 0;
    char *path = NULL;
    if ((s = config_layers(cfg, cfg_path, family, &L)) != GR_OK) goto done;
    if ((s = gr_surrogate_layout_make(L, ranges, count, &lay)) != GR_OK) {
        gr_fail_context(s, "%s", cfg_path);
        goto done;
    }
    if (same_dir(target_dir, out_dir)) {
        s = gr_fail(GR_ERR_INVALID, "%s: the output directory is the target itself", out_dir);
        goto done;
    }
    if ((s = gr_weights_open(target_dir, &w)) != GR_OK) goto done;
    int total = gr_weights_count(w);
    entries = calloc((size_t)(total ? total : 1), sizeof *entries);
    names = calloc((size_t)(total ? total : 1), sizeof *names);
    if (!entries || !names) { s = gr_fail(GR_ERR_NOMEM, "out of memory"); goto done; }
    if ((s = plan_tensors(w, target_dir, &lay, entries, names, &n)) != GR_OK) goto done;
    if ((s = gr_mkdirs(out_dir)) != GR_OK) goto done;
    /* One model.safetensors; a stale index from an earlier sharded build would shadow it. */
    free(path);
    path = gr_path_join(out_dir, "model.safetensors.index.json");
    if (path && gr_path_exists(path) && unlink(path) != 0) {
        s = gr_fail(GR_ERR_IO, "%s: cannot remove the stale index: %s", path, strerror(errno));
        goto done;
    }
    free(path);
    path = gr_path_join(out_dir, "model.safetensors");
    /* HF's loader insists on the "format" metadata of save_pretrained. */
    static const char *const meta[] = {"format", "pt", NULL};
    if (!path || (s = gr_st_write_entries(path, entries, n, meta)) != GR_OK) {
        if (!path) s = gr_fail(GR_ERR_NOMEM, "out of memory");
        goto done;
    }
    free(path);
    path = gr_path_join(out_dir, "config.json");
    if ((s = surrogate_config(cfg, cfg_path, &lay)) != GR_OK || (s = write_json(path, cfg)) != GR_OK) goto done;
    for (size_t i = 0; i < sizeof side_files / sizeof *side_files && s == GR_OK; i++) {
        char *from = gr_path_join(target_dir, side_files[i]), *to = gr_path_join(out_dir, side_files[i]);
        if (!from || !to) s = gr_fail(GR_ERR_NOMEM, "out of memory");
        else if (gr_path_exists(from)) s = copy_file(from, to);
        free(from);
        free(to);
    }
    if (s != GR_OK) goto done;
    free(path);
    path = gr_path_join(out_dir, "surrogate.json");
    if (!path) { s = gr_fail(GR_ERR_NOMEM, "out of memory"); goto done; }
    {
        char real[PATH_MAX];
        s = write_meta(path, realpath(target_dir, real) ? real : target_dir, family, ranges, count, &lay);
    }
done:
    for (int i = 0; names && i < n; i++) free(names[i]);
    free(names);
    free(entries);
    free(path);
    gr_weights_close(w);
    json_decref(cfg);
    free(cfg_path);
    if (s == GR_OK && layout_out) *layout_out = lay;
    else gr_surrogate_layout_free(&lay);
    return s;
}

/* ------------------------------------------------------------------ reading ---- */

static gr_status int_list(const json_t *a, const char *path, const char *key, int **out, int *n)
{
    if (!json_is_array(a)) return gr_fail(GR_ERR_FORMAT, "%s: key '%s' must be an array", path, key);
    *n = (int)json_array_size(a);
    *out = malloc((size_t)(*n ? *n : 1) * sizeof **out);
    if (!*out) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < *n; i++) {
        const json_t *v = json_array_get(a, (size_t)i);
        if (json_is_object(v)) v = json_object_get(v, "position");
        if (!json_is_integer(v)) return gr_fail(GR_ERR_FORMAT, "%s: %s[%d] must be an integer", path, key, i);
        (*out)[i] = (int)json_integer_value(v);
    }
    return GR_OK;
}

gr_status gr_surrogate_read_layout(const char *dir, gr_surrogate_layout *lay, char **out_target)
{
    memset(lay, 0, sizeof *lay);
    if (out_target) *out_target = NULL;
    char *path = gr_path_join(dir, "surrogate.json");
    if (!path) return gr_fail(GR_ERR_NOMEM, "out of memory");
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    gr_status s = GR_OK;
    if (!root) {
        s = gr_path_exists(path) ? gr_fail(GR_ERR_FORMAT, "%s:%d: %s", path, je.line, je.text)
                                 : gr_fail(GR_ERR_NOT_FOUND, "%s: not found (not a surrogate directory)", path);
        free(path);
        return s;
    }
    const json_t *L = json_object_get(root, "target_num_layers"), *t = json_object_get(root, "target");
    if (!json_is_integer(L) || json_integer_value(L) < 1 || json_integer_value(L) > 100000)
        s = gr_fail(GR_ERR_FORMAT, "%s: key 'target_num_layers' must be a positive integer", path);
    else if (!json_is_string(t))
        s = gr_fail(GR_ERR_FORMAT, "%s: key 'target' must be a string", path);
    if (s == GR_OK) {
        lay->num_layers = (int)json_integer_value(L);
        s = int_list(json_object_get(root, "kept_layers"), path, "kept_layers", &lay->kept, &lay->num_kept);
    }
    if (s == GR_OK)
        s = int_list(json_object_get(root, "translators"), path, "translators", &lay->translators,
                     &lay->num_translators);
    for (int i = 0; s == GR_OK && i < lay->num_kept; i++)
        if (lay->kept[i] < 0 || lay->kept[i] >= lay->num_layers || (i && lay->kept[i] <= lay->kept[i - 1]))
            s = gr_fail(GR_ERR_FORMAT, "%s: kept_layers[%d] = %d is not an ascending layer index below %d", path, i,
                        lay->kept[i], lay->num_layers);
    for (int i = 0; s == GR_OK && i < lay->num_translators; i++)
        if (lay->translators[i] < 0 || lay->translators[i] >= lay->num_kept)
            s = gr_fail(GR_ERR_FORMAT, "%s: translators[%d]: position %d outside the %d kept layers", path, i,
                        lay->translators[i], lay->num_kept);
    if (s == GR_OK && out_target && !(*out_target = strdup(json_string_value(t))))
        s = gr_fail(GR_ERR_NOMEM, "out of memory");
    if (s != GR_OK) gr_surrogate_layout_free(lay);
    json_decref(root);
    free(path);
    return s;
}
