# %% [markdown]
# # 01 · Shape walkthrough: a conv denoising autoencoder, step by step
#
# A denoising autoencoder squeezes an image through strided convolutions and rebuilds it with
# transposed convolutions. Getting every `padding`, `stride` and `output_padding` right by hand is where
# hours go. `%nn_shapes` runs one forward pass and lets you step through it: each module **and** each
# functional op (`flatten`, `view`, `cat`, the `+` of a residual) with its shapes, the output-size
# arithmetic written out with the layer's own numbers, and the first feature maps of the real input.
#
# Data: scikit-learn's `load_digits` (1797 handwritten digits, 8x8, shipped with the package), upsampled
# to 28x28.

# %%
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

import nbdebug

torch.manual_seed(0)
%load_ext nbdebug

digits = load_digits()
images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (1797, 1, 8, 8) in [0, 1]
images = F.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False)
noisy = (images + 0.3 * torch.randn_like(images)).clamp(0, 1)
images.shape, noisy.shape

# %%
class DenoisingAutoencoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),   # 28 -> 14
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),  # 14 -> 7
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),  # 7 -> 14
            nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid(),  # 14 -> 28
        )

    def forward(self, x):
        return self.decoder(self.encoder(x))


model = DenoisingAutoencoder()
x = noisy[:8]

# %% [markdown]
# ## The stepper
#
# Prev / Next (or the slider) move through the steps; the current one is highlighted. Conv and transposed
# conv steps show their arithmetic, e.g. `H_out = floor((28 + 2*1 - 1*(3-1) - 1) / 2) + 1 = 14`, and the
# first channels of their output on the actual digits.

# %%
%nn_shapes model x

# %% [markdown]
# The same data without a widget: `nbdebug.trace` returns a `Trace`, which renders as a table anywhere
# (nbconvert, GitHub, a terminal) and converts to a DataFrame.

# %%
t = nbdebug.trace(model, x)
t.to_frame()[["name", "kind", "type", "input_shapes", "output_shapes", "params", "formula"]]

# %%
print(t["decoder.2"].formula)

# %% [markdown]
# ## Train it briefly, then look again
#
# A few epochs on the digits are enough for the feature maps to show strokes instead of noise.

# %%
opt = torch.optim.Adam(model.parameters(), lr=3e-3)
for epoch in range(3):
    for i in range(0, 1536, 64):
        opt.zero_grad()
        loss = F.mse_loss(model(noisy[i : i + 64]), images[i : i + 64])
        loss.backward()
        opt.step()
    print(f"epoch {epoch}: reconstruction MSE {loss.item():.4f}")

# %%
%nn_shapes model x

# %% [markdown]
# ## A broken variant: the panel opens on the failing layer
#
# This version adds a linear bottleneck whose `in_features` was computed for 32x32 inputs
# (32 channels x 8 x 8 = 2048), but our digits are 28x28, so the encoder produces 32 x 7 x 7 = 1568.
# The forward pass fails; the trace keeps every step before the failure and names the culprit.

# %%
class BottleneckAE(DenoisingAutoencoder):
    def __init__(self):
        super().__init__()
        self.to_code = nn.Linear(32 * 8 * 8, 64)   # wrong: assumes 32x32 inputs
        self.from_code = nn.Linear(64, 32 * 7 * 7)

    def forward(self, x):
        h = self.encoder(x)
        code = self.to_code(torch.flatten(h, 1))
        h = self.from_code(code).view(-1, 32, 7, 7)
        return self.decoder(h)


broken = BottleneckAE()
%nn_shapes broken x

# %%
bt = nbdebug.trace(broken, x)
print(bt.error)
assert bt.error.where == "to_code" and "1568" in bt.error.hint

# %% [markdown]
# Fix: `nn.Linear(32 * 7 * 7, 64)`. The model itself was never modified by nbdebug: no hooks left,
# same mode, same weights.

# %%
class FixedAE(BottleneckAE):
    def __init__(self):
        super().__init__()
        self.to_code = nn.Linear(32 * 7 * 7, 64)


nbdebug.trace(FixedAE(), x).ok

# %% [markdown]
# ## Too big to run? Walk through it on the meta device
#
# `device="meta"` (or `%nn_shapes model x --meta`) runs the forward pass on shape-only tensors: no
# arithmetic, no weights copied. A model built under `with torch.device("meta"):` is traced the same way,
# so a billion-parameter network's shapes can be stepped through on a laptop.

# %%
with torch.device("meta"):
    big = nn.Sequential(*[nn.Sequential(nn.Linear(8192, 8192), nn.GELU()) for _ in range(24)])
print(f"{sum(p.numel() for p in big.parameters()) / 1e9:.2f} billion parameters, none allocated")
nbdebug.trace(big, torch.randn(4, 8192)).to_frame().tail(3)
