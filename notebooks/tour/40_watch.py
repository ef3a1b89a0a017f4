# %% [markdown]
# ## 4. Watching a training run: `%%nn_watch`
#
# Keep your own training loop; `%%nn_watch model optimizer` runs the cell with a live dashboard (loss per
# step and per epoch, per-layer update/weight ratios against the ~1e-3 reference, activation and gradient
# histograms, train/validation curves) and names bugs as soon as it sees them. Here the classic one:
# `zero_grad()` is missing, so every step uses the sum of all past gradients.
# (Full walkthrough with three bugs: `04_watch_training.ipynb`.)

# %%
from sklearn.datasets import load_digits

digits = load_digits()
xd = torch.tensor(digits.data, dtype=torch.float32)
xd = (xd - xd.mean()) / xd.std()
yd = torch.tensor(digits.target)
digits_dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xd[:640], yd[:640]), batch_size=64, shuffle=True)
mlp = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
sgd = torch.optim.SGD(mlp.parameters(), lr=0.05)
criterion = nn.CrossEntropyLoss()

# %%
%%nn_watch mlp sgd --loss criterion --save run
for epoch in range(3):
    for xb, yb in digits_dl:
        loss = criterion(mlp(xb), yb)   # bug: no sgd.zero_grad()
        loss.backward()
        sgd.step()

# %% [markdown]
# The same monitor is a plain context manager, `with nbdebug.watch(model, opt) as w: ...`, and its
# results are data: `w.findings`, `w.history` (per step), `w.epochs`, `w.layer_stats()`.

# %%
print(run.findings[0])
run.epochs.round(3)

# %% [markdown]
# The same monitor works where you train: `with nbdebug.watch(lit_module): trainer.fit(...)` for PyTorch
# Lightning and `with nbdebug.watch(model): trainer.train()` for the Hugging Face `Trainer` (the optimizer
# is found, the loss read where the framework computes it; `NbdebugCallback()` in
# `nbdebug.integrations.lightning` / `.transformers` for scripts), on a `torch.compile`d model (no dynamo
# warning, the eager model's findings), and in every rank of a DDP run launched from the notebook inside
# `with nbdebug.watch_ranks() as run:`, which compares the ranks (duplicate batches, `set_epoch` never
# called, replicas that diverge, unused parameters, a straggler). See the README's "Where you train".

# %% [markdown]
# `check` and `watch` also name the bugs public bug reports are full of, each with its evidence and a fix:
# layers kept in a plain list (`unregistered-submodule`), an optimizer missing part of the model
# (`params-not-in-optimizer`) or built before the model was re-created (`optimizer-stale-params`), D
# stepped with G's optimizer (`optimizer-wrong-network`), a layer frozen by accident (`frozen-by-accident`),
# clipping gradients a GradScaler still scales (`clip-scaled-grads`), NLLLoss on raw scores
# (`nll-without-log-softmax`), a softmax over the batch (`softmax-wrong-dim`), `log(softmax(x))`
# (`log-softmax-unstable`), `F.dropout` left on in eval (`dropout-active-in-eval`), class-sorted batches
# (`unshuffled-data`), labels shuffled apart from their inputs (`labels-misaligned`), an RNN fed the other
# layout (`rnn-batch-first-mismatch`), a loss term built from detached outputs (`loss-term-detached`),
# BatchNorm trained on batches of 1 or 2 (`batchnorm-small-batch`), a per-epoch schedule stepped every
# batch (`lr-schedule-collapse`). The first of them, before any training:

# %%
class Stacked(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(64, 32)
        self.hidden = [nn.Linear(32, 32) for _ in range(2)]  # bug: a plain list, not nn.ModuleList
        self.out = nn.Linear(32, 10)

    def forward(self, x):
        x = torch.relu(self.inp(x))
        for layer in self.hidden:
            x = torch.relu(layer(x))
        return self.out(x)


print(nbdebug.check(Stacked(), (xd[:64], yd[:64]), criterion).findings[0])

# %% [markdown]
# The train/validation curves also say what to do next. A wide MLP on 100 digits overfits: the validation
# loss rises while the training loss keeps falling. The advice (`info`, not an alarm) names the best epoch
# and how to regularize; the panel's **Train / val** tab marks that epoch.

# %%
few_dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xd[:100], yd[:100]), batch_size=20, shuffle=True)
wide = nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
adam = torch.optim.Adam(wide.parameters(), lr=1e-3)
with nbdebug.watch(wide, adam) as fit_run:
    for epoch in range(30):
        wide.train()
        for xb, yb in few_dl:
            adam.zero_grad()
            criterion(wide(xb), yb).backward()
            adam.step()
        wide.eval()
        with torch.no_grad():
            criterion(wide(xd[1000:]), yd[1000:])  # validation
print(f"best epoch {fit_run.best_epoch}")
print(next(f for f in fit_run.findings if f.code == "overfitting"))
