/* Plugin discovery and ABI checks. A plugin is trusted with nothing until its descriptor has
 * passed every check below; the entry function is the only code of it that runs before.
 * A strategy's config_keys are registered here, at load time, so that every command knows
 * them before it applies -s overrides or validates a file (see strategy_keys). */
#include <dirent.h>
#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graft/backend.h"
#include "graft/model.h"
#include "graft/strategy.h"
#include "plugin/registry.h"

#define MAX_PLUGINS 256
#define MAX_PATHS 32

static gr_plugin plugins[MAX_PLUGINS];
static int plugin_count;
/* A refused file: its reason and, when the descriptor itself was sound (the refusal is about
 * its keys), the kind and name it claimed, so that selecting it by name reports why. */
typedef struct refusal {
    char *why;
    char *name;
    uint32_t kind;
} refusal;
static refusal refused[MAX_PLUGINS];
static refusal last_refusal; /* set by gr_plugin_load_file for scan_dir */
static int refused_count;
static char *search_paths[MAX_PATHS];
static int path_count;
static int scanned;

const char *gr_plugin_kind_name(gr_plugin_kind kind)
{
    switch (kind) {
    case GR_PLUGIN_BACKEND: return "backend";
    case GR_PLUGIN_LANGUAGE_MODEL: return "language-model";
    case GR_PLUGIN_VISION_ENCODER: return "vision-encoder";
    case GR_PLUGIN_PROJECTOR: return "projector";
    case GR_PLUGIN_STRATEGY: return "strategy";
    }
    return "unknown";
}

/* The smallest interface struct each kind may present: every required slot must be inside. */
#define REQUIRED_THROUGH(type, last) (offsetof(type, last) + sizeof(((type *)0)->last))
static size_t required_iface_size(gr_plugin_kind kind)
{
    switch (kind) {
    case GR_PLUGIN_BACKEND: return REQUIRED_THROUGH(gr_backend_iface, adamw);
    case GR_PLUGIN_LANGUAGE_MODEL: return REQUIRED_THROUGH(gr_lm_iface, cache_free);
    case GR_PLUGIN_VISION_ENCODER: return REQUIRED_THROUGH(gr_vision_iface, forward);
    case GR_PLUGIN_PROJECTOR: return REQUIRED_THROUGH(gr_projector_iface, forward);
    case GR_PLUGIN_STRATEGY: return REQUIRED_THROUGH(gr_strategy_iface, run);
    }
    return 0;
}

/* Checks a descriptor in the order the ABI rules give; returns NULL if acceptable or a reason. */
static const char *check_descriptor(const gr_plugin_descriptor *d, char *why, size_t cap)
{
    if (!d) return "entry function returned no descriptor";
    if (d->abi_major != GR_ABI_MAJOR) {
        snprintf(why, cap, "plugin ABI %u.%u, this graft accepts ABI %d.x (rebuild the plugin "
                 "against this SDK)", d->abi_major, d->abi_minor, GR_ABI_MAJOR);
        return why;
    }
    size_t need = REQUIRED_THROUGH(gr_plugin_descriptor, iface);
    if (d->descriptor_size < need) {
        snprintf(why, cap, "descriptor is %u bytes, ABI %d needs at least %zu",
                 d->descriptor_size, GR_ABI_MAJOR, need);
        return why;
    }
    size_t min_iface = required_iface_size((gr_plugin_kind)d->kind);
    if (min_iface == 0) {
        snprintf(why, cap, "unknown plugin kind %u", d->kind);
        return why;
    }
    if (!d->name || !d->name[0]) return "descriptor has no name";
    if (!d->iface) return "descriptor has no interface struct";
    uint32_t iface_size = *(const uint32_t *)d->iface;
    if (iface_size < min_iface) {
        snprintf(why, cap, "%s interface struct is %u bytes, ABI %d.%d needs at least %zu",
                 gr_plugin_kind_name((gr_plugin_kind)d->kind), iface_size, GR_ABI_MAJOR,
                 GR_ABI_MINOR, min_iface);
        return why;
    }
    /* Required slots are function pointers laid out after struct_size: none may be NULL. */
    const char *base = d->iface;
    for (size_t off = sizeof(void *); off + sizeof(void *) <= min_iface; off += sizeof(void *)) {
        void *slot;
        memcpy(&slot, base + off, sizeof slot);
        if (!slot) {
            snprintf(why, cap, "%s interface has a NULL required function (slot %zu)",
                     gr_plugin_kind_name((gr_plugin_kind)d->kind), off / sizeof(void *));
            return why;
        }
    }
    return NULL;
}

/* A strategy's declared settings (gr_strategy_iface.config_keys). The rule: every path lies
 * under strategy.<its name>. and has a doc line; the schema then checks types, defaults and
 * duplicates for the whole table before adding any of it. On success *keys and *count are what was
 * registered (NULL/0: nothing declared). The first plugin of a name owns its keys; a later one
 * of the same name is never selected, so its keys are not registered. */
