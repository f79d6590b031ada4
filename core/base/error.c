/* Thread-local error messages: the one channel failures travel through, core and plugins. */
#include <stdio.h>
#include <string.h>

#include "graft/status.h"

#define GR_ERROR_CAP 1024

static _Thread_local char error_message[GR_ERROR_CAP];

gr_status gr_vfail(gr_status code, const char *fmt, va_list ap)
{
    vsnprintf(error_message, sizeof error_message, fmt, ap);
    /* One line: a message with a newline inside would break `graft`'s one-line contract. */
    for (char *p = error_message; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    return code;
}

gr_status gr_fail(gr_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    gr_vfail(code, fmt, ap);
    va_end(ap);
    return code;
}

gr_status gr_fail_context(gr_status code, const char *fmt, ...)
{
    char prefix[GR_ERROR_CAP], old[GR_ERROR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, error_message, sizeof old);
    /* Truncation of over-long messages is intended: a message is one bounded line. */
    size_t n = strlen(prefix);
    memcpy(error_message, prefix, n + 1);
    if (old[0] && n + 2 < sizeof error_message) {
        memcpy(error_message + n, ": ", 3);
        size_t room = sizeof error_message - n - 3;
        size_t m = strlen(old);
        if (m > room) m = room;
        memcpy(error_message + n + 2, old, m);
        error_message[n + 2 + m] = '\0';
    }
    return code;
}

const char *gr_last_error(void) { return error_message; }

void gr_clear_error(void) { error_message[0] = '\0'; }

const char *gr_status_name(gr_status code)
{
    switch (code) {
    case GR_OK: return "ok";
    case GR_ERR_INVALID: return "invalid";
    case GR_ERR_IO: return "io";
    case GR_ERR_FORMAT: return "format";
    case GR_ERR_SHAPE: return "shape";
    case GR_ERR_NOMEM: return "out of memory";
    case GR_ERR_UNSUPPORTED: return "unsupported";
    case GR_ERR_BACKEND: return "backend";
    case GR_ERR_ABI: return "abi";
    case GR_ERR_NOT_FOUND: return "not found";
    case GR_ERR_INTERRUPTED: return "interrupted";
    case GR_ERR_NUMERIC: return "numeric";
    }
    return "unknown";
}
