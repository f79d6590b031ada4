/* report.json: a JSON object addressed by dotted paths, written atomically. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/json_file.h"
#include "base/fsutil.h"
#include "run/runlog.h"
#include "run/runlog_internal.h"

struct gr_report {
    json_t *root;
};

gr_report *gr_report_new(void)
{
    gr_report *r = malloc(sizeof *r);
    if (!r) return NULL;
    r->root = json_object();
    if (!r->root) { free(r); return NULL; }
    return r;
}

void gr_report_free(gr_report *r)
{
    if (!r) return;
    json_decref(r->root);
    free(r);
}

gr_status gr_report_load(const char *path, gr_report **out)
{
    *out = NULL;
    json_t *root;
    gr_status ls = gr_json_load(path, 0, &root);
    if (ls != GR_OK) return ls;
    if (!json_is_object(root)) {
        json_decref(root);
        return gr_fail(GR_ERR_FORMAT, "%s: a report must be a JSON object", path);
    }
    gr_report *r = malloc(sizeof *r);
    if (!r) { json_decref(root); return gr_fail(GR_ERR_NOMEM, "%s: out of memory", path); }
    r->root = root;
    *out = r;
    return GR_OK;
}

gr_status gr_report_write(const gr_report *r, const char *path)
{
    char *s = gr_json_dump_exact(r->root, JSON_INDENT(2));
    if (!s) return gr_fail(GR_ERR_NOMEM, "%s: cannot serialise the report", path);
    size_t n = strlen(s);
    char *text = realloc(s, n + 2);
    if (!text) { free(s); return gr_fail(GR_ERR_NOMEM, "%s: out of memory", path); }
    text[n] = '\n';
    text[n + 1] = '\0';
    gr_status st = gr_write_file_atomic(path, text, n + 1);
    free(text);
    return st;
}

/* Walks "a.b.c" to the object holding "c" (creating objects on the way when `create`), and
 * copies the last component into `leaf`. */
static gr_status walk(json_t *root, const char *path, int create, json_t **parent, char *leaf, size_t cap)
{
    if (!path || !path[0]) return gr_fail(GR_ERR_INVALID, "report: empty key path");
    json_t *cur = root;
    const char *p = path;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n == 0 || n >= cap) return gr_fail(GR_ERR_INVALID, "report: bad key path '%s'", path);
        memcpy(leaf, p, n);
        leaf[n] = '\0';
        if (!dot) break;
        json_t *next = json_object_get(cur, leaf);
        if (!next) {
            if (!create) return gr_fail(GR_ERR_NOT_FOUND, "report: no key '%s'", path);
            next = json_object();
            if (!next || json_object_set_new(cur, leaf, next) != 0) return gr_fail(GR_ERR_NOMEM, "report: out of memory");
        } else if (!json_is_object(next)) {
            return gr_fail(GR_ERR_FORMAT, "report: '%s': '%s' is not an object", path, leaf);
        }
        cur = next;
        p = dot + 1;
    }
    *parent = cur;
    return GR_OK;
}

static gr_status set(gr_report *r, const char *path, json_t *v)
{
    char leaf[256];
    json_t *parent;
    if (!v) return gr_fail(GR_ERR_INVALID, "report: '%s': value cannot be stored (invalid UTF-8?)", path ? path : "");
    gr_status st = walk(r->root, path, 1, &parent, leaf, sizeof leaf);
    if (st != GR_OK) { json_decref(v); return st; }
    if (json_object_set_new(parent, leaf, v) != 0) return gr_fail(GR_ERR_NOMEM, "report: out of memory");
    return GR_OK;
}

gr_status gr_report_set_number(gr_report *r, const char *path, double value) { return set(r, path, gr_json_number(value)); }
gr_status gr_report_set_int(gr_report *r, const char *path, int64_t value) { return set(r, path, json_integer(value)); }
gr_status gr_report_set_string(gr_report *r, const char *path, const char *value)
{
    return set(r, path, value ? json_string(value) : NULL);
}

