# %% [markdown]
# ## 7. Hyperparameter random search on a log scale: `%nn_search`
#
# Random search beats grid search when only a few hyperparameters matter, and learning rates and weight
# decay belong on a log scale (CS231n, after Bergstra & Bengio 2012). `train_fn(**params)`
# is your own training code returning a validation score; the panel shows the trials live (table, score vs
# each parameter on log axes with the best starred, progress, Stop), records diverged trials as failed,
# and ends with findings about the search itself: a best value at the edge of its range, a parameter the
# score does not depend on, too few trials, failures at one end of a range.
# (Full walkthrough: `07_search.ipynb`.)

# %%
import torch.nn.functional as F
from sklearn.datasets import load_digits

torch.set_num_threads(1)  # tiny MLP trials: one thread is fastest
_digits = load_digits()
dx = torch.tensor(_digits.data, dtype=torch.float32)
dx = (dx - dx.mean(0)) / (dx.std(0) + 1e-3)
dy = torch.tensor(_digits.target)


def train_digits(lr, weight_decay, hidden):
    """Two epochs of an MLP on 1200 digits with SGD + momentum; validation accuracy on the other 597."""
    model = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    for _ in range(2):
        for idx in torch.randperm(1200).split(64):
            opt.zero_grad()
            F.cross_entropy(model(dx[idx]), dy[idx]).backward()
            opt.step()
    with torch.no_grad():
        logits = model(dx[1200:])
    return {"val_acc": (logits.argmax(1) == dy[1200:]).float().mean().item(),
            "val_loss": F.cross_entropy(logits, dy[1200:]).item()}


space = {"lr": nbdebug.loguniform(1e-4, 10), "weight_decay": nbdebug.loguniform(1e-6, 1e-1),
         "hidden": nbdebug.intlog(8, 128)}
search_result = %nn_search train_digits space -n 30 -o

# %%
print(search_result.summary())
search_result.to_frame().sort_values("score", ascending=False).head(5)
