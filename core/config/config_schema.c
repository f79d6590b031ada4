/* The one schema table of every key graft understands, filled by the components that read
 * them. Paths are unique: a second declaration of a path is a programming error reported as
 * GR_ERR_INVALID so a plugin cannot silently redefine a core key. */
#include <string.h>

#include "graft/config.h"

#define MAX_KEYS 1024

static const gr_config_key *schema[MAX_KEYS];
static int schema_count;

gr_status gr_config_schema_add(const gr_config_key *keys, int count)
{
    for (int i = 0; i < count; i++) {
        const gr_config_key *old = gr_config_schema_find(keys[i].path);
        if (old == &keys[i]) continue; /* the same table registered twice: harmless */
        if (old) return gr_fail(GR_ERR_INVALID, "config key '%s' is declared twice", keys[i].path);
        if (schema_count >= MAX_KEYS) return gr_fail(GR_ERR_INVALID, "too many config keys");
        schema[schema_count++] = &keys[i];
    }
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
