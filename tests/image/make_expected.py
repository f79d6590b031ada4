#!/usr/bin/python3
"""Writes the expected outputs of graft's image parity test with Debian's python3-pil + numpy.

usage: make_expected.py OUTDIR      (the committed copy lives in tests/image/data)

It reproduces what Hugging Face's CLIPImageProcessor / BlipImageProcessor do (transformers is
not needed): Image.open(path).convert("RGB"), PIL resize in uint8 (get_resize_output_image_size
for "shortest_edge"), center_crop with floor offsets and zero padding, rescale in float64 then
float32, normalise in float32. Crop+resize cases mirror torchvision's resized_crop on PIL
images (crop, then resize). Decode cases record an FNV-1a 64 hash of the RGB bytes.
"""
import json
import math
import os
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def fnv1a64(b):
    h = 0xCBF29CE484222325
    for chunk in np.frombuffer(b, dtype=np.uint8).reshape(-1).tolist():
        h = ((h ^ chunk) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def size_dict(v, shortest_ok):
    if isinstance(v, int):
        return {"shortest_edge": v} if shortest_ok else {"height": v, "width": v}
    return v


def hf_u8(img, cfg):
    """The uint8 stage of HF's processors for the configs used below."""
    img = img.convert("RGB")
    clip = cfg.get("image_processor_type", "CLIPImageProcessor").startswith("CLIP")
    arr = np.array(img)
    if cfg.get("do_resize", True):
        size = size_dict(cfg.get("size", 224 if clip else 384), clip)
        h, w = arr.shape[:2]
        if "shortest_edge" in size:
            s = size["shortest_edge"]
            short, long = (w, h) if w <= h else (h, w)
            new_short, new_long = s, int(s * long / short)
            oh, ow = (new_long, new_short) if w <= h else (new_short, new_long)
        else:
            oh, ow = size["height"], size["width"]
        arr = np.array(Image.fromarray(arr).resize((ow, oh), resample=cfg.get("resample", 3)))
    if cfg.get("do_center_crop", clip):
        crop = size_dict(cfg.get("crop_size", 224), False)
        ch, cw = crop["height"], crop["width"]
        h, w = arr.shape[:2]
        top, left = (h - ch) // 2, (w - cw) // 2
        if top >= 0 and left >= 0 and top + ch <= h and left + cw <= w:
            arr = arr[top:top + ch, left:left + cw]
        else:
            nh, nw = max(ch, h), max(cw, w)
            padded = np.zeros((nh, nw, 3), dtype=arr.dtype)
            tp, lp = math.ceil((nh - h) / 2), math.ceil((nw - w) / 2)
            padded[tp:tp + h, lp:lp + w] = arr
            top, left = top + tp, left + lp
            arr = padded[max(0, top):min(nh, top + ch), max(0, left):min(nw, left + cw)]
    return np.ascontiguousarray(arr)


def hf_float(arr, cfg):
    x = arr.astype(np.float64) * cfg.get("rescale_factor", 1 / 255)
    x = x.astype(np.float32)
    mean = np.array(cfg.get("image_mean", CLIP_MEAN), dtype=np.float32)
    std = np.array(cfg.get("image_std", CLIP_STD), dtype=np.float32)
    x = (x - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def main():
    out = sys.argv[1]
    os.makedirs(os.path.join(out, "expected"), exist_ok=True)
    cases = []

    def save(name, arr):
        rel = "expected/%s.png" % name
        Image.fromarray(arr).save(os.path.join(out, rel), optimize=True)
        return rel

    def pre(name, image, cfg, f32=False):
        arr = hf_u8(Image.open(os.path.join(DATA, image)), cfg)
        case = {"name": name, "image": image, "config": cfg, "expected": save(name, arr)}
        if f32:
            rel = "expected/%s.f32" % name
            hf_float(arr, cfg).astype("<f4").tofile(os.path.join(out, rel))
            case["expected_f32"] = rel
        cases.append(case)

    clip = {"image_processor_type": "CLIPImageProcessor"}
    blip = {"image_processor_type": "BlipImageProcessor"}
    for image in ["chelsea.png", "rocket.jpg", "coins.png", "green_palette.png", "logo.png",
                  "chelsea_cmyk.jpg", "rocket_grey.jpg", "chelsea_progressive.jpg", "chelsea_la.png"]:
        rgb = Image.open(os.path.join(DATA, image)).convert("RGB")
        cases.append({"name": "decode_" + image, "image": image, "width": rgb.width,
                      "height": rgb.height, "decode_fnv1a64": fnv1a64(rgb.tobytes())})
    # The real processors' default configs on real photos.
    pre("clip224_chelsea", "chelsea.png", dict(clip))
    pre("clip224_rocket", "rocket.jpg", dict(clip, size={"shortest_edge": 224},
                                              crop_size={"height": 224, "width": 224}))
    # Small variants: grey, palette (upscaling), RGBA with a crop larger than the image (padding).
    pre("clip_coins", "coins.png", dict(clip, size=64, crop_size=56))
    pre("blip_palette_up", "green_palette.png", dict(blip, size={"height": 384, "width": 384}))
    pre("clip_logo_pad", "logo.png", dict(clip, size=100, crop_size={"height": 120, "width": 90}))
    pre("clip_cmyk", "chelsea_cmyk.jpg", dict(clip, size=64, crop_size=64))
    pre("blip_grey_jpeg", "rocket_grey.jpg", dict(blip, size={"height": 80, "width": 80}))
    pre("blip_progressive", "chelsea_progressive.jpg", dict(blip, size={"height": 96, "width": 128}))
    pre("blip_la", "chelsea_la.png", dict(blip, size={"height": 48, "width": 40}))
    pre("blip_rocket_f32", "rocket.jpg", dict(blip, size={"height": 32, "width": 48}), f32=True)
    pre("siglip_chelsea_f32", "chelsea.png",
        dict(blip, size={"height": 24, "width": 24}, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5]),
        f32=True)
    # Every PIL filter, downscaling and upscaling, on a real photo.
    for f in range(6):
        pre("filter%d_down" % f, "rocket.jpg", dict(blip, size={"height": 61, "width": 97}, resample=f))
        pre("filter%d_up" % f, "green_palette.png", dict(blip, size={"height": 301, "width": 250}, resample=f))
    # torchvision resized_crop: crop, then bicubic resize (graft's RandomResizedCrop path).
    for name, image, box, size in [("rrc_rocket", "rocket.jpg", (100, 50, 300, 200), (72, 64)),
                                   ("rrc_chelsea_up", "chelsea.png", (200, 100, 40, 30), (64, 64))]:
        l, t, w, h = box
        arr = np.array(Image.open(os.path.join(DATA, image)).convert("RGB").crop((l, t, l + w, t + h))
                       .resize(size, Image.BICUBIC))
        cases.append({"name": name, "image": image, "crop": list(box), "resize": list(size),
                      "expected": save(name, arr)})
    with open(os.path.join(out, "cases.jsonl"), "w") as f:
        for c in cases:
            f.write(json.dumps(c, sort_keys=True) + "\n")
    print("make_expected: %d cases written to %s" % (len(cases), out))


if __name__ == "__main__":
    main()
