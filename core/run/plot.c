/* Training curves with cairo: panels of (quantity x axis kind), runs as coloured lines. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cairo.h>

#include "base/fsutil.h"
#include "run/plot.h"
#include "run/progress.h"
#include "run/runlog.h"

/* Matplotlib's "tab10": distinct, colour-blind friendlier than pure hues, familiar to readers. */
static const double palette[10][3] = {
    {0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173}, {0.839, 0.153, 0.157},
    {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294}, {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498},
    {0.737, 0.741, 0.133}, {0.090, 0.745, 0.812},
};

#define FONT "DejaVu Sans"
#define PANEL_W 520
#define PANEL_H 340
#define MARGIN_L 70
#define MARGIN_R 20
#define MARGIN_T 32
#define MARGIN_B 50
#define MAX_TICKS 64

typedef struct quantity {
    const char *split;  /* NULL: training loss from the step records */
    const char *metric;
} quantity;

typedef struct axis {
    double lo, hi;
    int log;
    double p0, p1; /* pixels of lo and hi */
} axis;

typedef struct tick {
    double v;
    int major; /* labelled */
    char label[24];
} tick;

typedef struct figure {
    cairo_t *cr;
    const gr_plot_opts *o;
    gr_run_data **runs;
    char **labels;
} figure;

/* ---- small helpers ------------------------------------------------------------------------- */

static double axis_map(const axis *a, double v)
{
    double t = a->log ? (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo)) : (v - a->lo) / (a->hi - a->lo);
    return a->p0 + t * (a->p1 - a->p0);
}

static void set_rgb(cairo_t *cr, int run, double alpha)
{
    const double *c = palette[run % 10];
    cairo_set_source_rgba(cr, c[0], c[1], c[2], alpha);
}

/* Draws `s` with its anchor at (x, y): ha/va 0 = left/top, 0.5 = centre, 1 = right/bottom. */
static void text(cairo_t *cr, double x, double y, double ha, double va, const char *s)
{
    cairo_text_extents_t e;
    cairo_font_extents_t fe;
    cairo_text_extents(cr, s, &e);
    cairo_font_extents(cr, &fe);
    double h = fe.ascent - fe.descent * 0.5;
    cairo_move_to(cr, x - e.x_advance * ha, y - h * va + h);
    cairo_show_text(cr, s);
}

