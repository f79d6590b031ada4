/* `graft verify` harness: opens MODEL_DIR (config.json + weights) and a case file, lets the
 * handler for the case's family compute, and compares every reference tensor.
 *
 * Output contract: one line per reference tensor, in case-file order, `NAME REL_ERR ok|FAIL`
 * with REL_ERR = ||out - ref|| / ||ref|| (accumulated in double; `inf` when nothing or a tensor
 * of another shape was reported); last line `verify: N passed, M failed`. Tolerances: < 1e-3
 * for gradients (`grad.*`, `*.grad.*`), < 1e-4 for other float tensors, integers exact. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json_file.h"
#include "base/fsutil.h"
#include "plugin/registry.h"
#include "verify/verify.h"

typedef struct vref {
    const gr_weight_info *ref;
    int reported;
    int ok;
    double err;
    char note[160];
} vref;

struct gr_verify_results {
    vref *refs;
    int count;
    char **inputs;
    int ninputs;
};

static int is_input(const gr_verify_run *run, const char *name)
{
    for (int i = 0; i < run->results->ninputs; i++)
        if (strcmp(run->results->inputs[i], name) == 0) return 1;
    return 0;
}

static vref *find_ref(gr_verify_run *run, const char *name)
{
    for (int i = 0; i < run->results->count; i++)
        if (strcmp(run->results->refs[i].ref->name, name) == 0) return &run->results->refs[i];
    return NULL;
}

static int is_float(gr_dtype dt) { return dt == GR_F32 || dt == GR_F16 || dt == GR_BF16 || dt == GR_F64; }

static int is_gradient(const char *name)
{
    return strncmp(name, "grad.", 5) == 0 || strstr(name, ".grad.") != NULL;
}

/* Reference element i as double. */
static double ref_at(const gr_weight_info *w, int64_t i)
{
    const unsigned char *p = w->data;
    switch (w->dtype) {
    case GR_F32: { float v; memcpy(&v, p + 4 * i, 4); return v; }
    case GR_F64: { double v; memcpy(&v, p + 8 * i, 8); return v; }
    case GR_F16: { uint16_t v; memcpy(&v, p + 2 * i, 2); return gr_f16_to_f32(v); }
    case GR_BF16: { uint16_t v; memcpy(&v, p + 2 * i, 2); return gr_bf16_to_f32(v); }
    case GR_I64: { int64_t v; memcpy(&v, p + 8 * i, 8); return (double)v; }
    case GR_I32: { int32_t v; memcpy(&v, p + 4 * i, 4); return v; }
    case GR_U8: return p[i];
    default: return NAN;
    }
}

static int64_t info_numel(const gr_weight_info *w)
{
    int64_t n = 1;
    for (int i = 0; i < w->ndim; i++) n *= w->shape[i];
    return n;
}

/* ---------------------------------------------------------------- handler API ---- */

const gr_weight_info *gr_verify_input(gr_verify_run *run, const char *name)
{
    const gr_weight_info *w = is_input(run, name) ? gr_weights_find(run->cases, name) : NULL;
    if (!w) {
        gr_ctx_fail(run->ctx, GR_ERR_NOT_FOUND, "%s: case file has no input '%s'", run->model_dir, name);
        return NULL;
    }
    return w;
}

gr_tensor *gr_verify_input_tensor(gr_verify_run *run, const char *name)
{
    const gr_weight_info *w = gr_verify_input(run, name);
    if (!w) return NULL;
    int64_t n = info_numel(w);
    if (is_float(w->dtype)) {
        float *f = malloc((size_t)(n + 1) * sizeof *f);
        if (!f) { gr_ctx_fail(run->ctx, GR_ERR_NOMEM, "%s: out of memory", name); return NULL; }
        for (int64_t i = 0; i < n; i++) f[i] = (float)ref_at(w, i);
        gr_tensor *t = gr_from_host(run->ctx, GR_F32, w->ndim, w->shape, f);
        free(f);
        return t;
    }
    int32_t *v = gr_verify_input_i32(run, name, NULL);
    if (!v) return NULL;
    gr_tensor *t = gr_from_host(run->ctx, GR_I32, w->ndim, w->shape, v);
    free(v);
    return t;
}

int32_t *gr_verify_input_i32(gr_verify_run *run, const char *name, int64_t *count)
{
    const gr_weight_info *w = gr_verify_input(run, name);
    if (!w) return NULL;
    int64_t n = info_numel(w);
    int32_t *v = malloc((size_t)(n + 1) * sizeof *v);
    if (!v) { gr_ctx_fail(run->ctx, GR_ERR_NOMEM, "%s: out of memory", name); return NULL; }
    for (int64_t i = 0; i < n; i++) {
        double d = ref_at(w, i);
        if (d != floor(d) || d < -2147483648.0 || d > 2147483647.0) {
            free(v);
            gr_ctx_fail(run->ctx, GR_ERR_FORMAT, "%s: case input '%s' element %lld is not an int32", w->file, name,
                        (long long)i);
            return NULL;
        }
        v[i] = (int32_t)d;
    }
    if (count) *count = n;
    return v;
}

