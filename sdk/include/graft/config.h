/* graft — configuration: libconfig files checked against one schema table.
 *
 * Every setting graft understands is declared once, in a gr_config_key table registered by
 * the component that reads it (core areas and plugins alike). A file may hold only declared
 * keys: an unknown key or a value of the wrong type is an error naming the file and line.
 * `graft CMD -c file.cfg -s train.lr=1e-4` overrides any key from the command line. The same
 * tables generate docs/config.md, so the reference cannot drift from the code. */
#ifndef GRAFT_CONFIG_H
#define GRAFT_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "graft/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum gr_config_type {
    GR_CFG_INT = 0,
    GR_CFG_FLOAT = 1,
    GR_CFG_BOOL = 2,
    GR_CFG_STRING = 3,
    GR_CFG_STRING_LIST = 4,
    GR_CFG_FLOAT_LIST = 5
} gr_config_type;

typedef struct gr_config_key {
    const char *path;          /* dotted: "train.lr" */
    gr_config_type type;
    const char *default_value; /* as it would be written in a file (lists: "[1, 2]", strings
                                  without quotes); NULL: no default, the key is optional */
    const char *doc;           /* one line for the reference */
} gr_config_key;

typedef struct gr_config gr_config;

/* Declares keys (the table must outlive the process; plugins' tables live in the plugin). */
gr_status gr_config_schema_add(const gr_config_key *keys, int count);
int gr_config_schema_count(void);
const gr_config_key *gr_config_schema_at(int i);
const gr_config_key *gr_config_schema_find(const char *path);

/* Reads a file (NULL: an empty configuration of defaults). Syntax errors name file and line.
 * Validation against the schema happens in gr_config_validate, after plugins have added
 * their keys. */
gr_status gr_config_load(const char *path, gr_config **out);
/* "a.b=value": the value is read as the key's declared type. */
gr_status gr_config_override(gr_config *cfg, const char *assignment);
/* Unknown keys and wrong types: one error naming file:line and the key. */
gr_status gr_config_validate(const gr_config *cfg);
/* Writes the resolved configuration (every declared key, defaults filled in). */
gr_status gr_config_write(const gr_config *cfg, const char *path);
void gr_config_free(gr_config *cfg);
const char *gr_config_path(const gr_config *cfg); /* file it came from, or "(defaults)" */

/* Typed access to declared keys: the file's value or the declared default. A key declared
 * without default and absent from the file reads as 0 / "" / empty; gr_config_is_set tells. */
int gr_config_is_set(const gr_config *cfg, const char *path);
int64_t gr_config_int(const gr_config *cfg, const char *path);
/* GR_OK when the int key's value is in lo..hi, else "FILE: KEY = V is out of range LO..HI". */
gr_status gr_config_check_int(const gr_config *cfg, const char *path, int64_t lo, int64_t hi);
double gr_config_float(const gr_config *cfg, const char *path);
int gr_config_bool(const gr_config *cfg, const char *path);
const char *gr_config_string(const gr_config *cfg, const char *path);
int gr_config_list_count(const gr_config *cfg, const char *path);
const char *gr_config_list_string(const gr_config *cfg, const char *path, int i);
double gr_config_list_float(const gr_config *cfg, const char *path, int i);

/* Where a key was set, for messages: "file.cfg:12" or "command line" or "default". */
const char *gr_config_origin(const gr_config *cfg, const char *path, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
