/* Configuration files (libconfig 1.5) checked against the schema, with command-line
 * overrides. libconfig 1.5 lacks the 1.7 hooks, so overrides are parsed by reading a one-line
 * snippet with config_read_string and copying the value into the file's tree. */
#include <ctype.h>
#include <libconfig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/core_keys.h"
#include "graft/config.h"

#define MAX_OVERRIDES 128

struct gr_config {
    config_t lc;
    char *path;
    char *overridden[MAX_OVERRIDES];
    int n_overridden;
};

static gr_status syntax_error(config_t *lc, const char *what)
{
    const char *file = config_error_file(lc);
    return gr_fail(GR_ERR_FORMAT, "%s:%d: %s", file ? file : what, config_error_line(lc),
                   config_error_text(lc));
}

gr_status gr_config_load(const char *path, gr_config **out)
{
    gr_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) return gr_fail(GR_ERR_NOMEM, "config: out of memory");
    config_init(&cfg->lc);
    config_set_options(&cfg->lc, CONFIG_OPTION_AUTOCONVERT);
    if (path) {
        cfg->path = strdup(path);
        FILE *f = fopen(path, "r");
        if (!f) {
            gr_config_free(cfg);
            return gr_fail(GR_ERR_IO, "%s: cannot open config file", path);
        }
        fclose(f);
        /* @include is resolved relative to the including file's directory. */
        char *dir = strdup(path);
        char *slash = dir ? strrchr(dir, '/') : NULL;
        if (slash) { *slash = '\0'; config_set_include_dir(&cfg->lc, dir); }
        free(dir);
        if (!config_read_file(&cfg->lc, path)) {
            gr_status s = syntax_error(&cfg->lc, path);
            gr_config_free(cfg);
            return s;
        }
    }
    *out = cfg;
    return GR_OK;
}

void gr_config_free(gr_config *cfg)
{
    if (!cfg) return;
    config_destroy(&cfg->lc);
    for (int i = 0; i < cfg->n_overridden; i++) free(cfg->overridden[i]);
    free(cfg->path);
    free(cfg);
}

const char *gr_config_path(const gr_config *cfg)
{
    return cfg->path ? cfg->path : "(defaults)";
}

/* ---- value text -> libconfig snippet ---------------------------------------------------- */

static void append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t nc = (*cap + n + 1) * 2;
        char *nb = realloc(*buf, nc);
        if (!nb) return;
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
}

static void append_quoted(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    append(buf, len, cap, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\') append(buf, len, cap, "\\", 1);
        append(buf, len, cap, s + i, 1);
    }
    append(buf, len, cap, "\"", 1);
}

static const char *trim(const char *s, size_t *n)
{
    while (*n && isspace((unsigned char)*s)) { s++; (*n)--; }
    while (*n && isspace((unsigned char)s[*n - 1])) (*n)--;
    return s;
}

/* "v = <value>;" for a value given as plain text of the declared type. Strings may be given
 * bare (paths) or quoted; lists as "[a, b]" or "a,b". */
static char *snippet_for(gr_config_type type, const char *text)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    append(&buf, &len, &cap, "v = ", 4);
    size_t n = strlen(text);
    const char *t = trim(text, &n);
    if (type == GR_CFG_STRING) {
        if (n >= 2 && t[0] == '"' && t[n - 1] == '"') append(&buf, &len, &cap, t, n);
        else append_quoted(&buf, &len, &cap, t, n);
    } else if (type == GR_CFG_STRING_LIST || type == GR_CFG_FLOAT_LIST) {
        if (n && (t[0] == '[' || t[0] == '(')) {
            append(&buf, &len, &cap, t, n);
        } else {
            /* a libconfig list, not an array: "1,2.5" mixes ints and floats, which an array
             * refuses */
            append(&buf, &len, &cap, "(", 1);
            size_t start = 0;
            for (size_t i = 0; i <= n; i++) {
                if (i == n || t[i] == ',') {
                    size_t m = i - start;
                    const char *item = trim(t + start, &m);
                    if (m) {
                        if (start) append(&buf, &len, &cap, ", ", 2);
                        if (type == GR_CFG_STRING_LIST && !(m >= 2 && item[0] == '"'))
                            append_quoted(&buf, &len, &cap, item, m);
                        else
                            append(&buf, &len, &cap, item, m);
                    }
                    start = i + 1;
                }
            }
            append(&buf, &len, &cap, ")", 1);
        }
    } else {
        append(&buf, &len, &cap, t, n);
    }
    append(&buf, &len, &cap, ";", 1);
    return buf;
}

static const char *type_name(gr_config_type t)
{
    static const char *const names[] = {"an integer", "a number", "true or false", "a string",
                                        "a list of strings", "a list of numbers"};
    return names[t];
}

