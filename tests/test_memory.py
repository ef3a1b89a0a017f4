"""The tensor inventory: exact deduplicated totals, roles, names, strange inputs, leak findings, CUDA maths."""

from __future__ import annotations

import gc
import sys
import time
import warnings

import pandas as pd
import pytest
import torch
from torch import nn

import nbdebug
from nbdebug import NbdebugError
from nbdebug._core.units import parse_bytes
from nbdebug.memory.api import memory
from nbdebug.memory.cuda import DeviceMemory, SegmentStats, analyse_segments, cuda_memory, cuda_note
from nbdebug.memory.scan import _Scanner


def _storage_key(t: torch.Tensor):
    st = t.untyped_storage()
    return (str(t.device), st.data_ptr())


def unique_storage_bytes(tensors) -> int:
    """What the inventory must equal: each distinct storage's nbytes() once (independent of nbdebug)."""
    seen = {}
    for t in tensors:
        seen.setdefault(_storage_key(t), t.untyped_storage().nbytes())
    return sum(seen.values())


def trained_model():
    model = nn.Sequential(nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(8, 16), torch.randint(0, 4, (8,))
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    return model, opt, x, y


def test_roles_names_and_the_adam_4x_rule():
    model, opt, x, y = trained_model()
    report = memory(model, opt, names=["model", "opt"])
    frame = report.to_frame().set_index("name")
    assert frame.loc["model.0.weight", "role"] == "parameter"
    assert frame.loc["model.0.weight.grad", "role"] == "gradient"
    assert frame.loc["model.1.running_mean", "role"] == "buffer"
    assert frame.loc["opt.state[0.weight].exp_avg", "role"] == "optimizer state"
    assert frame.loc["opt.state[0.weight].exp_avg_sq", "role"] == "optimizer state"
    assert frame.loc["model.0.weight", "shape"] == (32, 16)
    assert frame.loc["model.0.weight", "bytes"] == 32 * 16 * 4
    assert frame.loc["model.0.weight", "element_size"] == 4 and frame.loc["model.0.weight", "nelement"] == 512
    roles = report.by_role()
    params = sum(p.numel() * 4 for p in model.parameters())
    assert roles["parameter"] == params and roles["gradient"] == params
    # Adam keeps exp_avg and exp_avg_sq per parameter (+ a 4-byte step scalar each): parameters x 4 in all
    n_params = len(list(model.parameters()))
    assert roles["optimizer state"] == 2 * params + 4 * n_params
    assert report.total_bytes == unique_storage_bytes(
        [*model.parameters(), *(p.grad for p in model.parameters()), *model.buffers()]
        + [v for s in opt.state.values() for v in s.values()]
    )
    assert report.findings == []


def test_total_counts_views_slices_and_shared_parameters_once():
    shared = nn.Linear(8, 8)
    a, b = nn.Sequential(shared, nn.ReLU()), nn.Sequential(nn.Linear(8, 8), shared)  # tied weights
    base = torch.randn(100, 10)
    ns = {
        "a": a,
        "b": b,
        "base": base,
        "row": base[3],
        "cols": base[:, 2:5],
        "t": base.t(),
        "flat": base.view(-1),
        "copy": base.clone(),
        "batch": {"image": base[:50], "label": torch.zeros(50, dtype=torch.long)},
        "history": [base[i] for i in range(5)],
    }
    report = memory(namespace=ns)
    frame = report.to_frame().set_index("name")
    assert frame.loc["cols", "shares_with"] == "base" and frame.loc["cols", "view"]
    assert frame.loc["batch['image']", "shares_with"] == "base"
    # a view adds nothing to the total; the first tensor seen on a storage carries all of it
    assert frame.loc["history[3]", "bytes"] == 40 and frame.loc["history[3]", "storage_bytes"] == 0
    assert frame.loc["base", "storage_bytes"] == 4000
    assert pd.isna(frame.loc["copy", "shares_with"])
    assert frame["storage_bytes"].sum() == report.total_bytes
    # the shared Linear appears once, under its first path
    assert "b.1.weight" not in frame.index and frame["role"].eq("parameter").sum() == 4
    expected = unique_storage_bytes(
        [*a.parameters(), *b.parameters(), base, ns["copy"], ns["batch"]["label"]]
    )
    assert report.total_bytes == expected
    assert report.sum_of_tensor_bytes > report.total_bytes  # the naive sum double counts the views


def test_namespace_scan_walks_containers_objects_and_output_cache():
    class Trainer:
        def __init__(self):
            self.model = nn.Linear(3, 3)
            self.cache = {"last": torch.ones(7)}

    class Slotted:
        __slots__ = ("t", "unset")

        def __init__(self):
            self.t = torch.ones(11)

    cyc: list = [torch.ones(2)]
    cyc.append(cyc)  # a cycle
    ns = {
        "trainer": Trainer(),
        "slotted": Slotted(),
        "cyc": cyc,
        "nested": ({"k": [(torch.ones(5),)]},),
        "Out": {3: torch.ones(13)},
        "_": torch.ones(13),  # IPython's last-output alias: never named by that
        "torch": torch,  # a module: never walked
    }
    frame = memory(namespace=ns).to_frame().set_index("name")
    assert frame.loc["trainer.model.weight", "role"] == "parameter"
    assert frame.loc["trainer.cache['last']", "role"] == "user variable"
    assert "slotted.t" in frame.index and "cyc[0]" in frame.index
    assert "nested[0]['k'][0][0]" in frame.index
    assert frame.loc["Out[3]", "role"] == "other"
    assert not any(n.startswith("_") for n in frame.index)


def test_caller_names_are_used_for_positional_objects():
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(1, 2)).sum().backward()
    opt.step()
    names = set(nbdebug.memory(model, opt).to_frame()["name"])
    assert {"model.weight", "model.weight.grad", "opt.state[weight].momentum_buffer"} <= names


