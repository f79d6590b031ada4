/* The generic trainer on a toy regression task: learning, determinism, exact resume after a
 * stop mid-epoch (curves and parameters bit for bit), the non-finite guard, AdamW in parameter
 * groups with clipping and accumulation against a float64 host reference, and the LAVIS
 * schedules. Usage: test_trainer TMP_DIR */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fsutil.h"
#include "data/dataset.h"
#include "graft/rng.h"
#include "plugin/registry.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

static int failures, checks;
static gr_backend *backend;
static const char *tmp;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                            \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)

/* ---------------------------------------------------------------- toy task ---- */

#define NS 40   /* samples */
#define DI 3
#define DO 2
#define BS 6    /* batch: 7 batches an epoch, the last one short */

typedef struct toy {
    float x[NS][DI], y[NS][DO];
    gr_tensor *w, *b;
    uint64_t seed;
    int64_t nan_from, nan_to;   /* global micro-batch counter range returning NaN */
    int64_t stop_at;            /* request a stop when this global micro-batch is run */
    int64_t calls;
    int eval_calls;
} toy;

static int64_t nbatches(void) { return (NS + BS - 1) / BS; }

static gr_status toy_batches(void *u, int64_t epoch, int64_t *n)
{
    (void)u; (void)epoch;
    *n = nbatches();
    return GR_OK;
}

static gr_tensor *toy_loss(toy *t, gr_ctx *ctx, const size_t *ids, int64_t n)
{
    float xb[NS * DI], yb[NS * DO];
    for (int64_t i = 0; i < n; i++) {
        memcpy(xb + i * DI, t->x[ids[i]], sizeof t->x[0]);
        memcpy(yb + i * DO, t->y[ids[i]], sizeof t->y[0]);
    }
    gr_tensor *x = gr_from_host(ctx, GR_F32, 2, (int64_t[]){n, DI}, xb);
    gr_tensor *y = gr_from_host(ctx, GR_F32, 2, (int64_t[]){n, DO}, yb);
    gr_tensor *d = gr_sub(ctx, gr_linear(ctx, x, t->w, t->b), y);
    return gr_mean(ctx, gr_mul(ctx, d, d));
}

static gr_status toy_forward(void *u, gr_ctx *ctx, int64_t epoch, int64_t index, gr_task_loss *out)
{
    toy *t = u;
    size_t *order, count;
    gr_status s = gr_epoch_order(NS, 1, t->seed, (int)epoch, 0, 1, &order, &count);
    if (s) return s;
    int64_t lo = index * BS, n = (int64_t)count - lo < BS ? (int64_t)count - lo : BS;
    int64_t g = epoch * nbatches() + index;
    t->calls++;
    if (g == t->stop_at) gr_train_request_stop();
    if (g >= t->nan_from && g < t->nan_to) out->loss = gr_full(ctx, GR_F32, 0, NULL, NAN);
    else out->loss = toy_loss(t, ctx, order + lo, n);
    free(order);
    out->tokens = n * DO;
    out->examples = n;
    return gr_ctx_status(ctx);
}

static gr_status toy_eval(void *u, gr_ctx *ctx, gr_task_eval *ev)
{
    toy *t = u;
    size_t ids[NS];
    for (int i = 0; i < NS; i++) ids[i] = (size_t)i;
    gr_tensor *l = toy_loss(t, ctx, ids, NS);
    float v = 0;
    gr_status s = l ? gr_to_host_f32(ctx, l, &v) : gr_ctx_status(ctx);
    t->eval_calls++;
    ev->split = "val";
    ev->metrics[0] = (gr_metric){"mse_loss", v};
    ev->count = 1;
    return s;
}

