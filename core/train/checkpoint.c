#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fsutil.h"
#include "graft/weights.h"
#include "train/checkpoint.h"

static char *join3(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 3;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s%s%s", a, b, c[0] ? "/" : "", c);
    return s;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Removes step-* directories beyond the newest `keep`. Failures to prune are not fatal. */
static void prune(const char *ckdir, int keep)
{
    DIR *d = opendir(ckdir);
    if (!d) return;
    char *names[4096];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 4096)
        if (strncmp(e->d_name, "step-", 5) == 0) names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n; i++) {
        if (i < n - keep) {
            static const char *const files[] = {"trainable.safetensors", "optimizer.safetensors", "state.json"};
            for (int f = 0; f < 3; f++) {
                char *p = join3(ckdir, names[i], files[f]);
                if (p) unlink(p);
                free(p);
            }
            char *p = join3(ckdir, names[i], "");
            if (p) rmdir(p);
            free(p);
        }
        free(names[i]);
    }
}

static const char *nm(const char *const *names, int i, const gr_tensor *t)
{
    return names && names[i] ? names[i] : (t->name ? t->name : "?");
}

gr_status gr_checkpoint_save(gr_ctx *ctx, const char *run_dir, int64_t step,
                             gr_tensor *const *tensors, const char *const *names, int count,
                             const gr_optimizer *opt, const char *const *opt_names,
                             const char *state_json, int keep)
{
    char name[64];
    snprintf(name, sizeof name, "step-%08lld", (long long)step);
    char *ckdir = join3(run_dir, "checkpoints", "");
    char *dir = ckdir ? join3(ckdir, name, "") : NULL;
    gr_status s = (ckdir && dir) ? gr_mkdirs(dir) : gr_fail(GR_ERR_NOMEM, "checkpoint: out of memory");
    char *path = NULL;
    if (s == GR_OK) {
        path = join3(dir, "trainable.safetensors", "");
        const char *meta[] = {"format", "pt", "producer", "graft", NULL};
        const char **nms = malloc(sizeof *nms * (size_t)(count + 1));
        if (!nms) s = gr_fail(GR_ERR_NOMEM, "checkpoint: out of memory");
        for (int i = 0; s == GR_OK && i < count; i++) nms[i] = nm(names, i, tensors[i]);
        if (s == GR_OK) s = gr_safetensors_write(ctx, path, tensors, nms, count, meta);
        free(nms);
        free(path);
    }
    if (s == GR_OK && opt) {
        int n = gr_optimizer_count(opt);
        gr_tensor **ts = malloc(sizeof *ts * (size_t)(2 * n + 1));
        char **mnames = calloc((size_t)(2 * n + 1), sizeof *mnames);
        if (!ts || !mnames) s = gr_fail(GR_ERR_NOMEM, "checkpoint: out of memory");
        for (int i = 0; s == GR_OK && i < n; i++) {
            const char *pn = nm(opt_names, i, gr_optimizer_param(opt, i));
            size_t len = strlen(pn) + 3;
            mnames[2 * i] = malloc(len);
            mnames[2 * i + 1] = malloc(len);
            if (!mnames[2 * i] || !mnames[2 * i + 1]) { s = gr_fail(GR_ERR_NOMEM, "checkpoint: out of memory"); break; }
            snprintf(mnames[2 * i], len, "m.%s", pn);
            snprintf(mnames[2 * i + 1], len, "v.%s", pn);
            ts[2 * i] = gr_optimizer_m(opt, i);
            ts[2 * i + 1] = gr_optimizer_v(opt, i);
        }
        if (s == GR_OK) {
            char steps[32];
            snprintf(steps, sizeof steps, "%lld", (long long)gr_optimizer_steps(opt));
            const char *meta[] = {"optimizer", "adamw", "steps", steps, NULL};
            path = join3(dir, "optimizer.safetensors", "");
            s = gr_safetensors_write(ctx, path, ts, (const char *const *)mnames, 2 * n, meta);
            free(path);
        }
        for (int i = 0; mnames && i < 2 * n; i++) free(mnames[i]);
        free(mnames);
        free(ts);
    }
    if (s == GR_OK) {
        path = join3(dir, "state.json", "");
        s = gr_write_file_atomic(path, state_json, strlen(state_json));
        free(path);
    }
    if (s == GR_OK) {
        /* The pointer moves only once every file of the new checkpoint is durable. */
        path = join3(ckdir, "latest", "");
        s = gr_write_file_atomic(path, name, strlen(name));
        free(path);
    }
    if (s == GR_OK) prune(ckdir, keep < 1 ? 1 : keep);
    free(dir);
    free(ckdir);
    return s;
}

