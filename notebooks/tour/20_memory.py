# %% [markdown]
# ## 2. Which tensors hold the memory: `%nn_mem`
#
# Every tensor by the name that reaches it (`model.0.weight`, `opt.state[0.weight].exp_avg`,
# `batch['image']`), with its role, and totals that count each storage once. A model + Adam shows the 4x
# rule: parameters, gradients and Adam's two moments. `nbdebug.memory.step` measures what one training
# step adds per layer and forecasts the peak as a function of batch size (fit on the meta device).
# (Full walkthrough: `02_memory.ipynb`.)

# %%
mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
adam = torch.optim.Adam(mlp.parameters())
xb, yb = digits_x[:32], digits_y[:32]
nn.functional.cross_entropy(mlp(xb), yb).backward()
adam.step()
%nn_mem mlp adam

# %%
mem = nbdebug.memory(mlp, adam)
print(mem.by_role())
losses = [nn.functional.cross_entropy(mlp(xb), yb) for _ in range(3)]  # a leak: graphs kept alive
print("\n".join(map(str, nbdebug.memory(losses).findings)))

# %%
nbdebug.memory.step(mlp, (xb, yb), nn.CrossEntropyLoss(), optimizer=adam, budget="12GB")