static gr_status get(const gr_report *r, const char *path, json_t **v)
{
    char leaf[256];
    json_t *parent;
    gr_status st = walk(r->root, path, 0, &parent, leaf, sizeof leaf);
    if (st != GR_OK) return st;
    *v = json_object_get(parent, leaf);
    return *v ? GR_OK : gr_fail(GR_ERR_NOT_FOUND, "report: no key '%s'", path);
}

gr_status gr_report_get_number(const gr_report *r, const char *path, double *value)
{
    json_t *v;
    gr_status st = get(r, path, &v);
    if (st != GR_OK) return st;
    if (json_is_null(v)) { *value = NAN; return GR_OK; }
    if (!json_is_number(v)) return gr_fail(GR_ERR_FORMAT, "report: '%s' is not a number", path);
    *value = json_number_value(v);
    return GR_OK;
}

gr_status gr_report_get_string(const gr_report *r, const char *path, const char **value)
{
    json_t *v;
    gr_status st = get(r, path, &v);
    if (st != GR_OK) return st;
    if (!json_is_string(v)) return gr_fail(GR_ERR_FORMAT, "report: '%s' is not a string", path);
    *value = json_string_value(v);
    return GR_OK;
}

/* ---- filling from a log --------------------------------------------------------------------- */

static json_t *point(const gr_series *s, size_t i)
{
    json_t *o = json_object();
    if (!o) return NULL;
    json_object_set_new(o, "value", gr_json_number(s->value[i]));
    json_object_set_new(o, "step", json_integer(s->step[i]));
    json_object_set_new(o, "epoch", gr_json_number(s->epoch[i]));
    json_object_set_new(o, "flops", gr_json_number(s->flops[i]));
    return o;
}

/* Object `key` under `parent`, created when missing (and replacing a non-object). */
static json_t *child(json_t *parent, const char *key)
{
    json_t *c = json_object_get(parent, key);
    if (json_is_object(c)) return c;
    c = json_object();
    if (c && json_object_set_new(parent, key, c) != 0) return NULL;
    return c;
}

gr_status gr_report_fill_from_log(gr_report *r, const gr_run_data *d)
{
    json_t *final = child(r->root, "final"), *best = child(r->root, "best"), *totals = child(r->root, "totals");
    if (!final || !best || !totals) return gr_fail(GR_ERR_NOMEM, "report: out of memory");
    for (size_t i = 0; i < d->series_count; i++) {
        const gr_series *s = &d->series[i];
        if (s->count == 0) continue;
        json_t *fs = child(final, s->split), *bs = child(best, s->split);
        if (!fs || !bs) return gr_fail(GR_ERR_NOMEM, "report: out of memory");
        size_t b = SIZE_MAX;
        int lower = gr_metric_lower_is_better(s->metric);
        for (size_t k = 0; k < s->count; k++) {
            double v = s->value[k];
            if (isnan(v)) continue;
            if (b == SIZE_MAX || (lower ? v < s->value[b] : v > s->value[b])) b = k;
        }
        json_t *fp = point(s, s->count - 1), *bp = b == SIZE_MAX ? json_null() : point(s, b);
        if (!fp || !bp || json_object_set_new(fs, s->metric, fp) || json_object_set_new(bs, s->metric, bp))
            return gr_fail(GR_ERR_NOMEM, "report: out of memory");
    }
    int64_t skipped = 0;
    for (size_t i = 0; i < d->event_count; i++) skipped += strcmp(d->events[i].event, "skip_nonfinite") == 0;
    const gr_step_row *last = d->step_count ? &d->steps[d->step_count - 1] : NULL;
    json_object_set_new(totals, "steps", json_integer(last ? last->step : 0));
    json_object_set_new(totals, "epochs", last ? gr_json_number(last->epoch) : json_real(0));
    json_object_set_new(totals, "flops", last ? gr_json_number(last->flops_total) : json_real(0));
    json_object_set_new(totals, "skipped_steps", json_integer(skipped));
    return GR_OK;
}
