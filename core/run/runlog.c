/* metrics.jsonl writer: run directory creation, one record per line, truncation on resume. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "base/fsutil.h"
#include "base/log.h"
#include "run/runlog.h"
#include "run/runlog_internal.h"

struct gr_runlog {
    char *dir;
    char *metrics; /* RUN_DIR/metrics.jsonl */
    int fd;
    int follow;    /* GR_RUN_FOLLOW: never writes */
    double flops_total;
    int64_t last_step;
};

const char *gr_runlog_dir(const gr_runlog *log) { return log->dir; }
char *gr_runlog_path(const gr_runlog *log, const char *name) { return gr_path_join(log->dir, name); }
double gr_runlog_flops_total(const gr_runlog *log) { return log->flops_total; }
int64_t gr_runlog_last_step(const gr_runlog *log) { return log->last_step; }

json_t *gr_json_number(double v)
{
    /* JSON has no NaN/Inf: a non-finite value is written as null and read back as NaN. */
    return isfinite(v) ? json_real(v) : json_null();
}

/* Serialises with the fewest digits that still read back to the same doubles: "lr": 0.0001
 * rather than 0.00010000000000000000479, yet every value round-trips bit for bit. */
char *gr_json_dump_exact(const json_t *obj, size_t flags)
{
    for (int prec = 15; prec <= 17; prec++) {
        char *s = json_dumps(obj, flags | JSON_REAL_PRECISION(prec));
        if (!s) return NULL;
        if (prec == 17) return s;
        json_t *back = json_loads(s, JSON_DECODE_ANY, NULL);
        int same = back && json_equal(back, (json_t *)obj);
        json_decref(back);
        if (same) return s;
        free(s);
    }
    return NULL;
}

static double wall_time(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* Milliseconds are plenty and keep the lines short. */
    return (double)ts.tv_sec + (double)(ts.tv_nsec / 1000000) / 1000.0;
}

