"""trace() overhead and the meta-device walkthrough.

1. ResNet-50-sized CNN (torchvision's ResNet-50 layout, rebuilt here: torchvision is not a dependency)
   at 1x3x224x224 on CPU: median of interleaved runs of a bare forward pass (under no_grad, as trace
   runs), nbdebug.trace, and torchinfo.summary. Targets: trace <= 1.3x bare, trace <= torchinfo.
2. A 1.5-billion-parameter GPT-style transformer built on the meta device, traced in a fresh process:
   wall time (target < 3 s) and resident memory growth (target < 300 MB).

Run: python bench/bench_trace.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import interleaved, machine


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50(nn.Module):
    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1, self.relu, self.maxpool = nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)
        layers, cin = [], 64
        for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            stage = []
            for i in range(blocks):
                stage.append(Bottleneck(cin, width, stride if i == 0 else 1))
                cin = width * 4
            layers.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(2048, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class Block(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        a = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, vocab: int = 50257, d: int = 1600, layers: int = 48, heads: int = 25, ctx: int = 1024):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(ctx, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, vocab, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))


def bench_resnet(repeat: int) -> dict:
    import torchinfo

    import nbdebug

    torch.manual_seed(0)
    model, x = ResNet50().eval(), torch.randn(1, 3, 224, 224)

    def bare():
        with torch.no_grad():
            model(x)

    def bare_grad():
        model(x)

    def trace():
        nbdebug.trace(model, x)

    def trace_nopreview():
        nbdebug.trace(model, x, previews=False)

    def summary():
        torchinfo.summary(model, input_data=x, verbose=0)

    med = interleaved(
        {"bare": bare, "trace": trace, "trace_nopreview": trace_nopreview, "torchinfo": summary}, repeat
    )
    # measured apart: a forward pass with autograd frees a large graph, and whichever function runs next
    # pays for the allocator growing again (it slowed the next run by ~10 ms here)
    med["bare_grad"] = interleaved({"bare": bare, "bare_grad": bare_grad}, repeat)["bare_grad"]
    steps = len(nbdebug.trace(model, x).steps)
    return {"medians_s": med, "steps": steps, "trace_over_bare": med["trace"] / med["bare"],
            "trace_over_torchinfo": med["trace"] / med["torchinfo"]}  # fmt: skip


META_CHILD = """
import json, sys, time, torch
sys.path.insert(0, sys.argv[1])
from bench.bench_trace import GPT
from bench._common import rss_mb, peak_rss_mb
import nbdebug
with torch.device("meta"):
    model = GPT()
params = sum(p.numel() for p in model.parameters())
ids = torch.randint(0, 50257, (1, 1024))
before = rss_mb()
t0 = time.perf_counter()
t = nbdebug.trace(model, ids)
dt = time.perf_counter() - t0
print(json.dumps({"params": params, "seconds": dt, "rss_growth_mb": rss_mb() - before,
                  "peak_growth_mb": peak_rss_mb() - before, "steps": len(t.steps), "ok": t.ok,
                  "output": t.output_repr}))
"""


def bench_meta() -> dict:
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", META_CHILD, str(root)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"machine: {machine()}")
    r = bench_resnet(5 if args.quick else 15)
    m = r["medians_s"]
    print(f"\nResNet-50 layout, 1x3x224x224, CPU, {r['steps']} steps, medians of interleaved runs:")
    print("| what | median ms | vs bare (no_grad) |\n| --- | ---: | ---: |")
    for k in ("bare", "bare_grad", "trace", "trace_nopreview", "torchinfo"):
        print(f"| {k} | {1000 * m[k]:.1f} | {m[k] / m['bare']:.2f}x |")
    print(f"trace / bare = {r['trace_over_bare']:.2f}x (target <= 1.3x); "
          f"trace / torchinfo = {r['trace_over_torchinfo']:.2f}x (target <= 1.0x)")  # fmt: skip
    meta = bench_meta()
    print(f"\nmeta GPT ({meta['params'] / 1e9:.2f}B params, input 1x1024 ids): {meta['steps']} steps in "
          f"{meta['seconds']:.2f} s (target < 3 s), RSS growth {meta['rss_growth_mb']:.0f} MB, "
          f"peak growth {meta['peak_growth_mb']:.0f} MB (target < 300 MB), ok={meta['ok']}, output {meta['output']}")  # fmt: skip


if __name__ == "__main__":
    main()