def test_meta_sparse_subclass_and_several_devices():
    class Tagged(torch.Tensor):
        pass

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        csr = torch.eye(6).to_sparse_csr()
    coo = torch.eye(6).to_sparse()
    meta = torch.empty(1000, 1000, device="meta")
    tagged = torch.arange(10.0).as_subclass(Tagged)
    cpu = torch.ones(4)
    report = memory(coo, csr, meta, tagged, cpu, names=["coo", "csr", "meta", "tagged", "cpu"])
    frame = report.to_frame().set_index("name")
    assert frame.loc["meta", "shape"] == (1000, 1000) and frame.loc["meta", "storage_bytes"] == 0
    assert frame.loc["meta", "device"] == "meta"
    assert frame.loc["coo", "layout"] == "sparse_coo"
    assert frame.loc["coo", "storage_bytes"] == unique_storage_bytes([coo._indices(), coo._values()])
    assert frame.loc["csr", "storage_bytes"] == unique_storage_bytes(
        [csr.crow_indices(), csr.col_indices(), csr.values()]
    )
    assert frame.loc["tagged", "kind"] == "Tagged" and frame.loc["tagged", "bytes"] == 40
    by_device = report.by_device()
    assert set(by_device.index) == {"cpu"}  # meta holds nothing
    assert report.total_bytes == frame.loc[["coo", "csr", "tagged", "cpu"], "storage_bytes"].sum()


def test_objects_whose_attribute_access_raises_are_skipped():
    class Hostile:
        def __getattribute__(self, name):
            raise RuntimeError("no attributes for you")

    class BadMapping(dict):
        def items(self):
            raise ValueError("cannot list")

    class BadDict:
        @property
        def __dict__(self):
            raise RuntimeError("no __dict__")

    ns = {"h": Hostile(), "m": BadMapping(a=torch.ones(3)), "d": BadDict(), "ok": torch.ones(3)}
    report = memory(namespace=ns)
    assert list(report.to_frame()["name"]) == ["ok"]
    assert any(s.startswith("m:") and "cannot list" in s for s in report.skipped)