static void font(cairo_t *cr, double size, int bold)
{
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

/* "2.5G", "10k", "0.3": tick labels for counts with an SI suffix and at most 3 digits. */
static void si_label(double v, char *buf, size_t cap)
{
    static const char suffix[] = " kMGTPEZY";
    double a = fabs(v);
    int k = 0;
    while (a >= 1000 * (1 - 1e-9) && k < 8) { a /= 1000; v /= 1000; k++; }
    if (k == 0) snprintf(buf, cap, "%.3g", v);
    else snprintf(buf, cap, "%.3g%c", v, suffix[k]);
}

static int linear_ticks(double lo, double hi, tick *t)
{
    double raw = (hi - lo) / 5;
    double mag = pow(10, floor(log10(raw)));
    double f = raw / mag;
    double step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
    double first = ceil(lo / step - 1e-9);
    int decimals = (int)fmax(0, -floor(log10(step) + 1e-9));
    int big = fmax(fabs(lo), fabs(hi)) >= 1e5;
    int n = 0;
    for (int i = 0; n < MAX_TICKS; i++) {
        double v = (first + i) * step;
        if (v > hi + step * 1e-9) break;
        if (fabs(v) < step * 1e-9) v = 0; /* "-0.000" is ugly */
        t[n].v = v;
        t[n].major = 1;
        if (big) si_label(v, t[n].label, sizeof t[n].label);
        else snprintf(t[n].label, sizeof t[n].label, "%.*f", decimals, v);
        n++;
    }
    return n;
}

/* Decades when the range spans several, else 1-2-5 (or every integer multiple); faint minor
 * lines at the other multiples while they do not crowd the panel. */
static int log_ticks(double lo, double hi, tick *t)
{
    int n = 0;
    int e0 = (int)floor(log10(lo)), e1 = (int)ceil(log10(hi));
    int decades = (int)floor(log10(hi) + 1e-9) - (int)ceil(log10(lo) - 1e-9) + 1;
    int stride = decades > 7 ? (decades + 6) / 7 : 1;
    for (int e = e0; e <= e1 && n < MAX_TICKS; e++) {
        for (int m = 1; m <= 9 && n < MAX_TICKS; m++) {
            double v = m * pow(10, e);
            if (v < lo * (1 - 1e-9) || v > hi * (1 + 1e-9)) continue;
            int major;
            if (decades >= 2) major = m == 1 && (e % stride) == 0;
            else if (decades == 1 || log10(hi / lo) > 0.6) major = m == 1 || m == 2 || m == 5;
            else major = 1;
            if (!major && decades > 3) continue;
            t[n].v = v;
            t[n].major = major;
            si_label(v, t[n].label, sizeof t[n].label);
            n++;
        }
    }
    return n;
}

/* ---- data ------------------------------------------------------------------------------------ */

/* The (x, y) points of quantity q for one run: x = epoch (flops = 0) or cumulative FLOPs. */
static size_t points(const gr_run_data *d, const quantity *q, int flops, double **xs, double **ys)
{
    size_t n = 0;
    *xs = *ys = NULL;
    if (!q->split) {
        n = d->step_count;
        if (!n) return 0;
        *xs = malloc(n * sizeof **xs);
        *ys = malloc(n * sizeof **ys);
        if (!*xs || !*ys) { free(*xs); free(*ys); *xs = *ys = NULL; return 0; }
        for (size_t i = 0; i < n; i++) {
            (*xs)[i] = flops ? d->steps[i].flops_total : d->steps[i].epoch;
            (*ys)[i] = d->steps[i].loss;
        }
    } else {
        const gr_series *s = gr_run_data_series(d, q->split, q->metric);
        if (!s || !s->count) return 0;
        n = s->count;
        *xs = malloc(n * sizeof **xs);
        *ys = malloc(n * sizeof **ys);
        if (!*xs || !*ys) { free(*xs); free(*ys); *xs = *ys = NULL; return 0; }
        memcpy(*xs, flops ? s->flops : s->epoch, n * sizeof **xs);
        memcpy(*ys, s->value, n * sizeof **ys);
    }
    return n;
}

static int usable(double x, double y, int logx) { return isfinite(x) && isfinite(y) && (!logx || x > 0); }

/* Exponential moving average with bias correction (as TensorBoard smooths curves), over
 * usable points only; the window grows with the number of points. */
static void smooth(const double *x, const double *y, size_t n, int logx, double *out)
{
    double window = fmax(1, (double)n / 40);
    double beta = 1 - 2 / (window + 1);
    double m = 0, w = 0;
    for (size_t i = 0; i < n; i++) {
        if (!usable(x[i], y[i], logx)) { out[i] = NAN; continue; }
        m = beta * m + (1 - beta) * y[i];
        w = beta * w + (1 - beta);
        out[i] = m / w;
    }
}

static void polyline(cairo_t *cr, const axis *ax, const axis *ay, const double *x, const double *y, size_t n, int logx)
{
    int pen = 0;
    for (size_t i = 0; i < n; i++) {
        if (!usable(x[i], y[i], logx)) { pen = 0; continue; }
        double px = axis_map(ax, x[i]), py = axis_map(ay, y[i]);
        if (pen) cairo_line_to(cr, px, py);
        else cairo_move_to(cr, px, py);
        pen = 1;
    }
    cairo_stroke(cr);
}

/* ---- one panel ----------------------------------------------------------------------------- */

static void panel_title(const quantity *q, char *buf, size_t cap)
{
    if (!q->split) snprintf(buf, cap, "training loss");
    else snprintf(buf, cap, "%s (%s)", q->metric, q->split);
}

static void draw_panel(figure *f, const quantity *q, int flops, double x0, double y0, double w, double h)
{
    cairo_t *cr = f->cr;
    double L = x0 + MARGIN_L, R = x0 + w - MARGIN_R, T = y0 + MARGIN_T, B = y0 + h - MARGIN_B;
    char title[256];
    panel_title(q, title, sizeof title);
    font(cr, 14, 1);
    cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
    text(cr, (L + R) / 2, y0 + 8, 0.5, 0, title);
    font(cr, 12, 0);
    cairo_set_source_rgb(cr, 0.25, 0.25, 0.25);
    text(cr, (L + R) / 2, B + 30, 0.5, 0, flops ? "FLOPs (cumulative, log scale)" : "epoch");

    /* ranges over every run's usable points */
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    int run_count = f->o->run_count;
    for (int r = 0; r < run_count; r++) {
        double *xs, *ys;
        size_t n = points(f->runs[r], q, flops, &xs, &ys);
        for (size_t i = 0; i < n; i++) {
            if (!usable(xs[i], ys[i], flops)) continue;
            xlo = fmin(xlo, xs[i]); xhi = fmax(xhi, xs[i]);
            ylo = fmin(ylo, ys[i]); yhi = fmax(yhi, ys[i]);
        }
        free(xs);
        free(ys);
    }
    cairo_set_line_width(cr, 1);
    if (!(xlo <= xhi)) {
        cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
        cairo_rectangle(cr, L + 0.5, T + 0.5, R - L, B - T);
        cairo_stroke(cr);
        font(cr, 12, 0);
        text(cr, (L + R) / 2, (T + B) / 2, 0.5, 0.5, flops ? "no points with FLOPs > 0" : "no data");
        return;
    }
    axis ax = {xlo, xhi, flops, L, R}, ay = {ylo, yhi, 0, B, T};
    if (flops) {
        if (ax.hi <= ax.lo * 1.0001) { ax.lo /= 2; ax.hi *= 2; }
        double pad = (log10(ax.hi) - log10(ax.lo)) * 0.03;
        ax.lo /= pow(10, pad);
        ax.hi *= pow(10, pad);
    } else {
        if (ax.lo >= 0) ax.lo = 0; /* epochs read best from zero, and runs compare on one origin */
        if (ax.hi - ax.lo < 1e-12) { ax.lo -= 0.5; ax.hi += 0.5; }
        ax.hi += (ax.hi - ax.lo) * 0.02;
    }
    if (ay.hi - ay.lo < 1e-12 * fmax(1, fabs(ay.hi))) { ay.lo -= fmax(0.5, fabs(ay.lo) * 0.1); ay.hi += fmax(0.5, fabs(ay.hi) * 0.1); }
    double ypad = (ay.hi - ay.lo) * 0.06;
    ay.lo -= ypad;
    ay.hi += ypad;

    /* plot area, grid, ticks */
    cairo_set_source_rgb(cr, 0.975, 0.975, 0.98);
    cairo_rectangle(cr, L, T, R - L, B - T);
    cairo_fill(cr);
    tick xt[MAX_TICKS], yt[MAX_TICKS];
    int nx = flops ? log_ticks(ax.lo, ax.hi, xt) : linear_ticks(ax.lo, ax.hi, xt);
    int ny = linear_ticks(ay.lo, ay.hi, yt);
    font(cr, 11, 0);
    for (int i = 0; i < nx; i++) {
        double px = floor(axis_map(&ax, xt[i].v)) + 0.5;
        cairo_set_source_rgba(cr, 0, 0, 0, xt[i].major ? 0.12 : 0.05);
        cairo_move_to(cr, px, T);
        cairo_line_to(cr, px, B);
        cairo_stroke(cr);
        if (!xt[i].major) continue;
        cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
        cairo_move_to(cr, px, B);
        cairo_line_to(cr, px, B + 4);
        cairo_stroke(cr);
        text(cr, px, B + 7, 0.5, 0, xt[i].label);
    }
    for (int i = 0; i < ny; i++) {
        double py = floor(axis_map(&ay, yt[i].v)) + 0.5;
        cairo_set_source_rgba(cr, 0, 0, 0, 0.12);
        cairo_move_to(cr, L, py);
        cairo_line_to(cr, R, py);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
        cairo_move_to(cr, L - 4, py);
        cairo_line_to(cr, L, py);
        cairo_stroke(cr);
        text(cr, L - 7, py, 1, 0.5, yt[i].label);
    }

    /* curves, clipped to the plot area */
    cairo_save(cr);
    cairo_rectangle(cr, L, T, R - L, B - T);
    cairo_clip(cr);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
    for (int r = 0; r < run_count; r++) {
        double *xs, *ys;
        size_t n = points(f->runs[r], q, flops, &xs, &ys);
        if (!n) continue;
        if (!q->split && n >= 30) {
            /* noisy per-step loss: faint raw curve under its smoothed trend */
            double *sm = malloc(n * sizeof *sm);
            set_rgb(cr, r, 0.22);
            cairo_set_line_width(cr, 1);
            polyline(cr, &ax, &ay, xs, ys, n, flops);
            if (sm) {
                smooth(xs, ys, n, flops, sm);
                set_rgb(cr, r, 1);
                cairo_set_line_width(cr, 2.2);
                polyline(cr, &ax, &ay, xs, sm, n, flops);
                free(sm);
            }
        } else {
            set_rgb(cr, r, 1);
            cairo_set_line_width(cr, 2.2);
            polyline(cr, &ax, &ay, xs, ys, n, flops);
            if (n <= 80) {
                for (size_t i = 0; i < n; i++) {
                    if (!usable(xs[i], ys[i], flops)) continue;
                    cairo_arc(cr, axis_map(&ax, xs[i]), axis_map(&ay, ys[i]), 3.5, 0, 2 * M_PI);
                    cairo_fill(cr);
                }
            }
        }
        free(xs);
        free(ys);
    }
    cairo_restore(cr);
    cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, floor(L) + 0.5, floor(T) + 0.5, floor(R) - floor(L), floor(B) - floor(T));
    cairo_stroke(cr);
}

