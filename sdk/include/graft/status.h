/* graft — status codes and error messages.
 *
 * Every fallible function in graft (core and plugins) returns a gr_status and, on failure,
 * leaves a one-line message naming the file, key or tensor involved. The message lives in
 * thread-local storage inside libgraft, so it crosses the plugin ABI without allocation and
 * a plugin never calls exit(). */
#ifndef GRAFT_STATUS_H
#define GRAFT_STATUS_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum gr_status {
    GR_OK = 0,
    GR_ERR_INVALID = 1,     /* bad argument or bad user input (config value, CLI flag) */
    GR_ERR_IO = 2,          /* a file could not be opened, read or written */
    GR_ERR_FORMAT = 3,      /* a file is malformed (safetensors, JSON, image, tokenizer) */
    GR_ERR_SHAPE = 4,       /* tensor shapes or dtypes do not fit together */
    GR_ERR_NOMEM = 5,       /* host or device allocation failed */
    GR_ERR_UNSUPPORTED = 6, /* valid request this build or device cannot do */
    GR_ERR_BACKEND = 7,     /* the compute backend failed */
    GR_ERR_ABI = 8,         /* plugin refused: ABI mismatch, missing symbol, short struct */
    GR_ERR_NOT_FOUND = 9,   /* missing key, tensor, plugin or file */
    GR_ERR_INTERRUPTED = 10,/* stopped by a signal; state was saved */
    GR_ERR_NUMERIC = 11     /* non-finite values where finite ones are required */
} gr_status;

/* Sets the thread's error message (printf-style, one line) and returns `code`,
 * so failures read `return gr_fail(GR_ERR_IO, "%s: cannot open", path);`. */
gr_status gr_fail(gr_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
gr_status gr_vfail(gr_status code, const char *fmt, va_list ap);

/* Prepends "prefix: " to the current message (adds context on the way up) and returns `code`. */
gr_status gr_fail_context(gr_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The current thread's last message ("" when none). */
const char *gr_last_error(void);
void gr_clear_error(void);
const char *gr_status_name(gr_status code);

#ifdef __cplusplus
}
#endif
#endif