int gr_verify_wants(gr_verify_run *run, const char *name) { return find_ref(run, name) != NULL; }

static void compare(vref *r, const double *out, int64_t n, const int64_t *shape, int ndim)
{
    const gr_weight_info *w = r->ref;
    r->reported = 1;
    r->ok = 0;
    r->err = INFINITY;
    int same = n == info_numel(w) && (shape == NULL || ndim == w->ndim);
    for (int i = 0; shape && same && i < ndim; i++) same = shape[i] == w->shape[i];
    if (!same) {
        snprintf(r->note, sizeof r->note, "computed %lld elements (%d dims) for a reference of %lld (%d dims)",
                 (long long)n, ndim, (long long)info_numel(w), w->ndim);
        return;
    }
    double num = 0, den = 0;
    int finite = 1, exact = 1;
    for (int64_t i = 0; i < n; i++) {
        double ref = ref_at(w, i), d = out[i] - ref;
        if (!isfinite(out[i])) finite = 0;
        if (out[i] != ref) exact = 0;
        num += d * d;
        den += ref * ref;
    }
    if (!finite) {
        snprintf(r->note, sizeof r->note, "non-finite values");
        r->err = NAN;
        return;
    }
    r->err = den > 0 ? sqrt(num) / sqrt(den) : sqrt(num);
    if (!is_float(w->dtype)) r->ok = exact;
    else r->ok = r->err < (is_gradient(w->name) ? 1e-3 : 1e-4);
}

gr_status gr_verify_report(gr_verify_run *run, const char *name, gr_tensor *t)
{
    vref *r = find_ref(run, name);
    if (!r) return GR_OK;
    if (!t) {
        r->reported = 1;
        r->ok = 0;
        r->err = INFINITY;
        snprintf(r->note, sizeof r->note, "no tensor computed");
        return GR_OK;
    }
    int64_t n = gr_numel(t);
    float *f = malloc((size_t)(n + 1) * sizeof *f);
    double *d = malloc((size_t)(n + 1) * sizeof *d);
    if (!f || !d) { free(f); free(d); return gr_ctx_fail(run->ctx, GR_ERR_NOMEM, "%s: out of memory", name); }
    gr_status s = GR_OK;
    if (t->dtype == GR_I32 || t->dtype == GR_I64) {
        void *raw = malloc((size_t)n * gr_dtype_size(t->dtype) + 1);
        s = raw ? gr_to_host(run->ctx, t, raw) : GR_ERR_NOMEM;
        for (int64_t i = 0; s == GR_OK && i < n; i++)
            d[i] = t->dtype == GR_I32 ? ((int32_t *)raw)[i] : (double)((int64_t *)raw)[i];
        free(raw);
    } else {
        s = gr_to_host_f32(run->ctx, t, f);
        for (int64_t i = 0; s == GR_OK && i < n; i++) d[i] = f[i];
    }
    if (s == GR_OK) compare(r, d, n, t->shape, t->ndim);
    free(f);
    free(d);
    return s;
}

gr_status gr_verify_report_i64(gr_verify_run *run, const char *name, const int64_t *v, int64_t n)
{
    vref *r = find_ref(run, name);
    if (!r) return GR_OK;
    double *d = malloc((size_t)(n + 1) * sizeof *d);
    if (!d) return gr_ctx_fail(run->ctx, GR_ERR_NOMEM, "%s: out of memory", name);
    for (int64_t i = 0; i < n; i++) d[i] = (double)v[i];
    compare(r, d, n, NULL, 0);
    free(d);
    return GR_OK;
}

/* ---------------------------------------------------------------- main ---- */

static gr_verify_handler handler_for(const char *family)
{
    if (strcmp(family, "opt") == 0 || strcmp(family, "t5") == 0 || strcmp(family, "llama") == 0)
        return gr_verify_language_model;
#ifdef GRAFT_HAVE_VERIFY_VISION
    if (strcmp(family, "clip_vision") == 0) return gr_verify_vision_tower;
#endif
#ifdef GRAFT_HAVE_VERIFY_BLIP2
    if (strcmp(family, "blip2") == 0) return gr_verify_blip2;
#endif
    return NULL;
}

static gr_status split_inputs(struct gr_verify_results *res, const char *list)
{
    if (!list || !*list) return GR_OK;
    char *copy = strdup(list);
    if (!copy) return gr_fail(GR_ERR_NOMEM, "out of memory");
    int n = 1;
    for (const char *p = list; *p; p++) n += *p == ',';
    res->inputs = calloc((size_t)n, sizeof *res->inputs);
    if (!res->inputs) { free(copy); return gr_fail(GR_ERR_NOMEM, "out of memory"); }
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        res->inputs[res->ninputs++] = strdup(tok);
    }
    free(copy);
    return GR_OK;
}