/* Does setting s hold a value of the declared type? */
static int type_matches(const config_setting_t *s, gr_config_type type)
{
    int t = config_setting_type(s);
    switch (type) {
    case GR_CFG_INT: return t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
    case GR_CFG_FLOAT: return t == CONFIG_TYPE_FLOAT || t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
    case GR_CFG_BOOL: return t == CONFIG_TYPE_BOOL;
    case GR_CFG_STRING: return t == CONFIG_TYPE_STRING;
    case GR_CFG_STRING_LIST:
    case GR_CFG_FLOAT_LIST: {
        if (t != CONFIG_TYPE_LIST && t != CONFIG_TYPE_ARRAY) return 0;
        for (int i = 0; i < config_setting_length(s); i++) {
            int et = config_setting_type(config_setting_get_elem(s, (unsigned)i));
            if (type == GR_CFG_STRING_LIST && et != CONFIG_TYPE_STRING) return 0;
            if (type == GR_CFG_FLOAT_LIST && et != CONFIG_TYPE_FLOAT && et != CONFIG_TYPE_INT &&
                et != CONFIG_TYPE_INT64)
                return 0;
        }
        return 1;
    }
    }
    return 0;
}

/* Copies a scalar or list value into dst (created with the right type by the caller). */
static void copy_value(config_setting_t *dst, const config_setting_t *src)
{
    switch (config_setting_type(src)) {
    case CONFIG_TYPE_INT: config_setting_set_int(dst, config_setting_get_int(src)); break;
    case CONFIG_TYPE_INT64: config_setting_set_int64(dst, config_setting_get_int64(src)); break;
    case CONFIG_TYPE_FLOAT: config_setting_set_float(dst, config_setting_get_float(src)); break;
    case CONFIG_TYPE_BOOL: config_setting_set_bool(dst, config_setting_get_bool(src)); break;
    case CONFIG_TYPE_STRING: config_setting_set_string(dst, config_setting_get_string(src)); break;
    case CONFIG_TYPE_LIST:
    case CONFIG_TYPE_ARRAY:
        for (int i = 0; i < config_setting_length(src); i++) {
            const config_setting_t *e = config_setting_get_elem(src, (unsigned)i);
            config_setting_t *d = config_setting_add(dst, NULL, config_setting_type(e));
            if (d) copy_value(d, e);
        }
        break;
    default: break;
    }
}

/* Parses `text` as the declared type into a fresh libconfig tree; returns its "v" setting. */
static gr_status parse_text(config_t *tmp, gr_config_type type, const char *text,
                            const char *what, config_setting_t **out)
{
    config_init(tmp);
    config_set_options(tmp, CONFIG_OPTION_AUTOCONVERT);
    char *snip = snippet_for(type, text);
    if (!snip) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", what);
    int ok = config_read_string(tmp, snip);
    free(snip);
    config_setting_t *v = ok ? config_lookup(tmp, "v") : NULL;
    if (!v || !type_matches(v, type)) {
        config_destroy(tmp);
        return gr_fail(GR_ERR_INVALID, "%s: expected %s, got '%s'", what, type_name(type), text);
    }
    *out = v;
    return GR_OK;
}

gr_status gr_config_check_value(gr_config_type type, const char *text, const char *what)
{
    if ((unsigned)type > GR_CFG_FLOAT_LIST)
        return gr_fail(GR_ERR_INVALID, "%s: unknown type %d", what, (int)type);
    config_t tmp;
    config_setting_t *v;
    gr_status s = parse_text(&tmp, type, text, what, &v);
    if (s == GR_OK) config_destroy(&tmp);
    return s;
}

