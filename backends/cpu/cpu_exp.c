/* Vectorizable exponentials for the row kernels (softmax, cross-entropy): most of their time
 * is exp, and glibc's expf is scalar. Cephes' single-precision exp: x = n ln2 + r with
 * |r| <= ln2/2 (ln2 split in two constants so n ln2 is exact), a degree-7 polynomial for e^r
 * (relative error ~1e-7, within 1-2 ulp of expf), and 2^n built in the exponent bits. Results
 * below e^-87.3 (subnormal for expf) are 0: every caller subtracts the row maximum first, so
 * those terms are below 1e-38 of a sum that holds a 1. Branch-free so the compiler
 * vectorizes it; cloned for AVX2 where the CPU has it. */
#include <string.h>

#include "cpu.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CLONES
#endif

static inline float exp_one(float x)
{
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float xc = x < -87.33654f ? -87.33654f : x;
    xc = xc > 88.0f ? 88.0f : xc; /* keeps n <= 127 */
    float t = xc * 1.44269504088896341f + magic;
    float n = t - magic;
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    int32_t e = ((int32_t)n + 127) << 23;
    float s;
    memcpy(&s, &e, sizeof s);
    float y = p * s;
    return x < -87.33654f ? 0.0f : y;
}

CLONES void cpu_exp_shift(float *out, const float *x, float shift, float scale, int64_t n)
{
    for (int64_t i = 0; i < n; i++) out[i] = scale * exp_one(x[i] - shift);
}

CLONES float cpu_max(const float *x, int64_t n)
{
    float m[8];
    int64_t i = 0;
    for (int k = 0; k < 8; k++) m[k] = x[0];
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) m[k] = x[i + k] > m[k] ? x[i + k] : m[k];
    for (; i < n; i++) m[0] = x[i] > m[0] ? x[i] : m[0];
    float r = m[0];
    for (int k = 1; k < 8; k++) r = m[k] > r ? m[k] : r;
    return r;
}

CLONES double cpu_sum_f64(const float *x, int64_t n)
{
    double s[4] = {0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++) s[k] += x[i + k];
    for (; i < n; i++) s[0] += x[i];
    return (s[0] + s[1]) + (s[2] + s[3]);
}