/* ---- figure -------------------------------------------------------------------------------- */

static char *run_label(const char *path)
{
    char *s = strdup(path);
    if (!s) return NULL;
    size_t n = strlen(s);
    while (n > 1 && s[n - 1] == '/') s[--n] = '\0';
    if (!gr_is_dir(s)) { /* a metrics.jsonl file: name the run after its directory */
        char *slash = strrchr(s, '/');
        if (slash && slash != s) *slash = '\0';
        else if (slash == NULL) { free(s); return strdup("."); }
    }
    char *base = strrchr(s, '/');
    char *label = strdup(base ? base + 1 : s);
    free(s);
    return label;
}

/* Legend rows: entries flow left to right, centred, wrapping at the figure width. */
static int legend(figure *f, double width, double y, int draw)
{
    cairo_t *cr = f->cr;
    font(cr, 13, 0);
    int rows = 0;
    int i = 0, n = f->o->run_count;
    while (i < n) {
        int j = i;
        double row_w = 0;
        while (j < n) {
            cairo_text_extents_t e;
            cairo_text_extents(cr, f->labels[j], &e);
            double ew = 30 + e.x_advance + 26;
            if (j > i && row_w + ew > width - 40) break;
            row_w += ew;
            j++;
        }
        if (draw) {
            double x = (width - row_w) / 2, yy = y + rows * 22;
            for (int k = i; k < j; k++) {
                cairo_text_extents_t e;
                cairo_text_extents(cr, f->labels[k], &e);
                set_rgb(cr, k, 1);
                cairo_set_line_width(cr, 3);
                cairo_move_to(cr, x, yy + 9);
                cairo_line_to(cr, x + 24, yy + 9);
                cairo_stroke(cr);
                cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
                text(cr, x + 30, yy + 9, 0, 0.5, f->labels[k]);
                x += 30 + e.x_advance + 26;
            }
        }
        rows++;
        i = j;
    }
    return rows;
}

