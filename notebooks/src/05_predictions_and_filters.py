# %% [markdown]
# # Predictions vs labels, and layer filters
#
# Two habits from CS231n and stats.stackexchange.com/q/352036, on real data (scikit-learn's 8x8 handwritten digits, on CPU, in
# seconds):
#
# 1. **Look at the filters.** Trained first-layer filters are smooth and structured; an untrained (or
#    badly trained) layer is noise. `nbdebug.filters` shows them and measures it: *smoothness* is the
#    correlation between neighbouring kernel weights, ~0 for random initialization.
# 2. **Look at predictions next to labels, and at their frequencies.** Is the network at least finding
#    the mode of the label distribution? Is it *only* finding the mode? And the top-5: the output
#    distribution keeps shifting while the argmax stays the same.
# 3. **Under class imbalance, weight the loss** (or use focal loss), or the network learns the mode.

# %%
import torch
from torch import nn
from sklearn.datasets import load_digits

import nbdebug
from nbdebug import TopkTracker

%load_ext nbdebug
torch.manual_seed(0)
torch.set_num_threads(1)  # models this small run fastest on one thread (no thread hand-off per op)

digits = load_digits()
x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1)  # (1797, 1, 8, 8)
x = (x - x.mean()) / x.std()
y = torch.tensor(digits.target)
names = [str(d) for d in digits.target_names]
perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
x_train, y_train = x[perm[:1300]], y[perm[:1300]]
x_test, y_test = x[perm[1300:]], y[perm[1300:]]
x_train.shape, x_test.shape

# %% [markdown]
# ## Filters before training
#
# A small CNN with 5x5 filters in the first layer. Before training, the filters are random noise:

# %%
def make_cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 2 * 2, 10),
    )

model = make_cnn()
untrained = nbdebug.filters(model)
untrained

# %% [markdown]
# ## Train, recording the output distribution per epoch
#
# `TopkTracker` is the data hook for the output distribution over training: feed it each batch's logits
# and labels, close each epoch, and its `history` holds the argmax accuracy, the mean probability of the
# true class, and the mean sorted top-5 probabilities.

# %%
tracker = TopkTracker(k=5)
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
g = torch.Generator().manual_seed(1)
for epoch in range(8):
    order = torch.randperm(len(x_train), generator=g)
    for i in range(0, len(x_train), 64):
        idx = order[i : i + 64]
        out = model(x_train[idx])
        loss = nn.functional.cross_entropy(out, y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        tracker.update(out, y_train[idx])
    tracker.end_epoch()
tracker.history.round(3)

# %% [markdown]
# Accuracy saturates within a few epochs while the probability of the true class keeps climbing: the
# argmax hides that the distribution is still sharpening.
#
# ## Filters after training
#
# The same layer after training: the filters have become smooth strokes and blobs, and the smoothness
# figure says so. The panel's layer dropdown lists every conv layer with its shape; with `--data` it also
# shows the layer's feature maps for one example.

# %%
trained = nbdebug.filters(model)
before = untrained.to_frame()["smoothness"].mean()
after = trained.to_frame()["smoothness"].mean()
print(f"mean filter smoothness: untrained {before:.2f}, trained {after:.2f}")
assert after > before + 0.15
%nn_filters model 0 --data (x_test,y_test) --example 0

# %% [markdown]
# ## Predictions vs labels
#
# `nbdebug.predictions` runs the model in eval mode under `no_grad` (its mode is restored) and returns a
# report: per-example top-k, per-class label vs predicted frequency, the mean predicted probability (the
# soft distribution), a confusion matrix and findings. The panel browses the examples: the input, its
# top-5 bars and its true label; filter to mistakes or one class, sort by loss or confidence.

# %%
report = nbdebug.predictions(model, (x_test, y_test), classes=names)
report

# %%
report.frequencies.round(3)

# %%
report.topk.sort_values("loss", ascending=False).head().round(3)

# %%
%nn_preds model (x_test,y_test) --classes names --history tracker

# %% [markdown]
# ## A 95/5 dataset: the network learns the mode
#
# "Is this digit an 8?", with most of the 8s dropped so that only 5% of the labels are positive. A small
# MLP trained with plain cross-entropy scores 95% accuracy, exactly what always answering "other" scores,
# and never predicts an 8. `nbdebug.predictions` names it (`predicts-mode`: the majority takes every
# prediction; `class-imbalance`: the skew that caused it) and computes the class weights.

# %%
flat = torch.tensor(digits.data, dtype=torch.float32) / 16.0
labels = torch.tensor(digits.target)
g = torch.Generator().manual_seed(0)
eights = torch.nonzero(labels == 8).flatten()
keep = torch.cat([torch.nonzero(labels != 8).flatten(), eights[torch.randperm(len(eights), generator=g)[:85]]])
keep = keep[torch.randperm(len(keep), generator=g)]
xb, yb = flat[keep], (labels[keep] == 8).long()
xb_train, yb_train, xb_test, yb_test = xb[:1200], yb[:1200], xb[1200:], yb[1200:]
print(f"{len(xb)} examples, {yb.float().mean():.1%} are 8s")

def train_mlp(loss_fn, epochs=10):
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.SGD(mlp.parameters(), lr=0.05)
    for epoch in range(epochs):
        order = torch.randperm(len(xb_train), generator=torch.Generator().manual_seed(epoch))
        for i in range(0, len(xb_train), 32):
            idx = order[i : i + 32]
            opt.zero_grad()
            loss_fn(mlp(xb_train[idx]), yb_train[idx]).backward()
            opt.step()
    return mlp

plain = train_mlp(nn.CrossEntropyLoss())
plain_report = nbdebug.predictions(plain, (xb_test, yb_test), classes=["other", "8"], image_shape=(8, 8))
plain_report

# %% [markdown]
# The finding's hint carries balanced class weights `N / (C * count)`, ready to paste. Compute them
# from the *training* labels, retrain with the weighted loss (and, for comparison, with
# `nbdebug.FocalLoss`, which down-weights the easy majority examples), and compare the recall of the rare
# class on the test set:

# %%
class_weights = nbdebug.predictions(plain, (xb_train, yb_train)).class_weights
print("class weights from the training labels:", class_weights)
weights = torch.tensor(class_weights)
weighted = train_mlp(nn.CrossEntropyLoss(weight=weights))
focal = train_mlp(nbdebug.FocalLoss(gamma=2.0, alpha=weights))

import pandas as pd

rows = {}
for name, m in [("cross-entropy", plain), ("weighted cross-entropy", weighted), ("focal loss", focal)]:
    r = nbdebug.predictions(m, (xb_test, yb_test), classes=["other", "8"])
    rows[name] = {"accuracy": r.accuracy, "recall of 8": r.frequencies["recall"][1],
                  "predicted 8s": r.frequencies["pred_freq"][1], "findings": "; ".join(f"{f.severity} {f.code}" for f in r.findings)}
comparison = pd.DataFrame(rows).T.infer_objects().round(3)
assert comparison.loc["weighted cross-entropy", "recall of 8"] > comparison.loc["cross-entropy", "recall of 8"] + 0.5
comparison

# %% [markdown]
# Accuracy drops a little (the baseline of always answering "other" was 95%), but the network now finds
# the 8s: the collapse onto the mode is fixed. The class-imbalance finding remains as *info*: the data is
# still skewed, the model now copes with it.
#
# The same checks as magics: `%nn_preds model data` and `%nn_filters model [layer]`; `%nn_preds?` lists
# every option. Bad input is named: a dict output asks for `--scores`, labels beyond the output layer are
# listed, a missing layer name lists the valid conv layers.