def test_a_namespace_of_a_million_objects_is_fast():
    tensors = [torch.zeros(4) for _ in range(1000)]
    ns = {
        "floats": [float(i) for i in range(600_000)],
        "vocab": {f"w{i}": i for i in range(200_000)},
        "rows": [{"id": i, "text": "x"} for i in range(100_000)],
        "tensors": tensors,
    }
    start = time.perf_counter()
    report = memory(namespace=ns)
    elapsed = time.perf_counter() - start
    assert len(report.records) == 1000
    assert report.total_bytes == 1000 * 16
    assert elapsed < 3.0, f"scan took {elapsed:.2f} s"  # bench/ measures the real budget (0.5 s)


def test_graph_retained_finding_and_its_healthy_twin():
    model = nn.Linear(4, 1)
    losses, values = [], []
    for _ in range(3):
        loss = model(torch.randn(5, 4)).pow(2).mean()
        losses.append(loss)  # the bug: keeps every step's graph alive
        values.append(loss.item())
    bad = memory(model, losses, names=["model", "losses"])
    [finding] = [f for f in bad.findings if f.code == "graph-retained"]
    assert finding.severity == "warning" and "losses[0]" in finding.message and "item()" in finding.hint
    good = memory(model, values, names=["model", "values"])
    assert good.findings == []


def test_unreachable_tensors_found_only_with_all():
    def make_leak():
        big = torch.zeros(300_000)  # 1.1 MiB held only by a closure cell

        def inner():
            return big

        return inner

    leak = make_leak()
    ns = {"x": torch.ones(3)}
    assert memory(namespace=ns).findings == []
    report = memory(namespace=ns, all=True)
    frame = report.to_frame()
    lost = frame[~frame["reachable"]]
    assert (lost["shape"] == (300_000,)).any()
    [finding] = [f for f in report.findings if f.code == "unreachable-tensors"]
    assert finding.severity == "warning"
    assert report.by_role()["unreachable"] >= 1_200_000
    del leak
    gc.collect()


def test_report_reprs_render_without_a_kernel():
    model, opt, *_ = trained_model()
    report = memory(model, opt, names=["model", "opt"])
    bundle = report._repr_mimebundle_()
    assert "model.0.weight" in bundle["text/plain"] and "by role" in bundle["text/plain"]
    assert "<table" in bundle["text/html"] and "data:image/png;base64" in bundle["text/html"]
    assert "no CUDA device" in bundle["text/plain"]
    top = report.top(3)
    assert list(top["storage_bytes"]) == sorted(top["storage_bytes"], reverse=True)
    assert report.by_role_and_device().loc["parameter", "cpu"] == report.by_role()["parameter"]


def test_report_holds_no_tensor_reference():
    import weakref

    t = torch.ones(100)
    ref = weakref.ref(t)
    report = memory(t, names=["t"])
    del t
    gc.collect()
    assert ref() is None and len(report.records) == 1


def test_bad_arguments_raise_nbdebug_error():
    with pytest.raises(NbdebugError, match="2 objects but 1 names"):
        memory(torch.ones(1), torch.ones(1), names=["a"])
    with pytest.raises(NbdebugError, match="either objects or namespace"):
        memory(torch.ones(1), namespace={})
    with pytest.raises(NbdebugError, match="namespace must be a dict.*list"):
        memory(namespace=[1, 2])


def test_parse_bytes():
    assert parse_bytes("12GB") == 12 * 2**30 and parse_bytes("512 MiB") == 512 * 2**20
    assert parse_bytes(1000) == 1000
    with pytest.raises(NbdebugError, match="cannot read a memory size from 'lots'"):
        parse_bytes("lots")
    with pytest.raises(NbdebugError, match="must be positive"):
        parse_bytes(0)


# ---------------------------------------------------------------- CUDA arithmetic without a GPU


def _snapshot(blocks_per_segment):
    return [
        {
            "device": 0,
            "total_size": sum(s for s, _ in blocks),
            "blocks": [{"size": s, "state": st} for s, st in blocks],
        }
        for blocks in blocks_per_segment
    ]