static void toy_init(toy *t, gr_ctx *ctx)
{
    memset(t, 0, sizeof *t);
    t->seed = 7;
    t->nan_from = t->nan_to = -1;
    t->stop_at = -1;
    gr_rng r;
    gr_rng_seed(&r, 42);
    const float A[DO][DI] = {{1.5f, -2.0f, 0.5f}, {0.25f, 1.0f, -1.0f}};
    for (int i = 0; i < NS; i++) {
        for (int k = 0; k < DI; k++) t->x[i][k] = (float)gr_rng_normal(&r);
        for (int o = 0; o < DO; o++) {
            double v = 0.3 * o;
            for (int k = 0; k < DI; k++) v += A[o][k] * t->x[i][k];
            t->y[i][o] = (float)(v + 0.01 * gr_rng_normal(&r));
        }
    }
    float w0[DO * DI], b0[DO] = {0, 0};
    for (int i = 0; i < DO * DI; i++) w0[i] = (float)(0.1 * gr_rng_normal(&r));
    t->w = gr_param_new(ctx, "proj.weight", GR_F32, 2, (int64_t[]){DO, DI});
    t->b = gr_param_new(ctx, "proj.bias", GR_F32, 1, (int64_t[]){DO});
    gr_upload(ctx, t->w, w0);
    gr_upload(ctx, t->b, b0);
    gr_set_trainable(t->w, 1);
    gr_set_trainable(t->b, 1);
}

static gr_task toy_task_of(toy *t)
{
    gr_task k = {.user = t, .epoch_batches = toy_batches, .forward = toy_forward, .evaluate = toy_eval};
    return k;
}

static void base_config(gr_trainer_config *c, toy *t, gr_tensor **params, const double *scale)
{
    gr_trainer_config_defaults(c);
    params[0] = t->w;
    params[1] = t->b;
    c->stage = "toy";
    c->params = params;
    c->lr_scale = scale;
    c->count = 2;
    c->max_epochs = 4;
    c->accum = 2;
    c->lr.kind = GR_LR_COSINE;
    c->lr.base_lr = 0.3;
    c->lr.min_lr = 0.03;
    c->lr.warmup_lr = 0.001;
    c->lr.warmup_steps = 2;
    c->adamw.grad_clip = 1.0;
    c->ckpt_every_steps = 3;
    c->progress.mode = GR_PROGRESS_QUIET;
}

/* Runs a whole stage into dir; returns the status and the final parameters. */
static gr_status run_stage(const char *dir, toy *t, gr_ctx *ctx, void (*tweak)(gr_trainer_config *),
                           float *wout, gr_trainer_result *res)
{
    gr_tensor *params[2];
    double scale[2] = {1.0, 0.5};
    gr_trainer_config c;
    base_config(&c, t, params, scale);
    if (tweak) tweak(&c);
    gr_runlog *log;
    gr_status s = gr_runlog_open(dir, GR_RUN_NEW, &log);
    if (s) return s;
    gr_task task = toy_task_of(t);
    gr_trainer *tr;
    if ((s = gr_trainer_create(ctx, &c, &task, log, &tr)) == GR_OK) {
        s = gr_trainer_run(tr, res);
        gr_trainer_free(tr);
    }
    gr_runlog_close(log);
    if (wout) {
        gr_to_host_f32(ctx, t->w, wout);
        gr_to_host_f32(ctx, t->b, wout + DO * DI);
    }
    return s;
}

static char *dir_of(const char *name)
{
    char *d = gr_path_join(tmp, name);
    return d;
}

