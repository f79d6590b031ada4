/* Small file-system helpers shared by the core (reading whole files, directories, atomic
 * writes). Every failure sets a message naming the path. */
#ifndef GRAFT_CORE_FSUTIL_H
#define GRAFT_CORE_FSUTIL_H

#include <stddef.h>

#include "graft/status.h"

/* Reads a whole file into a NUL-terminated malloc'd buffer; *len (may be NULL) gets its size. */
gr_status gr_read_file(const char *path, char **data, size_t *len);
/* Writes `len` bytes to path via a temporary file, fsync and rename (all or nothing). */
gr_status gr_write_file_atomic(const char *path, const void *data, size_t len);
/* mkdir -p. */
gr_status gr_mkdirs(const char *path);
int gr_path_exists(const char *path);
int gr_is_dir(const char *path);
/* dir + "/" + name into a malloc'd string. */
char *gr_path_join(const char *dir, const char *name);

#endif
