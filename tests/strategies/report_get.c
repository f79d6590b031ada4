/* Test helper: prints a number (%.17g) or string of RUN/report.json by dotted path; exit 1 when
 * absent.   report_get RUN_DIR PATH */
#include <stdio.h>
#include <stdlib.h>

#include "base/fsutil.h"
#include "run/runlog.h"

int main(int argc, char **argv)
{
    if (argc != 3) { fprintf(stderr, "usage: report_get RUN_DIR PATH\n"); return 2; }
    char *p = gr_path_join(argv[1], GR_RUN_REPORT);
    gr_report *r = NULL;
    double v;
    const char *s;
    if (gr_report_load(p, &r) != GR_OK) { fprintf(stderr, "report_get: %s\n", gr_last_error()); return 1; }
    int rc = 0;
    if (gr_report_get_number(r, argv[2], &v) == GR_OK) printf("%.17g\n", v);
    else if (gr_report_get_string(r, argv[2], &s) == GR_OK) printf("%s\n", s);
    else { fprintf(stderr, "report_get: %s: no %s\n", p, argv[2]); rc = 1; }
    gr_report_free(r);
    free(p);
    return rc;
}
