#version 450
// dtable[ids[i], :] += dout[i, :] for ids in this window of the table, skipping skip_id.
// One invocation per column walks the ids in order: deterministic, no float atomics, and the
// same summation order as the CPU backend. p[0] dim, p[1] first table row of the window,
// p[2] rows in the window, p[3] table rows, p[4] skip id, p[5] check ids.
#define ERR_BINDING 3
#include "common.glsl"
layout(std430, binding = 0) buffer DTable { float dt[]; };
layout(std430, binding = 1) readonly buffer Ids { int ids[]; };
layout(std430, binding = 2) readonly buffer DOut { float dout[]; };
void main()
{
    uint j = global_index();
    uint dim = pc.p[0];
    if (j >= dim) return;
    int skip = pi(4);
    for (uint i = 0; i < pc.nrows; i++) {
        int id = ids[pc.base[1] + i];
        if (id == skip) continue;
        if (id < 0 || uint(id) >= pc.p[3]) {
            if (pc.p[5] != 0u && j == 0u) report(2u, pc.row0 + i, id, pc.p[3]);
            continue;
        }
        uint local = uint(id) - pc.p[1];
        if (uint(id) < pc.p[1] || local >= pc.p[2]) continue;
        uint k = pc.base[0] + local * dim + j;
        dt[k] = dt[k] + dout[pc.base[2] + i * dim + j];
    }
}