static gr_status write_all(int fd, const char *path, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return gr_fail(GR_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return GR_OK;
}

/* Writes obj and its newline with ONE write(2): a kill leaves either the whole line, nothing,
 * or a torn tail without newline that readers ignore and resume cuts. Consumes obj. */
static gr_status append_record(gr_runlog *log, json_t *obj)
{
    if (!obj) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", log->metrics);
    if (log->follow) {
        json_decref(obj);
        return GR_OK;
    }
    json_object_set_new(obj, "time", json_real(wall_time()));
    char *s = gr_json_dump_exact(obj, JSON_COMPACT);
    json_decref(obj);
    if (!s) return gr_fail(GR_ERR_NOMEM, "%s: cannot serialise record", log->metrics);
    size_t n = strlen(s);
    char *line = realloc(s, n + 2);
    if (!line) { free(s); return gr_fail(GR_ERR_NOMEM, "%s: out of memory", log->metrics); }
    line[n] = '\n';
    line[n + 1] = '\0';
    gr_status st = write_all(log->fd, log->metrics, line, n + 1);
    free(line);
    return st;
}

static gr_status check_step(gr_runlog *log, int64_t step)
{
    if (step < 0 || step < log->last_step)
        return gr_fail(GR_ERR_INVALID, "%s: step %lld logged after step %lld (records must be in step order)",
                       log->metrics, (long long)step, (long long)log->last_step);
    return GR_OK;
}

gr_status gr_runlog_step(gr_runlog *log, const gr_step_record *r)
{
    if (check_step(log, r->step) != GR_OK) return GR_ERR_INVALID;
    const gr_step_flops *f = &r->flops;
    double step_flops = f->fwd_frozen + f->fwd_trainable + f->bwd_input + f->bwd_param;
    if (!isfinite(step_flops) || f->fwd_frozen < 0 || f->fwd_trainable < 0 || f->bwd_input < 0 || f->bwd_param < 0)
        return gr_fail(GR_ERR_INVALID, "%s: step %lld: FLOP counts must be finite and >= 0",
                       log->metrics, (long long)r->step);
    json_t *o = json_object();
    if (!o) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", log->metrics);
    json_object_set_new(o, "type", json_string("step"));
    json_object_set_new(o, "step", json_integer(r->step));
    json_object_set_new(o, "epoch", gr_json_number(r->epoch));
    if (r->stage && r->stage[0]) json_object_set_new(o, "stage", json_string(r->stage));
    json_object_set_new(o, "loss", gr_json_number(r->loss));
    json_object_set_new(o, "lr", gr_json_number(r->lr));
    json_object_set_new(o, "grad_norm", gr_json_number(r->grad_norm));
    json_object_set_new(o, "tokens_per_s", gr_json_number(r->tokens_per_s));
    json_object_set_new(o, "examples_per_s", gr_json_number(r->examples_per_s));
    json_t *fl = json_object();
    json_object_set_new(fl, "fwd_frozen", json_real(f->fwd_frozen));
    json_object_set_new(fl, "fwd_trainable", json_real(f->fwd_trainable));
    json_object_set_new(fl, "bwd_input", json_real(f->bwd_input));
    json_object_set_new(fl, "bwd_param", json_real(f->bwd_param));
    json_object_set_new(o, "flops", fl);
    double total = log->flops_total + step_flops;
    json_object_set_new(o, "flops_total", json_real(total));
    gr_status st = append_record(log, o);
    if (st != GR_OK) return st;
    log->flops_total = total;
    log->last_step = r->step;
    return GR_OK;
}

gr_status gr_runlog_eval(gr_runlog *log, const char *split, int64_t step, double epoch,
                         const gr_metric *metrics, int count)
{
    if (check_step(log, step) != GR_OK) return GR_ERR_INVALID;
    if (!split || !split[0]) return gr_fail(GR_ERR_INVALID, "%s: eval at step %lld: empty split name", log->metrics, (long long)step);
    if (count <= 0) return gr_fail(GR_ERR_INVALID, "%s: eval at step %lld: no metrics", log->metrics, (long long)step);
    json_t *m = json_object();
    if (!m) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", log->metrics);
    for (int i = 0; i < count; i++) {
        const char *name = metrics[i].name;
        if (!name || !name[0] || json_object_get(m, name)) {
            json_decref(m);
            return gr_fail(GR_ERR_INVALID, "%s: eval at step %lld: metric name '%s' is empty or repeated",
                           log->metrics, (long long)step, name ? name : "");
        }
        json_object_set_new(m, name, gr_json_number(metrics[i].value));
    }
    json_t *o = json_object();
    if (!o) { json_decref(m); return gr_fail(GR_ERR_NOMEM, "%s: out of memory", log->metrics); }
    json_object_set_new(o, "type", json_string("eval"));
    json_object_set_new(o, "split", json_string(split));
    json_object_set_new(o, "step", json_integer(step));
    json_object_set_new(o, "epoch", gr_json_number(epoch));
    json_object_set_new(o, "flops_total", json_real(log->flops_total));
    json_object_set_new(o, "metrics", m);
    gr_status st = append_record(log, o);
    if (st == GR_OK) log->last_step = step;
    return st;
}

gr_status gr_runlog_event(gr_runlog *log, int64_t step, double epoch, const char *event, const char *fmt, ...)
{
    if (check_step(log, step) != GR_OK) return GR_ERR_INVALID;
    if (!event || !event[0]) return gr_fail(GR_ERR_INVALID, "%s: event at step %lld without a name", log->metrics, (long long)step);
    char msg[1024] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
    }
    json_t *o = json_object();
    if (!o) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", log->metrics);
    json_object_set_new(o, "type", json_string("event"));
    json_object_set_new(o, "event", json_string(event));
    json_object_set_new(o, "step", json_integer(step));
    json_object_set_new(o, "epoch", gr_json_number(epoch));
    /* json_string refuses invalid UTF-8; keep the event rather than lose it over a message. */
    json_t *jm = json_string(msg);
    json_object_set_new(o, "message", jm ? jm : json_string("(message not UTF-8)"));
    gr_status st = append_record(log, o);
    if (st == GR_OK) log->last_step = step;
    return st;
}

