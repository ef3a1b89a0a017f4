# %% [markdown]
# ## 5. Predictions vs labels, and filters: `%nn_preds`, `%nn_filters`
#
# Look at predictions next to the labels, and at their *frequencies*: is the network at least finding
# the mode of the labels, or only the mode? Under class imbalance the fix is a weighted loss (or focal
# loss), and nbdebug computes the weights. Below, "is this digit an 8?" with only 5% positives: plain
# cross-entropy learns to always answer "other".

# %%
from sklearn.datasets import load_digits

threads = torch.get_num_threads()
torch.set_num_threads(1)  # these models are tiny: one thread is fastest (restored at the end)

digits = load_digits()
pixels = torch.tensor(digits.data, dtype=torch.float32) / 16.0
g = torch.Generator().manual_seed(0)
eights = torch.nonzero(torch.tensor(digits.target) == 8).flatten()
keep = torch.cat([torch.nonzero(torch.tensor(digits.target) != 8).flatten(), eights[:85]])
keep = keep[torch.randperm(len(keep), generator=g)]
x8, y8 = pixels[keep], (torch.tensor(digits.target)[keep] == 8).long()


def train_mlp(loss_fn, epochs=10):
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.SGD(mlp.parameters(), lr=0.05)
    for epoch in range(epochs):
        order = torch.randperm(1200, generator=torch.Generator().manual_seed(epoch))
        for i in range(0, 1200, 32):
            idx = order[i : i + 32]
            opt.zero_grad()
            loss_fn(mlp(x8[idx]), y8[idx]).backward()
            opt.step()
    return mlp


plain = train_mlp(nn.CrossEntropyLoss())
report = nbdebug.predictions(plain, (x8[1200:], y8[1200:]), classes=["other", "8"], image_shape=(8, 8))
report

# %% [markdown]
# `predicts-mode` names the collapse onto "other" and `class-imbalance` its cause, with the class weights;
# retrained with them the network finds the 8s.
# `%nn_preds` shows the same report as a panel that browses the examples (input, top-k bars, label).

# %%
weights = torch.tensor(nbdebug.predictions(plain, (x8[:1200], y8[:1200])).class_weights)
fixed = train_mlp(nn.CrossEntropyLoss(weight=weights))
%nn_preds fixed (x8[1200:],y8[1200:]) --classes ["other","8"] --image-shape 8,8

# %% [markdown]
# `%nn_filters model [layer]` shows a conv layer's filters (RGB for 3 input channels, else one channel
# at a time) with a layer dropdown, and with `--data` the layer's feature maps for one example.

# %%
cnn = nn.Sequential(nn.Conv2d(1, 8, 5, padding=2), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 64, 10))
%nn_filters cnn --data pixels.view(-1,1,8,8)
torch.set_num_threads(threads)
