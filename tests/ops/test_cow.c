/* Copy-on-write of zero-copy weights: a parameter wrapping a read-only mmap of a file becomes
 * writable (its own buffer) when it is made trainable or uploaded into; the file never changes
 * and training it does not crash. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <math.h>

#include "harness.h"

int main(int argc, char **argv)
{
    gr_ctx *ctx = harness_open(argc, argv, "test_cow");
    if (!ctx) return 77;
    char path[] = "/tmp/graft_cow_XXXXXX";
    int fd = mkstemp(path);
    float init[64];
    for (int i = 0; i < 64; i++) init[i] = (float)i * 0.25f;
    expect(fd >= 0 && write(fd, init, sizeof init) == (ssize_t)sizeof init, "temp file written");
    const float *map = mmap(NULL, sizeof init, PROT_READ, MAP_PRIVATE, fd, 0);
    expect(map != MAP_FAILED, "file mapped read-only");

    int64_t shape[2] = {8, 8};
    gr_tensor *w = gr_param_from_host(ctx, "w", GR_F32, 2, shape, map);
    gr_tensor *frozen = gr_param_from_host(ctx, "frozen", GR_F32, 2, shape, map);
    expect(w && frozen, "parameters wrap the mapping");
    gr_set_trainable(w, 1);
    expect(gr_ctx_status(ctx) == GR_OK && gr_is_trainable(w), "made trainable");

    /* One step of training: loss = sum(w * x), so dL/dw = x; AdamW writes w. */
    float x[64];
    for (int i = 0; i < 64; i++) x[i] = 1.0f;
    gr_tensor *xt = gr_from_host(ctx, GR_F32, 2, shape, x);
    gr_tensor *loss = gr_sum(ctx, gr_mul(ctx, w, xt));
    expect(gr_backward(ctx, loss, NULL) == GR_OK, "backward");
    gr_tensor *m = gr_zeros(ctx, GR_F32, 2, shape), *v = gr_zeros(ctx, GR_F32, 2, shape);
    gr_backend *be = gr_ctx_backend(ctx);
    gr_adamw_args a = {w, gr_grad(w), m, v, 0.1f, 0.9f, 0.999f, 1e-8f, 0.0f, 0.1f, 0.001f, 1.0f};
    expect(be->iface->adamw(be->ctx, &a) == GR_OK, "AdamW step on the former mapping");
    float after[64], fr[64];
    expect(gr_to_host_f32(ctx, w, after) == GR_OK && gr_to_host_f32(ctx, frozen, fr) == GR_OK, "read back");
    expect(fabsf(after[5] - (init[5] - 0.1f)) < 1e-4f, "the trainable copy moved by lr (%g -> %g)", init[5], after[5]);
    expect(memcmp(map, init, sizeof init) == 0, "the mapped file is unchanged");
    expect(memcmp(fr, init, sizeof init) == 0, "a frozen view of the same mapping still reads the file");

    /* Uploading into a mapped parameter also copies first. */
    float ones[64];
    for (int i = 0; i < 64; i++) ones[i] = 1.0f;
    expect(gr_upload(ctx, frozen, ones) == GR_OK, "upload into a mapped parameter");
    expect(memcmp(map, init, sizeof init) == 0, "the mapped file is still unchanged");
    gr_tensor_free(ctx, w);
    gr_tensor_free(ctx, frozen);
    munmap((void *)map, sizeof init);
    close(fd);
    unlink(path);
    harness_close(ctx);
    printf("%s\n", g_failures ? "FAILED" : "ok: copy-on-write");
    return g_failures ? 1 : 0;
}