/* Step losses and lrs of a run, bit-compared. */
static int same_curves(const char *a, const char *b, int64_t *n_out)
{
    gr_run_data *da = NULL, *db = NULL;
    if (gr_run_data_read(a, &da) || gr_run_data_read(b, &db)) {
        printf("  cannot read runs: %s\n", gr_last_error());
        gr_run_data_free(da);
        return 0;
    }
    int ok = da->step_count == db->step_count && da->series_count == db->series_count;
    for (size_t i = 0; ok && i < da->step_count; i++) {
        const gr_step_row *x = &da->steps[i], *y = &db->steps[i];
        ok = x->step == y->step && memcmp(&x->loss, &y->loss, sizeof(double)) == 0 &&
             x->lr == y->lr && memcmp(&x->grad_norm, &y->grad_norm, sizeof(double)) == 0 &&
             x->epoch == y->epoch && x->flops_total == y->flops_total;
        if (!ok) printf("  step row %zu differs: step %lld/%lld loss %.17g/%.17g\n", i, (long long)x->step,
                        (long long)y->step, x->loss, y->loss);
    }
    for (size_t i = 0; ok && i < da->series_count; i++) {
        ok = da->series[i].count == db->series[i].count;
        for (size_t j = 0; ok && j < da->series[i].count; j++)
            ok = da->series[i].value[j] == db->series[i].value[j] && da->series[i].step[j] == db->series[i].step[j];
    }
    if (n_out) *n_out = (int64_t)da->step_count;
    gr_run_data_free(da);
    gr_run_data_free(db);
    return ok;
}

static void test_learn_determinism_resume(void)
{
    gr_ctx *ctx = gr_ctx_create(backend);
    toy t;
    float w1[DO * DI + DO], w2[DO * DI + DO], w3[DO * DI + DO];
    gr_trainer_result r1, r2, r3;

    toy_init(&t, ctx);
    char *d1 = dir_of("full"), *d2 = dir_of("again"), *d3 = dir_of("resumed");
    gr_status s = run_stage(d1, &t, ctx, NULL, w1, &r1);
    CHECK(s == GR_OK, "full run: %s", gr_last_error());
    CHECK(r1.steps == 4 * 4, "4 epochs of 7 batches at accum 2 are 16 steps, got %lld", (long long)r1.steps);
    CHECK(r1.last_eval.count == 1 && r1.last_eval.metrics[0].value < 0.05,
          "the toy regression is learnt (val mse %g)", r1.last_eval.count ? r1.last_eval.metrics[0].value : -1);
    CHECK(t.eval_calls == 4, "evaluated once per epoch (%d)", t.eval_calls);
    CHECK(r1.last_checkpoint != NULL, "a final checkpoint");
    gr_run_data *d = NULL;
    if (gr_run_data_read(d1, &d) == GR_OK) {
        CHECK(d->step_count == 16 && d->steps[0].lr == 0.001 && fabs(d->steps[1].lr - 0.1505) < 1e-12,
              "warm-up lrs 0.001, 0.1505 (got %g, %g)", d->steps[0].lr, d->steps[1].lr);
        CHECK(d->steps[15].epoch == 4.0 && d->steps[0].epoch == 2.0 / 7.0, "fractional epochs");
        CHECK(d->steps[0].flops.fwd_trainable > 0 && d->steps[0].flops.bwd_param > 0, "FLOPs are logged");
        gr_run_data_free(d);
    }

    toy_init(&t, ctx);
    s = run_stage(d2, &t, ctx, NULL, w2, &r2);
    CHECK(s == GR_OK && memcmp(w1, w2, sizeof w1) == 0, "a second run gives the same parameters bit for bit");
    CHECK(same_curves(d1, d2, NULL), "... and the same curves");

    /* Stopped mid-epoch 2 (global micro-batch 17 = epoch 2, batch 3: inside step 2 of epoch 2). */
    toy_init(&t, ctx);
    t.stop_at = 17;
    s = run_stage(d3, &t, ctx, NULL, NULL, &r3);
    CHECK(s == GR_ERR_INTERRUPTED && strstr(gr_last_error(), "resume"), "stop request: %s", gr_last_error());
    CHECK(r3.steps == 10, "stopped after step 10 (%lld)", (long long)r3.steps);
    gr_train_clear_stop();
    gr_trainer_result_free(&r3);

    /* Resume in a fresh model (other initial values: everything must come from the checkpoint). */
    gr_ctx *ctx2 = gr_ctx_create(backend);
    toy t2;
    toy_init(&t2, ctx2);
    float junk[DO * DI] = {9, 9, 9, 9, 9, 9};
    gr_upload(ctx2, t2.w, junk);
    gr_tensor *params[2];
    double scale[2] = {1.0, 0.5};
    gr_trainer_config c;
    base_config(&c, &t2, params, scale);
    gr_runlog *log = NULL;
    char *ck = NULL;
    int64_t gstep = -1;
    s = gr_runlog_open(d3, GR_RUN_RESUME, &log);
    if (s == GR_OK) s = gr_checkpoint_latest(d3, &ck);
    if (s == GR_OK) s = gr_checkpoint_read_state(ck, NULL, &gstep, NULL);
    if (s == GR_OK) s = gr_runlog_truncate_after(log, gstep);
    gr_task task = toy_task_of(&t2);
    gr_trainer *tr = NULL;
    if (s == GR_OK) s = gr_trainer_create(ctx2, &c, &task, log, &tr);
    if (s == GR_OK) s = gr_trainer_restore(tr, ck);
    CHECK(s == GR_OK && gstep == 10, "restore from %s: %s", ck ? ck : "?", gr_last_error());
    if (s == GR_OK) s = gr_trainer_run(tr, &r3);
    CHECK(s == GR_OK, "resumed run: %s", gr_last_error());
    gr_trainer_free(tr);
    gr_runlog_close(log);
    gr_to_host_f32(ctx2, t2.w, w3);
    gr_to_host_f32(ctx2, t2.b, w3 + DO * DI);
    CHECK(memcmp(w1, w3, sizeof w1) == 0, "resumed parameters equal the uninterrupted run's bit for bit");
    int64_t n = 0;
    CHECK(same_curves(d1, d3, &n) && n == 16, "resumed curves equal the uninterrupted run's (%lld steps)", (long long)n);
    CHECK(t2.calls == 10, "the resumed run ran only the remaining 10 micro-batches (%lld)", (long long)t2.calls);

    /* A checkpoint of another stage is refused with a message naming it. */
    toy_init(&t2, ctx2);
    base_config(&c, &t2, params, scale);
    c.stage = "other";
    char *d4 = dir_of("other");
    s = gr_runlog_open(d4, GR_RUN_NEW, &log);
    if (s == GR_OK) s = gr_trainer_create(ctx2, &c, &task, log, &tr);
    if (s == GR_OK) {
        s = gr_trainer_restore(tr, r1.last_checkpoint);
        CHECK(s == GR_ERR_INVALID && strstr(gr_last_error(), "stage 'toy'"), "foreign stage refused: %s", gr_last_error());
        gr_trainer_free(tr);
    }
    gr_runlog_close(log);
    free(ck);
    free(d1); free(d2); free(d3); free(d4);
    gr_trainer_result_free(&r1);
    gr_trainer_result_free(&r2);
    gr_trainer_result_free(&r3);
    gr_ctx_destroy(ctx2);
    gr_ctx_destroy(ctx);
}

