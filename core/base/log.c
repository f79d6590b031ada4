#include <stdarg.h>
#include <stdio.h>

#include "base/log.h"

static int log_level = GR_LOG_INFO;

void gr_log_set_level(int level) { log_level = level; }
int gr_log_level(void) { return log_level; }

void gr_log(int level, const char *fmt, ...)
{
    static const char *const tags[] = {"error", "warning", "info", "debug"};
    if (level > log_level) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "graft: %s: ", tags[level < 0 ? 0 : level > 3 ? 3 : level]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
