/* The generic trainer (see trainer.h): steps, accumulation, schedule, guard, logs, checkpoints. */
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/fsutil.h"
#include "base/log.h"
#include "dist/dist.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

/* ------------------------------------------------------------------------ stopping ---- */

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

void gr_train_install_signal_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    /* One-shot: the second Ctrl-C gets the default action and ends a run stuck in a kernel. */
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

void gr_train_request_stop(void) { stop_flag = 1; }
int gr_train_stop_requested(void) { return stop_flag != 0; }
void gr_train_clear_stop(void) { stop_flag = 0; }

/* ------------------------------------------------------------------------- trainer ---- */

struct gr_trainer {
    gr_ctx *ctx;
    gr_trainer_config cfg;
    gr_task task;
    gr_runlog *log;
    gr_optimizer *opt;
    gr_tensor **all;          /* params then extra, for checkpoints */
    const char **all_names;
    int all_count;
    /* position: the next micro-batch to run is `next_batch` of `epoch`; `step` steps done */
    int64_t step, epoch, next_batch;
    int64_t skipped, nonfinite_run;
    int64_t last_eval_step;   /* stage step of the last evaluation, -1: none */
    int64_t last_ckpt_step;
    int restored;
    /* data parallel (docs/distributed.md): NULL in a world of one */
    gr_dist_reducer *red;
};

