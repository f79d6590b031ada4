// Shared by every kernel: workgroup size (specialization constant 0), push constants, the
// linear invocation index of a folded 1-D grid, reductions and device-side error reports.
//
// Push constants (128 bytes): base[i] is the first element of argument i inside its binding
// (bindings are windows of at most maxStorageBufferRange bytes), nrows the rows of this chunk,
// row0 the chunk's first row, p[] the kernel's parameters (floats as bits).
#extension GL_EXT_control_flow_attributes : enable

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256;

layout(push_constant) uniform PushConstants {
    uint base[6];
    uint nrows;
    uint row0;
    uint p[24];
} pc;

uint group_index() { return gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x; }
uint global_index() { return group_index() * WG + gl_LocalInvocationID.x; }
float pf(uint i) { return uintBitsToFloat(pc.p[i]); }
int pi(uint i) { return int(pc.p[i]); }

#ifdef WG_REDUCE
shared float red[WG];
// Tree reductions over the workgroup (WG is a power of two); every invocation gets the result.
float wg_sum(float v)
{
    uint l = gl_LocalInvocationID.x;
    red[l] = v;
    barrier();
    for (uint s = WG / 2; s > 0; s >>= 1) {
        if (l < s) red[l] += red[l + s];
        barrier();
    }
    float r = red[0];
    barrier();
    return r;
}
float wg_max(float v)
{
    uint l = gl_LocalInvocationID.x;
    red[l] = v;
    barrier();
    for (uint s = WG / 2; s > 0; s >>= 1) {
        if (l < s) red[l] = max(red[l], red[l + s]);
        barrier();
    }
    float r = red[0];
    barrier();
    return r;
}
#endif

#ifdef ERR_BINDING
// First error wins: [code, position, value, bound]; the host reads it after synchronising.
layout(std430, binding = ERR_BINDING) buffer ErrBuf { uint err[]; };
void report(uint code, uint pos, int value, uint bound)
{
    if (atomicCompSwap(err[0], 0u, code) == 0u) {
        err[1] = pos;
        err[2] = uint(value);
        err[3] = bound;
    }
}
#endif

// float32 -> float16 / bfloat16 bits, round to nearest even (same as the host's gr_f32_to_*).
uint f32_to_f16_bits(float f)
{
    uint u = floatBitsToUint(f);
    uint sign = (u >> 16) & 0x8000u;
    uint a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u;
    if (a >= 0x477ff000u) return sign | 0x7c00u;
    if (a < 0x38800000u) return sign | uint(roundEven(uintBitsToFloat(a) * 16777216.0));
    return sign | ((a + 0xfffu + ((a >> 13) & 1u) - 0x38000000u) >> 13);
}
uint f32_to_bf16_bits(float f)
{
    uint u = floatBitsToUint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u;
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}
float bf16_bits_to_f32(uint b) { return uintBitsToFloat(b << 16); }
float f16_bits_to_f32(uint h) { return unpackHalf2x16(h).x; }
