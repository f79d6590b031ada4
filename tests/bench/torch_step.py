#!/usr/bin/python3
"""The step of `graft bench step`, in PyTorch: the frozen-LM VPG training step on an
OPT-125M-shaped model, float32, same thread count.

The model is OPTForCausalLM's math written in plain torch.nn (transformers is not installed):
learned positions at cumsum(mask) - 1 + 2, pre-LayerNorm decoder layers, q scaled by
head_dim^-0.5 before q.k, additive causal mask of finfo.min, softmax in float32, ReLU MLP,
final LayerNorm, lm_head tied to embed_tokens, HF's shifted cross-entropy (-100 ignored).

  torch_step.py --model DIR   reads DIR/config.json, DIR/model.safetensors and
                              DIR/inputs.safetensors as written by `graft bench step --keep DIR`,
                              so both programs run the identical step on identical numbers and
                              their losses and gradient norms can be compared;
  torch_step.py               random weights of the same shapes.

The FLOPs are counted as graft counts them (matmul FLOPs only, 2mnk: forward plus backward to
activations; no weight gradients): the figure is computed from the shapes and printed so the
two programs' GFLOP/s are directly comparable. Last line:
  torch step: G GFLOP/s, T tokens/s
"""
import argparse
import json
import math
import os
import statistics
import struct
import sys
import time

import torch
import torch.nn.functional as F

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I32": torch.int32,
          "I64": torch.int64}


