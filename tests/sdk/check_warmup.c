/* check_warmup INIT_RUN RUN STEPS LR: what sdk/examples/warmup-only promises, read from the run
 * directories `graft train` left (RUN trained with model.target.init = INIT_RUN):
 *  - metrics.jsonl: STEPS step records 1..STEPS of stage "warmup" at the constant lr LR;
 *  - report.json: warmup.steps, warmup.final_loss (the last step's loss, exactly),
 *    warmup.flops (= stages.warmup.flops = the sum of the step records), warmup.val.METRIC for
 *    every caption metric (= final.val.METRIC.value), strategy "warmup-only";
 *  - the checkpoint: every tensor INIT_RUN's checkpoint holds is in RUN's (a checkpoint holds
 *    the trainable tensors and those loaded from model.target.init, so this shows the init was
 *    loaded); the projector's (language_projection.*) changed, every other one is equal to
 *    INIT_RUN's bit for bit, and the optimizer has moments for the projector's tensors only.
 * Prints one line per check; exits 1 at the first failure. */
#include <fnmatch.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fsutil.h"
#include "graft/weights.h"
#include "run/runlog.h"

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL: ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    return 1;
}

static int is_projector(const char *name) { return fnmatch("language_projection.*", name, 0) == 0; }

/* RUN/checkpoints/<latest>/FILE */
static char *ckpt_file(const char *run, const char *file)
{
    char path[4096], *latest = NULL;
    snprintf(path, sizeof path, "%s/checkpoints/latest", run);
    if (gr_read_file(path, &latest, NULL) != GR_OK) return NULL;
    latest[strcspn(latest, "\r\n")] = '\0';
    snprintf(path, sizeof path, "%s/checkpoints/%s/%s", run, latest, file);
    free(latest);
    return strdup(path);
}

