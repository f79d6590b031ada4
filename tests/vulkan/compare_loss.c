/* compare_loss RUN_A RUN_B TOL: both runs have the same steps, and every step's loss agrees
 * within relative tolerance TOL (backends differ in float summation order, nothing else). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "run/runlog.h"

int main(int argc, char **argv)
{
    if (argc != 4) { fprintf(stderr, "usage: compare_loss RUN_A RUN_B TOL\n"); return 2; }
    double tol = atof(argv[3]);
    gr_run_data *a = NULL, *b = NULL;
    if (gr_run_data_read(argv[1], &a) || gr_run_data_read(argv[2], &b)) {
        fprintf(stderr, "compare_loss: %s\n", gr_last_error());
        return 1;
    }
    int bad = a->step_count != b->step_count || a->step_count == 0;
    if (bad) printf("FAIL: %zu vs %zu step records\n", a->step_count, b->step_count);
    double worst = 0.0;
    for (size_t i = 0; !bad && i < a->step_count; i++) {
        double x = a->steps[i].loss, y = b->steps[i].loss;
        double rel = fabs(x - y) / fmax(fabs(x), 1e-12);
        if (rel > worst) worst = rel;
        if (!(rel <= tol)) {
            printf("FAIL: step %lld loss %.9g (%s) vs %.9g (%s), relative difference %.3g > %g\n",
                   (long long)a->steps[i].step, x, argv[1], y, argv[2], rel, tol);
            bad = 1;
        }
    }
    if (!bad) printf("ok: %zu steps, worst relative loss difference %.3g <= %g\n", a->step_count, worst, tol);
    gr_run_data_free(a);
    gr_run_data_free(b);
    return bad;
}
