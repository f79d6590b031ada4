/* graft — the plugin ABI.
 *
 * A plugin is a shared object that exports exactly one symbol, GR_PLUGIN_ENTRY_SYMBOL, a
 * function taking nothing and returning a pointer to a const gr_plugin_descriptor that lives
 * as long as the library is loaded. The host, before calling anything else in the plugin:
 *   1. refuses the file if the symbol is missing;
 *   2. refuses an ABI major version other than its own (GR_ABI_MAJOR);
 *   3. refuses a descriptor smaller than the fields this major version defines;
 *   4. refuses an unknown kind, an empty name, or an interface struct whose `struct_size`
 *      is smaller than the required part of that kind's interface.
 * Each refusal is one line naming the file and the reason.
 *
 * Rules of the ABI (the ABI version lives here, GR_ABI_MAJOR.GR_ABI_MINOR, and nowhere else;
 * graft.pc and graftConfig.cmake repeat the major):
 *  - Structs only ever grow at the end. A new field raises GR_ABI_MINOR; removing or
 *    reordering a field, or changing a meaning, raises GR_ABI_MAJOR. A plugin built against
 *    any minor version of the host's major version loads.
 *  - Every interface struct starts with `uint32_t struct_size` (= sizeof as the plugin was
 *    compiled). The host reads no field past it. Slots are required up to the last one that
 *    existed in x.0 of the major version (the registry refuses a NULL one); slots appended
 *    later are optional: NULL, or beyond struct_size, means "not provided" and the host falls
 *    back or reports GR_ERR_UNSUPPORTED.
 *  - Structs passed *to* a plugin (options, inputs, specs) carry the host's struct_size: read
 *    a field only when struct_size covers it. Structs a plugin *fills* (info, outputs) arrive
 *    with struct_size set by the host to its size: write at most that many bytes.
 *  - Errors cross the ABI as a gr_status plus the message set with gr_fail(); a plugin never
 *    calls exit() or abort() on bad input.
 *  - Plugins link against libgraft and may call any function of the SDK headers. */
#ifndef GRAFT_PLUGIN_H
#define GRAFT_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include "graft/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GR_ABI_MAJOR 1
#define GR_ABI_MINOR 0

#define GR_PLUGIN_ENTRY_SYMBOL "graft_plugin_entry"

typedef enum gr_plugin_kind {
    GR_PLUGIN_BACKEND = 1,
    GR_PLUGIN_LANGUAGE_MODEL = 2,
    GR_PLUGIN_VISION_ENCODER = 3,
    GR_PLUGIN_PROJECTOR = 4,
    GR_PLUGIN_STRATEGY = 5
} gr_plugin_kind;

typedef struct gr_plugin_descriptor {
    uint32_t abi_major;
    uint32_t abi_minor;
    uint32_t descriptor_size;   /* sizeof(gr_plugin_descriptor) as the plugin was compiled */
    uint32_t kind;              /* gr_plugin_kind */
    const char *name;           /* unique within its kind: "cpu", "opt", "tas", ... */
    const char *description;    /* one line */
    const void *iface;          /* the kind's interface struct; starts with uint32_t struct_size */
} gr_plugin_descriptor;

typedef const gr_plugin_descriptor *(*gr_plugin_entry_fn)(void);

/* Declares the entry point with C linkage and default visibility. Usage:
 *   GR_PLUGIN_EXPORT const gr_plugin_descriptor *graft_plugin_entry(void) { return &desc; } */
#define GR_PLUGIN_EXPORT __attribute__((visibility("default")))

/* Fills the fixed part of a descriptor for the ABI this header describes. */
#define GR_PLUGIN_DESCRIPTOR(KIND, NAME, DESCRIPTION, IFACE)                                   \
    { GR_ABI_MAJOR, GR_ABI_MINOR, (uint32_t)sizeof(gr_plugin_descriptor), (uint32_t)(KIND),    \
      (NAME), (DESCRIPTION), (IFACE) }

const char *gr_plugin_kind_name(gr_plugin_kind kind);

#ifdef __cplusplus
}
#endif
#endif