static double number(const json_t *root, const char *a, const char *b, const char *c)
{
    const json_t *v = json_object_get(json_object_get(root, a), b);
    if (c) v = json_object_get(v, c);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static int check_log(const char *init, const char *run, long steps, double lr, double *flops)
{
    gr_run_data *a = NULL, *d = NULL;
    if (gr_run_data_read(init, &a) != GR_OK || gr_run_data_read(run, &d) != GR_OK)
        return fail("%s", gr_last_error());
    int bad = 0;
    if ((long)d->step_count != steps) bad = fail("%s: %zu step records, expected %ld", run, d->step_count, steps);
    *flops = 0;
    for (size_t i = 0; !bad && i < d->step_count; i++) {
        const gr_step_row *r = &d->steps[i];
        if (r->step != (int64_t)i + 1) bad = fail("%s: step record %zu is step %lld", run, i, (long long)r->step);
        else if (r->stage < 0 || strcmp(d->stages[r->stage], "warmup") != 0)
            bad = fail("%s: step %lld is not in stage 'warmup'", run, (long long)r->step);
        else if (fabs(r->lr - lr) > 1e-12 * lr) bad = fail("%s: lr %.17g at step %lld, expected %g throughout", run, r->lr, (long long)r->step, lr);
        else if (!isfinite(r->loss)) bad = fail("%s: non-finite loss at step %lld", run, (long long)r->step);
        *flops += r->flops.fwd_frozen + r->flops.fwd_trainable + r->flops.bwd_input + r->flops.bwd_param;
    }
    if (!bad && a->step_count == 0) bad = fail("%s: no step records", init);
    if (!bad)
        printf("ok: %ld steps of stage warmup at constant lr %g; loss %.4f -> %.4f (the init run: "
               "%.4f -> %.4f)\n", steps, lr, d->steps[0].loss, d->steps[d->step_count - 1].loss,
               a->steps[0].loss, a->steps[a->step_count - 1].loss);
    double last = d->step_count ? d->steps[d->step_count - 1].loss : NAN;
    gr_run_data_free(a);
    gr_run_data_free(d);
    if (bad) return 1;

    char path[4096];
    snprintf(path, sizeof path, "%s/report.json", run);
    json_error_t err;
    json_t *rep = json_load_file(path, 0, &err);
    if (!rep) return fail("%s: %s", path, err.text);
    const json_t *strategy = json_object_get(rep, "strategy");
    if (!json_is_string(strategy) || strcmp(json_string_value(strategy), "warmup-only") != 0)
        bad = fail("%s: strategy is not warmup-only", path);
    else if (number(rep, "warmup", "steps", NULL) != (double)steps)
        bad = fail("%s: warmup.steps is %g", path, number(rep, "warmup", "steps", NULL));
    else if (number(rep, "warmup", "final_loss", NULL) != last)
        bad = fail("%s: warmup.final_loss %.17g is not the last step's loss", path,
                   number(rep, "warmup", "final_loss", NULL));
    else if (!(fabs(number(rep, "warmup", "flops", NULL) - *flops) <= 1e-9 * *flops) ||
             number(rep, "stages", "warmup", "flops") != number(rep, "warmup", "flops", NULL))
        bad = fail("%s: warmup.flops %.17g is not the stage's FLOPs", path,
                   number(rep, "warmup", "flops", NULL));
    static const char *const metrics[] = {"CIDEr", "Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L"};
    const json_t *val = json_object_get(json_object_get(rep, "warmup"), "val");
    if (!bad && json_object_size(val) != 6) bad = fail("%s: warmup.val has %zu metrics, not 6", path, json_object_size(val));
    for (int i = 0; !bad && i < 6; i++) {
        double v = number(rep, "warmup", "val", metrics[i]);
        double f = number(json_object_get(rep, "final"), "val", metrics[i], "value");
        if (!isfinite(v) || v != f) bad = fail("warmup.val.%s = %.17g differs from final.val", metrics[i], v);
    }
    if (!bad)
        printf("ok: report.json: warmup.steps %ld, final_loss %.6f (the last step's), flops %.6g, "
               "val CIDEr %.4f and 5 more metrics\n", steps, last, *flops,
               number(rep, "warmup", "val", "CIDEr"));
    json_decref(rep);
    return bad;
}

static int check_tensors(const char *init, const char *run)
{
    char *fa = ckpt_file(init, "trainable.safetensors"), *fb = ckpt_file(run, "trainable.safetensors");
    char *fo = ckpt_file(run, "optimizer.safetensors");
    gr_weights *a = NULL, *b = NULL, *o = NULL;
    if (!fa || !fb || !fo || gr_weights_open(fa, &a) != GR_OK || gr_weights_open(fb, &b) != GR_OK ||
        gr_weights_open(fo, &o) != GR_OK) {
        int r = fail("checkpoints: %s", gr_last_error()[0] ? gr_last_error() : "no checkpoints/latest");
        free(fa), free(fb), free(fo);
        gr_weights_close(a), gr_weights_close(b), gr_weights_close(o);
        return r;
    }
    int bad = 0, changed = 0, same = 0;
    for (int i = 0; !bad && i < gr_weights_count(a); i++) {
        const gr_weight_info *x = gr_weights_at(a, i), *y = gr_weights_find(b, x->name);
        if (!y) { bad = fail("%s is not in the warm-up's checkpoint", x->name); break; }
        int equal = x->nbytes == y->nbytes && memcmp(x->data, y->data, x->nbytes) == 0;
        if (is_projector(x->name) && equal) bad = fail("%s did not change", x->name);
        else if (!is_projector(x->name) && !equal) bad = fail("%s changed, but only the projector trains", x->name);
        changed += is_projector(x->name);
        same += !is_projector(x->name);
    }
    if (!bad && (changed < 2 || same < 10))
        bad = fail("the init run's checkpoint holds too few tensors to compare (%d)", changed + same);
    if (!bad && gr_weights_count(b) != gr_weights_count(a))
        bad = fail("the warm-up's checkpoint holds %d tensors the init run's does not",
                   gr_weights_count(b) - gr_weights_count(a));
    for (int i = 0; !bad && i < gr_weights_count(o); i++) {
        const char *name = gr_weights_at(o, i)->name;
        if (strncmp(name, "m.", 2) != 0 && strncmp(name, "v.", 2) != 0) continue;
        if (!is_projector(name + 2)) bad = fail("the optimizer has moments for %s", name);
    }
    if (!bad && gr_weights_count(o) < 2 * changed)
        bad = fail("%s: the optimizer has no moments for some projector tensor", fo);
    if (!bad)
        printf("ok: checkpoint: %d projector tensors changed, %d other tensors equal to the init "
               "run's bit for bit; optimizer moments for the projector only\n", changed, same);
    free(fa), free(fb), free(fo);
    gr_weights_close(a), gr_weights_close(b), gr_weights_close(o);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: check_warmup INIT_RUN RUN STEPS LR\n");
        return 2;
    }
    double flops = 0;
    if (check_log(argv[1], argv[2], atol(argv[3]), atof(argv[4]), &flops)) return 1;
    return check_tensors(argv[1], argv[2]);
}