static gr_status strategy_keys(const gr_plugin_descriptor *d, const gr_config_key **keys, int *count)
{
    *keys = NULL;
    *count = 0;
    const gr_strategy_iface *it = d->iface;
    size_t need = offsetof(gr_strategy_iface, config_key_count) + sizeof it->config_key_count;
    if (it->struct_size < need || (!it->config_keys && it->config_key_count == 0)) return GR_OK;
    if (it->config_key_count < 0 || !it->config_keys)
        return gr_fail(GR_ERR_ABI, "config_key_count is %d with %s config_keys table",
                       it->config_key_count, it->config_keys ? "a" : "no");
    char prefix[256];
    int plen = snprintf(prefix, sizeof prefix, "strategy.%s.", d->name);
    if (plen < 0 || (size_t)plen >= sizeof prefix) return gr_fail(GR_ERR_ABI, "name too long");
    for (int k = 0; k < it->config_key_count; k++) {
        const gr_config_key *key = &it->config_keys[k];
        if (!key->path) return gr_fail(GR_ERR_ABI, "config_keys[%d] has no path", k);
        if (strncmp(key->path, prefix, (size_t)plen) != 0 || !key->path[plen])
            return gr_fail(GR_ERR_ABI, "key '%s' is outside %s* (a strategy declares only its own "
                           "settings)", key->path, prefix);
        if (!key->doc || !key->doc[0])
            return gr_fail(GR_ERR_ABI, "key '%s' has no doc line", key->path);
    }
    for (int i = 0; i < plugin_count; i++)
        if (plugins[i].desc->kind == GR_PLUGIN_STRATEGY && strcmp(plugins[i].desc->name, d->name) == 0)
            return GR_OK; /* shadowed */
    gr_status s = gr_config_schema_add(it->config_keys, it->config_key_count);
    if (s != GR_OK) return s;
    *keys = it->config_keys;
    *count = it->config_key_count;
    return GR_OK;
}

gr_status gr_plugin_load_file(const char *path, const gr_plugin **out)
{
    for (int i = 0; i < plugin_count; i++)
        if (strcmp(plugins[i].path, path) == 0) { *out = &plugins[i]; return GR_OK; }
    if (plugin_count >= MAX_PLUGINS) return gr_fail(GR_ERR_ABI, "%s: too many plugins loaded", path);
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) return gr_fail(GR_ERR_ABI, "%s: cannot load: %s", path, dlerror());
    dlerror();
    void *sym = dlsym(handle, GR_PLUGIN_ENTRY_SYMBOL);
    if (!sym) {
        dlclose(handle);
        return gr_fail(GR_ERR_ABI, "%s: not a graft plugin: no '%s' symbol", path,
                       GR_PLUGIN_ENTRY_SYMBOL);
    }
    gr_plugin_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry); /* object -> function pointer, as dlsym requires */
    const gr_plugin_descriptor *d = entry();
    char why[256];
    const char *reason = check_descriptor(d, why, sizeof why);
    if (reason) {
        gr_status s = gr_fail(GR_ERR_ABI, "%s: refused: %s", path, reason);
        dlclose(handle);
        return s;
    }
    const gr_config_key *keys = NULL;
    int key_count = 0;
    if (d->kind == GR_PLUGIN_STRATEGY && strategy_keys(d, &keys, &key_count) != GR_OK) {
        /* nothing of the table was registered: the library can go */
        gr_status s = gr_fail_context(GR_ERR_ABI, "%s: refused: strategy '%s'", path, d->name);
        last_refusal.kind = d->kind;
        last_refusal.name = strdup(d->name);
        dlclose(handle);
        return s;
    }
    gr_plugin *p = &plugins[plugin_count];
    p->desc = d;
    p->keys = keys;
    p->key_count = key_count;
    p->path = strdup(path);
    p->handle = handle;
    if (!p->path) { dlclose(handle); return gr_fail(GR_ERR_NOMEM, "%s: out of memory", path); }
    plugin_count++;
    *out = p;
    return GR_OK;
}

void gr_plugins_add_path(const char *paths)
{
    if (!paths || !paths[0]) return;
    char *copy = strdup(paths);
    if (!copy) return;
    /* Later additions go first: config beats environment beats the default directory. */
    char *save = NULL;
    char *items[MAX_PATHS];
    int n = 0;
    for (char *tok = strtok_r(copy, ":", &save); tok && n < MAX_PATHS; tok = strtok_r(NULL, ":", &save))
        if (tok[0]) items[n++] = tok;
    if (path_count + n > MAX_PATHS) n = MAX_PATHS - path_count;
    memmove(search_paths + n, search_paths, (size_t)path_count * sizeof *search_paths);
    for (int i = 0; i < n; i++) search_paths[i] = strdup(items[i]);
    path_count += n;
    free(copy);
    scanned = 0;
}