MiB = 2**20


def test_analyse_segments_reads_the_allocator_snapshot_format():
    snap = _snapshot(
        [
            [(100 * MiB, "active_allocated"), (20 * MiB, "inactive"), (60 * MiB, "active_allocated")],
            [(30 * MiB, "inactive"), (2 * MiB, "active_pending_free")],
        ]
    )
    assert analyse_segments(snap) == SegmentStats(2, 2, 50 * MiB, 30 * MiB)


def test_fragmentation_is_named_with_plain_words_and_a_fix():
    # 12 GB card: 10 GiB reserved, 7 GiB allocated, 3 GiB free but in 1 GiB pieces, driver nearly full
    frag = DeviceMemory(
        device="cuda:0", name="P5000", total=12 * 2**30, driver_free=300 * MiB, allocated=7 * 2**30,
        reserved=10 * 2**30, peak_allocated=9 * 2**30, peak_reserved=10 * 2**30,
        segments=SegmentStats(segments=12, free_blocks=3, free_bytes=3 * 2**30, largest_free_block=2**30),
    )  # fmt: skip
    assert frag.fragmented and frag.cached == 3 * 2**30
    assert frag.largest_allocation == 2**30
    [finding] = frag.findings()
    assert finding.code == "gpu-fragmentation" and finding.where == "cuda:0"
    assert "split into 3 free blocks" in finding.message and "1.0 GiB" in finding.message
    assert "expandable_segments" in finding.hint
    # the same free memory in one block is not fragmentation
    whole = DeviceMemory(
        device="cuda:0", name="P5000", total=12 * 2**30, driver_free=300 * MiB, allocated=7 * 2**30,
        reserved=10 * 2**30, peak_allocated=9 * 2**30, peak_reserved=10 * 2**30,
        segments=SegmentStats(segments=12, free_blocks=1, free_bytes=3 * 2**30, largest_free_block=3 * 2**30),
    )  # fmt: skip
    assert not whole.fragmented and whole.findings() == []
    assert "No fragmentation" in whole.explain()


def test_no_cuda_says_so_in_one_line():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: bench/gpu_check.py covers this path")
    assert cuda_memory() == []
    assert "no CUDA device" in cuda_note() and "\n" not in cuda_note()
    report = memory(torch.ones(1), names=["x"])
    assert report.gpu == [] and report.gpu_note == cuda_note()


def test_a_blocked_allocation_is_explained_only_when_fragmentation_is_the_cause():
    from nbdebug.memory.step import _requested

    dev = DeviceMemory(
        device="cuda:0", name="P5000", total=12 * 2**30, driver_free=300 * MiB, allocated=7 * 2**30,
        reserved=10 * 2**30, peak_allocated=9 * 2**30, peak_reserved=10 * 2**30,
        segments=SegmentStats(segments=12, free_blocks=3, free_bytes=3 * 2**30, largest_free_block=2**30),
    )  # fmt: skip
    why = dev.blocks(2 * 2**30)  # 2 GiB: more than any free piece, less than the 3.3 GiB free in total
    assert why is not None and "fragmentation, not the card's size" in why and "3 blocks" in why
    assert dev.blocks(512 * MiB) is None  # fits in a free block
    assert dev.blocks(5 * 2**30) is None  # the card is simply full: not fragmentation
    assert _requested("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 11.9 GiB total)") == 2 * 2**30
    assert _requested("out of memory") is None


