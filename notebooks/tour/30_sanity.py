# %% [markdown]
# ## 3. Sanity checks before training: `%nn_check`, `%nn_overfit`, `%nn_gradcheck`
#
# Three checks from the CS231n notes, each one command that answers with findings: **overfit a tiny
# subset** (`%nn_overfit`), **check the initial loss** and the rest of one forward/backward pass
# (`%nn_check`), and **check the gradients** numerically (`%nn_gradcheck`). None of them changes the
# model: weights, optimizer state, mode and RNG come back as they were. The full walkthrough, with a
# broken model per lesson, is `notebooks/03_sanity_checks.ipynb`.

# %%
from sklearn.datasets import load_digits

torch.set_num_threads(1)  # 8x8 images: one thread is fastest
digits = load_digits()
x_digits = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1)
x_digits = (x_digits - x_digits.mean()) / x_digits.std()
y_digits = torch.tensor(digits.target)
cnn = nn.Sequential(
    nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Dropout(0.3), nn.Linear(64, 10),
)

# %% [markdown]
# Overfit 20 digits (2 per class) with dropout off: the live panel shows the loss per epoch, a log-scale
# toggle, the accuracy, a Stop button, and the verdict.

# %%
%nn_overfit cnn (x_digits, y_digits) nn.CrossEntropyLoss() -n 20

# %% [markdown]
# The initial loss should read ln(10) = 2.303 for 10 classes. A `Softmax` left in front of
# `CrossEntropyLoss` hides behind a correct-looking loss; the check reads the outputs and names it.

# %%
%nn_check cnn (x_digits[:128], y_digits[:128]) nn.CrossEntropyLoss()

# %%
nbdebug.check(nn.Sequential(cnn, nn.Softmax(dim=1)), (x_digits[:128], y_digits[:128]), nn.CrossEntropyLoss())

# %% [markdown]
# A custom `autograd.Function` with a wrong backward fails the numerical gradient check.

# %%
class Cube(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t):
        ctx.save_for_backward(t)
        return t**3

    @staticmethod
    def backward(ctx, grad):
        (t,) = ctx.saved_tensors
        return grad * 2 * t**2  # wrong: d(t^3)/dt = 3 t^2


%nn_gradcheck Cube torch.randn(8, 4)
