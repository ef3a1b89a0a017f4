"""The diagnosis benchmark: run the bug corpus (bench/bugs/) under nbdebug and count what it names.

    python bench/bench_diagnosis.py            # the whole corpus
    python bench/bench_diagnosis.py --quick    # the quick subset CI runs
    python bench/bench_diagnosis.py --verify   # without nbdebug: does each bug manifest, does each fix work?
    python bench/bench_diagnosis.py -k relu    # cases whose name contains "relu"

One line per case, then the per-code table and the final line
`diagnosed X/N bugs (detected Y/N), false alarms Z/M healthy, internal errors E, median latency S steps`:
diagnosed = one of the case's expected codes was named; detected = any warning or error; a false alarm
is a warning or error on a healthy program; latency = steps from the bug's first effect to the first
finding that names it. Fixed variants of the bug programs are run too and must stay silent as well.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bugs.harness import Case, Outcome, Seen, load_all, run_case, verify_case  # noqa: E402


def _codes(o: Outcome) -> str:
    seen: dict[str, Seen] = {}
    for f in o.findings:
        if f.code not in seen or f.step < seen[f.code].step:
            seen[f.code] = f
    return (
        ", ".join(f"{c}{'' if f.severity != 'info' else '(info)'}@{f.step}" for c, f in seen.items()) or "-"
    )


def select(cases: dict[str, Case], quick: bool, pattern: str | None) -> list[Case]:
    out = [c for c in cases.values() if (not quick or c.quick) and (not pattern or pattern in c.name)]
    return sorted(out, key=lambda c: (c.healthy, c.category, c.name))


def run_verify(cases: list[Case]) -> int:
    bad = 0
    for c in cases:
        ok, text = verify_case(c)
        bad += not ok
        kind = "healthy" if c.healthy else "bug"
        print(f"{'OK  ' if ok else 'FAIL'} {kind:7s} {c.name:45s} {text}", flush=True)
    print(
        f"verified {len(cases) - bad}/{len(cases)}: {'every bug manifests and every fix works' if not bad else f'{bad} case(s) do not show what they claim'}"
    )
    return 1 if bad else 0


def run_diagnosis(cases: list[Case], fixed: bool) -> int:
    bugs: list[Outcome] = []
    healthy: list[Outcome] = []
    fixes: list[Outcome] = []
    for c in cases:
        if c.healthy:
            o = run_case(c, False)
            healthy.append(o)
            status = "FALSE-ALARM" if o.alarms else "silent"
        else:
            o = run_case(c, True)
            bugs.append(o)
            status = "diagnosed" if o.diagnosed else ("detected" if o.alarms else "MISSED")
        err = f" PROGRAM-RAISED {o.error.splitlines()[0]}" if o.error else ""
        ie = f" internal-errors {len(o.internal_errors)}" if o.internal_errors else ""
        want = f" want {'|'.join(c.expect)}" if c.expect else ""
        print(f"{status:11s} {c.name:45s}{want} got {_codes(o)} ({o.seconds:.1f}s){ie}{err}", flush=True)
        if fixed and not c.healthy:
            fo = run_case(c, False)
            fixes.append(fo)
            if fo.alarms or fo.error:
                print(f"{'FIXED-ALARM':11s} {c.name:45s} fixed variant got {_codes(fo)}", flush=True)
    table(bugs, healthy, fixes)
    n, m = len(bugs), len(healthy)
    diagnosed = sum(o.diagnosed for o in bugs)
    detected = sum(bool(o.alarms) for o in bugs)
    false_alarms = sum(bool(o.alarms) for o in healthy)
    everything = bugs + healthy + fixes
    internal = sum(len(o.internal_errors) for o in everything)
    raised = sum(o.error is not None for o in everything)
    lat = [o.latency for o in bugs if o.latency is not None]
    med = statistics.median(lat) if lat else float("nan")
    if fixes:
        print(f"fixed variants: false alarms {sum(bool(o.alarms) for o in fixes)}/{len(fixes)}")
    if raised:
        print(f"programs that raised: {raised}")
    print(
        f"diagnosed {diagnosed}/{n} bugs (detected {detected}/{n}), false alarms {false_alarms}/{m} healthy, "
        f"internal errors {internal}, median latency {med:g} steps"
    )
    return 0


def table(bugs: list[Outcome], healthy: list[Outcome], fixes: list[Outcome]) -> None:
    """Per expected code: bug cases, how many named it; per code raised wrongly: false alarms."""
    rows: dict[str, list[int]] = {}
    for o in bugs:
        code = o.case.expect[0]
        r = rows.setdefault(code, [0, 0, 0])
        r[0] += 1
        r[1] += o.diagnosed
    for o in healthy + fixes:
        for code in {f.code for f in o.alarms}:
            rows.setdefault(code, [0, 0, 0])[2] += 1
    print("\n| code | bug cases | diagnosed | false alarms (healthy + fixed) |\n| --- | ---: | ---: | ---: |")
    for code in sorted(rows):
        a, b, c = rows[code]
        print(f"| `{code}` | {a} | {b} | {c} |")
    print()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="only the quick subset (CI)")
    ap.add_argument("--verify", action="store_true", help="run without nbdebug: bug manifests, fix works")
    ap.add_argument("--no-fixed", action="store_true", help="do not run the fixed variants under nbdebug")
    ap.add_argument("-k", dest="pattern", default=None, help="only cases whose name contains this")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    cases = select(load_all(), args.quick, args.pattern)
    if not cases:
        print("no case matches")
        return 1
    if args.verify:
        return run_verify(cases)
    return run_diagnosis(cases, fixed=not args.no_fixed)


if __name__ == "__main__":
    raise SystemExit(main())
