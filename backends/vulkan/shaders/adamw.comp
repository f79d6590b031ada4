#version 450
// torch.optim.AdamW, one invocation per element, in the order backend.h states.
// p[0] lr, p[1] beta1, p[2] beta2, p[3] eps, p[4] weight_decay, p[5] bias_correction1,
// p[6] bias_correction2, p[7] grad_scale.
#include "common.glsl"
layout(std430, binding = 0) buffer P { float param[]; };
layout(std430, binding = 1) readonly buffer G { float grad[]; };
layout(std430, binding = 2) buffer M { float m_[]; };
layout(std430, binding = 3) buffer V { float v_[]; };
void main()
{
    uint i = global_index();
    if (i >= pc.nrows) return;
    float lr = pf(0), b1 = pf(1), b2 = pf(2), eps = pf(3), wd = pf(4);
    precise float g = grad[pc.base[1] + i] * pf(7);
    precise float p = param[pc.base[0] + i];
    p = p - lr * wd * p;
    precise float m = b1 * m_[pc.base[2] + i] + (1.0 - b1) * g;
    precise float v = b2 * v_[pc.base[3] + i] + (1.0 - b2) * g * g;
    p = p - lr * (m / pf(5)) / (sqrt(v / pf(6)) + eps);
    m_[pc.base[2] + i] = m;
    v_[pc.base[3] + i] = v;
    param[pc.base[0] + i] = p;
}