def _mixed_blocks():
    """Lists of tensors the bulk path takes, and every kind of tensor that must send it to the slow one."""
    base = torch.arange(64.0)
    leaf = torch.ones(3, requires_grad=True)
    (leaf * 2).sum().backward()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nested = torch.nested.nested_tensor([torch.zeros(2, 3), torch.zeros(4, 3)])
    plain = [torch.randn(4) for _ in range(40)]
    return {
        "plain": plain,
        "views": [base, base[:8], base.view(8, 8), base[8:16].reshape(2, 4)],  # one storage
        "pairs": [(torch.randn(2, 3), torch.randint(0, 9, (2,))) for _ in range(40)],
        "ragged": [[torch.ones(1)], (torch.ones(2), torch.ones(3)), []],
        "labelled": [(torch.randn(3), i, f"img{i}.png") for i in range(30)],  # int and str between tensors
        "records": [{"x": torch.randn(2), "y": i, "mask": torch.ones(2).bool()} for i in range(30)],
        "odd_records": [{"x": torch.randn(2)}, {"z": torch.randn(2)}],  # different keys: one by one
        "with_param": [(torch.randn(2), nn.Parameter(torch.ones(2)))],  # a subclass: one by one
        "repeated": [plain[0], plain[0], torch.ones(5)],  # seen before and repeated inside
        "shared_row": [plain, [torch.zeros(2)]],  # a row already walked
        "odd": [torch.empty(0), torch.empty(3, device="meta"), torch.eye(3).to_sparse(), nested, leaf],
        "graph": [leaf * 3],
        "dtypes": [
            torch.ones(2, dtype=torch.float16),
            torch.ones(2, dtype=torch.int64),
            torch.ones(2).bool(),
        ],
    }


def test_bulk_path_records_exactly_what_the_one_by_one_path_does(monkeypatch):
    """Blocks of tensors are named and read in bulk; the result must equal the item-by-item walk's exactly."""
    ns = _mixed_blocks()
    bulk, sizes = _Scanner._bulk, []

    def spy(self, ts, names, roles):
        records = bulk(self, ts, names, roles)
        sizes.append(len(records) if records is not None else None)
        return records

    monkeypatch.setattr(_Scanner, "_bulk", spy)
    fast = memory(namespace=ns, gpu=False)
    assert {40, 80, 30, 60} <= set(sizes) and None in sizes  # plain, pairs, labelled, records in bulk
    monkeypatch.setattr(_Scanner, "_bulk", lambda self, ts, names, roles: None)
    monkeypatch.setattr(_Scanner, "_queue_block", lambda self, obj, name, role, kinds: False)
    slow = memory(namespace=ns, gpu=False)  # every tensor walked, named and read one by one
    assert fast.records == slow.records and fast.skipped == slow.skipped == []
    names = [r.name for r in fast.records]
    assert len(names) == len(set(names))
    frame = fast.to_frame().set_index("name")
    assert frame.loc["pairs[7][1]", "dtype"] == "int64" and frame.loc["pairs[7][0]", "shape"] == (2, 3)
    assert frame.loc["ragged[1][1]", "shape"] == (3,)
    assert frame.loc["labelled[29][0]", "shape"] == (3,) and "labelled[29][1]" not in frame.index
    assert frame.loc["records[4]['mask']", "dtype"] == "bool" and "records[4]['y']" not in frame.index
    assert {"odd_records[0]['x']", "odd_records[1]['z']", "with_param[0][0]"} <= set(frame.index)
    assert frame.loc["with_param[0][1]", "role"] == "parameter"
    assert frame.loc["views[2]", "view"] and frame.loc["views[2]", "shares_with"] == "views[0]"
    assert frame.loc["views[2]", "storage_bytes"] == 0 and frame.loc["views[0]", "storage_bytes"] == 64 * 4
    assert "repeated[1]" not in frame.index and frame.loc["repeated[2]", "shape"] == (5,)
    assert "shared_row[0][0]" not in frame.index and "shared_row[1][0]" in frame.index
    assert frame.loc["odd[1]", "device"] == "meta" and frame.loc["odd[2]", "layout"] == "sparse_coo"
    assert frame.loc["odd[3]", "shape"] == (2, -1, 3)  # nested: the ragged dimension reads -1
    assert frame.loc["odd[4].grad", "role"] == "gradient" and frame.loc["graph[0]", "has_graph"]
    assert frame.loc["dtypes[0]", "element_size"] == 2 and frame.loc["dtypes[2]", "dtype"] == "bool"
    dense = [
        t
        for t in _tensors_of(ns)
        if t.layout == torch.strided and not t.is_nested and t.device.type != "meta"
    ]
    sparse = ns["odd"][2]
    assert (
        fast.total_bytes
        == unique_storage_bytes([*dense, ns["odd"][4].grad, sparse._indices(), sparse._values()])
        + ns["odd"][3].untyped_storage().nbytes()
    )


