#!/usr/bin/env python3
"""Writes the malformed tokenizer directories under malformed/ (run from tests/tokenize/).
Each directory must make `graft tokenize DIR text` fail with one line naming the bad file."""
import json, os, struct

def d(name):
    os.makedirs(f"malformed/{name}", exist_ok=True)
    return f"malformed/{name}"

def varint(n):
    out = b""
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])

def field(num, wt, payload):
    tag = varint((num << 3) | wt)
    if wt == 2:
        return tag + varint(len(payload)) + payload
    return tag + payload

def piece(text, score, typ):
    return field(1, 2, field(1, 2, text.encode()) + field(2, 5, struct.pack("<f", score)) + field(3, 0, varint(typ)))

def model(pieces, normalizer, trainer=b""):
    return b"".join(pieces) + field(2, 2, trainer) + field(3, 2, normalizer)

ok_pieces = [piece("<unk>", 0, 2), piece("<s>", 0, 3), piece("</s>", 0, 3), piece("\u2581a", -1, 1), piece("a", -2, 1)]
ident = field(1, 2, b"identity")

# a SentencePiece model cut in the middle of its pieces
full = open("data/sp_bpe_bytefallback/tokenizer.model", "rb").read()
open(d("truncated_model") + "/tokenizer.model", "wb").write(full[:1000])
# a length field running past the end of the file
open(d("overlong_field") + "/spiece.model", "wb").write(varint((1 << 3) | 2) + varint(2000) + b"xx")
# a precompiled charsmap whose trie size exceeds the blob
bad_cm = field(1, 2, b"nmt_nfkc") + field(2, 2, struct.pack("<I", 4096) + b"\0" * 8)
open(d("bad_charsmap") + "/spiece.model", "wb").write(model(ok_pieces, bad_cm))
# byte_fallback without the <0xXX> pieces
open(d("missing_bytes") + "/tokenizer.model", "wb").write(model(ok_pieces, ident, field(3, 0, varint(2)) + field(35, 0, varint(1))))
# a model with no unknown piece
open(d("no_unk") + "/spiece.model", "wb").write(model(ok_pieces[1:], ident))

# tokenizer.json cut short
open(d("truncated_json") + "/tokenizer.json", "w").write('{"version": "1.0", "model": {"type": "BPE", "vocab": {"a": 0')
# a merge whose tokens are not in the vocabulary
tj = {"version": "1.0", "added_tokens": [], "normalizer": None, "pre_tokenizer": None, "post_processor": None,
      "decoder": None, "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b", "a c"]}}
json.dump(tj, open(d("bad_merge") + "/tokenizer.json", "w"))
# model.merges missing
tj2 = dict(tj, model={"type": "BPE", "vocab": {"a": 0, "b": 1}})
json.dump(tj2, open(d("no_merges_key") + "/tokenizer.json", "w"))
# vocab.json without merges.txt
json.dump({"a": 0, "b": 1, "ab": 2}, open(d("missing_merges") + "/vocab.json", "w"))
# vocab ids with a hole
json.dump({"a": 0, "b": 2}, open(d("vocab_gap") + "/vocab.json", "w"))
open("malformed/vocab_gap/merges.txt", "w").write("#version: 0.2\na b\n")
# an unsupported pre-tokenizer
tj3 = dict(tj, model={"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}, pre_tokenizer={"type": "Fancy"})
json.dump(tj3, open(d("unknown_pretokenizer") + "/tokenizer.json", "w"))
# a bad tokenizer_config.json next to a good model
os.makedirs("malformed/bad_config", exist_ok=True)
json.dump(dict(tj3, pre_tokenizer=None), open("malformed/bad_config/tokenizer.json", "w"))
open("malformed/bad_config/tokenizer_config.json", "w").write('{"bos_token": "<s>",,}')