gr_status gr_checkpoint_latest(const char *run_dir, char **dir)
{
    char *ptr = join3(run_dir, "checkpoints", "latest");
    char *name = NULL;
    if (!ptr) return gr_fail(GR_ERR_NOMEM, "checkpoint: out of memory");
    if (!gr_path_exists(ptr)) {
        gr_status s = gr_fail(GR_ERR_NOT_FOUND, "%s: no checkpoint to resume from", run_dir);
        free(ptr);
        return s;
    }
    gr_status s = gr_read_file(ptr, &name, NULL);
    if (s == GR_OK) {
        name[strcspn(name, "\r\n")] = '\0';
        if (strncmp(name, "step-", 5) != 0 || strchr(name, '/'))
            s = gr_fail(GR_ERR_FORMAT, "%s: not a checkpoint name: '%s'", ptr, name);
    }
    if (s == GR_OK) {
        *dir = join3(run_dir, "checkpoints", name);
        if (!*dir) s = gr_fail(GR_ERR_NOMEM, "checkpoint: out of memory");
    }
    free(name);
    free(ptr);
    return s;
}

/* Copies the stored tensor into param (converting float dtypes), checking shape. */
static gr_status load_into(gr_ctx *ctx, const gr_weights *w, const char *file, const char *name,
                           gr_tensor *param)
{
    const gr_weight_info *info = gr_weights_find(w, name);
    if (!info) return gr_fail(GR_ERR_NOT_FOUND, "%s: missing tensor '%s'", file, name);
    int same = info->ndim == param->ndim;
    for (int d = 0; same && d < info->ndim; d++) same = info->shape[d] == param->shape[d];
    if (!same) return gr_fail(GR_ERR_SHAPE, "%s: tensor '%s' has another shape than the model's", file, name);
    if (info->dtype == param->dtype) return gr_upload(ctx, param, info->data);
    if (param->dtype != GR_F32) return gr_fail(GR_ERR_SHAPE, "%s: tensor '%s' has dtype %s, model wants %s",
                                               file, name, gr_dtype_name(info->dtype), gr_dtype_name(param->dtype));
    int64_t n = gr_numel(param);
    float *tmp = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!tmp) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", file);
    gr_convert_to_f32(tmp, info->data, info->dtype, (size_t)n);
    gr_status s = gr_upload(ctx, param, tmp);
    free(tmp);
    return s;
}

gr_status gr_load_tensors(gr_ctx *ctx, const char *path, gr_tensor *const *params,
                          const char *const *names, int count)
{
    gr_weights *w = NULL;
    gr_status s = gr_weights_open(path, &w);
    for (int i = 0; s == GR_OK && i < count; i++) s = load_into(ctx, w, path, nm(names, i, params[i]), params[i]);
    if (w) gr_weights_close(w);
    return s;
}

gr_status gr_checkpoint_load(gr_ctx *ctx, const char *ckpt_dir, gr_tensor *const *tensors,
                             const char *const *names, int count, gr_optimizer *opt,
                             const char *const *opt_names, char **state_json)
{
    char *path = join3(ckpt_dir, "trainable.safetensors", "");
    gr_status s = path ? gr_load_tensors(ctx, path, tensors, names, count) : gr_fail(GR_ERR_NOMEM, "out of memory");
    free(path);
    if (s == GR_OK && opt) {
        path = join3(ckpt_dir, "optimizer.safetensors", "");
        gr_weights *w = NULL;
        s = gr_weights_open(path, &w);
        for (int i = 0; s == GR_OK && i < gr_optimizer_count(opt); i++) {
            char name[600];
            const char *pn = nm(opt_names, i, gr_optimizer_param(opt, i));
            snprintf(name, sizeof name, "m.%s", pn);
            s = load_into(ctx, w, path, name, gr_optimizer_m(opt, i));
            snprintf(name, sizeof name, "v.%s", pn);
            if (s == GR_OK) s = load_into(ctx, w, path, name, gr_optimizer_v(opt, i));
        }
        if (s == GR_OK) {
            const char *steps = gr_weights_metadata(w, "steps");
            char *end = NULL;
            long long v = steps ? strtoll(steps, &end, 10) : -1;
            if (!steps || *end || v < 0) s = gr_fail(GR_ERR_FORMAT, "%s: no valid 'steps' metadata", path);
            else gr_optimizer_set_steps(opt, v);
        }
        if (w) gr_weights_close(w);
        free(path);
    }
    if (s == GR_OK) {
        path = join3(ckpt_dir, "state.json", "");
        s = gr_read_file(path, state_json, NULL);
        free(path);
    }
    return s;
}
