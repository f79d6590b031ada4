/* metrics.jsonl reader: strict per line, tolerant of one torn last line. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "base/fsutil.h"
#include "base/log.h"
#include "run/runlog.h"
#include "run/runlog_internal.h"

gr_status gr_json_parse_record(const char *path, long line, const char *text, size_t len, gr_json_record *rec)
{
    memset(rec, 0, sizeof *rec);
    json_error_t err;
    json_t *o = json_loadb(text, len, 0, &err);
    if (!o) return gr_fail(GR_ERR_FORMAT, "%s:%ld: not JSON: %s", path, line, len ? err.text : "empty line");
    if (!json_is_object(o)) {
        json_decref(o);
        return gr_fail(GR_ERR_FORMAT, "%s:%ld: a record must be a JSON object", path, line);
    }
    const char *type = json_string_value(json_object_get(o, "type"));
    json_t *step = json_object_get(o, "step");
    if (!type || (strcmp(type, "step") && strcmp(type, "eval") && strcmp(type, "event"))) {
        json_decref(o);
        return gr_fail(GR_ERR_FORMAT, "%s:%ld: \"type\" must be \"step\", \"eval\" or \"event\"", path, line);
    }
    if (!json_is_integer(step) || json_integer_value(step) < 0) {
        json_decref(o);
        return gr_fail(GR_ERR_FORMAT, "%s:%ld: \"step\" must be a non-negative integer", path, line);
    }
    rec->obj = o;
    rec->kind = strcmp(type, "step") == 0 ? GR_REC_STEP : strcmp(type, "eval") == 0 ? GR_REC_EVAL : GR_REC_EVENT;
    rec->step = json_integer_value(step);
    json_t *ft = json_object_get(o, "flops_total");
    if (json_is_number(ft)) {
        rec->has_flops_total = 1;
        rec->flops_total = json_number_value(ft);
    }
    return GR_OK;
}

/* ---- building the result ------------------------------------------------------------------ */

typedef struct reader {
    const char *path;
    long line;
    gr_run_data *d;
    size_t steps_cap, stages_cap, series_cap, events_cap;
} reader;

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 1;
    size_t n = *cap ? *cap * 2 : 16;
    while (n < need) n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q) return 0;
    *p = q;
    *cap = n;
    return 1;
}

static gr_status nomem(reader *r) { return gr_fail(GR_ERR_NOMEM, "%s:%ld: out of memory", r->path, r->line); }

/* A number, or null for a value that was not finite when written. */
static gr_status get_number(reader *r, json_t *o, const char *what, const char *key, double *v)
{
    json_t *j = json_object_get(o, key);
    if (json_is_number(j)) { *v = json_number_value(j); return GR_OK; }
    if (json_is_null(j)) { *v = NAN; return GR_OK; }
    return gr_fail(GR_ERR_FORMAT, "%s:%ld: %s record: \"%s\" %s", r->path, r->line, what, key,
                   j ? "must be a number or null" : "is missing");
}

static gr_status get_string(reader *r, json_t *o, const char *what, const char *key, const char **v)
{
    json_t *j = json_object_get(o, key);
    if (json_is_string(j)) { *v = json_string_value(j); return GR_OK; }
    return gr_fail(GR_ERR_FORMAT, "%s:%ld: %s record: \"%s\" %s", r->path, r->line, what, key,
                   j ? "must be a string" : "is missing");
}