int gr_verify_main(const char *model_dir, const char *case_path, const char *backend_name)
{
    gr_verify_run run;
    struct gr_verify_results res;
    memset(&run, 0, sizeof run);
    memset(&res, 0, sizeof res);
    run.results = &res;
    run.model_dir = model_dir;
    char *config_path = gr_path_join(model_dir, "config.json");
    char *default_case = gr_path_join(model_dir, "case.safetensors");
    gr_backend *backend = NULL;
    gr_status s = (config_path && default_case) ? GR_OK : gr_fail(GR_ERR_NOMEM, "out of memory");
    int rc = 1, setup_ok = 0;
    if (!case_path) case_path = default_case;
    run.config_path = config_path;

    if (s == GR_OK) {
        s = gr_json_load_object(config_path, JSON_REJECT_DUPLICATES, &run.config);
    }
    if (s == GR_OK) s = gr_weights_open(case_path, &run.cases);
    if (s == GR_OK) s = gr_weights_open(model_dir, &run.model);
    if (s == GR_OK) {
        run.family = gr_weights_metadata(run.cases, "family");
        if (!run.family) s = gr_fail(GR_ERR_FORMAT, "%s: no 'family' in the metadata", case_path);
    }
    if (s == GR_OK) s = split_inputs(&res, gr_weights_metadata(run.cases, "inputs"));
    if (s == GR_OK) {
        for (int i = 0; i < res.ninputs; i++)
            if (!gr_weights_find(run.cases, res.inputs[i])) {
                s = gr_fail(GR_ERR_FORMAT, "%s: input '%s' listed in the metadata is not in the file", case_path,
                            res.inputs[i]);
                break;
            }
    }
    if (s == GR_OK) {
        int n = gr_weights_count(run.cases);
        res.refs = calloc((size_t)n + 1, sizeof *res.refs);
        if (!res.refs) s = gr_fail(GR_ERR_NOMEM, "out of memory");
        for (int i = 0; s == GR_OK && i < n; i++) {
            const gr_weight_info *w = gr_weights_at(run.cases, i);
            if (is_input(&run, w->name)) continue;
            if (w->dtype == GR_DTYPE_COUNT) {
                s = gr_fail(GR_ERR_FORMAT, "%s: reference '%s' has a dtype graft cannot read", case_path, w->name);
                break;
            }
            res.refs[res.count++].ref = w;
        }
    }
    gr_verify_handler handler = NULL;
    if (s == GR_OK) {
        handler = handler_for(run.family);
        if (!handler) s = gr_fail(GR_ERR_UNSUPPORTED, "%s: no verify handler for family '%s'", case_path, run.family);
    }
    if (s == GR_OK) {
        gr_plugins_scan();
        s = gr_backend_open(backend_name ? backend_name : "cpu", NULL, &backend);
    }
    if (s == GR_OK) {
        run.ctx = gr_ctx_create(backend);
        if (!run.ctx) s = gr_fail(GR_ERR_NOMEM, "cannot create a compute context");
    }
    if (s == GR_OK) {
        setup_ok = 1;
        s = handler(&run);
        if (s == GR_OK) s = gr_ctx_status(run.ctx);
        if (s != GR_OK) {
            /* The handler's message: the context's sticky one when it failed there. */
            const char *msg = gr_last_error();
            fprintf(stderr, "graft: verify: %s\n", msg[0] ? msg : gr_status_name(s));
        }
    } else {
        fprintf(stderr, "graft: %s\n", gr_last_error());
    }

    int passed = 0, failed = 0;
    for (int i = 0; i < res.count; i++) {
        vref *r = &res.refs[i];
        if (!r->reported) snprintf(r->note, sizeof r->note, "not computed");
        printf("%s %.3e %s\n", r->ref->name, r->reported ? r->err : INFINITY, r->ok ? "ok" : "FAIL");
        if (!r->ok && r->note[0]) fprintf(stderr, "graft: verify: %s: %s\n", r->ref->name, r->note);
        if (r->ok) passed++;
        else failed++;
    }
    rc = (setup_ok && s == GR_OK && failed == 0 && res.count > 0) ? 0 : 1;
    /* A run that could not start or finish is a failure in the count too, so the last line
     * alone tells a harness that something failed. */
    if (rc != 0 && failed == 0) failed = 1;
    printf("verify: %d passed, %d failed\n", passed, failed);
    fflush(stdout);

    if (run.ctx) gr_ctx_destroy(run.ctx);
    if (backend) gr_backend_close(backend);
    gr_weights_close(run.cases);
    gr_weights_close(run.model);
    json_decref(run.config);
    for (int i = 0; i < res.ninputs; i++) free(res.inputs[i]);
    free(res.inputs);
    free(res.refs);
    free(config_path);
    free(default_case);
    return rc;
}
