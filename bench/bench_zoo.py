"""nbdebug.trace against torchinfo.summary over the architecture zoo (tests/zoo).

For every zoo entry whose requirements are installed: two fresh copies of the model (one per contender, so
that neither sees what the other left), then medians of interleaved runs, each round in a shuffled
(seeded) order, of

- `nbdebug.trace(model, *args, **kwargs)` (previews on, as the panel uses it),
- `torchinfo.summary(model, input_data=..., verbose=0, **kwargs)` (what a user would type),
- and, for information, `nbdebug.trace(..., device="meta")` (not part of the ratio).

One line per model, then the overall ratio: the median of the per-model ratios trace / torchinfo and the
ratio of the total times, over the models both tools handle; models either tool fails on are listed with
the reason and left out of the ratio. Ends with the zoo's size and the bench's own run time.

`--clock cpu` times each call by this process's CPU time instead of the wall clock: on a machine shared
with other jobs, a call the scheduler preempts costs 10-20 ms of wall time that has nothing to do with it
(the tiny models take under 2 ms), while its CPU time stays what it is (one torch thread: no hidden
parallelism either way).

Run: python bench/bench_zoo.py [--quick] [--only SUBSTRING] [--threads N] [--clock wall|cpu]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import interleaved, machine


def _torchinfo_call(model: torch.nn.Module, args: tuple, kwargs: dict):
    import torchinfo

    if len(args) == 1 and isinstance(args[0], torch.Tensor):
        data: Any = args[0]
    elif args:
        data = list(args)
    else:
        data, kwargs = dict(kwargs), {}

    def run() -> None:
        torchinfo.summary(model, input_data=data, verbose=0, **kwargs)

    return run


def _interleaved(
    fns: dict[str, Callable[[], object]], repeat: int, clock: Callable[[], float]
) -> dict[str, float]:
    """bench._common.interleaved (one warm-up round, then shuffled rounds) with the clock given."""
    if clock is time.perf_counter:
        return interleaved(fns, repeat=repeat, warmup=1, shuffle=True)
    order = random.Random(0)
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        items = list(fns.items())
        order.shuffle(items)
        for k, fn in items:
            t0 = clock()
            fn()
            times[k].append(clock() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def bench_entry(entry, repeat: int, clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    import nbdebug
    from tests import zoo

    row: dict[str, Any] = {"name": entry.name, "tags": sorted(entry.tags)}
    m_trace, args, kwargs = zoo.build(entry)
    m_info, args_i, kwargs_i = zoo.build(entry)
    m_meta, args_m, kwargs_m = zoo.build(entry)
    try:
        t = nbdebug.trace(m_trace, *args, **kwargs)
    except Exception as e:
        row["trace_note"] = f"trace raised {type(e).__name__}: {str(e).splitlines()[0][:80]}"
        return row
    row["steps"] = len(t.steps)
    if t.error is not None and not entry.raises_at:
        row["trace_note"] = f"trace error at {t.error.where}: {t.error.message[:60]}"
    info = _torchinfo_call(m_info, args_i, kwargs_i)
    try:
        info()
    except Exception as e:
        row["torchinfo_note"] = f"torchinfo raised {type(e).__name__}: {str(e).splitlines()[0][:80]}"
    fns = {"trace": lambda: nbdebug.trace(m_trace, *args, **kwargs)}
    if "torchinfo_note" not in row:
        fns["torchinfo"] = info
    meta_ok = True
    try:
        nbdebug.trace(m_meta, *args_m, device="meta", **kwargs_m)
    except Exception:
        meta_ok = False
    if meta_ok:
        fns["meta"] = lambda: nbdebug.trace(m_meta, *args_m, device="meta", **kwargs_m)
    row.update(_interleaved(fns, repeat, clock))
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 rounds per model instead of 7")
    ap.add_argument("--only", default="", help="only entries whose name contains this")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1: tiny models)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="cpu: this process's CPU time")
    args = ap.parse_args()
    t_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("transformers").setLevel(logging.ERROR)
    from tests import zoo

    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"machine: {machine()}, torch threads {torch.get_num_threads()}, clock {args.clock}")
    try:
        import torchinfo

        print(f"torchinfo {torchinfo.__version__}")
    except ImportError:
        print("torchinfo is not installed (pip install torchinfo): nothing to compare against")
        return 2
    entries = [e for e in zoo.ZOO if args.only in e.name]
    missing = [e for e in entries if not e.available()]
    entries = [e for e in entries if e.available()]
    repeat = 3 if args.quick else 7
    print(f"zoo: {len(zoo.ZOO)} entries; {len(entries)} here ({len(missing)} skipped: requirements missing); "
          f"medians of {repeat} interleaved rounds\n")  # fmt: skip
    print(f"{'model':42} {'steps':>5} {'trace ms':>9} {'torchinfo ms':>12} {'ratio':>6} {'meta ms':>8}  note")
    rows = []
    for e in entries:
        try:
            r = bench_entry(e, repeat, clock)
        except Exception as exc:  # a builder that fails here is a zoo bug: say so and go on
            r = {"name": e.name, "trace_note": f"could not build/run: {type(exc).__name__}: {exc}"[:100]}
        rows.append(r)
        note = "; ".join(r[k] for k in ("trace_note", "torchinfo_note") if k in r)
        tr, ti, me = r.get("trace"), r.get("torchinfo"), r.get("meta")
        ratio = f"{tr / ti:6.2f}" if tr and ti else f"{'-':>6}"
        print(
            f"{e.name[:42]:42} {r.get('steps', '-'):>5} {_ms(tr):>9} {_ms(ti):>12} {ratio} {_ms(me):>8}  {note}",
            flush=True,
        )
    both = [r for r in rows if r.get("trace") and r.get("torchinfo") and "trace_note" not in r]
    ratios = [r["trace"] / r["torchinfo"] for r in both]
    total_trace = sum(r["trace"] for r in both)
    total_info = sum(r["torchinfo"] for r in both)
    print()
    if both:
        q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
        print(f"models both tools handle: {len(both)} of {len(rows)}")
        print(f"trace / torchinfo, median of per-model ratios: {statistics.median(ratios):.2f}x "
              f"(quartiles {q[0]:.2f}x - {q[2]:.2f}x, min {min(ratios):.2f}x, max {max(ratios):.2f}x)")  # fmt: skip
        print(f"total time: trace {1000 * total_trace:.0f} ms, torchinfo {1000 * total_info:.0f} ms, "
              f"ratio {total_trace / total_info:.2f}x")  # fmt: skip
        metas = [r for r in both if r.get("meta")]
        if metas:
            print(f"meta trace / real trace, median over {len(metas)} models: "
                  f"{statistics.median(r['meta'] / r['trace'] for r in metas):.2f}x")  # fmt: skip
    failed_trace = [r["name"] for r in rows if "trace_note" in r]
    failed_info = [r["name"] for r in rows if "torchinfo_note" in r]
    print(f"trace failed or reported a false error on {len(failed_trace)}: {', '.join(failed_trace) or '-'}")
    print(f"torchinfo failed on {len(failed_info)}: {', '.join(failed_info) or '-'}")
    print(
        f"zoo size {len(zoo.ZOO)}, benched {len(rows)}, bench run time {time.perf_counter() - t_start:.0f} s"
    )
    return 0


def _ms(v: float | None) -> str:
    return f"{1000 * v:.1f}" if v else "-"


if __name__ == "__main__":
    raise SystemExit(main())
