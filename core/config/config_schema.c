/* The one schema table of every key graft understands, filled by the components that read
 * them. Paths are unique: a second declaration of a path is a programming error reported as
 * GR_ERR_INVALID so a plugin cannot silently redefine a core key. A table is checked whole
 * before any of it is added (paths, types, defaults that parse as their type), so a refused
 * table leaves the schema as it was: a plugin whose keys are refused can be unloaded. */
#include <stdio.h>
#include <string.h>

#include "config/core_keys.h"
#include "graft/config.h"

#define MAX_KEYS 1024

static const gr_config_key *schema[MAX_KEYS];
static int schema_count;

static gr_status check_key(const gr_config_key *keys, int i)
{
    const gr_config_key *k = &keys[i];
    if (!k->path || !k->path[0])
        return gr_fail(GR_ERR_INVALID, "config key table: entry %d has no path", i);
    if ((unsigned)k->type > GR_CFG_FLOAT_LIST)
        return gr_fail(GR_ERR_INVALID, "config key '%s': unknown type %d", k->path, (int)k->type);
    const gr_config_key *old = gr_config_schema_find(k->path);
    if (old && old != k)
        return gr_fail(GR_ERR_INVALID, "config key '%s' is declared twice", k->path);
    for (int j = 0; j < i; j++)
        if (strcmp(keys[j].path, k->path) == 0)
            return gr_fail(GR_ERR_INVALID, "config key '%s' is declared twice", k->path);
    if (k->default_value) {
        /* a default that does not parse would silently read as 0 / "" */
        char what[320];
        snprintf(what, sizeof what, "config key '%s': default", k->path);
        return gr_config_check_value(k->type, k->default_value, what);
    }
    return GR_OK;
}

gr_status gr_config_schema_add(const gr_config_key *keys, int count)
{
    if (count < 0 || (count > 0 && !keys))
        return gr_fail(GR_ERR_INVALID, "config key table: %d keys%s", count, keys ? "" : " and no table");
    int fresh = 0;
    for (int i = 0; i < count; i++) {
        gr_status s = check_key(keys, i);
        if (s != GR_OK) return s;
        fresh += gr_config_schema_find(keys[i].path) == NULL; /* same table again: harmless */
    }
    if (schema_count + fresh > MAX_KEYS)
        return gr_fail(GR_ERR_INVALID, "config key '%s': more than %d keys declared", keys[0].path,
                       MAX_KEYS);
    for (int i = 0; i < count; i++)
        if (!gr_config_schema_find(keys[i].path)) schema[schema_count++] = &keys[i];
    return GR_OK;
}

int gr_config_schema_count(void) { return schema_count; }

const gr_config_key *gr_config_schema_at(int i)
{
    return i >= 0 && i < schema_count ? schema[i] : NULL;
}

const gr_config_key *gr_config_schema_find(const char *path)
{
    for (int i = 0; i < schema_count; i++)
        if (strcmp(schema[i]->path, path) == 0) return schema[i];
    return NULL;
}