gr_status gr_runlog_sync(gr_runlog *log)
{
    if (log->follow) return GR_OK;
    if (fsync(log->fd) != 0) return gr_fail(GR_ERR_IO, "%s: fsync failed: %s", log->metrics, strerror(errno));
    return GR_OK;
}

static void sync_dir(const char *dir)
{
    /* Makes a new directory entry durable; failure only weakens crash safety, so it is not fatal. */
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) { (void)fsync(fd); close(fd); }
}

static gr_status open_new(gr_runlog *log)
{
    static const char *const reserved[] = {GR_RUN_CONFIG, GR_RUN_METRICS, GR_RUN_CHECKPOINTS, GR_RUN_REPORT};
    if (gr_path_exists(log->dir) && !gr_is_dir(log->dir))
        return gr_fail(GR_ERR_INVALID, "%s: exists and is not a directory", log->dir);
    for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++) {
        char *p = gr_path_join(log->dir, reserved[i]);
        if (!p) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", log->dir);
        int exists = gr_path_exists(p);
        free(p);
        if (exists)
            return gr_fail(GR_ERR_INVALID, "%s: already holds a run (%s); resume it or choose another directory",
                           log->dir, reserved[i]);
    }
    gr_status st = gr_mkdirs(log->dir);
    if (st != GR_OK) return st;
    const char *subdirs[] = {GR_RUN_CHECKPOINTS, GR_RUN_PLOTS};
    for (int i = 0; i < 2; i++) {
        char *p = gr_path_join(log->dir, subdirs[i]);
        if (!p) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", log->dir);
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            st = gr_fail(GR_ERR_IO, "%s: cannot create directory: %s", p, strerror(errno));
            free(p);
            return st;
        }
        free(p);
    }
    /* O_EXCL: two trainers started on the same directory cannot both win. */
    log->fd = open(log->metrics, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (log->fd < 0)
        return gr_fail(GR_ERR_IO, "%s: cannot create: %s", log->metrics, strerror(errno));
    sync_dir(log->dir);
    return GR_OK;
}

/* Resume: whatever a kill left after the last newline is either a whole record missing its
 * newline (completed) or a torn one (cut), so the next append starts a fresh line. */
static gr_status repair_tail(gr_runlog *log)
{
    char *data;
    size_t len;
    gr_status st = gr_read_file(log->metrics, &data, &len);
    if (st != GR_OK) return st;
    size_t keep = len;
    while (keep > 0 && data[keep - 1] != '\n') keep--;
    if (keep < len) {
        json_t *j = json_loadb(data + keep, len - keep, 0, NULL);
        int whole = j && json_is_object(j);
        json_decref(j);
        if (whole) {
            st = write_all(log->fd, log->metrics, "\n", 1);
        } else {
            gr_log(GR_LOG_WARN, "%s: cutting a torn last line (%zu bytes)", log->metrics, len - keep);
            if (ftruncate(log->fd, (off_t)keep) != 0)
                st = gr_fail(GR_ERR_IO, "%s: cannot truncate: %s", log->metrics, strerror(errno));
        }
    }
    free(data);
    return st;
}

