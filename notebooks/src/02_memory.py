# %% [markdown]
# # 02 · Memory: which tensors hold it, what a training step adds, and the largest batch that fits
#
# A familiar story: a batch of 8 would not fit on a 12 GB GPU, and the tools at
# hand were `pdb`, `watch -n 0.1 nvidia-smi`, and multiplying `element_size()` by `nelement()` for each
# tensor by hand. This notebook replaces all three:
#
# 1. `nbdebug.memory(...)` / `%nn_mem`: every tensor by the name that reaches it, with its role, and
#    totals that count each storage once. A model + Adam shows the **4x rule**: parameters, gradients,
#    `exp_avg`, `exp_avg_sq`.
# 2. Leaks: a loss kept with its graph, tensors no name reaches (`--all`).
# 3. `nbdebug.memory.step(...)`: activation memory per layer of a conv net, and the peak **as a function
#    of batch size**, fit on the meta device and checked against a measured step.
# 4. The GPU section and the live watch.
#
# Data: scikit-learn's `load_digits` (1797 handwritten 8x8 digits, shipped with the package); CPU only.

# %%
import torch
from sklearn.datasets import load_digits
from torch import nn

import nbdebug

torch.manual_seed(0)
%load_ext nbdebug

digits = load_digits()
images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (1797, 1, 8, 8)
labels = torch.tensor(digits.target)
images.shape, labels.shape

# %% [markdown]
# ## 1. A model and Adam: the 4x rule made visible
#
# One training step creates the gradients (as large as the parameters) and Adam's two moment estimates
# per parameter (`exp_avg`, `exp_avg_sq`): four copies of the model in memory before a single activation.

# %%
model = nn.Sequential(nn.Flatten(), nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = nn.CrossEntropyLoss()

x, y = images[:64], labels[:64]
optimizer.zero_grad()
loss_fn(model(x), y).backward()
optimizer.step()

report = nbdebug.memory(model, optimizer)
report.by_role()

# %%
roles = report.by_role()
ratio = (roles["parameter"] + roles["gradient"] + roles["optimizer state"]) / roles["parameter"]
print(f"parameters + gradients + Adam state = {ratio:.3f} x parameters")
assert 3.99 < ratio < 4.01  # the 4 bytes of each Adam `step` counter are the only excess
report.top(6)[["name", "role", "shape", "dtype", "bytes"]]

# %% [markdown]
# The same as a panel: totals by role, device and dtype, a chart, the largest tensors as a table you can
# sort (click a column button) and filter by role, a **Refresh** button, and the GPU section.

# %%
%nn_mem model optimizer

# %% [markdown]
# ## 2. Views count once; leaks get named
#
# `nbdebug.memory()` with no argument scans the whole notebook namespace, walking lists, dicts, tuples,
# objects' attributes, modules and optimizers. A slice shares its base's storage: the table shows its own
# `bytes` but it adds nothing to the total (`storage_bytes` 0, `shares_with` the owner).
#
# The classic notebook leak is `history.append(loss)`: each stored loss keeps its whole autograd graph
# (every activation saved for backward) alive.

# %%
batch = {"image": images[:512], "label": labels[:512]}
first_rows = batch["image"][:10]  # a view
history = []
for i in range(3):
    xb, yb = images[i * 64:(i + 1) * 64], labels[i * 64:(i + 1) * 64]
    loss = loss_fn(model(xb), yb)
    history.append(loss)  # the bug: should be loss.item()

leaky = nbdebug.memory()
print("\n".join(map(str, leaky.findings)))
assert [f.code for f in leaky.findings] == ["graph-retained"]
leaky.to_frame().query("name in ['first_rows', 'history[0]']")[["name", "bytes", "storage_bytes", "shares_with", "has_graph"]]

# %%
history = [loss.item() for loss in history]  # the fix
del loss
fixed = nbdebug.memory()
assert fixed.findings == []
fixed.findings

# %% [markdown]
# Tensors that no name reaches are what users hunt for when memory does not come back. `%nn_mem --all`
# (or `nbdebug.memory(all=True)`) asks the garbage collector for every tensor and marks those no name
# reached as *unreachable*, here one held only by a closure:

# %%
def make_cache():
    table = torch.zeros(512, 1024)  # 2 MiB, reachable only through the closure below

    def lookup(i):
        return table[i]

    return lookup


lookup = make_cache()
lost = nbdebug.memory(all=True)
print("\n".join(map(str, lost.findings)))
assert any(f.code == "unreachable-tensors" for f in lost.findings)
lost.to_frame().query("not reachable")[["name", "shape", "storage_bytes"]].head(3)

# %% [markdown]
# ## 3. Activation memory per layer, and the peak as a function of batch size
#
# What grows with the batch is what autograd saves for backward. `nbdebug.memory.step` runs one forward +
# backward (without stepping the optimizer; the model comes back unchanged), attributes every tensor saved
# for backward to the layer that saved it, follows the bytes alive through forward and backward, and fits
# `peak(N) = fixed + a + b x N` from two smaller batches run on the **meta device** (nothing allocated).
# The fit is then checked against the step it just measured.

# %%
cnn = nn.Sequential(
    nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
    nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(64 * 4 * 4, 128), nn.ReLU(), nn.Linear(128, 10),
)
cnn_opt = torch.optim.Adam(cnn.parameters())
result = nbdebug.memory.step(cnn, (images[:256], labels[:256]), loss_fn, optimizer=cnn_opt, budget="12GB")
result

# %%
print(result.forecast.formula())
print(f"forecast error at the measured batch of {result.batch_size}: {result.forecast_error:+.1%}")
print(f"largest batch that fits in 12 GiB: {result.max_batch}")
assert abs(result.forecast_error) < 0.05
result.to_frame()

# %%
from nbdebug.memory.plot import forecast_figure

forecast_figure(result)

# %% [markdown]
# The same from the magic: `%nn_mem --step MODEL BATCH LOSS_FN [OPTIMIZER] --budget 12GB`.

# %%
%nn_mem --step cnn (images[:64],labels[:64]) loss_fn cnn_opt --budget 12GB

# %% [markdown]
# ## 4. The GPU section and the live watch
#
# On CUDA the report adds allocated, reserved and peak memory per device, and fragmentation: memory
# reserved but unallocated, the largest free block from the allocator's snapshot, and in plain words when
# fragmentation is what blocks a larger batch (finding `gpu-fragmentation`, with the fix). Without CUDA it
# says so in one line:

# %%
print(report.gpu_note)

# %% [markdown]
# `%nn_mem --watch` replaces `watch -n 0.1 nvidia-smi`: a background thread samples allocated and reserved
# memory (the process's resident memory without CUDA) and plots it while other cells run; it stops itself
# after `--seconds` and never blocks the kernel.

# %%
watch = nbdebug.memory.watch(interval=0.02, seconds=1.0)
blocks = [torch.ones(4_000_000) for _ in range(5)]  # ~76 MiB while the watch runs
del blocks
import time

while watch.running:
    time.sleep(0.05)
print(watch, f"peak sample {watch.to_frame()['allocated'].max() / 2**20:.0f} MiB")
from nbdebug.memory.plot import watch_figure

watch_figure(watch)
