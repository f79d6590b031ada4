/* Logging to stderr with a global verbosity (core-internal; plugins report through gr_fail). */
#ifndef GRAFT_CORE_LOG_H
#define GRAFT_CORE_LOG_H

enum { GR_LOG_ERROR = 0, GR_LOG_WARN = 1, GR_LOG_INFO = 2, GR_LOG_DEBUG = 3 };

void gr_log_set_level(int level);
int gr_log_level(void);
void gr_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