static gr_status add_step(reader *r, const gr_json_record *rec)
{
    gr_run_data *d = r->d;
    json_t *o = rec->obj;
    gr_step_row row = {.step = rec->step, .stage = -1, .time = NAN};
    gr_status st;
    if ((st = get_number(r, o, "step", "epoch", &row.epoch)) || (st = get_number(r, o, "step", "loss", &row.loss)) ||
        (st = get_number(r, o, "step", "lr", &row.lr)) || (st = get_number(r, o, "step", "grad_norm", &row.grad_norm)) ||
        (st = get_number(r, o, "step", "tokens_per_s", &row.tokens_per_s)) ||
        (st = get_number(r, o, "step", "examples_per_s", &row.examples_per_s)) ||
        (st = get_number(r, o, "step", "flops_total", &row.flops_total)))
        return st;
    json_t *fl = json_object_get(o, "flops");
    if (!json_is_object(fl)) return gr_fail(GR_ERR_FORMAT, "%s:%ld: step record: \"flops\" must be an object", r->path, r->line);
    if ((st = get_number(r, fl, "step flops", "fwd_frozen", &row.flops.fwd_frozen)) ||
        (st = get_number(r, fl, "step flops", "fwd_trainable", &row.flops.fwd_trainable)) ||
        (st = get_number(r, fl, "step flops", "bwd_input", &row.flops.bwd_input)) ||
        (st = get_number(r, fl, "step flops", "bwd_param", &row.flops.bwd_param)))
        return st;
    if (json_object_get(o, "time") && (st = get_number(r, o, "step", "time", &row.time))) return st;
    json_t *stage = json_object_get(o, "stage");
    if (stage) {
        if (!json_is_string(stage)) return gr_fail(GR_ERR_FORMAT, "%s:%ld: step record: \"stage\" must be a string", r->path, r->line);
        const char *name = json_string_value(stage);
        size_t i = 0;
        while (i < d->stage_count && strcmp(d->stages[i], name) != 0) i++;
        if (i == d->stage_count) {
            if (!grow((void **)&d->stages, &r->stages_cap, i + 1, sizeof *d->stages)) return nomem(r);
            if (!(d->stages[i] = strdup(name))) return nomem(r);
            d->stage_count++;
        }
        row.stage = (int)i;
    }
    if (!grow((void **)&d->steps, &r->steps_cap, d->step_count + 1, sizeof *d->steps)) return nomem(r);
    d->steps[d->step_count++] = row;
    return GR_OK;
}

static gr_series *find_or_add_series(reader *r, const char *split, const char *metric)
{
    gr_run_data *d = r->d;
    for (size_t i = 0; i < d->series_count; i++)
        if (strcmp(d->series[i].split, split) == 0 && strcmp(d->series[i].metric, metric) == 0) return &d->series[i];
    if (!grow((void **)&d->series, &r->series_cap, d->series_count + 1, sizeof *d->series)) return NULL;
    gr_series *s = &d->series[d->series_count];
    memset(s, 0, sizeof *s);
    s->split = strdup(split);
    s->metric = strdup(metric);
    d->series_count++; /* counted even when strdup failed, so free releases what was made */
    return s->split && s->metric ? s : NULL;
}

static gr_status series_push(gr_series *s, int64_t step, double epoch, double flops, double value)
{
    /* Capacity is implicit: arrays double whenever the count reaches a power of two. */
    size_t n = s->count;
    if ((n & (n - 1)) == 0) {
        size_t cap = n ? n * 2 : 1;
        int64_t *a = realloc(s->step, cap * sizeof *a);
        if (a) s->step = a;
        double *b = realloc(s->epoch, cap * sizeof *b);
        if (b) s->epoch = b;
        double *c = realloc(s->flops, cap * sizeof *c);
        if (c) s->flops = c;
        double *e = realloc(s->value, cap * sizeof *e);
        if (e) s->value = e;
        if (!a || !b || !c || !e) return GR_ERR_NOMEM;
    }
    s->step[n] = step;
    s->epoch[n] = epoch;
    s->flops[n] = flops;
    s->value[n] = value;
    s->count = n + 1;
    return GR_OK;
}

static gr_status add_eval(reader *r, const gr_json_record *rec)
{
    json_t *o = rec->obj;
    const char *split;
    double epoch, flops;
    gr_status st;
    if ((st = get_string(r, o, "eval", "split", &split)) || (st = get_number(r, o, "eval", "epoch", &epoch)) ||
        (st = get_number(r, o, "eval", "flops_total", &flops)))
        return st;
    json_t *m = json_object_get(o, "metrics");
    if (!json_is_object(m)) return gr_fail(GR_ERR_FORMAT, "%s:%ld: eval record: \"metrics\" must be an object", r->path, r->line);
    const char *name;
    json_t *v;
    json_object_foreach(m, name, v) {
        double value;
        if ((st = get_number(r, m, "eval metrics", name, &value))) return st;
        gr_series *s = find_or_add_series(r, split, name);
        if (!s) return nomem(r);
        if (series_push(s, rec->step, epoch, flops, value) != GR_OK) return nomem(r);
    }
    return GR_OK;
}

