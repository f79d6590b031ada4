/* Speed-up accounting over run logs (see speedup.h for the definition). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/fsutil.h"
#include "run/runlog.h"
#include "transfer/speedup.h"

/* A mean curve over seeds: points after epoch 0, in log order. */
typedef struct curve {
    size_t n;
    double epoch[512], flops[512], value[512];
} curve;

static gr_status read_curve(const char *run, const char *split, const char *metric, curve *c)
{
    gr_run_data *d = NULL;
    gr_status s = gr_run_data_read(run, &d);
    if (s != GR_OK) return s;
    const gr_series *se = gr_run_data_series(d, split, metric);
    if (!se) {
        s = gr_fail(GR_ERR_NOT_FOUND, "%s: no evaluation of %s%s%s", d->path, metric, split ? " on " : "",
                    split ? split : "");
        gr_run_data_free(d);
        return s;
    }
    c->n = 0;
    for (size_t i = 0; i < se->count && c->n < sizeof c->epoch / sizeof c->epoch[0]; i++) {
        if (!(se->epoch[i] > 0)) continue;
        c->epoch[c->n] = se->epoch[i];
        c->flops[c->n] = se->flops[i];
        c->value[c->n] = se->value[i];
        c->n++;
    }
    gr_run_data_free(d);
    return GR_OK;
}

/* Adds curve b into the running sum a (same epochs; a common prefix when lengths differ). */
static gr_status add_curve(curve *a, const curve *b, const char *run, int first)
{
    if (first) { *a = *b; return GR_OK; }
    size_t n = a->n < b->n ? a->n : b->n;
    for (size_t i = 0; i < n; i++) {
        if (fabs(a->epoch[i] - b->epoch[i]) > 1e-6)
            return gr_fail(GR_ERR_INVALID, "%s: evaluated at epoch %g where the other seeds have %g; seeds must "
                           "share their evaluation points", run, b->epoch[i], a->epoch[i]);
        a->flops[i] += b->flops[i];
        a->value[i] += b->value[i];
    }
    a->n = n;
    return GR_OK;
}

static void scale_curve(curve *c, int k)
{
    for (size_t i = 0; i < c->n; i++) { c->flops[i] /= k; c->value[i] /= k; }
}

/* Best (earliest on ties) within max_epochs; -1 when no point qualifies. */
static long best_index(const curve *c, double max_epochs, int lower)
{
    long best = -1;
    for (size_t i = 0; i < c->n; i++) {
        if (max_epochs > 0 && c->epoch[i] > max_epochs + 1e-9) break;
        if (isnan(c->value[i])) continue;
        if (best < 0 || (lower ? c->value[i] < c->value[best] : c->value[i] > c->value[best])) best = (long)i;
    }
    return best;
}

static long first_reaching(const curve *c, double p, int lower)
{
    for (size_t i = 0; i < c->n; i++)
        if (lower ? c->value[i] <= p : c->value[i] >= p) return (long)i;
    return -1;
}

static gr_status report_number(const char *run, const char *key, double *v)
{
    *v = 0;
    char *path = gr_path_join(run, GR_RUN_REPORT);
    if (!path) return gr_fail(GR_ERR_NOMEM, "out of memory");
    if (!gr_path_exists(path)) { free(path); return GR_OK; }
    gr_report *r = NULL;
    gr_status s = gr_report_load(path, &r);
    free(path);
    if (s != GR_OK) return s;
    s = gr_report_get_number(r, key, v);
    gr_report_free(r);
    if (s == GR_ERR_NOT_FOUND) { gr_clear_error(); *v = 0; s = GR_OK; }
    return s;
}

