/* The plugin registry: finds plugin shared objects, checks their ABI before calling anything
 * else, and opens backends by name. Search order: the `plugin_path` config setting, then
 * GRAFT_PLUGIN_PATH (colon-separated), then <exe>/../lib/graft/plugins (build and install
 * trees share this layout). The first plugin of a given kind and name wins. */
#ifndef GRAFT_CORE_REGISTRY_H
#define GRAFT_CORE_REGISTRY_H

#include "graft/backend.h"
#include "graft/config.h"
#include "graft/plugin.h"

typedef struct gr_plugin {
    const gr_plugin_descriptor *desc;
    char *path;
    void *handle;
    const gr_config_key *keys; /* a strategy's config_keys, registered in the schema (or NULL) */
    int key_count;
} gr_plugin;

/* Loads and validates one plugin file. On refusal returns GR_ERR_ABI (or GR_ERR_IO) with a
 * message "PATH: refused: reason". The plugin stays loaded until gr_plugins_unload_all().
 * A strategy's config_keys are registered in the config schema here: each path must lie under
 * strategy.<name>. and have a doc line, each default must parse as its type, no path may be
 * declared twice; otherwise the file is refused ("PATH: refused: strategy 'NAME': ... 'KEY'
 * ...") and nothing of its table is registered. A second strategy of an already loaded name
 * loads (it is never selected) without registering keys. */
gr_status gr_plugin_load_file(const char *path, const gr_plugin **out);

/* Adds a directory (or colon-separated list) to search, in front of the defaults. */
void gr_plugins_add_path(const char *paths);
/* Scans the search path once (later calls do nothing unless paths were added), loading every
 * plugin found (and so registering the strategies' keys, see gr_plugin_load_file). Files that
 * are refused are remembered with their reasons (see gr_plugins_refused). */
gr_status gr_plugins_scan(void);
int gr_plugins_count(void);
const gr_plugin *gr_plugins_at(int i);
int gr_plugins_refused_count(void);
const char *gr_plugins_refused_at(int i); /* "PATH: reason" */
/* Finds a loaded plugin of this kind and name; GR_ERR_NOT_FOUND names the kind, the name and
 * the plugins of that kind that exist, or, for a file of that name refused for its keys, why. */
gr_status gr_plugin_find(gr_plugin_kind kind, const char *name, const gr_plugin **out);
/* The interface struct of a plugin of this kind and name (after a scan). */
gr_status gr_plugin_iface(gr_plugin_kind kind, const char *name, const void **iface);
void gr_plugins_unload_all(void);

/* Opens a backend plugin by name ("cpu", "vulkan"). opt may be NULL (defaults). */
gr_status gr_backend_open(const char *name, const gr_backend_options *opt, gr_backend **out);
void gr_backend_close(gr_backend *backend);

#endif
