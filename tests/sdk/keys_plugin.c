/* Strategy plugins whose config_keys follow or break the registry's rules, one per VARIANT
 * (tests/sdk/strategy_keys.sh loads them with the graft binary):
 *   0  keys-ok       one key of every type; run() reports each value it reads, so a test
 *                    sees that the value the command line set is the one the strategy got
 *   1  keys-ok       the same name again with other defaults (a later file: shadowed)
 *   2  bad-prefix    a key outside strategy.bad-prefix.*
 *   3  bad-doc       a key without a doc line
 *   4  bad-default   a good key, then an int whose default is "many" (nothing registered)
 *   5  bad-dup       one path declared twice
 *   6  bad-type      a type that does not exist
 *   7  bad-count     a negative config_key_count */
#include <string.h>

#include "graft/engine.h"
#include "graft/plugin.h"
#include "graft/strategy.h"

#if VARIANT == 0 || VARIANT == 1
#define NAME "keys-ok"
#define P "strategy.keys-ok."
static const gr_config_key keys[] = {
    {P "n", GR_CFG_INT, VARIANT == 0 ? "7" : "8", "an int"},
    {P "x", GR_CFG_FLOAT, "0.5", "a float"},
    {P "b", GR_CFG_BOOL, "true", "a bool"},
    {P "s", GR_CFG_STRING, "hi there", "a string"},
    {P "names", GR_CFG_STRING_LIST, "[\"a\", \"b\"]", "a list of strings"},
    {P "deep.v", GR_CFG_FLOAT_LIST, "[1.0, 2.5]", "a list of numbers in a subgroup"},
    {P "opt", GR_CFG_INT, NULL, "an optional int"},
};
#elif VARIANT == 2
#define NAME "bad-prefix"
static const gr_config_key keys[] = {
    {"strategy.bad-prefix.ok", GR_CFG_INT, "1", "fine"},
    {"train.bad_prefix_lr", GR_CFG_FLOAT, "1", "a key of the core's"},
};
#elif VARIANT == 3
#define NAME "bad-doc"
static const gr_config_key keys[] = {{"strategy.bad-doc.k", GR_CFG_INT, "1", ""}};
#elif VARIANT == 4
#define NAME "bad-default"
static const gr_config_key keys[] = {
    {"strategy.bad-default.ok", GR_CFG_INT, "1", "fine"},
    {"strategy.bad-default.steps", GR_CFG_INT, "many", "not an int"},
};
#elif VARIANT == 5
#define NAME "bad-dup"
static const gr_config_key keys[] = {
    {"strategy.bad-dup.k", GR_CFG_INT, "1", "once"},
    {"strategy.bad-dup.k", GR_CFG_INT, "2", "twice"},
};
#elif VARIANT == 6
#define NAME "bad-type"
static const gr_config_key keys[] = {{"strategy.bad-type.k", (gr_config_type)42, "1", "no such type"}};
#elif VARIANT == 7
#define NAME "bad-count"
static const gr_config_key keys[] = {{"strategy.bad-count.k", GR_CFG_INT, "1", "fine"}};
#endif

static gr_status run(gr_engine *e)
{
    const gr_config *cfg = gr_engine_config(e);
    gr_status s = GR_OK;
#if VARIANT == 0 || VARIANT == 1
    s = gr_engine_report_number(e, "keys.n", (double)gr_config_int(cfg, P "n"));
    if (s == GR_OK) s = gr_engine_report_number(e, "keys.x", gr_config_float(cfg, P "x"));
    if (s == GR_OK) s = gr_engine_report_number(e, "keys.b", gr_config_bool(cfg, P "b"));
    if (s == GR_OK) s = gr_engine_report_number(e, "keys.s_len", (double)strlen(gr_config_string(cfg, P "s")));
    if (s == GR_OK) s = gr_engine_report_number(e, "keys.names", gr_config_list_count(cfg, P "names"));
    if (s == GR_OK) s = gr_engine_report_number(e, "keys.v1", gr_config_list_float(cfg, P "deep.v", 1));
    if (s == GR_OK) s = gr_engine_report_number(e, "keys.opt_set", gr_config_is_set(cfg, P "opt"));
#else
    (void)cfg;
#endif
    return s;
}

static const gr_strategy_iface iface = {
    .struct_size = sizeof(gr_strategy_iface),
    .run = run,
    .config_keys = keys,
    .config_key_count = VARIANT == 7 ? -1 : (int)(sizeof keys / sizeof keys[0]),
};

static const gr_plugin_descriptor desc =
    GR_PLUGIN_DESCRIPTOR(GR_PLUGIN_STRATEGY, NAME, "config_keys rules under test", &iface);

GR_PLUGIN_EXPORT const gr_plugin_descriptor *graft_plugin_entry(void) { return &desc; }
