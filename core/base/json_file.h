/* Reading a JSON file with jansson, with graft's one-line errors:
 *   missing file      -> GR_ERR_NOT_FOUND  "PATH: cannot open: no such file"
 *   not a file        -> GR_ERR_IO         "PATH: not a regular file"
 *   bad JSON          -> GR_ERR_FORMAT     "PATH: line L: not valid JSON (column C): reason" */
#ifndef GRAFT_CORE_JSON_FILE_H
#define GRAFT_CORE_JSON_FILE_H

#include <jansson.h>

#include "graft/status.h"

/* flags: jansson decoding flags (e.g. JSON_REJECT_DUPLICATES). */
gr_status gr_json_load(const char *path, size_t flags, json_t **out);
/* Same, and the top level must be an object: "PATH: not a JSON object" otherwise. */
gr_status gr_json_load_object(const char *path, size_t flags, json_t **out);

#endif
