#include <sys/stat.h>

#include "base/json_file.h"

gr_status gr_json_load(const char *path, size_t flags, json_t **out)
{
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0) return gr_fail(GR_ERR_NOT_FOUND, "%s: cannot open: no such file", path);
    if (!S_ISREG(st.st_mode)) return gr_fail(GR_ERR_IO, "%s: not a regular file", path);
    json_error_t err;
    json_t *root = json_load_file(path, flags, &err);
    if (!root)
        return gr_fail(GR_ERR_FORMAT, "%s: line %d: not valid JSON (column %d): %s", path, err.line,
                       err.column, err.text);
    *out = root;
    return GR_OK;
}

gr_status gr_json_load_object(const char *path, size_t flags, json_t **out)
{
    gr_status s = gr_json_load(path, flags, out);
    if (s == GR_OK && !json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return gr_fail(GR_ERR_FORMAT, "%s: not a JSON object", path);
    }
    return s;
}