gr_status gr_config_override(gr_config *cfg, const char *assignment)
{
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment)
        return gr_fail(GR_ERR_INVALID, "-s %s: expected KEY=VALUE", assignment);
    size_t klen = (size_t)(eq - assignment);
    char *key = strndup(assignment, klen);
    if (!key) return gr_fail(GR_ERR_NOMEM, "-s: out of memory");
    size_t n = klen;
    const char *k = trim(key, &n);
    memmove(key, k, n);
    key[n] = '\0';
    const gr_config_key *decl = gr_config_schema_find(key);
    if (!decl) {
        gr_status s = gr_fail(GR_ERR_INVALID, "-s %s: unknown key '%s'", assignment, key);
        free(key);
        return s;
    }
    char what[300];
    snprintf(what, sizeof what, "-s %s", key);
    config_t tmp;
    config_setting_t *v;
    gr_status s = parse_text(&tmp, decl->type, eq + 1, what, &v);
    if (s != GR_OK) { free(key); return s; }

    /* Walk/create the groups of the dotted path, then replace the leaf. */
    config_setting_t *group = config_root_setting(&cfg->lc);
    char *save = NULL;
    char *part = strtok_r(key, ".", &save);
    while (part) {
        char *next = strtok_r(NULL, ".", &save);
        config_setting_t *child = config_setting_get_member(group, part);
        if (next) {
            if (child && config_setting_type(child) != CONFIG_TYPE_GROUP) {
                config_destroy(&tmp);
                s = gr_fail(GR_ERR_INVALID, "%s: '%s' is not a group", what, part);
                free(key);
                return s;
            }
            if (!child) child = config_setting_add(group, part, CONFIG_TYPE_GROUP);
            group = child;
        } else {
            if (child) config_setting_remove(group, part);
            child = config_setting_add(group, part, config_setting_type(v));
            if (child) copy_value(child, v);
        }
        part = next;
    }
    config_destroy(&tmp);
    free(key);
    if (cfg->n_overridden < MAX_OVERRIDES) {
        cfg->overridden[cfg->n_overridden] = strndup(assignment, klen);
        size_t m = klen;
        const char *kk = trim(cfg->overridden[cfg->n_overridden], &m);
        memmove(cfg->overridden[cfg->n_overridden], kk, m);
        cfg->overridden[cfg->n_overridden][m] = '\0';
        cfg->n_overridden++;
    }
    return GR_OK;
}

/* Levenshtein distance, for "did you mean" hints on unknown keys. */
static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 99;
    int d[64][64];
    for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

static int is_declared_group(const char *path)
{
    size_t n = strlen(path);
    for (int i = 0; i < gr_config_schema_count(); i++) {
        const char *p = gr_config_schema_at(i)->path;
        if (strncmp(p, path, n) == 0 && p[n] == '.') return 1;
    }
    return 0;
}

static gr_status validate_group(const gr_config *cfg, const config_setting_t *group,
                                const char *prefix)
{
    for (int i = 0; i < config_setting_length(group); i++) {
        const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
        char path[512];
        snprintf(path, sizeof path, "%s%s%s", prefix, prefix[0] ? "." : "", config_setting_name(s));
        const char *file = config_setting_source_file(s);
        if (!file) file = cfg->path ? cfg->path : "command line";
        int line = config_setting_source_line(s);
        if (config_setting_type(s) == CONFIG_TYPE_GROUP) {
            if (!is_declared_group(path)) {
                if (gr_config_schema_find(path))
                    return gr_fail(GR_ERR_INVALID, "%s:%d: %s: expected %s, got a group", file,
                                   line, path, type_name(gr_config_schema_find(path)->type));
                return gr_fail(GR_ERR_INVALID, "%s:%d: unknown group '%s'", file, line, path);
            }
            gr_status st = validate_group(cfg, s, path);
            if (st != GR_OK) return st;
            continue;
        }
        const gr_config_key *decl = gr_config_schema_find(path);
        if (!decl) {
            const char *best = NULL;
            int best_d = 4;
            for (int k = 0; k < gr_config_schema_count(); k++) {
                int d = edit_distance(path, gr_config_schema_at(k)->path);
                if (d < best_d) { best_d = d; best = gr_config_schema_at(k)->path; }
            }
            if (best)
                return gr_fail(GR_ERR_INVALID, "%s:%d: unknown key '%s' (did you mean '%s'?)",
                               file, line, path, best);
            return gr_fail(GR_ERR_INVALID, "%s:%d: unknown key '%s'", file, line, path);
        }
        if (!type_matches(s, decl->type))
            return gr_fail(GR_ERR_INVALID, "%s:%d: %s: expected %s", file, line, path,
                           type_name(decl->type));
    }
    return GR_OK;
}

gr_status gr_config_validate(const gr_config *cfg)
{
    return validate_group(cfg, config_root_setting(&cfg->lc), "");
}

/* ---- access ------------------------------------------------------------------------------ */

/* The setting for path: from the file/overrides, else the parsed default (kept in a per-key
 * cache tree so returned strings stay valid). NULL when absent without default. */