def read_safetensors(path):
    """Minimal safetensors reader (the `safetensors` package is not a Debian package)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        t = torch.frombuffer(bytearray(data[base + a:base + b]), dtype=DTYPES[e["dtype"]])
        out[name] = t.reshape(e["shape"])
    return out


class Layer(torch.nn.Module):
    def __init__(self, d, heads, ffn):
        super().__init__()
        self.heads, self.hd = heads, d // heads
        self.ln1, self.ln2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (torch.nn.Linear(d, d) for _ in range(4))
        self.fc1, self.fc2 = torch.nn.Linear(d, ffn), torch.nn.Linear(ffn, d)

    def forward(self, h, mask):
        B, S, d = h.shape
        H, D = self.heads, self.hd
        r = h
        x = self.ln1(h)
        q = (self.q(x) * D ** -0.5).view(B, S, H, D).transpose(1, 2).reshape(B * H, S, D)
        k = self.k(x).view(B, S, H, D).transpose(1, 2).reshape(B * H, S, D)
        v = self.v(x).view(B, S, H, D).transpose(1, 2).reshape(B * H, S, D)
        w = torch.bmm(q, k.transpose(1, 2)).view(B, H, S, S) + mask
        p = F.softmax(w, dim=-1).view(B * H, S, S)
        a = torch.bmm(p, v).view(B, H, S, D).transpose(1, 2).reshape(B, S, d)
        h = r + self.o(a)
        r = h
        h = self.fc2(F.relu(self.fc1(self.ln2(h))))
        return r + h


class OPT(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, V = cfg["hidden_size"], cfg["vocab_size"]
        self.embed = torch.nn.Embedding(V, d, padding_idx=cfg.get("pad_token_id", 1))
        self.pos = torch.nn.Embedding(cfg.get("max_position_embeddings", 2048) + 2, d)
        self.layers = torch.nn.ModuleList(Layer(d, cfg["num_attention_heads"], cfg["ffn_dim"])
                                          for _ in range(cfg["num_hidden_layers"]))
        self.final = torch.nn.LayerNorm(d)

    def load(self, w):
        p = "model.decoder."
        names = {"embed.weight": p + "embed_tokens.weight", "pos.weight": p + "embed_positions.weight",
                 "final.weight": p + "final_layer_norm.weight", "final.bias": p + "final_layer_norm.bias"}
        hf = {"ln1": "self_attn_layer_norm", "ln2": "final_layer_norm", "q": "self_attn.q_proj",
              "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.out_proj", "fc1": "fc1",
              "fc2": "fc2"}
        for i in range(len(self.layers)):
            for ours, theirs in hf.items():
                for kind in ("weight", "bias"):
                    names[f"layers.{i}.{ours}.{kind}"] = f"{p}layers.{i}.{theirs}.{kind}"
        state = {ours: w[theirs].float() for ours, theirs in names.items()}
        self.load_state_dict(state)

    def forward(self, prefix, ids, labels):
        x = torch.cat([prefix, self.embed(ids)], dim=1)
        B, S, _ = x.shape
        mask1 = torch.ones(B, S, dtype=torch.long)
        pos = (torch.cumsum(mask1, dim=1) * mask1 - 1) + 2
        h = x + self.pos(pos)
        causal = torch.full((S, S), torch.finfo(torch.float32).min).triu(1)[None, None]
        for layer in self.layers:
            h = layer(h, causal)
        logits = F.linear(self.final(h), self.embed.weight)
        full = torch.cat([torch.full((B, prefix.shape[1]), -100, dtype=torch.long), labels.long()], dim=1)
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), full[:, 1:].reshape(-1),
                               ignore_index=-100)


def step_flops(cfg, B, P, T):
    """Matmul FLOPs (2mnk) of forward + backward to activations, as graft's gr_ctx_flops."""
    d, f, V, L, H = (cfg["hidden_size"], cfg["ffn_dim"], cfg["vocab_size"], cfg["num_hidden_layers"],
                     cfg["num_attention_heads"])
    S = P + T
    rows = B * S
    linear = 2.0 * rows * (L * (4 * d * d + 2 * d * f) + V * d)
    attention = L * B * H * 2 * (2.0 * S * S * (d // H))
    return 2 * linear + 3 * attention


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="directory written by graft bench step --keep DIR")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.model:
        with open(os.path.join(args.model, "config.json")) as f:
            cfg = json.load(f)
        inputs = read_safetensors(os.path.join(args.model, "inputs.safetensors"))
        prefix0, ids = inputs["prefix"].float(), inputs["input_ids"].long()
    else:
        cfg = {"hidden_size": 768, "ffn_dim": 3072, "vocab_size": 50272, "num_hidden_layers": 12,
               "num_attention_heads": 12, "max_position_embeddings": 2048, "pad_token_id": 1}
        prefix0 = torch.randn(4, 32, 768) * 0.02
        ids = torch.randint(0, cfg["vocab_size"], (4, 64))
    model = OPT(cfg)
    if args.model:
        model.load(read_safetensors(os.path.join(args.model, "model.safetensors")))
    else:
        with torch.no_grad():
            for p in model.parameters():
                p.uniform_(-0.0346, 0.0346)
    model.requires_grad_(False)  # frozen LM: no weight gradients, as in graft's step
    B, P, T = prefix0.shape[0], prefix0.shape[1], ids.shape[1]

    def step():
        prefix = prefix0.clone().requires_grad_(True)
        loss = model(prefix, ids, ids)
        loss.backward()
        return loss.item(), prefix.grad.norm().item()

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        loss, gnorm = step()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    fl = step_flops(cfg, B, P, T)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32; load average "
          f"{os.getloadavg()[0]:.2f} (1 min)")
    print(f"FLOPs counted: matmul FLOPs only (2mnk) of forward + backward to activations: {fl * 1e-9:.2f} GFLOP per step")
    print("step times (s): " + " ".join(f"{t:.3f}" for t in times) + f"  (median {med:.3f})")
    print(f"loss {loss:.4f}, soft-prompt gradient norm {gnorm:.4g}")
    print(f"torch step: {fl / med * 1e-9:.1f} GFLOP/s, {B * (P + T) / med:.1f} tokens/s")
    return 0 if math.isfinite(loss) else 1


if __name__ == "__main__":
    sys.exit(main())
