# %% [markdown]
# ## Finally: a healthy run, and nothing to report
#
# The same digits, a small CNN, `zero_grad()` in its place, a sensible learning rate. A healthy run must
# produce no finding of severity warning or error: silence is a result too.

# %%
x_img = xd.view(-1, 1, 8, 8)
train_dl = torch.utils.data.DataLoader(
    torch.utils.data.TensorDataset(x_img[:1400], yd[:1400]), batch_size=64, shuffle=True
)
healthy = nn.Sequential(
    nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(16 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10),
)
opt = torch.optim.Adam(healthy.parameters(), lr=1e-3)
criterion = nn.CrossEntropyLoss()

with nbdebug.watch(healthy, opt) as w:
    for epoch in range(5):
        for xb, yb in train_dl:
            opt.zero_grad()
            loss = criterion(healthy(xb), yb)
            loss.backward()
            opt.step()

with torch.no_grad():
    accuracy = (healthy(x_img[1400:]).argmax(1) == yd[1400:]).float().mean().item()
serious = [f for f in w.findings if f.severity in ("error", "warning")]
print(f"held-out accuracy {accuracy:.1%}; warnings or errors: {len(serious)}")
assert not serious, serious
w.epochs.round(3)

# %% [markdown]
# ## What to open next
#
# | notebook | what it shows |
# | --- | --- |
# | `01_shape_walkthrough.ipynb` | a conv denoising autoencoder on digits, step by step; a broken variant pinpointed; the meta device |
# | `02_memory.ipynb` | where the memory goes: the Adam 4x rule, leaks, per-layer activation memory, a batch-size forecast |
# | `03_sanity_checks.ipynb` | overfit 20 examples, the initial loss, gradient checks, each with a broken model |
# | `04_watch_training.ipynb` | a live training monitor naming a missing `zero_grad()`, softmax before cross-entropy, eval mode |
# | `05_predictions_and_filters.ipynb` | top-k vs label frequencies, class imbalance and focal loss, filters before and after training |
# | `06_gan_debugging.ipynb` | a GAN whose discriminator collapses, and the missing `zero_grad()` behind it |
# | `07_search.ipynb` | random search on log scales, a range that is too narrow, failed trials |
#
# In your own notebook: `%load_ext nbdebug`, then `%nn_shapes?`, `%nn_mem?`, `%nn_check?`,
# `%nn_overfit?`, `%%nn_watch?`, `%nn_preds?`, `%nn_filters?`, `%%nn_gan?`, `%nn_search?` for the options.