static int has_quantity(gr_run_data *const *runs, int n, const quantity *q)
{
    for (int r = 0; r < n; r++) {
        if (!q->split ? runs[r]->step_count > 0 : gr_run_data_series(runs[r], q->split, q->metric) != NULL) return 1;
    }
    return 0;
}

static int add_quantity(quantity **qs, int *n, const char *split, const char *metric)
{
    for (int i = 0; i < *n; i++) {
        const quantity *q = &(*qs)[i];
        if ((!q->split) == (!split) && (!split || strcmp(q->split, split) == 0) && strcmp(q->metric, metric) == 0) return 1;
    }
    quantity *g = realloc(*qs, (size_t)(*n + 1) * sizeof *g);
    if (!g) return 0;
    *qs = g;
    g[*n].split = split;
    g[*n].metric = metric;
    (*n)++;
    return 1;
}

/* Panels in order: as requested, else training loss then metrics as they first appear. */
static gr_status choose_quantities(const gr_plot_opts *o, gr_run_data *const *runs, quantity **out, int *count)
{
    quantity *qs = NULL;
    int n = 0;
    int all = !o->metrics || o->metric_count == 0;
    int wanted = all ? 1 : o->metric_count;
    for (int k = 0; k < wanted; k++) {
        const char *want = all ? NULL : o->metrics[k];
        const char *slash = want ? strchr(want, '/') : NULL;
        int before = n;
        if (!want || strcmp(want, "loss") == 0) {
            quantity tl = {NULL, "loss"};
            if (has_quantity(runs, o->run_count, &tl) && !add_quantity(&qs, &n, NULL, "loss")) goto nomem;
        }
        for (int r = 0; r < o->run_count; r++) {
            for (size_t i = 0; i < runs[r]->series_count; i++) {
                const gr_series *s = &runs[r]->series[i];
                int match = !want || (slash ? strncmp(want, s->split, (size_t)(slash - want)) == 0 &&
                                                  s->split[slash - want] == '\0' && strcmp(slash + 1, s->metric) == 0
                                            : strcmp(want, s->metric) == 0);
                if (match && !add_quantity(&qs, &n, s->split, s->metric)) goto nomem;
            }
        }
        if (want && n == before) {
            /* list what there is, so a typo is fixed in one go */
            char have[512] = "loss";
            size_t len = strlen(have);
            for (int r = 0; r < o->run_count; r++)
                for (size_t i = 0; i < runs[r]->series_count && len + 2 < sizeof have; i++) {
                    const gr_series *s = &runs[r]->series[i];
                    char item[200];
                    snprintf(item, sizeof item, "%s/%s", s->split, s->metric);
                    if (strstr(have, item)) continue;
                    len += (size_t)snprintf(have + len, sizeof have - len, ", %s", item);
                    if (len >= sizeof have) len = sizeof have - 1;
                }
            free(qs);
            return gr_fail(GR_ERR_NOT_FOUND, "--metric %s: no run has it (available: %s)", want, have);
        }
    }
    if (n == 0) {
        free(qs);
        return gr_fail(GR_ERR_INVALID, "%s: nothing to plot", runs[0]->path);
    }
    *out = qs;
    *count = n;
    return GR_OK;
nomem:
    free(qs);
    return gr_fail(GR_ERR_NOMEM, "plot: out of memory");
}

