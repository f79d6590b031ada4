# Extra fixture specs for tests/vision: options the public set does not exercise.
# Run with the reference generator (it provides opt_config, t5_config, clip_vision_config,
# blip2_vision_config, qformer_config, blip2_config in scope):
#   /usr/bin/python3 ../shared/reference/make_fixtures.py --out /tmp/vx --specs tests/vision/extra_fixtures.py \
#       --set vision_extra --seed 7
# The output directories are committed under tests/fixtures/ (see tests/fixtures/SOURCE.md).

_bv = blip2_vision_config(hidden=24, layers=1, heads=3, inter=40, image=10, patch=4)
_bv["qkv_bias"] = False  # EVA towers without q/v bias: qkv has no bias at all

SETS = {
    "vision_extra": [
        # CLIP tower with exact-erf gelu, BF16 weights, 3 heads, non-power-of-two sizes
        dict(name="vx_clip_gelu_bf16", family="clip_vision", dtype="BF16",
             config=clip_vision_config(hidden=36, layers=3, heads=3, inter=72, image=24, patch=6, act="gelu")),
        # BLIP-2 tower without qkv bias, image_size not a multiple of patch_size (the conv floors),
        # cross-attention in every Q-Former layer, 3 queries, F16 weights everywhere, OPT
        dict(name="vx_blip2_nobias_freq1_opt_f16", family="blip2", dtype="F16",
             config=blip2_config(
                 vision=_bv,
                 qformer=qformer_config(hidden=16, layers=2, heads=2, inter=24, cross_freq=1, encoder_hidden=24),
                 text=opt_config(vocab=120, hidden=32, layers=1, heads=2, ffn=48), num_query_tokens=3)),
        # CLIP tower (gelu_new) -> Q-Former (cross every 3rd layer) -> tied T5 v1.0 with relu, BF16
        dict(name="vx_blip2_clip_t5relu_bf16", family="blip2", dtype="BF16",
             config=blip2_config(
                 vision=clip_vision_config(hidden=20, layers=1, heads=2, inter=28, image=8, patch=4, act="gelu_new"),
                 qformer=qformer_config(hidden=16, layers=3, heads=4, inter=20, cross_freq=3, encoder_hidden=20),
                 text=t5_config(vocab=96, d_model=24, d_kv=8, heads=2, d_ff=40, layers=1, dec_layers=1,
                                ff_proj="relu", tied=True), num_query_tokens=2)),
    ],
}
