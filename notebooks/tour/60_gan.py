# %% [markdown]
# ## 6. GAN debugging: `%%nn_gan` / `nbdebug.watch_gan`
#
# Wrap your own GAN loop: the live dashboard shows D and G loss, D(x) and D(G(z)) as probabilities,
# gradient norms, update ratios, the diversity of G's samples and a grid of G's samples from a fixed
# noise batch. Here a tiny GAN on a ring of 8 Gaussians (so it trains in seconds; `06_gan_debugging.ipynb`
# does the same on the digits) with a classic bug: the generator's
# optimizer is never zeroed. nbdebug names it on G's second step.

# %%
def ring(n=1024, modes=8):
    k = torch.randint(0, modes, (n,))
    angle = 2 * torch.pi * k / modes
    return 2 * torch.stack([angle.cos(), angle.sin()], 1) + 0.05 * torch.randn(n, 2)


points = ring()
netD = nn.Sequential(nn.Linear(2, 64), nn.LeakyReLU(0.2), nn.Linear(64, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1))
netG = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
optD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
optG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
bce = nn.BCEWithLogitsLoss()

# %%
%%nn_gan netD netG optD optG --samples-every 20 -o
for step in range(200):
    real = points[torch.randint(0, len(points), (64,))]
    optD.zero_grad()
    fake = netG(torch.randn(64, 8))
    errD = bce(netD(real), torch.ones(64, 1)) + bce(netD(fake.detach()), torch.zeros(64, 1))
    errD.backward()
    optD.step()
    # optG.zero_grad()  <- forgotten
    errG = bce(netD(fake), torch.ones(64, 1))
    errG.backward()
    optG.step()

# %%
gan = _
print(next(f for f in gan.findings if f.code == "grad-not-zeroed"))
gan.history[["step", "d_loss", "g_loss", "d_real", "d_fake", "g_grad_norm", "diversity"]].dropna().tail(3)