typedef struct png_buf {
    unsigned char *data;
    size_t len, cap;
} png_buf;

static cairo_status_t png_write(void *closure, const unsigned char *data, unsigned int length)
{
    png_buf *b = closure;
    if (b->len + length > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->len + length) cap *= 2;
        unsigned char *p = realloc(b->data, cap);
        if (!p) return CAIRO_STATUS_NO_MEMORY;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, length);
    b->len += length;
    return CAIRO_STATUS_SUCCESS;
}

static gr_status render(figure *f, const quantity *qs, int nq, const char *out)
{
    const gr_plot_opts *o = f->o;
    gr_plot_x xmode = o->x ? o->x : GR_PLOT_X_BOTH;
    int kinds = xmode == GR_PLOT_X_BOTH ? 2 : 1;
    int npanels = nq * kinds;
    int cols = kinds == 2 ? 2 : (npanels < 3 ? npanels : npanels == 4 ? 2 : 3);
    int rows = (npanels + cols - 1) / cols;

    /* measure the header on a scratch surface, then size the figure */
    cairo_surface_t *scratch = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 1, 1);
    f->cr = cairo_create(scratch);
    double width = o->width > 0 ? o->width : cols * PANEL_W;
    int legend_rows = legend(f, width, 0, 0);
    cairo_destroy(f->cr);
    cairo_surface_destroy(scratch);
    double header = 14 + (o->title ? 30 : 0) + legend_rows * 22 + 6;
    double height = o->height > 0 ? o->height : header + rows * PANEL_H;
    double pw = width / cols, ph = (height - header) / rows;
    if (pw < MARGIN_L + MARGIN_R + 40 || ph < MARGIN_T + MARGIN_B + 40)
        return gr_fail(GR_ERR_INVALID, "%s: %.0fx%.0f pixels is too small for %d panels", out, width, height, npanels);

    cairo_surface_t *surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)width, (int)height);
    if (cairo_surface_status(surf) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(surf);
        return gr_fail(GR_ERR_NOMEM, "%s: cannot create a %.0fx%.0f image", out, width, height);
    }
    cairo_t *cr = cairo_create(surf);
    f->cr = cr;
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    double y = 12;
    if (o->title) {
        font(cr, 17, 1);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        text(cr, width / 2, y, 0.5, 0, o->title);
        y += 30;
    }
    legend(f, width, y, 1);
    for (int p = 0; p < npanels; p++) {
        int q = kinds == 2 ? p / 2 : p;
        int flops = kinds == 2 ? p % 2 : xmode == GR_PLOT_X_FLOPS;
        draw_panel(f, &qs[q], flops, (p % cols) * pw, header + (p / cols) * ph, pw, ph);
    }
    gr_status st = GR_OK;
    png_buf buf = {0};
    if (cairo_status(cr) != CAIRO_STATUS_SUCCESS)
        st = gr_fail(GR_ERR_INVALID, "%s: drawing failed: %s", out, cairo_status_to_string(cairo_status(cr)));
    else if (cairo_surface_write_to_png_stream(surf, png_write, &buf) != CAIRO_STATUS_SUCCESS)
        st = gr_fail(GR_ERR_NOMEM, "%s: PNG encoding failed", out);
    else
        st = gr_write_file_atomic(out, buf.data, buf.len);
    free(buf.data);
    cairo_destroy(cr);
    cairo_surface_destroy(surf);
    return st;
}