gr_status gr_runlog_open(const char *run_dir, gr_run_mode mode, gr_runlog **out)
{
    *out = NULL;
    if (!run_dir || !run_dir[0]) return gr_fail(GR_ERR_INVALID, "run directory: empty path");
    gr_runlog *log = calloc(1, sizeof *log);
    if (!log) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", run_dir);
    log->fd = -1;
    log->dir = strdup(run_dir);
    log->metrics = gr_path_join(run_dir, GR_RUN_METRICS);
    gr_status st = GR_OK;
    if (!log->dir || !log->metrics) {
        st = gr_fail(GR_ERR_NOMEM, "%s: out of memory", run_dir);
    } else if (mode == GR_RUN_FOLLOW) {
        log->follow = 1; /* rank 0 creates or repairs the directory; this one only reads */
    } else if (mode == GR_RUN_NEW) {
        st = open_new(log);
    } else if (!gr_is_dir(run_dir)) {
        st = gr_fail(GR_ERR_NOT_FOUND, "%s: no such run directory to resume", run_dir);
    } else if (!gr_path_exists(log->metrics)) {
        st = gr_fail(GR_ERR_NOT_FOUND, "%s: not a run directory (no %s)", run_dir, GR_RUN_METRICS);
    } else {
        log->fd = open(log->metrics, O_RDWR | O_APPEND | O_CLOEXEC);
        if (log->fd < 0) st = gr_fail(GR_ERR_IO, "%s: cannot open: %s", log->metrics, strerror(errno));
        else st = repair_tail(log);
        /* Until truncate_after says otherwise, continue from the end of the log. */
        if (st == GR_OK) st = gr_runlog_truncate_after(log, INT64_MAX);
    }
    if (st != GR_OK) {
        if (log->fd >= 0) close(log->fd);
        free(log->dir);
        free(log->metrics);
        free(log);
        return st;
    }
    *out = log;
    return GR_OK;
}

gr_status gr_runlog_close(gr_runlog *log)
{
    if (!log) return GR_OK;
    gr_status st = GR_OK;
    if (log->fd >= 0) {
        if (fsync(log->fd) != 0) st = gr_fail(GR_ERR_IO, "%s: fsync failed: %s", log->metrics, strerror(errno));
        if (close(log->fd) != 0 && st == GR_OK)
            st = gr_fail(GR_ERR_IO, "%s: close failed: %s", log->metrics, strerror(errno));
    }
    free(log->dir);
    free(log->metrics);
    free(log);
    return st;
}

gr_status gr_runlog_truncate_after(gr_runlog *log, int64_t step)
{
    if (step < 0) return gr_fail(GR_ERR_INVALID, "%s: truncate after step %lld: negative", log->metrics, (long long)step);
    char *data;
    size_t len;
    gr_status st = gr_read_file(log->metrics, &data, &len);
    if (st != GR_OK) return st;
    size_t pos = 0, cut = len;
    long line = 0;
    double flops = 0;
    int64_t last_step = 0, last_train_step = 0;
    while (pos < len) {
        char *nl = memchr(data + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - data) : len;
        line++;
        gr_json_record rec;
        st = gr_json_parse_record(log->metrics, line, data + pos, end - pos, &rec);
        if (st != GR_OK) {
            if (!nl) { st = GR_OK; cut = pos; break; } /* torn tail: cut with the rest */
            json_decref(rec.obj);
            break;
        }
        if (rec.step > step) { json_decref(rec.obj); cut = pos; break; }
        if (rec.step < last_step) {
            json_decref(rec.obj);
            st = gr_fail(GR_ERR_FORMAT, "%s:%ld: step %lld after step %lld (records out of order)",
                         log->metrics, line, (long long)rec.step, (long long)last_step);
            break;
        }
        last_step = rec.step;
        if (rec.has_flops_total) flops = rec.flops_total;
        if (rec.kind == GR_REC_STEP) last_train_step = rec.step;
        json_decref(rec.obj);
        pos = nl ? end + 1 : len;
    }
    free(data);
    if (st != GR_OK) return st;
    if (step != INT64_MAX && last_train_step < step)
        return gr_fail(GR_ERR_FORMAT, "%s: the log ends at step %lld but the checkpoint is at step %lld",
                       log->metrics, (long long)last_train_step, (long long)step);
    if (cut < len && !log->follow) {
        if (ftruncate(log->fd, (off_t)cut) != 0)
            return gr_fail(GR_ERR_IO, "%s: cannot truncate: %s", log->metrics, strerror(errno));
        st = gr_runlog_sync(log);
        if (st != GR_OK) return st;
    }
    log->flops_total = flops;
    log->last_step = last_step;
    return GR_OK;
}
