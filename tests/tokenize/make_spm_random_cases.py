#!/usr/bin/env python3
"""Random texts encoded by the real SentencePiece (Debian python3-sentencepiece 0.1.97):
usage (from tests/tokenize/): /usr/bin/python3 make_spm_random_cases.py SEED texts.jsonl
writes data/<model>/random_cases.jsonl (add_special_tokens false, decoded = sp.decode)."""
import json, random, sys
import sentencepiece as spm
random.seed(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
texts = [json.loads(l)["text"] for l in open(sys.argv[2])]
pool = "".join(texts)
extra = [" ", "  ", "\t", "\n", "\r\n", "\u3000", "\u00a0", "\u0085", "\ufeff", "\u200b", "\u2028", "\x00", "\x07", "\x1f", "\u00ad",
         "ﬁ", "①", "™", "Ａ", "é", "e\u0301", "😀", "👨‍👩‍👧", "🇫🇷", "你好", "日本語", "한국어", "Привет", "ا", "123456", "'s", "'LL", "<s>", "</s>", "<unk>", "(", ")", "£", "€", "–", "\"", "-", "."]
def rnd():
    parts = []
    for _ in range(random.randint(1, 12)):
        r = random.random()
        if r < 0.5:
            i = random.randrange(len(pool)); parts.append(pool[i:i + random.randint(1, 30)])
        elif r < 0.85:
            parts.append(random.choice(extra))
        else:
            parts.append(chr(random.choice([random.randint(0x20, 0x7e), random.randint(0xa0, 0x2fff), random.randint(0x1f300, 0x1faff)])))
    return "".join(parts)
cases = [rnd() for _ in range(300)]
for name, f in [("llama2", "tokenizer.model"), ("sp_bpe_bytefallback", "tokenizer.model"), ("sp_unigram", "spiece.model"), ("sp_unigram_albert30k", "spiece.model")]:
    sp = spm.SentencePieceProcessor(model_file=f"data/{name}/{f}")
    with open(f"data/{name}/random_cases.jsonl", "w") as o:
        for t in cases:
            for tt in ([t, t.lower()] if "albert" in name else [t]):
                ids = sp.encode(tt)
                o.write(json.dumps({"text": tt, "ids": ids, "add_special_tokens": False, "decoded": sp.decode(ids)}, ensure_ascii=False) + "\n")
