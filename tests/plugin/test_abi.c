/* The host refuses every broken plugin with a one-line reason naming the file, and loads the
 * good one. Usage: test_abi DIR (the folder holding the test plugins). */
#include <stdio.h>
#include <string.h>

#include "plugin/registry.h"

static int failures;

static void expect(const char *dir, const char *file, gr_status want, const char *needle)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    gr_clear_error();
    const gr_plugin *p = NULL;
    gr_status s = gr_plugin_load_file(path, &p);
    const char *msg = gr_last_error();
    int ok = s == want && (want == GR_OK ? p != NULL : strstr(msg, needle) && strstr(msg, path) &&
                                                       !strchr(msg, '\n'));
    printf("%s %s: status %d, message '%s'\n", ok ? "ok  " : "FAIL", file, s, msg);
    if (!ok) failures++;
}

int main(int argc, char **argv)
{
    if (argc != 2) { fprintf(stderr, "usage: test_abi DIR\n"); return 2; }
    const char *dir = argv[1];
    expect(dir, "abi-good.so", GR_OK, NULL);
    expect(dir, "abi-wrong-major.so", GR_ERR_ABI, "plugin ABI 2.");
    expect(dir, "abi-no-entry.so", GR_ERR_ABI, "no 'graft_plugin_entry' symbol");
    expect(dir, "abi-small-descriptor.so", GR_ERR_ABI, "descriptor is 12 bytes");
    expect(dir, "abi-small-iface.so", GR_ERR_ABI, "interface struct is 8 bytes");
    expect(dir, "abi-null-slot.so", GR_ERR_ABI, "NULL required function");
    expect(dir, "does-not-exist.so", GR_ERR_ABI, "cannot load");

    const gr_plugin *p;
    if (gr_plugin_find(GR_PLUGIN_PROJECTOR, "test-identity", &p) != GR_OK ||
        strcmp(p->desc->description, "identity projector used by the ABI tests") != 0) {
        printf("FAIL: the good plugin cannot be found by kind and name\n");
        failures++;
    }
    printf("%d passed, %d failed\n", 8 - failures, failures);
    return failures ? 1 : 0;
}
