// Activations and their derivatives, written for float accuracy without relying on the
// precision of the driver's tanh/erf (GLSL has no erf; tanh is often exp-based and loses
// relative precision near 0).
const float SQRT_2_OVER_PI = 0.7978845608028654;
const float INV_SQRT_2 = 0.7071067811865476;
const float INV_SQRT_2PI = 0.3989422804014327;

// erfc(z) for z >= 0 with relative error < 1.2e-7 (Chebyshev fit, Numerical Recipes erfcc).
float erfc_pos(float z)
{
    float t = 1.0 / (1.0 + 0.5 * z);
    return t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
           t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
           t * (-0.82215223 + t * 0.17087277)))))))));
}
// 1 + erf(x), accurate in relative terms on both sides.
float one_plus_erf(float x) { return x >= 0.0 ? 2.0 - erfc_pos(x) : erfc_pos(-x); }

float tanh_acc(float x)
{
    float a = abs(x);
    if (a < 0.625) {
        float z = x * x;
        return ((((-5.70498872745e-3 * z + 2.06390887954e-2) * z - 5.37397155531e-2) * z +
                 1.33314422036e-1) * z - 3.33332819422e-1) * z * x + x;
    }
    if (a > 9.0) return sign(x);
    float t = exp(-2.0 * a);
    return sign(x) * (1.0 - t) / (1.0 + t);
}
float sigmoid(float x) { return 1.0 / (1.0 + exp(-x)); }

float act_forward(uint op, float x)
{
    switch (op) {
    case 0u: return x > 0.0 ? x : 0.0;
    case 1u: return 0.5 * x * one_plus_erf(x * INV_SQRT_2);
    case 2u: return 0.5 * x * (1.0 + tanh_acc(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
    case 3u: return x * sigmoid(1.702 * x);
    case 4u: return x * sigmoid(x);
    case 5u: return sigmoid(x);
    default: return tanh_acc(x);
    }
}

float act_derivative(uint op, float x)
{
    switch (op) {
    case 0u: return x > 0.0 ? 1.0 : 0.0;
    case 1u: return 0.5 * one_plus_erf(x * INV_SQRT_2) + x * INV_SQRT_2PI * exp(-0.5 * x * x);
    case 2u: {
        float u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
        float t = tanh_acc(u);
        return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x * x);
    }
    case 3u: { float s = sigmoid(1.702 * x); return s + 1.702 * x * s * (1.0 - s); }
    case 4u: { float s = sigmoid(x); return s + x * s * (1.0 - s); }
    case 5u: { float s = sigmoid(x); return s * (1.0 - s); }
    default: { float t = tanh_acc(x); return 1.0 - t * t; }
    }
}