static void nan_two_k(gr_trainer_config *c) { c->max_nonfinite = 2; }

static void test_nonfinite(void)
{
    gr_ctx *ctx = gr_ctx_create(backend);
    toy t;
    gr_trainer_result r;
    float w[DO * DI + DO];
    toy_init(&t, ctx);
    t.nan_from = 3; t.nan_to = 4;   /* step 2 (micro-batches 2, 3) */
    char *d = dir_of("nan1");
    gr_status s = run_stage(d, &t, ctx, NULL, w, &r);
    CHECK(s == GR_OK && r.skipped == 1 && r.steps == 16, "one non-finite step skipped, run completes (%s)", gr_last_error());
    int finite = 1;
    for (int i = 0; i < DO * DI + DO; i++) finite &= isfinite(w[i]) != 0;
    CHECK(finite, "parameters stay finite");
    gr_run_data *rd = NULL;
    if (gr_run_data_read(d, &rd) == GR_OK) {
        int ev = 0;
        for (size_t i = 0; i < rd->event_count; i++) ev += strcmp(rd->events[i].event, "skip_nonfinite") == 0;
        CHECK(ev == 1 && isnan(rd->steps[1].loss) && !isnan(rd->steps[2].loss), "skip logged as event and null loss");
        gr_run_data_free(rd);
    }
    gr_trainer_result_free(&r);
    free(d);

    toy_init(&t, ctx);
    t.nan_from = 6; t.nan_to = 1000;
    d = dir_of("nan2");
    s = run_stage(d, &t, ctx, nan_two_k, NULL, &r);
    CHECK(s == GR_ERR_NUMERIC && strstr(gr_last_error(), "2 non-finite steps in a row"), "K in a row stop: %s", gr_last_error());
    CHECK(r.steps == 5 && r.last_checkpoint && strstr(r.last_checkpoint, "step-00000005"),
          "stopped at step 5 with state saved (%s)", r.last_checkpoint ? r.last_checkpoint : "none");
    gr_trainer_result_free(&r);
    free(d);
    gr_ctx_destroy(ctx);
}