gr_status gr_plot_runs(const gr_plot_opts *o)
{
    if (!o->out || !o->out[0]) return gr_fail(GR_ERR_INVALID, "plot: no output file");
    if (o->run_count <= 0) return gr_fail(GR_ERR_INVALID, "plot: no run to plot");
    if (o->x < 0 || o->x > GR_PLOT_X_BOTH) return gr_fail(GR_ERR_INVALID, "plot: bad x axis mode %d", (int)o->x);
    if ((o->width && (o->width < 100 || o->width > 16384)) || (o->height && (o->height < 100 || o->height > 16384)))
        return gr_fail(GR_ERR_INVALID, "%s: image size %dx%d out of range (100..16384)", o->out, o->width, o->height);
    /* fail before the work when the PNG could not be written anyway */
    char *dir = strdup(o->out);
    if (!dir) return gr_fail(GR_ERR_NOMEM, "plot: out of memory");
    char *slash = strrchr(dir, '/');
    int dir_ok = !slash || slash == dir || (*slash = '\0', gr_is_dir(dir));
    if (!dir_ok) {
        gr_status st = gr_fail(GR_ERR_IO, "%s: no such directory: %s", o->out, dir);
        free(dir);
        return st;
    }
    free(dir);
    figure f = {.o = o};
    f.runs = calloc((size_t)o->run_count, sizeof *f.runs);
    f.labels = calloc((size_t)o->run_count, sizeof *f.labels);
    gr_status st = GR_OK;
    if (!f.runs || !f.labels) st = gr_fail(GR_ERR_NOMEM, "plot: out of memory");
    for (int r = 0; st == GR_OK && r < o->run_count; r++) {
        st = gr_run_data_read(o->runs[r], &f.runs[r]);
        if (st != GR_OK) break;
        if (f.runs[r]->step_count == 0 && f.runs[r]->series_count == 0) {
            st = gr_fail(GR_ERR_FORMAT, "%s: no step or eval records to plot", f.runs[r]->path);
            break;
        }
        const char *given = o->labels ? o->labels[r] : NULL;
        f.labels[r] = given ? strdup(given) : run_label(o->runs[r]);
        if (!f.labels[r]) st = gr_fail(GR_ERR_NOMEM, "plot: out of memory");
    }
    quantity *qs = NULL;
    int nq = 0;
    if (st == GR_OK) st = choose_quantities(o, f.runs, &qs, &nq);
    if (st == GR_OK) st = render(&f, qs, nq, o->out);
    free(qs);
    for (int r = 0; r < o->run_count && f.runs; r++) gr_run_data_free(f.runs[r]);
    for (int r = 0; r < o->run_count && f.labels; r++) free(f.labels[r]);
    free(f.runs);
    free(f.labels);
    return st;
}
