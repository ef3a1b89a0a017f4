# %% [markdown]
# # A tour of nbdebug
#
# Jupyter-native debugging tools for PyTorch. Every section below runs on small synthetic data or on
# scikit-learn's `load_digits` (8x8 handwritten digits that ship with the package), on CPU, in seconds.
# Each magic has a plain Python API underneath that returns data; both are shown.

# %%
import torch
from torch import nn
import nbdebug

from sklearn.datasets import load_digits

torch.manual_seed(0)
%load_ext nbdebug

# real data that ships with scikit-learn: 1797 handwritten digits, 8x8, used throughout the tour
digits = load_digits()
digits_x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (1797, 1, 8, 8) in [0, 1]
digits_y = torch.tensor(digits.target)
digits28 = nn.functional.interpolate(digits_x, size=(28, 28), mode="bilinear")  # upsampled for the conv nets
