/* `graft config`: the resolved configuration of a file plus overrides, or the reference of
 * every key (docs/config.md is `graft config --reference`; tests/sdk fails when they differ).
 *
 * Keys come from the core's schema and from every strategy plugin found (its config_keys).
 * Both modes check what they print: every default must parse as its declared type, and a
 * plugin may only declare keys under strategy.<its name>. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fsutil.h"
#include "cli_config.h"
#include "commands.h"
#include "graft/strategy.h"
#include "plugin/registry.h"
#include "train/engine_internal.h"

/* A run of schema entries [first, end) and who declared them (NULL: the core). */
typedef struct key_source {
    int first, end;
    const gr_plugin *plugin;
} key_source;

#define MAX_SOURCES 64

static const char *type_name(gr_config_type t)
{
    switch (t) {
    case GR_CFG_INT: return "int";
    case GR_CFG_FLOAT: return "float";
    case GR_CFG_BOOL: return "bool";
    case GR_CFG_STRING: return "string";
    case GR_CFG_STRING_LIST: return "string list";
    case GR_CFG_FLOAT_LIST: return "float list";
    }
    return "?";
}

/* Declares the keys of every strategy plugin found, recording which plugin owns which run. */
static gr_status add_plugin_keys(key_source *src, int *nsrc)
{
    gr_plugins_scan();
    for (int i = 0; i < gr_plugins_count(); i++) {
        const gr_plugin *p = gr_plugins_at(i);
        if (p->desc->kind != GR_PLUGIN_STRATEGY) continue;
        const gr_strategy_iface *it = p->desc->iface;
        size_t need = offsetof(gr_strategy_iface, config_key_count) + sizeof it->config_key_count;
        if (it->struct_size < need || !it->config_keys || it->config_key_count <= 0) continue;
        char prefix[256];
        snprintf(prefix, sizeof prefix, "strategy.%s.", p->desc->name);
        for (int k = 0; k < it->config_key_count; k++) {
            const char *path = it->config_keys[k].path;
            if (!path || strncmp(path, prefix, strlen(prefix)) != 0 || !path[strlen(prefix)])
                return gr_fail(GR_ERR_INVALID, "%s: strategy '%s' declares key '%s' outside %s*",
                               p->path, p->desc->name, path ? path : "(null)", prefix);
            if (!it->config_keys[k].doc || !it->config_keys[k].doc[0])
                return gr_fail(GR_ERR_INVALID, "%s: key '%s' has no doc line", p->path, path);
        }
        int before = gr_config_schema_count();
        gr_status s = gr_config_schema_add(it->config_keys, it->config_key_count);
        if (s != GR_OK) return gr_fail_context(s, "%s", p->path);
        if (*nsrc < MAX_SOURCES && gr_config_schema_count() > before)
            src[(*nsrc)++] = (key_source){before, gr_config_schema_count(), p};
    }
    return GR_OK;
}

/* A default that does not parse as its type would silently read as 0/"": refuse it here. */
static gr_status check_defaults(void)
{
    gr_config *tmp;
    gr_status s = gr_config_load(NULL, &tmp);
    if (s != GR_OK) return s;
    for (int i = 0; i < gr_config_schema_count() && s == GR_OK; i++) {
        const gr_config_key *k = gr_config_schema_at(i);
        if (!k->default_value) continue;
        char assign[1024];
        snprintf(assign, sizeof assign, "%s=%s", k->path, k->default_value);
        if (gr_config_override(tmp, assign) != GR_OK)
            s = gr_fail(GR_ERR_INVALID, "config key '%s': default '%s' is not a valid %s",
                        k->path, k->default_value, type_name(k->type));
    }
    gr_config_free(tmp);
    return s;
}

/* Markdown table cell: '|' would end the cell, a newline the row. */
static void cell(const char *s)
{
    for (; *s; s++) {
        if (*s == '|') fputs("\\|", stdout);
        else if (*s == '\n') fputc(' ', stdout);
        else fputc(*s, stdout);
    }
}

/* The section a key belongs to: its path without the last component ("" at top level). */
static size_t section_len(const char *path)
{
    const char *dot = strrchr(path, '.');
    return dot ? (size_t)(dot - path) : 0;
}

static void print_default(const gr_config_key *k)
{
    if (!k->default_value) { fputs("*(unset)*", stdout); return; }
    fputs("`", stdout);
    if (k->type == GR_CFG_STRING) fputs("\"", stdout);
    cell(k->default_value);
    if (k->type == GR_CFG_STRING) fputs("\"", stdout);
    fputs("`", stdout);
}

static void print_keys(int first, int end)
{
    const char *open = NULL; /* path of the first key of the open section */
    for (int i = first; i < end; i++) {
        const gr_config_key *k = gr_config_schema_at(i);
        size_t n = section_len(k->path);
        if (!open || section_len(open) != n || strncmp(open, k->path, n) != 0) {
            if (n) printf("\n### %.*s\n\n", (int)n, k->path);
            else printf("\n### top level\n\n");
            printf("| key | type | default | meaning |\n|---|---|---|---|\n");
            open = k->path;
        }
        printf("| `%s` | %s | ", k->path, type_name(k->type));
        print_default(k);
        fputs(" | ", stdout);
        cell(k->doc ? k->doc : "");
        fputs(" |\n", stdout);
    }
}

