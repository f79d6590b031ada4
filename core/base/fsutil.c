#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fsutil.h"

gr_status gr_read_file(const char *path, char **data, size_t *len)
{
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return gr_fail(GR_ERR_IO, "%s: not a regular file", path);
    FILE *f = fopen(path, "rb");
    if (!f) return gr_fail(GR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return gr_fail(GR_ERR_IO, "%s: cannot seek", path); }
    long size = ftell(f);
    if (size < 0) { fclose(f); return gr_fail(GR_ERR_IO, "%s: not a regular file", path); }
    rewind(f);
    char *buf = malloc((size_t)size + 1);
    if (!buf) { fclose(f); return gr_fail(GR_ERR_NOMEM, "%s: %ld bytes do not fit in memory", path, size); }
    if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        fclose(f);
        return gr_fail(GR_ERR_IO, "%s: read failed", path);
    }
    fclose(f);
    buf[size] = '\0';
    *data = buf;
    if (len) *len = (size_t)size;
    return GR_OK;
}

gr_status gr_write_file_atomic(const char *path, const void *data, size_t len)
{
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", path);
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        gr_status s = gr_fail(GR_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return s;
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            gr_status s = gr_fail(GR_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            free(tmp);
            return s;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        gr_status s = gr_fail(GR_ERR_IO, "%s: fsync/close failed: %s", tmp, strerror(errno));
        unlink(tmp);
        free(tmp);
        return s;
    }
    if (rename(tmp, path) != 0) {
        gr_status s = gr_fail(GR_ERR_IO, "%s: rename failed: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return s;
    }
    free(tmp);
    return GR_OK;
}

gr_status gr_mkdirs(const char *path)
{
    char *copy = strdup(path);
    if (!copy) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", path);
    for (char *p = copy + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(copy, 0755) != 0 && errno != EEXIST) {
                gr_status s = gr_fail(GR_ERR_IO, "%s: cannot create directory: %s", copy, strerror(errno));
                free(copy);
                return s;
            }
            *p = c;
            if (c == '\0') break;
        }
    }
    free(copy);
    return GR_OK;
}

int gr_path_exists(const char *path) { struct stat st; return stat(path, &st) == 0; }

int gr_is_dir(const char *path) { struct stat st; return stat(path, &st) == 0 && S_ISDIR(st.st_mode); }

char *gr_path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", dir, name);
    return s;
}