static gr_status add_event(reader *r, const gr_json_record *rec)
{
    gr_run_data *d = r->d;
    json_t *o = rec->obj;
    const char *event, *message = "";
    double epoch;
    gr_status st;
    if ((st = get_string(r, o, "event", "event", &event)) || (st = get_number(r, o, "event", "epoch", &epoch))) return st;
    if (json_object_get(o, "message") && (st = get_string(r, o, "event", "message", &message))) return st;
    if (!grow((void **)&d->events, &r->events_cap, d->event_count + 1, sizeof *d->events)) return nomem(r);
    gr_event_row *e = &d->events[d->event_count];
    e->step = rec->step;
    e->epoch = epoch;
    e->event = strdup(event);
    e->message = strdup(message);
    d->event_count++;
    return e->event && e->message ? GR_OK : nomem(r);
}

static int is_json(const char *text, size_t len)
{
    json_t *j = json_loadb(text, len, 0, NULL);
    json_decref(j);
    return j != NULL;
}

gr_status gr_run_data_read(const char *path, gr_run_data **out)
{
    *out = NULL;
    /* an existing file is read as it is; anything else names a run directory */
    struct stat st_;
    int is_file = stat(path, &st_) == 0 && !S_ISDIR(st_.st_mode);
    char *file = is_file ? strdup(path) : gr_path_join(path, GR_RUN_METRICS);
    gr_run_data *d = calloc(1, sizeof *d);
    if (!file || !d) {
        free(file);
        free(d);
        return gr_fail(GR_ERR_NOMEM, "%s: out of memory", path);
    }
    d->path = file;
    char *data;
    size_t len;
    gr_status st = gr_read_file(file, &data, &len);
    if (st != GR_OK) { gr_run_data_free(d); return st; }
    reader r = {.path = file, .d = d};
    int64_t last_step = 0;
    for (size_t pos = 0; pos < len;) {
        char *nl = memchr(data + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - data) : len;
        r.line++;
        gr_json_record rec;
        st = gr_json_parse_record(file, r.line, data + pos, end - pos, &rec);
        if (st != GR_OK && !nl && !is_json(data + pos, end - pos)) {
            /* A line cut short by a kill: what was written before it is intact. */
            gr_log(GR_LOG_WARN, "%s:%ld: ignoring a torn last line", file, r.line);
            d->torn_tail = 1;
            st = GR_OK;
            break;
        }
        if (st == GR_OK && rec.step < last_step)
            st = gr_fail(GR_ERR_FORMAT, "%s:%ld: step %lld after step %lld (records out of order)", file, r.line,
                         (long long)rec.step, (long long)last_step);
        if (st == GR_OK) {
            last_step = rec.step;
            st = rec.kind == GR_REC_STEP ? add_step(&r, &rec) : rec.kind == GR_REC_EVAL ? add_eval(&r, &rec) : add_event(&r, &rec);
        }
        json_decref(rec.obj);
        if (st != GR_OK) break;
        pos = nl ? end + 1 : len;
    }
    free(data);
    if (st != GR_OK) { gr_run_data_free(d); return st; }
    *out = d;
    return GR_OK;
}

void gr_run_data_free(gr_run_data *d)
{
    if (!d) return;
    for (size_t i = 0; i < d->stage_count; i++) free(d->stages[i]);
    for (size_t i = 0; i < d->series_count; i++) {
        gr_series *s = &d->series[i];
        free(s->split); free(s->metric); free(s->step); free(s->epoch); free(s->flops); free(s->value);
    }
    for (size_t i = 0; i < d->event_count; i++) { free(d->events[i].event); free(d->events[i].message); }
    free(d->stages);
    free(d->series);
    free(d->events);
    free(d->steps);
    free(d->path);
    free(d);
}

const gr_series *gr_run_data_series(const gr_run_data *d, const char *split, const char *metric)
{
    for (size_t i = 0; i < d->series_count; i++)
        if ((!split || strcmp(d->series[i].split, split) == 0) && strcmp(d->series[i].metric, metric) == 0)
            return &d->series[i];
    return NULL;
}

int gr_metric_lower_is_better(const char *metric)
{
    return strstr(metric, "loss") || strstr(metric, "ppl") || strstr(metric, "perplexity");
}

long gr_series_first_reaching(const gr_series *s, double target)
{
    int lower = gr_metric_lower_is_better(s->metric);
    for (size_t i = 0; i < s->count; i++)
        if (lower ? s->value[i] <= target : s->value[i] >= target) return (long)i;
    return -1;
}