static void print_reference(const key_source *src, int nsrc, int core_end)
{
    printf("# Configuration reference\n\n"
           "<!-- Generated by `graft config --reference` from the key tables in the code (the\n"
           "     core's and every strategy plugin's config_keys); do not edit by hand (tests/sdk\n"
           "     fails when this file and the code differ). Regenerate:\n"
           "     cmake --build build --target update-docs -->\n\n"
           "A configuration is a [libconfig](https://hyperrealm.github.io/libconfig/) file given\n"
           "with `-c FILE`; groups nest with `{ }` and a dotted key `a.b.c` is `a = { b = { c =\n"
           "...; }; };`. Any key can be overridden on the command line with `-s a.b.c=VALUE`\n"
           "(applied after the file, in order). A file may hold only the keys below: an unknown\n"
           "key or a value of the wrong type is an error naming the file, the line and the key.\n"
           "A key without a default is optional and reads as unset. `graft config -c FILE`\n"
           "prints the resolved configuration (every key, defaults filled in).\n\n"
           "Types: `int`, `float` (an int is accepted), `bool` (`true`/`false`), `string`\n"
           "(quoted in files, bare after `-s`), lists as `[\"a\", \"b\"]` / `[0.1, 0.2]` in files and\n"
           "`a,b` / `0.1,0.2` after `-s`.\n\n"
           "## Core\n");
    print_keys(0, core_end);
    for (int i = 0; i < nsrc; i++) {
        printf("\n## Plugin `%s` (%s)\n\n%s.\n", src[i].plugin->desc->name,
               gr_plugin_kind_name((gr_plugin_kind)src[i].plugin->desc->kind),
               src[i].plugin->desc->description ? src[i].plugin->desc->description : "");
        print_keys(src[i].first, src[i].end);
    }
}

/* gr_config_write writes files; stdout may be a file we must append to, not truncate (opening
 * /dev/stdout would), so the text goes through a temporary file. */
static gr_status print_resolved(const gr_config *cfg)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/graft-config-XXXXXX", dir && dir[0] ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) return gr_fail(GR_ERR_IO, "%s: cannot create a temporary file", path);
    close(fd);
    char *text = NULL;
    gr_status s = gr_config_write(cfg, path);
    if (s == GR_OK) s = gr_read_file(path, &text, NULL);
    unlink(path);
    if (s == GR_OK) fputs(text, stdout);
    free(text);
    return s;
}

static int run_config(int argc, char **argv)
{
    /* -s overrides may name plugin keys, declared only after the plugin path is known and the
     * plugins are scanned: hold them back, apply plugin_path ones first and the rest last. */
    const char *sets[128];
    int nsets = 0, w = 1;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-s") == 0 || strcmp(argv[i], "--set") == 0) && i + 1 < argc) {
            if (nsets == 128) {
                fprintf(stderr, "graft: config: more than 128 -s overrides\n");
                return 2;
            }
            sets[nsets++] = argv[++i];
        } else {
            argv[w++] = argv[i];
        }
    }
    argc = w;
    argv[argc] = NULL;
    gr_config *cfg;
    if (gr_cli_config_open(&argc, argv, &cfg) != GR_OK) return gr_cli_error();
    for (int i = 0; i < nsets; i++)
        if (strncmp(sets[i], "plugin_path", 11) == 0 && gr_config_override(cfg, sets[i]) != GR_OK) {
            gr_config_free(cfg);
            return gr_cli_error();
        }
    gr_plugins_add_path(gr_config_string(cfg, "plugin_path"));
    int reference = 0;
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reference") == 0) {
            reference = 1;
        } else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
            out = argv[++i];
        } else {
            fprintf(stderr, "graft: config: unexpected argument '%s' (see 'graft config --help')\n",
                    argv[i]);
            gr_config_free(cfg);
            return 2;
        }
    }
    if (reference && out) {
        fprintf(stderr, "graft: config: --reference prints to stdout; --out is for the resolved "
                        "configuration\n");
        gr_config_free(cfg);
        return 2;
    }
    key_source src[MAX_SOURCES];
    int nsrc = 0;
    gr_status s = gr_engine_schema(); /* the training engine's keys are the core's too */
    int core_end = gr_config_schema_count();
    if (s == GR_OK) s = add_plugin_keys(src, &nsrc);
    for (int i = 0; s == GR_OK && i < nsets; i++)
        if (strncmp(sets[i], "plugin_path", 11) != 0) s = gr_config_override(cfg, sets[i]);
    if (s == GR_OK) s = check_defaults();
    if (s == GR_OK) s = gr_config_validate(cfg);
    if (s == GR_OK) {
        if (reference) print_reference(src, nsrc, core_end);
        else if (out) s = gr_config_write(cfg, out);
        else s = print_resolved(cfg);
    }
    gr_config_free(cfg);
    return s == GR_OK ? 0 : gr_cli_error();
}

const gr_command gr_cmd_config = {
    "config", run_config, "print the resolved configuration, or the reference of every key",
    "usage: graft config [-c FILE] [-s KEY=VALUE]... [--out FILE]\n"
    "       graft config --reference [-c FILE] [-s KEY=VALUE]...\n\n"
    "Without --reference: checks FILE and the overrides against every declared key (the core's\n"
    "and those of the strategy plugins found) and prints the resolved configuration: every key\n"
    "that has a value, defaults filled in, in libconfig syntax (to FILE with --out). An unknown\n"
    "key or a wrong type is one error naming the file, line and key.\n\n"
    "--reference: every key as markdown tables (key, type, default, meaning), the core's first,\n"
    "then one section per strategy plugin found (plugin_path in FILE adds plugin directories).\n"
    "This is docs/config.md; tests/sdk checks that they are equal.\n\n"
    "Both modes refuse a key table whose default does not parse as its type, and a strategy\n"
    "plugin that declares a key outside strategy.<its name>.*.\n",
};
