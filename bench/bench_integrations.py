"""Overhead of `nbdebug.watch` inside PyTorch Lightning and the Hugging Face Trainer, against the bare
framework on the same steps.

Variants, timed over one `fit` / `train` each (the Trainer objects are built outside the timing):
  Lightning   bare `trainer.fit(lit, dl)`; `with nbdebug.watch(lit): trainer.fit(...)`; the same with
              `Trainer(callbacks=[NbdebugCallback()])`. Small CNN (conv 16, conv 32, fc 64, fc 10), batches
              of 64 1x28x28, Adam, 60 steps (20 with --quick), one epoch, no validation.
  Trainer     bare `trainer.train()`; `with nbdebug.watch(model): trainer.train()`; the same with
              `histograms=False` ("no hist"). A BERT built from a
              config (hidden 64, 4 layers, 4 heads, sequence 32, batch 16), 60 steps (20 with --quick).
Rounds interleave the variants, in the opposite order every other round (A B C, C B A: a drift of the machine
during a round hits every variant alike); a fresh model and Trainer per run, same seed. Figures: the median
over the rounds (15 by default, 5 with --quick) of each run's ms per optimizer step, and the median of the
per-round ratios to bare (each ratio compares runs made seconds apart) with its 95% bootstrap interval over the
rounds. Then nbdebug's own time under `watch` (every hook and interception of nbdebug's, timed:
`bench/_common.py` OwnTime) over 5 more runs, as a share of the bare step: a lower bound of the overhead that
does not move with the machine as a ratio of two runs does.

The allocator is held fixed: the script runs itself again with glibc's `MALLOC_MMAP_THRESHOLD_` and
`MALLOC_TRIM_THRESHOLD_` raised, unless `--system-malloc`. With glibc's defaults, whether freed activation
buffers go back to the kernel (and fault in again, at ~2 us a page) changes from run to run of the *same*
bare variant: measured here, 800 to 100,000 page faults and 11.1 to 15.4 ms a step for bare Lightning, a
spread that hides any 10% target. The page faults each variant took are printed, so a monitor that makes
the training step fault more (keeping activations alive into the backward pass) still shows.

Usage: python bench/bench_integrations.py [--quick] [--system-malloc] [--steps N] [--rounds N] [--only lightning|hf]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import random
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F
from torch import nn

import nbdebug
from bench._common import OwnTime, draw_histograms, fixed_allocator, machine, resource_faults


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10),
    )  # fmt: skip


def lightning_runs(steps: int):
    import lightning.pytorch as pl

    from nbdebug.integrations.lightning import NbdebugCallback

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")

    class Lit(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = small_cnn()

        def training_step(self, batch, i):
            x, y = batch
            return F.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(steps * 64, 1, 28, 28, generator=g), torch.randint(0, 10, (steps * 64,), generator=g)
    dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64)

    def run(variant: str) -> float:
        torch.manual_seed(0)
        lit = Lit()
        cbs = [NbdebugCallback()] if variant == "callback" else []
        trainer = pl.Trainer(
            max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, callbacks=cbs,
        )  # fmt: skip
        ctx = nbdebug.watch(lit) if variant == "watch" else contextlib.nullcontext()
        t0 = time.perf_counter()
        with ctx as w:
            trainer.fit(lit, dl)
        draw_histograms(w if cbs == [] else cbs[0].watch)
        return (time.perf_counter() - t0) / steps

    return run, ["bare", "watch", "callback"]


def trainer_runs(steps: int):
    import transformers
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    transformers.logging.set_verbosity_error()
    g = torch.Generator().manual_seed(0)
    n, length = steps * 16, 32
    ids = torch.randint(5, 1000, (n, length), generator=g)
    labels = (ids[:, 0] >= 500).long()

    class DS(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return n

        def __getitem__(self, i: int):
            return {
                "input_ids": ids[i],
                "attention_mask": torch.ones(length, dtype=torch.long),
                "labels": labels[i],
            }

    cfg = BertConfig(
        vocab_size=1000, hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128,
        max_position_embeddings=64, num_labels=2,
    )  # fmt: skip
    out = tempfile.mkdtemp()

    def run(variant: str) -> float:
        torch.manual_seed(0)
        model = BertForSequenceClassification(cfg)
        args = TrainingArguments(
            output_dir=out, learning_rate=1e-3, num_train_epochs=1, per_device_train_batch_size=16,
            logging_strategy="no", save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True, seed=0,
        )  # fmt: skip
        trainer = Trainer(model=model, args=args, train_dataset=DS())
        ctx = {
            "watch": lambda: nbdebug.watch(model),
            "no hist": lambda: nbdebug.watch(model, histograms=False),
        }.get(variant, contextlib.nullcontext)()
        with contextlib.redirect_stdout(io.StringIO()):
            t0 = time.perf_counter()
            with ctx as w:
                trainer.train()
            draw_histograms(w)
            return (time.perf_counter() - t0) / steps

    return run, ["bare", "watch", "no hist"]


OWN_RUNS = 5  # runs of `watch` with nbdebug's own calls timed, after the interleaved rounds


def median_interval(values: list[float], draws: int = 2000, seed: int = 0) -> tuple[float, float]:
    """A 95% bootstrap interval of the median of `values` (rounds drawn with replacement, a fixed seed): how
    far the median of this many rounds can move with the host. A target is met when the interval's top is
    under it, not when one median happens to be."""
    rng = random.Random(seed)
    meds = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(draws))
    return meds[int(0.025 * draws)], meds[int(0.975 * draws) - 1]


def measure(
    run, variants: list[str], rounds: int
) -> dict[str, tuple[float, float, float, tuple[float, float]]]:
    """Per variant: (median seconds a step, median of the per-round ratios to the first variant, median
    page faults a step, the ratio median's 95% bootstrap interval)."""
    for v in variants:  # warm-up
        run(v)
    times: dict[str, list[float]] = {v: [] for v in variants}
    faults: dict[str, list[float]] = {v: [] for v in variants}
    ratios: dict[str, list[float]] = {v: [] for v in variants}
    steps = getattr(run, "steps", 1)
    for r in range(rounds):
        got = {}
        for v in variants if r % 2 == 0 else variants[::-1]:
            f0 = resource_faults()
            got[v] = run(v)
            faults[v].append((resource_faults() - f0) / steps)
        for v in variants:
            times[v].append(got[v])
            ratios[v].append(got[v] / got[variants[0]])
    med = statistics.median
    return {v: (med(times[v]), med(ratios[v]), med(faults[v]), median_interval(ratios[v])) for v in variants}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5 rounds of 20 steps")
    ap.add_argument(
        "--system-malloc", action="store_true", help="leave glibc's allocator thresholds as they are"
    )
    ap.add_argument("--steps", type=int, default=60, help="optimizer steps per run (default 60)")
    ap.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    ap.add_argument("--only", choices=["lightning", "hf"], help="one framework (both by default)")
    args = ap.parse_args()
    alloc = fixed_allocator(args.system_malloc)
    torch.set_num_threads(1)
    rounds, steps = (5, 20) if args.quick else (args.rounds, args.steps)
    print(f"{machine()}; 1 torch thread; {alloc}; medians of {rounds} rounds of {steps} steps (ABBA order)\n")
    print(
        f"{'framework':<12}{'variant':<12}{'ms/step':>10}{'x bare':>9}{'95% interval':>17}{'faults/step':>13}"
    )
    for name, make in (("Lightning", lightning_runs), ("HF Trainer", trainer_runs)):
        if args.only and args.only != ("lightning" if make is lightning_runs else "hf"):
            continue
        try:
            run, variants = make(steps)
        except ImportError as e:
            print(f"{name:<12}skipped: {e}")
            continue
        run.steps = steps
        t = measure(run, variants, rounds)
        for v in variants:
            ms, ratio, faults, (lo, hi) = t[v]
            print(f"{name:<12}{v:<12}{ms * 1e3:>10.2f}{ratio:>9.3f}{f'{lo:.3f}-{hi:.3f}':>17}{faults:>13.0f}")
        own = []
        for _ in range(OWN_RUNS):
            with OwnTime() as timer:
                run("watch")
            own.append(timer.seconds / steps)
        own_ms = statistics.median(own) * 1e3
        print(
            f"{'':<12}nbdebug's own time under `watch`: {own_ms:.2f} ms/step = {own_ms / (t['bare'][0] * 1e3):.1%}"
            f" of the bare step (median of {OWN_RUNS} runs; bench/_common.py OwnTime)"
        )


if __name__ == "__main__":
    main()
