/* compare_runs A B: the step records (step, epoch, stage, loss, lr, grad_norm, FLOPs) and the
 * evaluation series of two runs must be equal bit for bit. Prints the first difference. */
#include <stdio.h>
#include <string.h>

#include "run/runlog.h"

int main(int argc, char **argv)
{
    if (argc != 3) { fprintf(stderr, "usage: compare_runs RUN_A RUN_B\n"); return 2; }
    gr_run_data *a = NULL, *b = NULL;
    if (gr_run_data_read(argv[1], &a) || gr_run_data_read(argv[2], &b)) {
        fprintf(stderr, "compare_runs: %s\n", gr_last_error());
        return 1;
    }
    int bad = 0;
    if (a->step_count != b->step_count) { printf("FAIL: %zu vs %zu step records\n", a->step_count, b->step_count); bad = 1; }
    for (size_t i = 0; !bad && i < a->step_count; i++) {
        const gr_step_row *x = &a->steps[i], *y = &b->steps[i];
        if (x->step != y->step || x->epoch != y->epoch || memcmp(&x->loss, &y->loss, sizeof x->loss) ||
            memcmp(&x->lr, &y->lr, sizeof x->lr) || memcmp(&x->grad_norm, &y->grad_norm, sizeof x->grad_norm) ||
            memcmp(&x->flops, &y->flops, sizeof x->flops) || x->flops_total != y->flops_total) {
            printf("FAIL: step record %zu differs: step %lld/%lld loss %.17g/%.17g grad_norm %.17g/%.17g\n", i,
                   (long long)x->step, (long long)y->step, x->loss, y->loss, x->grad_norm, y->grad_norm);
            bad = 1;
        }
    }
    if (!bad && a->series_count != b->series_count) { printf("FAIL: %zu vs %zu eval series\n", a->series_count, b->series_count); bad = 1; }
    for (size_t i = 0; !bad && i < a->series_count; i++) {
        const gr_series *x = &a->series[i], *y = &b->series[i];
        bad = x->count != y->count || strcmp(x->metric, y->metric) != 0;
        for (size_t j = 0; !bad && j < x->count; j++) bad = x->value[j] != y->value[j] || x->step[j] != y->step[j];
        if (bad) printf("FAIL: eval series %s/%s differs\n", x->split, x->metric);
    }
    if (!bad) printf("ok: %zu step records and %zu eval series equal bit for bit\n", a->step_count, a->series_count);
    gr_run_data_free(a);
    gr_run_data_free(b);
    return bad;
}
