"""Train the claim check: a cross-encoder on top of the packaged MiniLM, fine-tuned with LoRA on
pairs made by scripts/support_pairs.py, saved as a small adapter in rag/models/support/.

    python scripts/train_support.py data/support/pairs.jsonl --out rag/models/support

Runs on the CPU (about 20-40 minutes on 2 cores). Deterministic for a given pair file and seed.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

from rag.embeddings import embedding_path
from rag.settings import Settings
from rag.support import LORA_TARGETS, MAX_TOKENS, load_base


def batches(
    rows: list[dict[str, str]], size: int, rng: random.Random
) -> list[list[dict[str, str]]]:
    """Shuffled batches, sorted by length inside buckets for less padding."""
    rows = rows[:]
    rng.shuffle(rows)
    chunks = [rows[i : i + size * 20] for i in range(0, len(rows), size * 20)]
    out = []
    for chunk in chunks:
        chunk.sort(key=lambda r: len(r["claim"]) + len(r["passage"]))
        out += [chunk[i : i + size] for i in range(0, len(chunk), size)]
    rng.shuffle(out)
    return out


def encode(tokenizer: object, batch: list[dict[str, str]]) -> dict[str, torch.Tensor]:
    """Token ids of (claim, passage) pairs, padded."""
    return tokenizer(  # type: ignore[operator, no-any-return]
        [r["claim"] for r in batch],
        [r["passage"] for r in batch],
        truncation=True,
        max_length=MAX_TOKENS,
        padding=True,
        return_tensors="pt",
    )


def run_layers(bert: object, h: torch.Tensor, mask: torch.Tensor, layers: list) -> torch.Tensor:
    """Hidden states through `layers` of the BERT encoder (the model's own attention mask)."""
    full, _ = bert._create_attention_masks(  # type: ignore[attr-defined]
        attention_mask=mask, encoder_attention_mask=None, embedding_output=h,
        encoder_hidden_states=None, cache=None,
    )  # fmt: skip
    for layer in layers:
        out = layer(h, attention_mask=full)
        h = out[0] if isinstance(out, tuple) else out
    return h


def cache_bottom(model: object, tokenizer: object, plan: list, k: int) -> list[tuple]:
    """The frozen bottom `k` layers' output for every batch, computed once (fp16)."""
    bert = model.bert  # type: ignore[attr-defined]
    cached = []
    started = time.time()
    with torch.no_grad():
        for i, batch in enumerate(plan, start=1):
            enc = encode(tokenizer, batch)
            h = bert.embeddings(input_ids=enc["input_ids"], token_type_ids=enc["token_type_ids"])
            h = run_layers(bert, h, enc["attention_mask"], list(bert.encoder.layer[:k]))
            labels = torch.tensor([1.0 if r["label"] == "supported" else 0.0 for r in batch])
            cached.append((h.to(torch.float16), enc["attention_mask"], labels))
            if i % 50 == 0:
                print(f"cached {i}/{len(plan)} batches ({time.time() - started:.0f}s)", flush=True)
    return cached


def main() -> None:
    """Train and save the adapter."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pairs", type=Path)
    parser.add_argument("--out", type=Path, default=Path("rag/models/support"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--train-layers", type=int, default=2, help="top layers adapted")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--limit", type=int, default=0, help="use only this many pairs")
    args = parser.parse_args()

    from peft import LoraConfig, get_peft_model

    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    rows = [json.loads(line) for line in args.pairs.read_text().splitlines()]
    rows = rows[: args.limit] if args.limit else rows
    model, tokenizer = load_base(embedding_path(Settings()))
    n_layers = len(model.bert.encoder.layer)
    k = n_layers - args.train_layers
    cached = cache_bottom(model, tokenizer, batches(rows, args.batch, rng), k)
    top = "|".join(str(i) for i in range(k, n_layers))
    config = LoraConfig(
        r=args.rank,
        lora_alpha=2 * args.rank,
        lora_dropout=0.05,
        target_modules=LORA_TARGETS.replace(r"\d+", f"(?:{top})"),
        modules_to_save=["classifier", "pooler"],
        task_type="SEQ_CLS",
    )
    model = get_peft_model(model, config)
    model.print_trainable_parameters()
    inner = model.base_model.model
    bert, layers = inner.bert, list(inner.bert.encoder.layer[k:])
    steps = len(cached) * args.epochs
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=steps, pct_start=0.06
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    model.train()
    started, running, step = time.time(), 0.0, 0
    for epoch in range(args.epochs):
        rng.shuffle(cached)
        for h, mask, labels in cached:
            step += 1
            out = run_layers(bert, h.to(torch.float32), mask, layers)
            logits = inner.classifier(inner.dropout(bert.pooler(out))).squeeze(-1)
            loss = loss_fn(logits, labels)
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            running = 0.98 * running + 0.02 * loss.item() if step > 1 else loss.item()
            if step % 50 == 0 or step == steps:
                rate = step / (time.time() - started)
                print(
                    f"epoch {epoch + 1} step {step}/{steps} loss {running:.3f} ({rate:.2f}/s)",
                    flush=True,
                )
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(args.out))
    meta = {"pairs": str(args.pairs), "n": len(rows), "epochs": args.epochs, "lr": args.lr,
            "rank": args.rank, "train_layers": args.train_layers, "seed": args.seed,
            "seconds": round(time.time() - started)}  # fmt: skip
    (args.out / "training.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"saved to {args.out}: {meta}")


if __name__ == "__main__":
    main()