static const config_setting_t *lookup(const gr_config *cfg, const char *path,
                                      const gr_config_key **decl_out)
{
    const gr_config_key *decl = gr_config_schema_find(path);
    if (decl_out) *decl_out = decl;
    const config_setting_t *s = config_lookup(&cfg->lc, path);
    if (s) return s;
    if (!decl || !decl->default_value) return NULL;
    static config_t defaults;
    static int defaults_ready;
    if (!defaults_ready) {
        config_init(&defaults);
        config_set_options(&defaults, CONFIG_OPTION_AUTOCONVERT);
        defaults_ready = 1;
    }
    /* Defaults are stored flat under a name derived from the path ('.' -> '_'). */
    char flat[512];
    snprintf(flat, sizeof flat, "d_%s", path);
    for (char *p = flat; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_') *p = '_';
    config_setting_t *root = config_root_setting(&defaults);
    config_setting_t *d = config_setting_get_member(root, flat);
    if (d) return d;
    config_t tmp;
    config_setting_t *v;
    if (parse_text(&tmp, decl->type, decl->default_value, path, &v) != GR_OK) return NULL;
    d = config_setting_add(root, flat, config_setting_type(v));
    if (d) copy_value(d, v);
    config_destroy(&tmp);
    return d;
}

int gr_config_is_set(const gr_config *cfg, const char *path)
{
    return config_lookup(&cfg->lc, path) != NULL;
}

int64_t gr_config_int(const gr_config *cfg, const char *path)
{
    const config_setting_t *s = lookup(cfg, path, NULL);
    return s ? config_setting_get_int64(s) : 0;
}

gr_status gr_config_check_int(const gr_config *cfg, const char *path, int64_t lo, int64_t hi)
{
    int64_t v = gr_config_int(cfg, path);
    if (v < lo || v > hi)
        return gr_fail(GR_ERR_INVALID, "%s: %s = %lld is out of range %lld..%lld", gr_config_path(cfg), path, (long long)v,
                       (long long)lo, (long long)hi);
    return GR_OK;
}

double gr_config_float(const gr_config *cfg, const char *path)
{
    const config_setting_t *s = lookup(cfg, path, NULL);
    if (!s) return 0.0;
    int t = config_setting_type(s);
    if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64) return (double)config_setting_get_int64(s);
    return config_setting_get_float(s);
}

int gr_config_bool(const gr_config *cfg, const char *path)
{
    const config_setting_t *s = lookup(cfg, path, NULL);
    return s ? config_setting_get_bool(s) : 0;
}

const char *gr_config_string(const gr_config *cfg, const char *path)
{
    const config_setting_t *s = lookup(cfg, path, NULL);
    const char *v = s ? config_setting_get_string(s) : NULL;
    return v ? v : "";
}

int gr_config_list_count(const gr_config *cfg, const char *path)
{
    const config_setting_t *s = lookup(cfg, path, NULL);
    return s ? config_setting_length(s) : 0;
}

const char *gr_config_list_string(const gr_config *cfg, const char *path, int i)
{
    const config_setting_t *s = lookup(cfg, path, NULL);
    const char *v = s ? config_setting_get_string_elem(s, i) : NULL;
    return v ? v : "";
}

double gr_config_list_float(const gr_config *cfg, const char *path, int i)
{
    const config_setting_t *s = lookup(cfg, path, NULL);
    if (!s) return 0.0;
    const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
    if (!e) return 0.0;
    int t = config_setting_type(e);
    if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64) return (double)config_setting_get_int64(e);
    return config_setting_get_float(e);
}

const char *gr_config_origin(const gr_config *cfg, const char *path, char *buf, size_t cap)
{
    for (int i = cfg->n_overridden - 1; i >= 0; i--)
        if (strcmp(cfg->overridden[i], path) == 0) {
            snprintf(buf, cap, "command line (-s %s)", path);
            return buf;
        }
    const config_setting_t *s = config_lookup(&cfg->lc, path);
    if (!s) {
        snprintf(buf, cap, "default");
        return buf;
    }
    const char *file = config_setting_source_file(s);
    snprintf(buf, cap, "%s:%d", file ? file : gr_config_path(cfg), config_setting_source_line(s));
    return buf;
}

gr_status gr_config_write(const gr_config *cfg, const char *path)
{
    config_t out;
    config_init(&out);
    config_setting_t *root = config_root_setting(&out);
    for (int i = 0; i < gr_config_schema_count(); i++) {
        const gr_config_key *k = gr_config_schema_at(i);
        const config_setting_t *v = lookup(cfg, k->path, NULL);
        if (!v) continue;
        char *key = strdup(k->path);
        if (!key) break;
        config_setting_t *group = root;
        char *save = NULL;
        char *part = strtok_r(key, ".", &save);
        while (part) {
            char *next = strtok_r(NULL, ".", &save);
            config_setting_t *child = config_setting_get_member(group, part);
            if (next) {
                if (!child) child = config_setting_add(group, part, CONFIG_TYPE_GROUP);
                group = child;
            } else if (!child) {
                child = config_setting_add(group, part, config_setting_type(v));
                if (child) copy_value(child, v);
            }
            if (!group) break;
            part = next;
        }
        free(key);
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        config_destroy(&out);
        return gr_fail(GR_ERR_IO, "%s: cannot write config", path);
    }
    config_write(&out, f);
    int bad = fclose(f) != 0;
    config_destroy(&out);
    return bad ? gr_fail(GR_ERR_IO, "%s: write failed", path) : GR_OK;
}