/* <dir of libgraft>/graft/plugins: build and install trees both put plugins there. */
static char *default_plugin_dir(void)
{
    Dl_info info;
    if (!dladdr((void *)&gr_plugins_scan, &info) || !info.dli_fname) return NULL;
    char *lib = strdup(info.dli_fname);
    if (!lib) return NULL;
    char *slash = strrchr(lib, '/');
    if (!slash) { free(lib); return strdup("graft/plugins"); }
    *slash = '\0';
    size_t n = strlen(lib) + 32;
    char *dir = malloc(n);
    if (dir) snprintf(dir, n, "%s/graft/plugins", lib);
    free(lib);
    return dir;
}

static int is_shared_object(const char *name)
{
    size_t n = strlen(name);
    return n > 3 && strcmp(name + n - 3, ".so") == 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void scan_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return; /* a search-path entry that does not exist is not an error */
    char *names[MAX_PLUGINS];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < MAX_PLUGINS)
        if (is_shared_object(e->d_name)) names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_names); /* deterministic order */
    for (int i = 0; i < n; i++) {
        size_t len = strlen(dir) + strlen(names[i]) + 2;
        char *path = malloc(len);
        if (path) {
            snprintf(path, len, "%s/%s", dir, names[i]);
            const gr_plugin *p;
            last_refusal = (refusal){0};
            if (gr_plugin_load_file(path, &p) != GR_OK && refused_count < MAX_PLUGINS) {
                last_refusal.why = strdup(gr_last_error());
                refused[refused_count++] = last_refusal;
            } else {
                free(last_refusal.name);
            }
            last_refusal = (refusal){0};
            free(path);
        }
        free(names[i]);
    }
}

static void free_refused(void)
{
    for (int i = 0; i < refused_count; i++) {
        free(refused[i].why);
        free(refused[i].name);
    }
    refused_count = 0;
}

gr_status gr_plugins_scan(void)
{
    if (scanned) return GR_OK;
    static int env_added;
    if (!env_added) {
        env_added = 1;
        char *def = default_plugin_dir();
        if (def) {
            search_paths[path_count++] = def;
        }
        const char *env = getenv("GRAFT_PLUGIN_PATH");
        if (env) gr_plugins_add_path(env);
    }
    free_refused();
    for (int i = 0; i < path_count; i++) scan_dir(search_paths[i]);
    scanned = 1;
    gr_clear_error();
    return GR_OK;
}

int gr_plugins_count(void) { return plugin_count; }
const gr_plugin *gr_plugins_at(int i) { return i >= 0 && i < plugin_count ? &plugins[i] : NULL; }
int gr_plugins_refused_count(void) { return refused_count; }
const char *gr_plugins_refused_at(int i) { return i >= 0 && i < refused_count ? refused[i].why : NULL; }

gr_status gr_plugin_find(gr_plugin_kind kind, const char *name, const gr_plugin **out)
{
    gr_plugins_scan();
    for (int i = 0; i < plugin_count; i++)
        if (plugins[i].desc->kind == (uint32_t)kind && strcmp(plugins[i].desc->name, name) == 0) {
            *out = &plugins[i];
            return GR_OK;
        }
    for (int i = 0; i < refused_count; i++)
        if (refused[i].name && refused[i].kind == (uint32_t)kind && strcmp(refused[i].name, name) == 0)
            return gr_fail(GR_ERR_NOT_FOUND, "%s plugin '%s' was refused: %s",
                           gr_plugin_kind_name(kind), name, refused[i].why);
    char known[512] = "";
    size_t used = 0;
    for (int i = 0; i < plugin_count && used < sizeof known; i++)
        if (plugins[i].desc->kind == (uint32_t)kind)
            used += (size_t)snprintf(known + used, sizeof known - used, "%s%s", used ? ", " : "",
                                     plugins[i].desc->name);
    return gr_fail(GR_ERR_NOT_FOUND, "no %s plugin named '%s' (available: %s; search path: "
                   "plugin_path setting, GRAFT_PLUGIN_PATH, %s)", gr_plugin_kind_name(kind), name,
                   known[0] ? known : "none", path_count ? search_paths[path_count - 1] : "-");
}

gr_status gr_plugin_iface(gr_plugin_kind kind, const char *name, const void **iface)
{
    const gr_plugin *p;
    gr_status s = gr_plugin_find(kind, name, &p);
    if (s != GR_OK) return s;
    *iface = p->desc->iface;
    return GR_OK;
}

void gr_plugins_unload_all(void)
{
    for (int i = 0; i < plugin_count; i++) {
        /* The config schema keeps pointers into a strategy's key table for the life of the
         * process: such a library stays mapped (a later scan gets the same handle back). */
        if (!plugins[i].keys) dlclose(plugins[i].handle);
        free(plugins[i].path);
    }
    plugin_count = 0;
    free_refused();
    scanned = 0;
}
