# %% [markdown]
# ## 1. Shapes, layer by layer: `%nn_shapes`
#
# Step through a forward pass one module or functional op at a time, with the conv / transposed-conv
# arithmetic written out. When the forward pass fails, the panel opens on the failing layer with a hint.
# (Full walkthrough: `01_shape_walkthrough.ipynb`.)

# %%
class DenoisingAutoencoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),
                                     nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU())
        self.decoder = nn.Sequential(nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
                                     nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid())

    def forward(self, x):
        return self.decoder(self.encoder(x))


ae = DenoisingAutoencoder()
x = digits28[:8]  # eight real digits, 28x28
%nn_shapes ae x

# %%
class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 64, 3)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(64 * 14 * 14, 10)  # bug: the conv without padding gives 26 -> 13, not 14

    def forward(self, x):
        x = self.pool(torch.relu(self.conv(x)))
        return self.fc(torch.flatten(x, 1))


%nn_shapes Classifier() x

# %%
print(nbdebug.trace(Classifier(), x).error)