def _tensors_of(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors_of(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors_of(v)


def test_top_is_the_head_of_the_full_sort_and_names_a_bad_column():
    ns = {"same": [torch.ones(8) for _ in range(12)], "big": torch.ones(100), "views": torch.ones(50)[:10]}
    report = memory(namespace=ns, gpu=False)
    for by in ("storage_bytes", "bytes"):
        full = report.to_frame().sort_values([by, "name"], ascending=[False, True]).head(5)
        assert report.top(5, by=by).equals(full.reset_index(drop=True))  # ties (12 x 32 B) broken by name
    assert report.top(500).shape[0] == len(report.records)
    with pytest.raises(NbdebugError, match=r"top\(by='shape'\): sort by one of storage_bytes, bytes"):
        report.top(3, by="shape")


class _Row:
    def __init__(self, i):
        self.index = i
        self.tags = ["a", "b"]


def _has_dict(obj) -> bool:
    """Whether Python built obj's __dict__ (3.11+ keeps attributes inline until someone asks for it)."""
    return any(type(r) is dict for r in gc.get_referents(obj))


def test_scan_leaves_tensor_free_objects_untouched_and_walks_only_chunks_with_tensors(monkeypatch):
    rows = [_Row(i) for i in range(1000)]
    keyed = {f"k{i}": _Row(i) for i in range(1000)}
    for i in (0, 63, 64, 500, 999):  # chunk edges included
        rows[i].emb = torch.full((i + 1,), 1.0)
    keyed["k640"].emb = torch.ones(2)
    objects = [*rows, *keyed.values()]
    holders = {id(rows[i]) for i in (0, 63, 64, 500, 999)} | {id(keyed["k640"])}
    before = {id(o) for o in objects if _has_dict(o)}
    ns = {"rows": rows, "keyed": keyed}
    report = memory(namespace=ns, gpu=False)
    names = [r.name for r in report.records]
    assert names == ["rows[0].emb", "rows[63].emb", "rows[64].emb", "rows[500].emb", "rows[999].emb",
                     "keyed['k640'].emb"]  # fmt: skip
    after = {id(o) for o in objects if _has_dict(o)}
    assert after - before <= holders and len(before) < 10  # 1994 tensor-free objects keep inline attributes
    monkeypatch.setattr(sys.modules["nbdebug.memory.scan"], "_holding_chunks", lambda items: [(0, items)])
    assert memory(namespace=ns, gpu=False).records == report.records  # walking every item finds the same


def test_tensors_in_deques_and_queues_are_named_not_reported_as_leaks():
    import collections
    import queue

    w = torch.ones(2, requires_grad=True)
    recent = collections.deque(((w * i).sum() for i in range(40)), maxlen=50)  # the moving-average window
    window = collections.deque([torch.ones(3), torch.ones(4)], maxlen=100)
    jobs = queue.Queue()
    jobs.put((torch.ones(5), 1))
    ns = {"w": w, "recent": recent, "window": window, "jobs": jobs}
    report = memory(namespace=ns, gpu=False)
    frame = report.to_frame().set_index("name")
    assert frame.loc["window[1]", "shape"] == (4,) and frame.loc["jobs.queue[0][0]", "shape"] == (5,)
    assert len(frame) == 1 + 40 + 2 + 1  # w, the losses, the window, the job
    codes = {f.code: f for f in report.findings}
    assert codes["graph-retained"].evidence["names"][:2] == ["recent[0]", "recent[1]"]
    # the gc sweep finds them named, not as leaks (it may also find other tests' garbage: not ours)
    swept = memory(namespace=ns, all=True, gpu=False)
    assert [r for r in swept.records if r.reachable] == report.records
