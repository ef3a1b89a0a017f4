"""DDP across processes: 2 gloo ranks on the CPU, forked as a notebook launches them, each under
`nbdebug.watch(ddp_model, opt)`, the launch under `nbdebug.watch_ranks()`. A healthy run is silent; each
planted bug is named by the ranks compared; the training is unchanged; gathering happens at sampled
steps only."""

from __future__ import annotations

import pytest
import torch

import nbdebug
from tests.ddp_loops import run_ddp
from tests.watch_loops import digits

pytestmark = [
    pytest.mark.slow,  # ecosystem tests: `make test` runs them, `make check` does not
    pytest.mark.skipif(
        not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
        reason="torch.distributed with gloo",
    ),
]


@pytest.fixture(scope="module", autouse=True)
def _loaded_before_the_fork():
    """What every rank needs, loaded once in the parent so that the forked ranks inherit it: the digits,
    and torch._dynamo, which DistributedDataParallel's constructor imports (seconds, in each rank)."""
    import torch._dynamo  # noqa: F401

    digits()


def _codes(run) -> set[str]:
    return {f.code for f in run.findings}


def _serious(run) -> list[str]:
    return [str(f) for f in run.findings if f.severity != "info"]


def test_healthy_ddp_run_is_silent_and_reports_every_rank():
    run = run_ddp("healthy")
    assert isinstance(run, nbdebug.DistributedRun) and sorted(run.rank_results) == [0, 1]
    assert _serious(run) == []
    for snap in run.rank_results.values():
        assert snap.internal_errors == [] and snap.gather_errors == []
        assert snap.steps == 20 and snap.world_size == 2
        # DistributedSampler: 320 examples a rank, 10 steps of 32 an epoch; sampled steps 1, 10, 20
        assert snap.gathers == 7 and list(snap.epochs["steps"]) == [10, 10]  # sampled steps 1-5, 10, 20
    ranks = run.ranks
    assert list(ranks["rank"]) == [0, 1] and list(ranks["steps"]) == [20, 20]
    assert (ranks["max state diff vs rank 0"] == 0).all() and (ranks["unused params"] == 0).all()
    assert "Ranks" in run.to_html() and "2 ranks" in run.to_text()


@pytest.mark.parametrize(
    ("bug", "code", "where"),
    [
        ("duplicate", "ddp-duplicate-data", "data"),
        ("sampler_epoch", "ddp-sampler-epoch", "data"),
        ("bn_unsynced", "ddp-params-diverged", "body.1"),
        ("bypass", "ddp-params-diverged", "body.1"),
        ("unused", "ddp-unused-parameters", "extra"),
        ("straggler", "ddp-straggler", "rank 1"),
    ],
)
def test_each_bug_is_named_from_the_ranks_compared(bug, code, where):
    run = run_ddp(bug)
    found = [f for f in run.findings if f.code.startswith("ddp-")]
    assert [(f.code, f.where) for f in found] == [(code, where)]
    f = found[0]
    if bug == "duplicate":
        assert f.evidence["ranks"] == [0, 1] and "no DistributedSampler" in f.message
        assert run.ranks["same batch as"].tolist() == [[1], [0]]
    elif bug == "sampler_epoch":
        assert f.evidence["epoch"] == 0 and f.evidence["passes"] == 2 and "set_epoch" in f.hint
    elif bug == "bn_unsynced":  # BatchNorm statistics only: the weights stay in sync
        assert f.severity == "warning" and f.evidence["params"] == []
        assert sorted(f.evidence["buffers"]) == ["body.1.running_mean", "body.1.running_var"]
    elif bug == "bypass":  # model.module(x): no gradient all-reduce, the weights drift apart
        assert f.severity == "error" and "head.weight" in f.evidence["params"]
    elif bug == "unused":  # rank 0 never runs `extra`; find_unused_parameters=True hid it
        assert f.evidence["params"] == ["extra.weight", "extra.bias"] and "rank(s) [0] only" in f.message
        assert run.ranks["unused params"].tolist() == [2, 0]
    elif bug == "straggler":  # rank 1 sleeps 30 ms per batch
        ms = run.ranks["data+forward ms/step"].tolist()
        assert ms[1] > 30 and ms[1] > 2 * ms[0] and f.evidence["score"] < 0.5
    assert all(s.internal_errors == [] for s in run.rank_results.values())


def test_training_unchanged(tmp_path):
    a, b = tmp_path / "bare.pt", tmp_path / "watched.pt"
    run_ddp("healthy", watched=False, save=str(a))
    run_ddp("healthy", watched=True, save=str(b))
    sa, sb = torch.load(a), torch.load(b)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_no_rank_reported_outside_a_launch():
    with nbdebug.watch_ranks() as run:
        pass
    assert run.rank_results == {} and run.findings == []
    assert "no rank reported" in run.summary()


def test_accelerate_notebook_launcher():
    accelerate = pytest.importorskip("accelerate")
    from accelerate.state import AcceleratorState

    from tests.ddp_loops import train_accelerate

    # a notebook that never made an Accelerator: the Trainer tests in this process did
    AcceleratorState._reset_state(reset_partial_state=True)
    x, y = digits()
    with nbdebug.watch_ranks() as run:
        accelerate.notebook_launcher(train_accelerate, args=((x[:640], y[:640]),), num_processes=2)
    assert sorted(run.rank_results) == [0, 1] and _serious(run) == []
    # accelerate shards the loader (no duplicate batches) and wraps the optimizer (adopted through it)
    assert list(run.ranks["steps"]) == [20, 20] and run.history["loss"].notna().all()
