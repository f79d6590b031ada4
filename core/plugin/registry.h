/* The plugin registry: finds plugin shared objects, checks their ABI before calling anything
 * else, and opens backends by name. Search order: the `plugin_path` config setting, then
 * GRAFT_PLUGIN_PATH (colon-separated), then <exe>/../lib/graft/plugins (build and install
 * trees share this layout). The first plugin of a given kind and name wins. */
#ifndef GRAFT_CORE_REGISTRY_H
#define GRAFT_CORE_REGISTRY_H

#include "graft/backend.h"
#include "graft/plugin.h"

typedef struct gr_plugin {
    const gr_plugin_descriptor *desc;
    char *path;
    void *handle;
} gr_plugin;

/* Loads and validates one plugin file. On refusal returns GR_ERR_ABI (or GR_ERR_IO) with a
 * message "PATH: reason". The plugin stays loaded until gr_plugins_unload_all(). */
gr_status gr_plugin_load_file(const char *path, const gr_plugin **out);

/* Adds a directory (or colon-separated list) to search, in front of the defaults. */
void gr_plugins_add_path(const char *paths);
/* Scans the search path once (later calls do nothing unless paths were added). Files that
 * are refused are remembered with their reasons (see gr_plugins_refused). */
gr_status gr_plugins_scan(void);
int gr_plugins_count(void);
const gr_plugin *gr_plugins_at(int i);
int gr_plugins_refused_count(void);
const char *gr_plugins_refused_at(int i); /* "PATH: reason" */
/* Finds a loaded plugin of this kind and name; GR_ERR_NOT_FOUND names the kind, the name and
 * the plugins of that kind that exist. */
gr_status gr_plugin_find(gr_plugin_kind kind, const char *name, const gr_plugin **out);
/* The interface struct of a plugin of this kind and name (after a scan). */
gr_status gr_plugin_iface(gr_plugin_kind kind, const char *name, const void **iface);
void gr_plugins_unload_all(void);

/* Opens a backend plugin by name ("cpu", "vulkan"). opt may be NULL (defaults). */
gr_status gr_backend_open(const char *name, const gr_backend_options *opt, gr_backend **out);
void gr_backend_close(gr_backend *backend);

#endif
