# %% [markdown]
# # 06 · GAN debugging: the discriminator that won in two steps
#
# A practitioner's notebook of a real GAN session reads: *"my discriminator loss would
# immediately collapse down to 0"*. Soft targets (0.7-1.2 for real, 0-0.3 for fake) only hid the
# collapse; the Sigmoid + `BCELoss` was swapped for `BCEWithLogitsLoss`; and after hours the cause
# turned out to be *"I just forgot to zero out gradients on the generator's optimizer"*.
#
# This notebook replays that story on scikit-learn's 8x8 digits with a small DCGAN-style pair, under
# `%%nn_gan`: the live dashboard shows D and G losses, D(x) and D(G(z)), gradient norms, update ratios,
# the diversity of G's samples and a grid of samples from a fixed noise batch, and it names the missing
# `zero_grad()` within two steps. Everything runs on CPU in seconds.

# %%
import torch
from sklearn.datasets import load_digits
from torch import nn

import nbdebug

torch.set_num_threads(1)  # tiny models: one thread is the fastest on a shared CPU
%load_ext nbdebug

pixels = torch.tensor(load_digits().data, dtype=torch.float32)
real_images = (pixels / 8 - 1).reshape(-1, 1, 8, 8)  # (1797, 1, 8, 8) in [-1, 1], like a tanh output
NZ, BATCH = 16, 64


def make_gan(seed=0, sigmoid=True):
    """A DCGAN-style generator (project + 2 transposed convs) and discriminator (2 strided convs)."""
    torch.manual_seed(seed)
    G = nn.Sequential(
        nn.Linear(NZ, 64 * 2 * 2), nn.Unflatten(1, (64, 2, 2)), nn.BatchNorm2d(64), nn.ReLU(),
        nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.BatchNorm2d(32), nn.ReLU(),   # 2 -> 4
        nn.ConvTranspose2d(32, 1, 4, 2, 1), nn.Tanh(),                        # 4 -> 8
    )
    D = nn.Sequential(
        nn.Conv2d(1, 32, 4, 2, 1), nn.LeakyReLU(0.2),                         # 8 -> 4
        nn.Conv2d(32, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.LeakyReLU(0.2),    # 4 -> 2
        nn.Flatten(), nn.Linear(64 * 2 * 2, 1), *([nn.Sigmoid()] if sigmoid else []),
    )
    adam = lambda m: torch.optim.Adam(m.parameters(), lr=2e-4, betas=(0.5, 0.999))  # noqa: E731
    return D, G, adam(D), adam(G)


def batches(steps, seed=0):
    g = torch.Generator().manual_seed(seed)
    done = 0
    while done < steps:
        for idx in torch.randperm(len(real_images), generator=g).split(BATCH):
            if len(idx) == BATCH and done < steps:
                done += 1
                yield real_images[idx]


netD, netG, optD, optG = make_gan(sigmoid=True)

# %% [markdown]
# ## The broken loop
#
# The loop of the notes: D ends in a Sigmoid and is trained with `BCELoss`, D's optimizer is zeroed,
# the generator's is not. `%%nn_gan netD netG optD optG` watches it without changing a line of it.

# %%
%%nn_gan netD netG optD optG -o
criterion = nn.BCELoss()
ones, zeros = torch.ones(BATCH, 1), torch.zeros(BATCH, 1)
for real in batches(150):
    optD.zero_grad()
    fake = netG(torch.randn(BATCH, NZ))
    errD = criterion(netD(real), ones) + criterion(netD(fake.detach()), zeros)
    errD.backward()
    optD.step()
    # optG.zero_grad()   <- forgotten
    errG = criterion(netD(fake), ones)
    errG.backward()
    optG.step()

# %% [markdown]
# The dashboard named the cause first: `grad-not-zeroed` on `optG`, from G's **second** step: every G
# update is the running sum of all its past gradients. D's `.grad` is filled by G's backward too (that
# is how autograd works), but `optD.zero_grad()` clears it before D's step, so nbdebug does not report
# it. About a hundred steps later G has overshot and D separates real from fake outright: D(x) near 1,
# D(G(z)) near 0, `gan-d-collapse`, whose first-ranked hint points back at the missing `zero_grad()`.
# `sigmoid-bceloss` is advice (severity info), not the bug.

# %%
broken = _
found = {f.code: f for f in broken.findings}
print(found["grad-not-zeroed"])
print(found["gan-d-collapse"])
print("first seen at G step:", {code: broken.found_at(code) for code in found})
assert found["grad-not-zeroed"].where == "optG" and broken.found_at("grad-not-zeroed") <= 2
assert found["gan-d-collapse"].evidence["hints"][0].startswith("the generator's optimizer is never zeroed")
assert found["sigmoid-bceloss"].severity == "info"
broken.history[["step", "d_loss", "g_loss", "d_real", "d_fake", "g_grad_norm"]].iloc[[0, 1, 49, 99, 149]]

# %% [markdown]
# The sample grid, from the same fixed noise batch at each refresh: early digit-like blobs, then the
# generator overshoots.

# %%
from nbdebug.monitor.gan_plot import frames_figure

frames_figure(broken)

# %% [markdown]
# ## The fix, and the healthy run
#
# One line fixes the bug: `optG.zero_grad()` before G's backward. We also take the advice and let D
# return logits for `BCEWithLogitsLoss`. Same seed, same data, 200 steps.

# %%
netD, netG, optD, optG = make_gan(sigmoid=False)

# %%
%%nn_gan netD netG optD optG -o
criterion = nn.BCEWithLogitsLoss()
ones, zeros = torch.ones(BATCH, 1), torch.zeros(BATCH, 1)
for real in batches(200):
    optD.zero_grad()
    fake = netG(torch.randn(BATCH, NZ))
    errD = criterion(netD(real), ones) + criterion(netD(fake.detach()), zeros)
    errD.backward()
    optD.step()
    optG.zero_grad()
    errG = criterion(netD(fake), ones)
    errG.backward()
    optG.step()

# %%
healthy = _
print(healthy.summary())
assert [f for f in healthy.findings if f.severity != "info"] == [], healthy.findings
h = healthy.history
print(f"D(x) {h['d_real'].iloc[-20:].mean():.2f}, D(G(z)) {h['d_fake'].iloc[-20:].mean():.2f}, "
      f"diversity {h['diversity'].dropna().iloc[-1]:.0%} of the real digits'")
frames_figure(healthy)