/* AdamW in two groups with clipping and accumulation, against float64 torch semantics. */
static void test_adamw_reference(void)
{
    gr_ctx *ctx = gr_ctx_create(backend);
    const int n = 6;
    float p0[6] = {0.5f, -1.0f, 2.0f, 0.1f, -0.3f, 0.7f}, bias0[2] = {0.2f, -0.4f};
    gr_tensor *w = gr_param_new(ctx, "layer.weight", GR_F32, 2, (int64_t[]){2, 3});
    gr_tensor *b = gr_param_new(ctx, "layer.bias", GR_F32, 1, (int64_t[]){2});
    gr_upload(ctx, w, p0);
    gr_upload(ctx, b, bias0);
    gr_set_trainable(w, 1);
    gr_set_trainable(b, 1);
    gr_tensor *ps[2] = {w, b};
    double scale[2] = {1.0, 3.0};
    gr_adamw_config ac = {.beta1 = 0.9, .beta2 = 0.98, .eps = 1e-6, .weight_decay = 0.1, .grad_clip = 0.5};
    gr_optimizer *opt = NULL;
    gr_status s = gr_optimizer_create(ctx, &ac, ps, scale, 2, &opt);
    CHECK(s == GR_OK, "optimizer: %s", gr_last_error());
    CHECK(gr_param_decays(w) && !gr_param_decays(b), "LAVIS decay rule: weights decay, biases not");
    double P[8], M[8] = {0}, V[8] = {0};
    for (int i = 0; i < n; i++) P[i] = p0[i];
    P[6] = bias0[0]; P[7] = bias0[1];
    const float xin[3] = {1.0f, 2.0f, -1.0f};
    for (int step = 1; s == GR_OK && step <= 3; step++) {
        /* two micro-batches: loss_k = k * sum(W x + b) -> dW = k x, db = k */
        double G[8] = {0};
        for (int k = 1; k <= 2; k++) {
            gr_ctx_reset(ctx);
            gr_tensor *x = gr_from_host(ctx, GR_F32, 2, (int64_t[]){1, 3}, xin);
            gr_tensor *l = gr_scale(ctx, gr_sum(ctx, gr_linear(ctx, x, w, b)), (float)k);
            s = gr_backward(ctx, l, NULL);
            for (int o = 0; o < 2; o++) {
                for (int i = 0; i < 3; i++) G[o * 3 + i] += k * xin[i];
                G[6 + o] += k;
            }
        }
        gr_step_result sr;
        double lr = 0.01 * step;
        if (s == GR_OK) s = gr_optimizer_step(opt, lr, 2, &sr);
        double ss = 0;
        for (int i = 0; i < 8; i++) { G[i] /= 2; ss += G[i] * G[i]; }
        double norm = sqrt(ss), coef = 0.5 / (norm + 1e-6);
        if (coef > 1) coef = 1;
        CHECK(fabs(sr.grad_norm - norm) < 1e-5 * norm && fabs(sr.clip_coef - coef) < 1e-6, "norm %g vs %g", sr.grad_norm, norm);
        for (int i = 0; i < 8; i++) {
            double g = G[i] * coef, plr = lr * (i < 6 ? 1.0 : 3.0), wd = i < 6 ? 0.1 : 0.0;
            P[i] -= plr * wd * P[i];
            M[i] = 0.9 * M[i] + 0.1 * g;
            V[i] = 0.98 * V[i] + 0.02 * g * g;
            P[i] -= plr * (M[i] / (1 - pow(0.9, step))) / (sqrt(V[i] / (1 - pow(0.98, step))) + 1e-6);
        }
    }
    float got[8];
    gr_to_host_f32(ctx, w, got);
    gr_to_host_f32(ctx, b, got + 6);
    double worst = 0;
    for (int i = 0; i < 8; i++) if (fabs(got[i] - P[i]) > worst) worst = fabs(got[i] - P[i]);
    CHECK(s == GR_OK && worst < 2e-6, "AdamW groups + clipping + accumulation match torch semantics (max err %g)", worst);
    CHECK(gr_optimizer_steps(opt) == 3, "3 optimizer steps");
    gr_optimizer_free(opt);
    gr_ctx_destroy(ctx);
}

