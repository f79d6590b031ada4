/* compare_curves A B TOL: the loss curves of two runs agree within float tolerance: the same
 * steps, epochs and learning rates exactly, loss and grad_norm within relative TOL, the same
 * evaluation series with values within TOL (absolute, on [0, 1]-ish metrics). For the
 * data-parallel equivalence (2 ranks x batch B against 1 rank x batch 2B), where the order
 * of float additions differs. FLOPs are not compared: each rank pads only its own batch.
 * Prints the largest differences. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run/runlog.h"

static double rel(double a, double b) { return fabs(a - b) / (fabs(a) > 1e-12 ? fabs(a) : 1e-12); }

int main(int argc, char **argv)
{
    if (argc != 4) { fprintf(stderr, "usage: compare_curves RUN_A RUN_B TOL\n"); return 2; }
    double tol = atof(argv[3]);
    gr_run_data *a = NULL, *b = NULL;
    if (gr_run_data_read(argv[1], &a) || gr_run_data_read(argv[2], &b)) {
        fprintf(stderr, "compare_curves: %s\n", gr_last_error());
        return 1;
    }
    int bad = 0;
    double wl = 0, wg = 0, we = 0;
    if (a->step_count != b->step_count || a->step_count == 0) {
        printf("FAIL: %zu vs %zu step records\n", a->step_count, b->step_count);
        bad = 1;
    }
    for (size_t i = 0; !bad && i < a->step_count; i++) {
        const gr_step_row *x = &a->steps[i], *y = &b->steps[i];
        if (x->step != y->step || x->epoch != y->epoch || x->lr != y->lr) {
            printf("FAIL: step record %zu: step %lld/%lld epoch %g/%g lr %g/%g\n", i, (long long)x->step,
                   (long long)y->step, x->epoch, y->epoch, x->lr, y->lr);
            bad = 1;
        }
        if (!isfinite(x->loss) || !isfinite(y->loss)) { printf("FAIL: step %lld: non-finite loss\n", (long long)x->step); bad = 1; }
        double l = rel(x->loss, y->loss), g = rel(x->grad_norm, y->grad_norm);
        if (l > wl) wl = l;
        if (g > wg) wg = g;
        if (l > tol || g > tol) {
            printf("FAIL: step %lld: loss %.9g vs %.9g, grad_norm %.9g vs %.9g (tolerance %g)\n", (long long)x->step,
                   x->loss, y->loss, x->grad_norm, y->grad_norm, tol);
            bad = 1;
        }
    }
    if (!bad && (a->series_count != b->series_count || a->series_count == 0)) {
        printf("FAIL: %zu vs %zu eval series\n", a->series_count, b->series_count);
        bad = 1;
    }
    for (size_t i = 0; !bad && i < a->series_count; i++) {
        const gr_series *x = &a->series[i], *y = &b->series[i];
        bad = x->count != y->count || strcmp(x->metric, y->metric) != 0;
        for (size_t j = 0; !bad && j < x->count; j++) {
            double e = fabs(x->value[j] - y->value[j]);
            if (e > we) we = e;
            bad = x->step[j] != y->step[j] || e > tol * (1 + fabs(x->value[j]));
        }
        if (bad) printf("FAIL: eval series %s/%s differs\n", x->split, x->metric);
    }
    if (!bad)
        printf("ok: %zu steps and %zu eval series agree; largest relative differences: loss %.2g, grad_norm %.2g; "
               "largest eval difference %.2g\n", a->step_count, a->series_count, wl, wg, we);
    gr_run_data_free(a);
    gr_run_data_free(b);
    return bad;
}
