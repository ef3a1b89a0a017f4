# %% [markdown]
# # 07 · Hyperparameter random search on a log scale
#
# CS231n's notes (after Bergstra & Bengio 2012) give three rules for tuning:
#
# - **prefer random search to grid search**: when only a few hyperparameters matter, a grid spends
#   most of its trials re-testing the same few values of the ones that do;
# - **search on a log scale**: a learning rate of 1e-4 and 1e-3 differ as much as 1e-2 and 1e-1;
# - **one validation set of respectable size** instead of cross-validation.
#
# `nbdebug.search(train_fn, space, trials, seed)` (and `%nn_search`) does exactly that, records a
# trial that raises or diverges as *failed* and goes on, and then tells you what the search itself
# says: a best value at the edge of its range, a parameter the score does not depend on, too few
# trials, failures clustered at one end of a range.
#
# Data: scikit-learn's `load_digits` (1797 8x8 digits): 1200 for training, 597 for validation.

# %%
import math

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

import nbdebug

torch.manual_seed(0)
torch.set_num_threads(1)  # a tiny MLP: one thread is fastest and keeps trials comparable
%load_ext nbdebug

digits = load_digits()
X = torch.tensor(digits.data, dtype=torch.float32)
X = (X - X.mean(0)) / (X.std(0) + 1e-3)  # zero mean, unit variance per pixel
y = torch.tensor(digits.target)
perm = torch.randperm(len(X), generator=torch.Generator().manual_seed(0))
train_idx, val_idx = perm[:1200], perm[1200:]
X.shape, len(train_idx), len(val_idx)

# %% [markdown]
# ## The training function
#
# `train_fn(**params)` is your own code: build a model, train it for a few epochs, return the validation
# score, or a dict of metrics. nbdebug seeds torch before each trial, so a trial can be replayed exactly.

# %%
def train(lr, weight_decay, hidden, epochs=3):
    model = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    for _ in range(epochs):
        for batch in train_idx[torch.randperm(len(train_idx))].split(64):
            opt.zero_grad()
            F.cross_entropy(model(X[batch]), y[batch]).backward()
            opt.step()
    with torch.no_grad():
        logits = model(X[val_idx])
    return {
        "val_acc": (logits.argmax(1) == y[val_idx]).float().mean().item(),
        "val_loss": F.cross_entropy(logits, y[val_idx]).item(),
    }


space = {
    "lr": nbdebug.loguniform(1e-4, 10),
    "weight_decay": nbdebug.loguniform(1e-6, 1e-1),
    "hidden": nbdebug.intlog(8, 128),
}

# %% [markdown]
# ## The live panel
#
# While trials run: the table of trials (best first, failed rows in red with their error), the score
# against each parameter on log axes with the best trial starred and the range bounds dashed, a progress
# bar and a Stop button. Here the search runs in the cell, so interrupting the kernel stops it and keeps the
# finished trials; `--background` runs it in a thread and makes the Stop button live.
#
# SGD with momentum diverges at large learning rates: those trials return a NaN loss and are recorded as
# failed, and the findings say where in the range they sit.

# %%
result = %nn_search train space -n 40 -o

# %%
print(result.summary())
for f in result.findings:
    print(f)
failed = result.to_frame().query("status == 'failed'")
assert len(failed) > 0 and (failed.lr > 1).all()
assert any(f.code == "search-trials-failed" and f.where == "lr" for f in result.findings)
assert result.best.score > 0.9

# %% [markdown]
# ## The result: a DataFrame, the best trial, reproducibility
#
# `to_frame()` has one row per trial: the parameters, the score, the other metrics, status, error, time and
# the seed the trial ran under. The same seed gives the same draws (and, because each trial is seeded,
# the same scores); the first k draws do not depend on the number of trials.

# %%
frame = result.to_frame()
frame.sort_values("score", ascending=False).head(8)

# %%
best = result.best
print("best", best.index, best.params, f"val_acc={best.score:.4f}")
again = nbdebug.search(train, space, trials=5, seed=0)
same = ["lr", "weight_decay", "hidden", "score", "val_loss", "status", "seed"]
assert again.to_frame()[same].equals(frame.head(5)[same])
assert result.replay(best.index)["val_acc"] == best.score
print("same seed -> same draws and same scores; replay(best) reproduces", best.score)

# %% [markdown]
# ## A range that is too narrow
#
# Searching the learning rate only up to 1e-2 puts the best trial at the top of the range: the optimum
# may lie beyond it. The finding says so with the position on the log scale and suggests a wider range.

# %%
def train_lr(lr):
    return train(lr, weight_decay=1e-4, hidden=64)["val_acc"]


narrow = {"lr": nbdebug.loguniform(1e-4, 1e-2)}
narrow_result = %nn_search train_lr narrow -n 15 --table -o
narrow_result

# %%
edge = next(f for f in narrow_result.findings if f.code == "search-edge-of-range")
print(edge)
wider = {"lr": eval(edge.evidence["suggested"], vars(nbdebug))}
print("searching", wider)
wide_result = nbdebug.search(train_lr, wider, trials=15)
print(wide_result.summary())
assert not any(f.code == "search-edge-of-range" for f in wide_result.findings)
assert wide_result.best.score > narrow_result.best.score

# %% [markdown]
# ## Score against each parameter
#
# The same figure the panel shows, as a plain matplotlib figure (`ax=` per parameter with `param_axes`).

# %%
from nbdebug.search.plot import search_figure

search_figure(result)

# %% [markdown]
# What next: watch the best configuration train with `%%nn_watch`, and check it can overfit 20 examples
# with `%nn_overfit` before spending more trials.
