/* Progress line / periodic lines (no curses: "\r" and "erase to end of line" only). */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "run/progress.h"

#define BAR_INTERVAL 0.1 /* seconds between redraws: ~10 Hz is smooth and costs nothing */

struct gr_progress {
    gr_progress_mode mode;
    FILE *out;
    int64_t total, every_steps;
    double every_seconds;
    int width;
    /* rate: steps and time since the first step this process saw */
    int have_start;
    double t_start;
    int64_t step_start;
    /* the latest record, and loss accumulated since the last display */
    int have_last;
    gr_step_record last;
    char stage[32];
    double loss_sum, loss_shown; /* loss_shown: the mean last displayed */
    int64_t loss_n;
    double t_shown;
    int64_t step_shown;
    int bar_drawn; /* the cursor sits at the end of a drawn bar line */
};

static double monotonic_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

const char *gr_format_duration(double s, char *buf, size_t cap)
{
    if (!isfinite(s) || s < 0) { snprintf(buf, cap, "?"); return buf; }
    long t = lround(s);
    if (t >= 86400) snprintf(buf, cap, "%ldd%02ldh", t / 86400, t % 86400 / 3600);
    else if (t >= 3600) snprintf(buf, cap, "%ldh%02ldm", t / 3600, t % 3600 / 60);
    else if (t >= 60) snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, cap, "%lds", t);
    return buf;
}

const char *gr_format_si(double v, char *buf, size_t cap)
{
    static const char suffix[] = " kMGTPEZY";
    if (!isfinite(v)) { snprintf(buf, cap, "%s", isnan(v) ? "nan" : v > 0 ? "inf" : "-inf"); return buf; }
    double a = fabs(v);
    int k = 0;
    while (a >= 999.5 && k < 8) { a /= 1000; v /= 1000; k++; }
    if (k == 0) snprintf(buf, cap, a >= 99.95 || a == floor(a) ? "%.0f" : a >= 9.995 ? "%.1f" : "%.2f", v);
    else snprintf(buf, cap, a >= 99.95 ? "%.0f%c" : a >= 9.995 ? "%.1f%c" : "%.2f%c", v, suffix[k]);
    return buf;
}