gr_status gr_speedup_compute(const gr_speedup_input *in, const char *metric, gr_speedup *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->metric, sizeof out->metric, "%s", metric);
    if (in->n_scratch < 1 || in->n_transfer < 1)
        return gr_fail(GR_ERR_INVALID, "speed-up of %s: needs at least one scratch and one transfer run", metric);
    if (in->n_scratch > GR_SPEEDUP_MAX_SEEDS || in->n_transfer > GR_SPEEDUP_MAX_SEEDS)
        return gr_fail(GR_ERR_INVALID, "speed-up of %s: at most %d seeds a side", metric, GR_SPEEDUP_MAX_SEEDS);
    const int lower = gr_metric_lower_is_better(metric);
    curve *cs = malloc(sizeof *cs), *ct = malloc(sizeof *ct), *tmp = malloc(sizeof *tmp);
    curve *one_s = malloc(sizeof *one_s);
    gr_status s = (cs && ct && tmp && one_s) ? GR_OK : gr_fail(GR_ERR_NOMEM, "out of memory");
    for (int i = 0; s == GR_OK && i < in->n_scratch; i++) {
        s = read_curve(in->scratch[i], in->split, metric, tmp);
        if (s == GR_OK) s = add_curve(cs, tmp, in->scratch[i], i == 0);
    }
    double extra = 0, source = 0;
    for (int i = 0; s == GR_OK && i < in->n_transfer; i++) {
        s = read_curve(in->transfer[i], in->split, metric, tmp);
        if (s == GR_OK) s = add_curve(ct, tmp, in->transfer[i], i == 0);
        double v = 0;
        if (s == GR_OK && in->extra_flops < 0) { s = report_number(in->transfer[i], "transfer.extra_flops", &v); extra += v; }
        if (s == GR_OK && in->source_flops < 0) { s = report_number(in->transfer[i], "transfer.source_flops", &v); source += v; }
    }
    if (s != GR_OK) goto done;
    extra = in->extra_flops >= 0 ? in->extra_flops : extra / in->n_transfer;
    source = in->source_flops >= 0 ? in->source_flops : source / in->n_transfer;
    scale_curve(cs, in->n_scratch);
    scale_curve(ct, in->n_transfer);
    out->n_seeds = in->n_scratch < in->n_transfer ? in->n_scratch : in->n_transfer;
    long bs = best_index(cs, in->max_epochs, lower);
    if (bs < 0) {
        s = gr_fail(GR_ERR_INVALID, "%s: no evaluation of %s after epoch 0%s", in->scratch[0], metric,
                    in->max_epochs > 0 ? " within the epoch limit" : "");
        goto done;
    }
    out->scratch_best = cs->value[bs];
    out->scratch_epoch = cs->epoch[bs];
    out->scratch_flops = cs->flops[bs];
    out->source_flops = source;
    long bt = best_index(ct, 0, lower);
    out->transfer_best = bt >= 0 ? ct->value[bt] : NAN;
    long rt = first_reaching(ct, out->scratch_best, lower);
    if (rt >= 0) {
        out->reached = 1;
        out->transfer_value = ct->value[rt];
        out->transfer_epoch = ct->epoch[rt];
        out->transfer_flops = ct->flops[rt] + extra;
        out->speedup_epochs = out->scratch_epoch / out->transfer_epoch;
        out->speedup_flops = out->transfer_flops > 0 ? out->scratch_flops / out->transfer_flops : NAN;
        out->speedup_flops_with_source =
            out->transfer_flops + source > 0 ? out->scratch_flops / (out->transfer_flops + source) : NAN;
    }
    /* each seed pair on its own */
    for (int i = 0; i < out->n_seeds; i++) {
        s = read_curve(in->scratch[i], in->split, metric, one_s);
        if (s == GR_OK) s = read_curve(in->transfer[i], in->split, metric, tmp);
        if (s != GR_OK) goto done;
        long b = best_index(one_s, in->max_epochs, lower);
        long r = b >= 0 ? first_reaching(tmp, one_s->value[b], lower) : -1;
        out->seed_speedup_epochs[i] = r >= 0 ? one_s->epoch[b] / tmp->epoch[r] : 0;
    }
done:
    free(cs); free(ct); free(tmp); free(one_s);
    return s;
}

int gr_speedup_fields(const gr_speedup *s, const char **names, double *values, int cap)
{
    int n = 0;
#define ADD(NAME, V) do { if (n < cap) { names[n] = (NAME); values[n] = (V); n++; } } while (0)
    ADD("seeds", s->n_seeds);
    ADD("scratch_best", s->scratch_best);
    ADD("scratch_epoch", s->scratch_epoch);
    ADD("scratch_flops", s->scratch_flops);
    if (!isnan(s->transfer_best)) ADD("transfer_best", s->transfer_best);
    ADD("reached", s->reached);
    if (s->reached) {
        ADD("transfer_epoch", s->transfer_epoch);
        ADD("transfer_flops", s->transfer_flops);
        ADD("epochs", s->speedup_epochs);
        if (!isnan(s->speedup_flops)) ADD("flops", s->speedup_flops);
        if (!isnan(s->speedup_flops_with_source) && s->source_flops > 0)
            ADD("flops_with_source", s->speedup_flops_with_source);
    }
#undef ADD
    return n;
}

void gr_speedup_print_table(FILE *f, const char *title, const char *const *labels, const gr_speedup *rows, int n)
{
    if (title) fprintf(f, "%s\n", title);
    fprintf(f, "%-28s %-8s %5s %12s %9s %9s %9s %9s %9s\n", "transfer", "metric", "seeds", "scratch best",
            "e_scr", "e_trans", "x epochs", "x FLOPs", "x +src");
    for (int i = 0; i < n; i++) {
        const gr_speedup *r = &rows[i];
        char best[32], et[16], se[16], sf[16], sw[16];
        snprintf(best, sizeof best, "%.4g", r->scratch_best);
        if (r->reached) {
            snprintf(et, sizeof et, "%g", r->transfer_epoch);
            snprintf(se, sizeof se, "%.2f", r->speedup_epochs);
            if (isnan(r->speedup_flops)) snprintf(sf, sizeof sf, "-"); else snprintf(sf, sizeof sf, "%.2f", r->speedup_flops);
            if (r->source_flops > 0 && !isnan(r->speedup_flops_with_source))
                snprintf(sw, sizeof sw, "%.2f", r->speedup_flops_with_source);
            else snprintf(sw, sizeof sw, "-");
        } else {
            snprintf(et, sizeof et, "never");
            snprintf(se, sizeof se, "-");
            snprintf(sf, sizeof sf, "-");
            snprintf(sw, sizeof sw, "-");
        }
        fprintf(f, "%-28s %-8s %5d %12s %9g %9s %9s %9s %9s\n", labels[i], r->metric, r->n_seeds, best,
                r->scratch_epoch, et, se, sf, sw);
    }
}