static void test_schedules(void)
{
    gr_lr_schedule c = {.kind = GR_LR_COSINE, .base_lr = 1e-4, .min_lr = 1e-5, .warmup_lr = 1e-6,
                        .warmup_steps = 100, .per_epoch = 1, .max_epochs = 10};
    /* LAVIS LinearWarmupCosineLRScheduler: warm-up by iteration in epoch 0 only. */
    CHECK(gr_lr_at(&c, 50, 0, 50) == 1e-6 + (1e-4 - 1e-6) * 50 / 100, "warm-up in epoch 0");
    CHECK(gr_lr_at(&c, 500, 0, 500) == 1e-4, "warm-up capped at base");
    CHECK(fabs(gr_lr_at(&c, 2000, 5, 3) - 5.5e-5) < 1e-18, "per-epoch cosine at epoch 5 = 5.5e-5 (%.17g)", gr_lr_at(&c, 2000, 5, 3));
    CHECK(gr_lr_at(&c, 2000, 1, 0) == gr_lr_at(&c, 2999, 1, 999), "constant within an epoch");
    gr_lr_schedule it = {.kind = GR_LR_COSINE, .base_lr = 1.0, .min_lr = 0.0, .warmup_steps = 10, .total_steps = 110};
    CHECK(fabs(gr_lr_at(&it, 60, 0, 60) - 0.5) < 1e-15 && gr_lr_at(&it, 110, 0, 110) == 0.0, "per-iteration cosine to min_lr");
    gr_lr_schedule k = {.kind = GR_LR_CONSTANT, .base_lr = 5e-4};
    CHECK(gr_lr_at(&k, 0, 0, 0) == 5e-4 && gr_lr_at(&k, 1000, 3, 1) == 5e-4, "constant");
    gr_lr_kind kind;
    CHECK(gr_lr_kind_parse("cosine", &kind) == GR_OK && kind == GR_LR_COSINE, "parse cosine");
    CHECK(gr_lr_kind_parse("linear", &kind) == GR_ERR_INVALID && strstr(gr_last_error(), "'linear'"), "unknown schedule named");
}

int main(int argc, char **argv)
{
    if (argc != 2) { fprintf(stderr, "usage: test_trainer TMP_DIR\n"); return 2; }
    tmp = argv[1];
    if (gr_backend_open("cpu", &(gr_backend_options){.struct_size = sizeof(gr_backend_options), .threads = 1}, &backend)) {
        printf("FAIL cannot open cpu backend: %s\n", gr_last_error());
        return 1;
    }
    test_schedules();
    test_adamw_reference();
    test_learn_determinism_resume();
    test_nonfinite();
    gr_backend_close(backend);
    printf("%s: %d checks, %d failures\n", failures ? "FAIL" : "ok", checks, failures);
    return failures ? 1 : 0;
}