gr_progress *gr_progress_new(const gr_progress_opts *o)
{
    gr_progress *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->out = o->out ? o->out : stderr;
    p->mode = o->mode;
    if (p->mode == GR_PROGRESS_AUTO) {
        const char *term = getenv("TERM");
        int tty = isatty(fileno(p->out)) && !(term && strcmp(term, "dumb") == 0);
        p->mode = tty ? GR_PROGRESS_BAR : GR_PROGRESS_LINES;
    }
    p->total = o->total_steps > 0 ? o->total_steps : 0;
    p->every_steps = o->every_steps > 0 ? o->every_steps : 50;
    p->every_seconds = o->every_seconds > 0 ? o->every_seconds : 30;
    p->width = o->width;
    if (p->width <= 0) {
        struct winsize ws;
        p->width = ioctl(fileno(p->out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80;
    }
    if (p->width < 20) p->width = 20;
    if (p->width > 400) p->width = 400;
    return p;
}

enum { F_BAR = 1, F_STAGE = 2, F_EPOCH = 4, F_LR = 8, F_RATE = 16, F_ALL = 31 };

/* Writes the status text for the latest record into buf (without newline), with the optional
 * fields in `fields`. */
static void format_status(gr_progress *p, double now, char *buf, size_t cap, int fields)
{
    const gr_step_record *r = &p->last;
    char a[32], b[32];
    size_t n = 0;
    buf[0] = '\0';
#define PUT(...) do { int k_ = snprintf(buf + n, n < cap ? cap - n : 0, __VA_ARGS__); if (k_ > 0) n += (size_t)k_; } while (0)
    if (p->total > 0) {
        double frac = (double)r->step / (double)p->total;
        if (frac > 1) frac = 1;
        if (fields & F_BAR) {
            char bar[24];
            int fill = (int)(frac * 20 + 0.5);
            for (int i = 0; i < 20; i++) bar[i] = i < fill ? '#' : '.';
            bar[20] = '\0';
            PUT("[%s] ", bar);
        }
        int w = snprintf(NULL, 0, "%lld", (long long)p->total);
        PUT("step %*lld/%lld %3.0f%%", w, (long long)r->step, (long long)p->total, frac * 100);
    } else {
        PUT("step %lld", (long long)r->step);
    }
    if ((fields & F_STAGE) && p->stage[0]) PUT(" [%s]", p->stage);
    if (fields & F_EPOCH) PUT(" | epoch %.2f", r->epoch);
    PUT(" | loss %.4f", p->loss_n ? p->loss_sum / (double)p->loss_n : p->loss_shown);
    if (fields & F_LR) PUT(" | lr %.2e", r->lr);
    if (fields & F_RATE) {
        if (isfinite(r->tokens_per_s) && r->tokens_per_s > 0) PUT(" | %s tok/s", gr_format_si(r->tokens_per_s, a, sizeof a));
        else if (isfinite(r->examples_per_s) && r->examples_per_s > 0) PUT(" | %s ex/s", gr_format_si(r->examples_per_s, a, sizeof a));
    }
    double elapsed = now - p->t_start;
    int64_t done = r->step - p->step_start;
    if (p->total > 0 && r->step < p->total && done > 0 && elapsed > 0) {
        double eta = (double)(p->total - r->step) * elapsed / (double)done;
        PUT(" | ETA %s", gr_format_duration(eta, b, sizeof b));
    } else {
        PUT(" | %s", gr_format_duration(elapsed, b, sizeof b));
    }
#undef PUT
}

/* Draws the status; `consume` starts a new loss average and display interval (a redraw after
 * a message does not). */
static void show(gr_progress *p, double now, int final, int consume)
{
    char buf[512];
    if (p->mode == GR_PROGRESS_BAR) {
        /* The whole line must fit: a wrapped line cannot be redrawn with "\r". Narrow
         * terminals lose the least useful parts first, then the line is cut. */
        static const int tries[] = {F_ALL, F_ALL & ~F_STAGE, F_EPOCH | F_LR | F_RATE, F_EPOCH | F_RATE, F_RATE, 0};
        size_t cap = (size_t)p->width - 1;
        for (size_t i = 0; i < sizeof tries / sizeof *tries; i++) {
            format_status(p, now, buf, sizeof buf, tries[i]);
            if (strlen(buf) <= cap) break;
        }
        if (strlen(buf) > cap) buf[cap] = '\0';
        fprintf(p->out, "\r%s\033[K%s", buf, final ? "\n" : "");
        p->bar_drawn = !final;
    } else {
        format_status(p, now, buf, sizeof buf, F_ALL & ~F_BAR);
        fprintf(p->out, "%s\n", buf);
    }
    fflush(p->out);
    if (!consume) return;
    if (p->loss_n) p->loss_shown = p->loss_sum / (double)p->loss_n;
    p->t_shown = now;
    p->step_shown = p->last.step;
    p->loss_sum = 0;
    p->loss_n = 0;
}

void gr_progress_step_at(gr_progress *p, const gr_step_record *r, double now)
{
    if (!p || p->mode == GR_PROGRESS_QUIET) return;
    if (!p->have_start) {
        /* The rate counts from the first step this process saw, so a resumed run's ETA is
         * based on its own speed and not on the steps done before the restart. */
        p->have_start = 1;
        p->loss_shown = NAN;
        p->t_start = now;
        p->step_start = r->step;
        p->t_shown = now;
        p->step_shown = -1;
    }
    p->have_last = 1;
    p->last = *r;
    p->last.stage = NULL;
    snprintf(p->stage, sizeof p->stage, "%s", r->stage ? r->stage : "");
    if (isfinite(r->loss)) { p->loss_sum += r->loss; p->loss_n++; }
    int last_step = p->total > 0 && r->step >= p->total;
    if (p->mode == GR_PROGRESS_BAR) {
        if (now - p->t_shown >= BAR_INTERVAL || last_step || p->step_shown < 0) show(p, now, 0, 1);
    } else if (r->step % p->every_steps == 0 || now - p->t_shown >= p->every_seconds || last_step) {
        show(p, now, 0, 1);
    }
}

void gr_progress_step(gr_progress *p, const gr_step_record *rec) { gr_progress_step_at(p, rec, monotonic_now()); }

void gr_progress_print(gr_progress *p, const char *fmt, ...)
{
    if (!p || p->mode == GR_PROGRESS_QUIET) return;
    if (p->bar_drawn) fputs("\r\033[K", p->out);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->out, fmt, ap);
    va_end(ap);
    fputc('\n', p->out);
    if (p->bar_drawn) show(p, p->t_shown, 0, 0);
    fflush(p->out);
}

void gr_progress_end_at(gr_progress *p, double now)
{
    if (!p) return;
    if (p->mode != GR_PROGRESS_QUIET && p->have_last) {
        if (p->mode == GR_PROGRESS_BAR) {
            if (p->loss_n == 0 && p->bar_drawn) fputc('\n', p->out); /* the bar already shows the end */
            else show(p, now, 1, 1);
        } else if (p->step_shown != p->last.step) {
            show(p, now, 1, 1);
        }
        fflush(p->out);
    }
    free(p);
}

void gr_progress_end(gr_progress *p) { gr_progress_end_at(p, monotonic_now()); }
