#!/usr/bin/env python3
"""PyTorch yardsticks for issue 11, measured on the same card the same day as `npm run bench:gpu`.

BERT-base (transformers BertModel(BertConfig()), random weights from a fixed seed, the same weights for both
engines) in fp16 with SDPA attention and in fp32 with eager attention, at [1,128], [8,128], [32,128] (batch,
sequence; every token valid, like bench/gpu-bert.ts's feeds). Per shape and engine: warm-up, then timed runs,
each between torch.cuda.synchronize() calls; the median is reported. A third row times the fp16 model with
its feeds starting in host memory and its output read back as float32 (as mhafuse's and onnxruntime-node's
runs return host tensors; the first two rows leave the output on the GPU). Prints rows in bench/gpu-bert.ts's format;
`--json FILE` writes them for `npm run bench:gpu -- --torch FILE`, which prints them beside mhafuse's rows.

    python3 bench/torch_bert.py --json /tmp/torch-bert.json        # the GPU machine
    python3 bench/torch_bert.py --tiny --device cpu --reps 3       # smoke test anywhere (no CUDA needed)
"""
import argparse
import datetime
import json
import platform
import statistics
import time

import torch
import transformers
from transformers import BertConfig, BertModel

TINY = dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=4, intermediate_size=512, vocab_size=1000)


def flops(cfg: BertConfig, b: int, s: int) -> float:
    """Encoder flops, the formula of bench/gpu-bert.ts: projections + FFN GEMMs + the two attention matmuls."""
    h = cfg.hidden_size
    per_layer = 2 * b * s * (4 * h * h + 2 * h * cfg.intermediate_size) + 4 * b * s * s * h
    return cfg.num_hidden_layers * per_layer


def build(cfg_kwargs: dict, attn: str, dtype: torch.dtype, device: str, seed: int):
    torch.manual_seed(seed)  # same seed: the fp16 and fp32 models hold the same weights (up to rounding)
    config = BertConfig(attn_implementation=attn, **cfg_kwargs)
    model = BertModel(config)
    if getattr(model.config, "_attn_implementation", attn) != attn and hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(attn)
    actual = getattr(model.config, "_attn_implementation", "unknown")
    return model.eval().to(device=device, dtype=dtype), config, actual


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_model(model, feeds: dict, device: str, warmup: int, reps: int, host_io: bool = False) -> list:
    """Median-ready times of model(**feeds). host_io: the feeds start in host memory and the output ends there
    as float32 (what an engine returning host tensors does: mhafuse, onnxruntime-node) — both inside the clock."""
    host_feeds = {k: v.cpu() for k, v in feeds.items()}

    def once():
        if not host_io:
            return model(**feeds)
        out = model(**{k: v.to(device) for k, v in host_feeds.items()})
        return out.last_hidden_state.float().cpu()

    with torch.inference_mode():
        for _ in range(warmup):
            once()
        sync(device)
        times = []
        for _ in range(reps):
            sync(device)
            t0 = time.perf_counter()
            once()
            sync(device)
            times.append((time.perf_counter() - t0) * 1e3)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default="1x128,8x128,32x128", help="batch x sequence, comma-separated")
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true", help="2 layers x 128 (a smoke test, not a yardstick)")
    ap.add_argument("--json", help="also write the rows as JSON to this file (for bench:gpu --torch FILE)")
    args = ap.parse_args()
    shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",")]
    cfg_kwargs = TINY if args.tiny else {}
    # fp16 on the CPU is slow or unsupported for some ops; there the fp16 row is a smoke test only.
    engines = [("torch fp16 sdpa", "sdpa", torch.float16), ("torch fp32 eager", "eager", torch.float32)]
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, {gpu}, "
        f"{datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}, "
        f"reps {args.reps}, warmup {args.warmup}"
    )
    rows = []
    models = []
    for name, attn, dtype in engines:
        model, config, actual = build(cfg_kwargs, attn, dtype, args.device, args.seed)
        print(f"{name}: attention implementation {actual}, {config.num_hidden_layers}x{config.hidden_size}")
        models.append((name, model, config, actual))
    for b, s in shapes:
        g = torch.Generator().manual_seed(args.seed + 7)
        vocab = models[0][2].vocab_size
        feeds = {
            "input_ids": torch.randint(0, vocab, (b, s), generator=g).to(args.device),
            "attention_mask": torch.ones(b, s, dtype=torch.int64, device=args.device),
            "token_type_ids": torch.zeros(b, s, dtype=torch.int64, device=args.device),
        }
        # The fp16 model once more with host feeds and a float32 host output inside the clock (mhafuse's and
        # onnxruntime-node's runs read their outputs back; PyTorch's rows above leave them on the GPU).
        runs = [(name, model, config, actual, False) for name, model, config, actual in models]
        runs.append(("torch fp16 sdpa, host io", *models[0][1:], True))
        for name, model, config, actual, host_io in runs:
            ms = statistics.median(time_model(model, feeds, args.device, args.warmup, args.reps, host_io))
            tf = flops(config, b, s) / (ms * 1e-3) / 1e12
            print(f"[{b},{s}] {name:<24} {ms:8.2f} ms  {tf:6.2f} TFLOP/s")
            rows.append({"engine": name, "batch": b, "seq": s, "ms": ms, "tflops": tf, "attention": actual})
    if args.json:
        meta = {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "device": gpu,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "reps": args.reps,
            "warmup": args.warmup,
            "tiny": args.tiny,
        }
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)
        print(f"wrote {len(rows)} rows to {args.json}")


if __name__ == "__main__":
    main()
