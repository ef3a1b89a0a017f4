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

torch.manual_seed(0)
%load_ext nbdebug
