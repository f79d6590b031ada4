/* A projector plugin built several ways by the ABI tests. Without defines it is a correct,
 * loadable identity projector; each TEST_* define breaks exactly one rule of the ABI. */
#include <stdlib.h>

#include "graft/model.h"
#include "graft/plugin.h"

struct gr_projector { int unused; };

static gr_status identity_open(gr_ctx *ctx, const gr_model_source *src,
                               const gr_projector_spec *spec, gr_projector **out)
{
    (void)ctx; (void)src; (void)spec;
    *out = calloc(1, sizeof **out);
    return *out ? GR_OK : gr_fail(GR_ERR_NOMEM, "test-identity: out of memory");
}
static void identity_close(gr_projector *p, gr_ctx *ctx) { (void)ctx; free(p); }
static void identity_params(gr_projector *p, gr_param_list *out) { (void)p; out->items = NULL; out->count = 0; }
__attribute__((unused)) static gr_status identity_forward(gr_projector *p, gr_ctx *ctx, gr_tensor *x, gr_tensor **y)
{
    (void)p; (void)ctx;
    *y = x;
    return GR_OK;
}

static const gr_projector_iface iface = {
#ifdef TEST_SMALL_IFACE
    8,
#else
    sizeof(gr_projector_iface),
#endif
    identity_open, identity_close, identity_params,
#ifdef TEST_NULL_SLOT
    NULL,
#else
    identity_forward,
#endif
};

static const gr_plugin_descriptor descriptor = {
#ifdef TEST_WRONG_MAJOR
    GR_ABI_MAJOR + 1,
#else
    GR_ABI_MAJOR,
#endif
    GR_ABI_MINOR,
#ifdef TEST_SMALL_DESCRIPTOR
    12,
#else
    sizeof(gr_plugin_descriptor),
#endif
    GR_PLUGIN_PROJECTOR, "test-identity", "identity projector used by the ABI tests", &iface,
};

#ifdef TEST_NO_ENTRY
GR_PLUGIN_EXPORT const gr_plugin_descriptor *graft_plugin_entry_misspelled(void) { return &descriptor; }
#else
GR_PLUGIN_EXPORT const gr_plugin_descriptor *graft_plugin_entry(void) { return &descriptor; }
#endif
