/* Opening a backend by name: the only place the core touches a backend's lifecycle. */
#include <stdlib.h>
#include <string.h>

#include "plugin/registry.h"

gr_status gr_backend_open(const char *name, const gr_backend_options *opt, gr_backend **out)
{
    const gr_plugin *plugin;
    gr_status s = gr_plugin_find(GR_PLUGIN_BACKEND, name, &plugin);
    if (s != GR_OK) return s;
    gr_backend_options defaults = {sizeof defaults, 0, "", 0, "", 0};
    if (!opt) opt = &defaults;
    gr_backend *b = calloc(1, sizeof *b);
    if (!b) return gr_fail(GR_ERR_NOMEM, "backend %s: out of memory", name);
    b->iface = plugin->desc->iface;
    b->name = plugin->desc->name; /* lives as long as the plugin stays loaded */
    s = b->iface->create(opt, &b->ctx);
    if (s != GR_OK) {
        free(b);
        return gr_fail_context(s, "backend %s", name);
    }
    *out = b;
    return GR_OK;
}

void gr_backend_close(gr_backend *backend)
{
    if (!backend) return;
    backend->iface->destroy(backend->ctx);
    free(backend);
}