void gr_trainer_config_defaults(gr_trainer_config *c)
{
    memset(c, 0, sizeof *c);
    c->stage = "train";
    c->adamw = (gr_adamw_config){.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.05,
                                 .grad_clip = 0.0};
    c->lr = (gr_lr_schedule){.kind = GR_LR_CONSTANT, .base_lr = 1e-4, .min_lr = 0.0, .warmup_lr = 0.0};
    c->accum = 1;
    c->max_epochs = 1;
    c->eval_every_epoch = 1;
    c->ckpt_every_epoch = 1;
    c->ckpt_keep = 2;
    c->max_nonfinite = 5;
    c->progress.mode = GR_PROGRESS_AUTO;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int64_t steps_in_epoch(int64_t batches, int accum) { return (batches + accum - 1) / accum; }

static gr_status epoch_batches(gr_trainer *tr, int64_t epoch, int64_t *n)
{
    gr_status s = tr->task.epoch_batches(tr->task.user, epoch, n);
    if (s == GR_OK && *n < 1)
        s = gr_fail(GR_ERR_INVALID, "stage %s: epoch %lld has no batches (dataset smaller than a batch?)",
                    tr->cfg.stage, (long long)epoch);
    return s;
}

gr_status gr_trainer_create(gr_ctx *ctx, const gr_trainer_config *cfg, const gr_task *task,
                            gr_runlog *log, gr_trainer **out)
{
    if (!task || !task->epoch_batches || !task->forward)
        return gr_fail(GR_ERR_INVALID, "trainer: the task has no epoch_batches/forward");
    if (cfg->count < 1) return gr_fail(GR_ERR_INVALID, "stage %s: no trainable tensors", cfg->stage);
    if (cfg->accum < 1) return gr_fail(GR_ERR_INVALID, "stage %s: accum must be >= 1", cfg->stage);
    if (cfg->max_steps <= 0 && cfg->max_epochs <= 0)
        return gr_fail(GR_ERR_INVALID, "stage %s: give epochs or steps (both are 0)", cfg->stage);
    gr_trainer *tr = calloc(1, sizeof *tr);
    if (!tr) return gr_fail(GR_ERR_NOMEM, "trainer: out of memory");
    tr->ctx = ctx;
    tr->cfg = *cfg;
    tr->task = *task;
    tr->log = log;
    tr->last_eval_step = -1;
    tr->last_ckpt_step = -1;
    if (tr->cfg.ckpt_keep < 1) tr->cfg.ckpt_keep = 1;
    if (tr->cfg.max_nonfinite < 1) tr->cfg.max_nonfinite = 1;
    tr->all_count = cfg->count + cfg->extra_count;
    tr->all = calloc((size_t)tr->all_count, sizeof *tr->all);
    tr->all_names = calloc((size_t)tr->all_count, sizeof *tr->all_names);
    if (!tr->all || !tr->all_names) { gr_trainer_free(tr); return gr_fail(GR_ERR_NOMEM, "trainer: out of memory"); }
    for (int i = 0; i < cfg->count; i++) {
        tr->all[i] = cfg->params[i];
        tr->all_names[i] = cfg->names && cfg->names[i] ? cfg->names[i] : cfg->params[i]->name;
    }
    for (int i = 0; i < cfg->extra_count; i++) {
        tr->all[cfg->count + i] = cfg->extra[i];
        tr->all_names[cfg->count + i] =
            cfg->extra_names && cfg->extra_names[i] ? cfg->extra_names[i] : cfg->extra[i]->name;
    }
    gr_status s = gr_optimizer_create(ctx, &cfg->adamw, cfg->params, cfg->lr_scale, cfg->count, &tr->opt);
    if (s != GR_OK) {
        gr_trainer_free(tr);
        return gr_fail_context(s, "stage %s", cfg->stage);
    }
    gr_optimizer_zero_grad(tr->opt);
    if (gr_dist_world() > 1) {
        /* data parallel: every rank starts from rank 0's trainable tensors and sums gradients */
        s = gr_dist_reducer_create(ctx, cfg->params, cfg->count, 0, &tr->red);
        if (s == GR_OK) s = gr_dist_broadcast(ctx, cfg->params, cfg->count);
        if (s != GR_OK) {
            gr_trainer_free(tr);
            return gr_fail_context(s, "stage %s", cfg->stage);
        }
    }
    *out = tr;
    return GR_OK;
}

void gr_trainer_free(gr_trainer *tr)
{
    if (!tr) return;
    gr_optimizer_free(tr->opt);
    gr_dist_reducer_free(tr->red);
    free(tr->all);
    free(tr->all_names);
    free(tr);
}

void gr_trainer_result_free(gr_trainer_result *res)
{
    if (!res) return;
    free(res->last_checkpoint);
    res->last_checkpoint = NULL;
}

/* ------------------------------------------------------------------ checkpoint state ---- */

static char *state_json(const gr_trainer *tr)
{
    json_t *o = json_object();
    json_object_set_new(o, "stage", json_string(tr->cfg.stage));
    json_object_set_new(o, "global_step", json_integer(tr->cfg.step_offset + tr->step));
    json_object_set_new(o, "step", json_integer(tr->step));
    json_object_set_new(o, "epoch", json_integer(tr->epoch));
    json_object_set_new(o, "next_batch", json_integer(tr->next_batch));
    json_object_set_new(o, "skipped", json_integer(tr->skipped));
    json_object_set_new(o, "nonfinite_run", json_integer(tr->nonfinite_run));
    json_object_set_new(o, "last_eval_step", json_integer(tr->last_eval_step));
    json_object_set_new(o, "optimizer_steps", json_integer(gr_optimizer_steps(tr->opt)));
    json_t *extra = NULL;
    if (tr->cfg.state_extra) extra = json_loads(tr->cfg.state_extra, 0, NULL);
    json_object_set_new(o, "extra", extra ? extra : json_object());
    if (tr->cfg.config_text) json_object_set_new(o, "config", json_string(tr->cfg.config_text));
    char *txt = json_dumps(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(o);
    return txt;
}

static gr_status save_checkpoint(gr_trainer *tr, gr_trainer_result *res)
{
    if (tr->red) {
        /* data parallel: what rank 0 saves must be what every rank holds; rank 0 alone writes */
        gr_status s = gr_dist_check_equal(tr->ctx, tr->cfg.params, tr->cfg.count, "checkpoint");
        if (s != GR_OK) return gr_fail_context(s, "stage %s", tr->cfg.stage);
        if (!gr_dist_is_root()) {
            tr->last_ckpt_step = tr->step;
            return gr_dist_barrier(); /* until rank 0 has written it */
        }
    }
    char *js = state_json(tr);
    if (!js) return gr_fail(GR_ERR_NOMEM, "trainer: out of memory (state.json)");
    const char *dir = gr_runlog_dir(tr->log);
    int64_t gstep = tr->cfg.step_offset + tr->step;
    /* The log first: it must be at least as durable as the checkpoint it is truncated to. */
    gr_status s = gr_runlog_sync(tr->log);
    if (s == GR_OK)
        s = gr_checkpoint_save(tr->ctx, dir, gstep, tr->all, tr->all_names, tr->all_count, tr->opt,
                               tr->all_names, js, tr->cfg.ckpt_keep);
    free(js);
    if (s != GR_OK) return gr_fail_context(s, "stage %s: checkpoint at step %lld", tr->cfg.stage, (long long)gstep);
    tr->last_ckpt_step = tr->step;
    if (tr->red && (s = gr_dist_barrier()) != GR_OK) return s; /* saved before any rank moves on */
    if (res) {
        free(res->last_checkpoint);
        res->last_checkpoint = NULL;
        gr_checkpoint_latest(dir, &res->last_checkpoint);
    }
    return GR_OK;
}

static gr_status json_int(json_t *o, const char *key, const char *path, int64_t *v)
{
    json_t *x = json_object_get(o, key);
    if (!json_is_integer(x)) return gr_fail(GR_ERR_FORMAT, "%s: \"%s\" must be an integer", path, key);
    *v = json_integer_value(x);
    return GR_OK;
}

gr_status gr_checkpoint_read_state(const char *ckpt_dir, char **stage, int64_t *global_step, char **extra)
{
    char *path = gr_path_join(ckpt_dir, "state.json");
    if (!path) return gr_fail(GR_ERR_NOMEM, "out of memory");
    json_error_t err;
    json_t *o = json_load_file(path, 0, &err);
    gr_status s = GR_OK;
    if (!o || !json_is_object(o)) {
        s = gr_fail(GR_ERR_FORMAT, "%s: not a checkpoint state (%s)", path, o ? "not an object" : err.text);
    } else {
        json_t *st = json_object_get(o, "stage");
        int64_t g = 0;
        if (!json_is_string(st)) s = gr_fail(GR_ERR_FORMAT, "%s: \"stage\" must be a string", path);
        if (s == GR_OK) s = json_int(o, "global_step", path, &g);
        if (s == GR_OK && global_step) *global_step = g;
        if (s == GR_OK && stage) *stage = strdup(json_string_value(st));
        if (s == GR_OK && extra) {
            json_t *e = json_object_get(o, "extra");
            *extra = e ? json_dumps(e, JSON_COMPACT | JSON_PRESERVE_ORDER) : strdup("{}");
        }
    }
    json_decref(o);
    free(path);
    return s;
}

gr_status gr_trainer_restore(gr_trainer *tr, const char *ckpt_dir)
{
    char *js = NULL;
    gr_status s = gr_checkpoint_load(tr->ctx, ckpt_dir, tr->all, tr->all_names, tr->all_count, tr->opt,
                                     tr->all_names, &js);
    if (s != GR_OK) return s;
    char *path = gr_path_join(ckpt_dir, "state.json");
    json_error_t err;
    json_t *o = json_loads(js, 0, &err);
    free(js);
    if (!o || !json_is_object(o)) {
        s = gr_fail(GR_ERR_FORMAT, "%s: invalid JSON: %s", path, o ? "not an object" : err.text);
    } else {
        json_t *st = json_object_get(o, "stage");
        if (!json_is_string(st) || strcmp(json_string_value(st), tr->cfg.stage) != 0)
            s = gr_fail(GR_ERR_INVALID, "%s: checkpoint of stage '%s', not of stage '%s'", path,
                        json_is_string(st) ? json_string_value(st) : "?", tr->cfg.stage);
        int64_t g = 0, ost = 0;
        if (s == GR_OK) s = json_int(o, "step", path, &tr->step);
        if (s == GR_OK) s = json_int(o, "global_step", path, &g);
        if (s == GR_OK) s = json_int(o, "epoch", path, &tr->epoch);
        if (s == GR_OK) s = json_int(o, "next_batch", path, &tr->next_batch);
        if (s == GR_OK) s = json_int(o, "skipped", path, &tr->skipped);
        if (s == GR_OK) s = json_int(o, "nonfinite_run", path, &tr->nonfinite_run);
        if (s == GR_OK) s = json_int(o, "last_eval_step", path, &tr->last_eval_step);
        if (s == GR_OK) s = json_int(o, "optimizer_steps", path, &ost);
        if (s == GR_OK && g != tr->cfg.step_offset + tr->step)
            s = gr_fail(GR_ERR_INVALID, "%s: global step %lld does not fit the stage's offset %lld + %lld",
                        path, (long long)g, (long long)tr->cfg.step_offset, (long long)tr->step);
        if (s == GR_OK && (tr->step < 0 || tr->epoch < 0 || tr->next_batch < 0))
            s = gr_fail(GR_ERR_FORMAT, "%s: negative position", path);
        if (s == GR_OK && gr_optimizer_steps(tr->opt) != ost)
            s = gr_fail(GR_ERR_FORMAT, "%s: optimizer step count disagrees with optimizer.safetensors", path);
    }
    json_decref(o);
    free(path);
    if (s == GR_OK) {
        tr->restored = 1;
        tr->last_ckpt_step = tr->step;
    }
    return s;
}

/* ----------------------------------------------------------------------------- run ---- */

static gr_status evaluate(gr_trainer *tr, gr_trainer_result *res, double epoch)
{
    if (!tr->task.evaluate) return GR_OK;
    gr_ctx_reset(tr->ctx);
    int was = gr_ctx_set_grad_enabled(tr->ctx, 0);
    gr_task_eval ev;
    memset(&ev, 0, sizeof ev);
    ev.split = "val";
    gr_status s = tr->task.evaluate(tr->task.user, tr->ctx, &ev);
    gr_ctx_set_grad_enabled(tr->ctx, was);
    gr_ctx_reset(tr->ctx);
    if (s != GR_OK) return gr_fail_context(s, "stage %s: evaluation at step %lld", tr->cfg.stage, (long long)tr->step);
    if (ev.count < 0 || ev.count > GR_TASK_MAX_METRICS)
        return gr_fail(GR_ERR_INVALID, "stage %s: evaluation returned %d metrics", tr->cfg.stage, ev.count);
    tr->last_eval_step = tr->step;
    res->last_eval = ev;
    if (ev.count == 0) return GR_OK;
    return gr_runlog_eval(tr->log, ev.split ? ev.split : "val", tr->cfg.step_offset + tr->step,
                          tr->cfg.epoch_offset + epoch, ev.metrics, ev.count);
}

/* Fractional epochs of the current position. */
static double epoch_pos(const gr_trainer *tr, int64_t batches)
{
    return (double)tr->epoch + (batches > 0 ? (double)tr->next_batch / (double)batches : 0.0);
}

gr_status gr_trainer_run(gr_trainer *tr, gr_trainer_result *res)
{
    memset(res, 0, sizeof *res);
    res->last_loss = NAN;
    gr_trainer_config *c = &tr->cfg;
    gr_lr_schedule sched = c->lr;
    int64_t nb0 = 0;
    gr_status s = epoch_batches(tr, 0, &nb0);
    if (s != GR_OK) return s;
    int64_t spe0 = steps_in_epoch(nb0, c->accum);
    int64_t total = c->max_steps > 0 ? c->max_steps : c->max_epochs * spe0;
    if (sched.total_steps <= 0) sched.total_steps = total;
    if (sched.max_epochs <= 0) sched.max_epochs = c->max_steps > 0 ? (c->max_steps + spe0 - 1) / spe0 : c->max_epochs;

    gr_progress_opts po = c->progress;
    po.total_steps = c->step_offset + total;
    gr_progress *prog = gr_dist_is_root() ? gr_progress_new(&po) : NULL; /* one display per job */

    if (!tr->restored && c->eval_at_start && tr->step == 0) {
        gr_ctx_reset(tr->ctx);
        s = evaluate(tr, res, 0.0);
    }
    int64_t nb = 0;
    int stop = GR_TRAIN_DONE;
    while (s == GR_OK) {
        if (c->max_steps > 0 ? tr->step >= c->max_steps : tr->epoch >= c->max_epochs) break;
        if ((s = epoch_batches(tr, tr->epoch, &nb)) != GR_OK) break;
        if (tr->next_batch >= nb) { /* a checkpoint at an epoch's very end */
            tr->epoch++;
            tr->next_batch = 0;
            continue;
        }
        int64_t iter = tr->next_batch / c->accum; /* step within the epoch */
        double lr = gr_lr_at(&sched, tr->step, tr->epoch, iter);

        /* ---- one step: `accum` micro-batches (fewer at the epoch's end) ---- */
        double t0 = now_s();
        gr_ctx_reset_flops(tr->ctx);
        int64_t take = nb - tr->next_batch < c->accum ? nb - tr->next_batch : c->accum;
        double loss_sum = 0.0;
        int64_t tokens = 0, examples = 0;
        int bad = 0;
        char why[160] = "";
        for (int64_t k = 0; k < take && !bad; k++) {
            gr_ctx_reset(tr->ctx);
            gr_task_loss tl = {0};
            s = tr->task.forward(tr->task.user, tr->ctx, tr->epoch, tr->next_batch + k, &tl);
            if (s == GR_OK && !tl.loss) s = gr_fail(GR_ERR_INVALID, "task returned no loss");
            float lv = 0.0f;
            if (s == GR_OK) s = gr_to_host_f32(tr->ctx, tl.loss, &lv);
            if (s != GR_OK) {
                s = gr_fail_context(s, "stage %s: epoch %lld batch %lld", c->stage, (long long)tr->epoch,
                                    (long long)(tr->next_batch + k));
                break;
            }
            double seed_w = 1.0;
            if (tr->red) {
                /* data parallel: the step's loss is the token mean over every rank's batch, so
                 * each rank's gradient is weighted by its share of the tokens (examples when the
                 * task counts none) and the all-reduce sums: 2 ranks x batch B = 1 x batch 2B */
                double v[4] = {(double)tl.tokens, (double)tl.examples, (double)lv * (double)tl.tokens, (double)lv};
                s = gr_dist_sum_f64(v, 4);
                if (s != GR_OK) break;
                double own = v[0] > 0 ? (double)tl.tokens : (double)tl.examples, all = v[0] > 0 ? v[0] : v[1];
                seed_w = all > 0 ? own / all : 1.0 / gr_dist_world();
                lv = (float)(v[0] > 0 ? v[2] / v[0] : v[3] / gr_dist_world());
                tl.tokens = (int64_t)v[0];
                tl.examples = (int64_t)v[1];
            }
            tokens += tl.tokens;
            examples += tl.examples;
            if (!isfinite(lv)) {
                bad = 1;
                snprintf(why, sizeof why, "loss=%g at epoch %lld batch %lld", (double)lv, (long long)tr->epoch,
                         (long long)(tr->next_batch + k));
                break;
            }
            loss_sum += (double)lv;
            gr_tensor *seed = NULL;
            if (tr->red) {
                if (k == take - 1) gr_dist_reducer_begin(tr->red); /* buckets leave during this backward */
                seed = gr_full(tr->ctx, GR_F32, tl.loss->ndim, tl.loss->shape, (float)seed_w);
            }
            s = gr_backward(tr->ctx, tl.loss, seed);
            if (s == GR_OK && tr->red && k == take - 1) s = gr_dist_reducer_finish(tr->red);
            if (s != GR_OK) {
                s = gr_fail_context(s, "stage %s: backward", c->stage);
                break;
            }
        }
        gr_ctx_reset(tr->ctx);
        if (s != GR_OK) break;
        gr_step_result sr = {0};
        if (bad) {
            gr_optimizer_zero_grad(tr->opt);
        } else {
            s = gr_optimizer_step(tr->opt, lr, (int)take, &sr);
            if (s != GR_OK) { s = gr_fail_context(s, "stage %s: optimizer step", c->stage); break; }
            if (sr.skipped) {
                bad = 1;
                snprintf(why, sizeof why, "grad_norm=%g", sr.grad_norm);
            }
        }
        gr_flops fl;
        gr_ctx_flops(tr->ctx, &fl);
        int stop_req = gr_train_stop_requested();
        if (tr->red) {
            /* data parallel: the step's FLOPs are every rank's; a stop asked of any rank stops
             * all of them after this same step */
            double v[5] = {fl.forward_frozen, fl.forward_trainable, fl.backward_input, fl.backward_param, stop_req};
            if ((s = gr_dist_sum_f64(v, 5)) != GR_OK) break;
            fl.forward_frozen = v[0];
            fl.forward_trainable = v[1];
            fl.backward_input = v[2];
            fl.backward_param = v[3];
            stop_req = v[4] > 0;
        }
        tr->next_batch += take;
        tr->step++;
        double dt = now_s() - t0;

        gr_step_record rec = {
            .step = c->step_offset + tr->step,
            .epoch = c->epoch_offset + epoch_pos(tr, nb),
            .stage = c->stage,
            .loss = bad ? NAN : loss_sum / (double)take,
            .lr = lr,
            .grad_norm = bad ? NAN : sr.grad_norm,
            .tokens_per_s = dt > 0 ? (double)tokens / dt : 0.0,
            .examples_per_s = dt > 0 ? (double)examples / dt : 0.0,
            .flops = {fl.forward_frozen, fl.forward_trainable, fl.backward_input, fl.backward_param},
        };
        if (bad) {
            tr->skipped++;
            tr->nonfinite_run++;
            s = gr_runlog_event(tr->log, rec.step, rec.epoch, "skip_nonfinite", "%s", why);
            gr_log(GR_LOG_WARN, "stage %s: step %lld skipped: non-finite %s", c->stage, (long long)rec.step, why);
        } else {
            tr->nonfinite_run = 0;
            res->last_loss = rec.loss;
        }
        if (s == GR_OK) s = gr_runlog_step(tr->log, &rec);
        if (s != GR_OK) break;
        if (prog) gr_progress_step(prog, &rec);

        int epoch_end = tr->next_batch >= nb;
        int stage_end = c->max_steps > 0 ? tr->step >= c->max_steps : (epoch_end && tr->epoch + 1 >= c->max_epochs);
        if (epoch_end && tr->task.end_epoch) tr->task.end_epoch(tr->task.user, tr->epoch);
        int do_eval = (c->eval_every_steps > 0 && tr->step % c->eval_every_steps == 0) ||
                      (epoch_end && c->eval_every_epoch) ||
                      (stage_end && (c->eval_every_steps > 0 || c->eval_every_epoch));
        if (do_eval && tr->last_eval_step != tr->step) {
            /* Logged at the position after this step (the epoch end counts as e + 1). */
            s = evaluate(tr, res, epoch_pos(tr, nb));
            if (s != GR_OK) break;
        }
        if (epoch_end) {
            tr->epoch++;
            tr->next_batch = 0;
        }
        if (tr->nonfinite_run >= c->max_nonfinite) stop = GR_TRAIN_NONFINITE;
        else if (stop_req) stop = GR_TRAIN_INTERRUPTED;
        int do_ckpt = stop != GR_TRAIN_DONE || stage_end ||
                      (c->ckpt_every_steps > 0 && tr->step % c->ckpt_every_steps == 0) ||
                      (epoch_end && c->ckpt_every_epoch);
        if (do_ckpt && tr->last_ckpt_step != tr->step) {
            s = save_checkpoint(tr, res);
            if (s != GR_OK) break;
        }
        if (stop != GR_TRAIN_DONE) break;
    }
    if (s == GR_OK && tr->last_ckpt_step != tr->step && tr->step > 0) s = save_checkpoint(tr, res);
    if (s == GR_OK && !res->last_checkpoint && tr->last_ckpt_step >= 0 && gr_dist_is_root())
        gr_checkpoint_latest(gr_runlog_dir(tr->log), &res->last_checkpoint);
    if (prog) gr_progress_end(prog);
    if (tr->red) {
        gr_dist_reducer_stats ds;
        gr_dist_reducer_get_stats(tr->red, &ds);
        if (ds.launched > 0)
            gr_log(GR_LOG_INFO, "data parallel: %d ranks, %d buckets, %.1f MB of gradients a step, %.0f%% of buckets "
                   "sent during backward", gr_dist_world(), ds.buckets, 4e-6 * (double)ds.floats,
                   100.0 * (double)ds.early / (double)ds.launched);
    }
    res->steps = tr->step;
    res->skipped = tr->skipped;
    res->epochs = (double)tr->epoch + (nb > 0 ? (double)tr->next_batch / (double)nb : 0.0);
    res->flops_total = gr_runlog_flops_total(tr->log);
    res->stop_reason = stop;
    if (s != GR_OK) return s;
    if (stop == GR_TRAIN_INTERRUPTED) {
        gr_runlog_event(tr->log, c->step_offset + tr->step, c->epoch_offset + res->epochs, "stop",
                        "interrupted; saved at step %lld", (long long)(c->step_offset + tr->step));
        return gr_fail(GR_ERR_INTERRUPTED, "stage %s: interrupted at step %lld; state saved in %s (resume with --resume)",
                       c->stage, (long long)(c->step_offset + tr->step), gr_runlog_dir(tr->log));
    }
    if (stop == GR_TRAIN_NONFINITE) {
        gr_runlog_event(tr->log, c->step_offset + tr->step, c->epoch_offset + res->epochs, "stop",
                        "%lld non-finite steps in a row", (long long)tr->nonfinite_run);
        return gr_fail(GR_ERR_NUMERIC, "stage %s: %lld non-finite steps in a row (last at step %lld); state saved in %s",
                       c->stage, (long long)tr->nonfinite_run, (long long)(c->step_offset + tr->step),
                       gr_runlog_dir(tr->log));
    }
    return GR_OK;
}
