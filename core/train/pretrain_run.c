/* The run around a pretraining command's task (see pretrain_run.h). */
#include "train/pretrain_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/fsutil.h"
#include "train/checkpoint.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* "PREFIX.leaf" in buf; leaves are short literals, so it always fits. */
static const char *key(const gr_pretrain_run *r, const char *leaf, char buf[96])
{
    snprintf(buf, 96, "%s.%s", r->prefix, leaf);
    return buf;
}

gr_status gr_pretrain_run_init(gr_pretrain_run *r, const char *name, const char *prefix, const gr_config *cfg)
{
    char k[96];
    memset(r, 0, sizeof *r);
    r->name = name;
    r->prefix = prefix;
    r->cfg = cfg;
    r->t_start = now_s();
    r->out = gr_config_string(cfg, key(r, "out", k));
    r->run_dir = gr_path_join(r->out, "run");
    return r->run_dir ? GR_OK : gr_fail(GR_ERR_NOMEM, "out of memory");
}

gr_status gr_pretrain_run_open(gr_pretrain_run *r, int resume)
{
    gr_status s;
    if (resume) {
        s = gr_runlog_open(r->run_dir, GR_RUN_RESUME, &r->log);
        int64_t step = 0;
        if (!s) s = gr_checkpoint_latest(r->run_dir, &r->ckpt);
        if (!s) s = gr_checkpoint_read_state(r->ckpt, NULL, &step, NULL);
        if (!s) s = gr_runlog_truncate_after(r->log, step);
        if (!s) printf("%s: resuming from %s\n", r->name, r->ckpt);
        return s;
    }
    s = gr_runlog_open(r->run_dir, GR_RUN_NEW, &r->log);
    char *p = s ? NULL : gr_runlog_path(r->log, GR_RUN_CONFIG);
    if (!s && !p) s = gr_fail(GR_ERR_NOMEM, "out of memory");
    if (!s) s = gr_config_write(r->cfg, p);
    free(p);
    return s;
}

/* One stage: AdamW and warm-up + cosine from the PREFIX.* keys, evaluation every eval_every
 * steps or each epoch, only the newest checkpoint kept. */
static gr_status trainer_config(const gr_pretrain_run *r, gr_tensor *const *params, int count, gr_trainer_config *c)
{
    const gr_config *cfg = r->cfg;
    char k[96];
    gr_trainer_config_defaults(c);
    c->stage = r->name;
    c->params = params;
    c->count = count;
    c->adamw.weight_decay = gr_config_float(cfg, key(r, "weight_decay", k));
    c->adamw.grad_clip = gr_config_float(cfg, key(r, "grad_clip", k));
    c->lr.kind = GR_LR_COSINE;
    c->lr.base_lr = gr_config_float(cfg, key(r, "lr", k));
    c->lr.min_lr = gr_config_float(cfg, key(r, "min_lr", k));
    c->lr.warmup_lr = 0.0;
    c->lr.warmup_steps = gr_config_int(cfg, key(r, "warmup_steps", k));
    c->lr.per_epoch = 0;
    c->max_epochs = gr_config_int(cfg, key(r, "epochs", k));
    c->max_steps = gr_config_int(cfg, key(r, "steps", k));
    c->eval_every_steps = gr_config_int(cfg, key(r, "eval_every", k));
    c->eval_every_epoch = c->eval_every_steps == 0;
    c->ckpt_keep = 1;
    if (c->max_epochs < 1 && c->max_steps < 1)
        return gr_fail(GR_ERR_INVALID, "%s: %s.epochs or %s.steps must be > 0", gr_config_path(cfg), r->prefix, r->prefix);
    return GR_OK;
}

gr_status gr_pretrain_run_train(gr_pretrain_run *r, gr_ctx *ctx, const gr_task *task, gr_tensor *const *params, int count)
{
    gr_trainer_config c;
    gr_status s = trainer_config(r, params, count, &c);
    if (!s) s = gr_trainer_create(ctx, &c, task, r->log, &r->tr);
    if (!s && r->ckpt) s = gr_trainer_restore(r->tr, r->ckpt);
    if (s) return s;
    gr_train_install_signal_handlers();
    double t0 = now_s();
    s = gr_trainer_run(r->tr, &r->res);
    r->t_train = now_s() - t0;
    return s;
}

gr_status gr_pretrain_run_finish(gr_pretrain_run *r, const gr_metric *quality, int n, int quality_ok, const char *what)
{
    gr_run_data *d = NULL;
    gr_report *rep = gr_report_new();
    gr_status s = rep ? GR_OK : gr_fail(GR_ERR_NOMEM, "out of memory");
    if (!s) s = gr_run_data_read(r->run_dir, &d);
    if (!s) s = gr_report_fill_from_log(rep, d);
    if (!s) s = gr_report_set_number(rep, "timings.train_s", r->t_train);
    if (!s) s = gr_report_set_number(rep, "timings.total_s", now_s() - r->t_start);
    if (!s) s = gr_report_set_string(rep, "output", r->out);
    for (int i = 0; i < n && !s; i++) {
        char k[96];
        snprintf(k, sizeof k, "quality.%s", quality[i].name);
        s = gr_report_set_number(rep, k, quality[i].value);
    }
    char *rp = s ? NULL : gr_runlog_path(r->log, GR_RUN_REPORT);
    if (!s) s = rp ? gr_report_write(rep, rp) : gr_fail(GR_ERR_NOMEM, "out of memory");
    free(rp);
    gr_run_data_free(d);
    gr_report_free(rep);
    if (s) return s;
    printf("%s: %lld steps in %.1f s, %.3g FLOPs; quality %s -> %s/quality.json\n", r->name, (long long)r->res.steps, r->t_train,
           r->res.flops_total, quality_ok ? "ok" : "BELOW THE BAR", r->out);
    char k[96];
    if (!quality_ok && gr_config_bool(r->cfg, key(r, "require_quality", k)))
        return gr_fail(GR_ERR_NUMERIC, "%s: the pretrained %s misses the quality bar (see quality.json)", r->out, what);
    return GR_OK;
}

void gr_pretrain_run_free(gr_pretrain_run *r)
{
    gr_trainer_result_free(&r->res);
    gr_trainer_free(r->tr);
    gr_runlog_close(r->log);
    free(r->ckpt);
    free(r->run_dir);
    memset(r, 0, sizeof *r);
}
