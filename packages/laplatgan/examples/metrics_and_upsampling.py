"""Point-cloud metrics on analytic shapes, and a pyramid that upsamples a given cloud (seconds on a CPU).

1. exact ground truth: clouds of random mugs, their sharp edges, a ray hitting one;
2. metrics: Chamfer, exact and certified-auction EMD, MMD/COV/1-NNA/JSD of two sets;
3. a tiny LaplatGAN (levels 32 -> 64 -> 128) trained for a few steps, upsampling a 32-point cloud.
"""

import os

import torch

os.environ.setdefault("PAPERCORE_PROGRESS", "0")
torch.set_num_threads(1)

from laplatgan import LaplatGAN, LaplatGANConfig, LaplatTrainConfig, fit, synthetic  # noqa: E402
from papercore.geometry import (  # noqa: E402
    distance_to_edges,
    emd_auction,
    emd_exact,
    evaluate,
    random_shape,
    sample_edges,
    sample_shapes,
)

# 1. an analytic mug: surface samples, edge samples, a ray
g = torch.Generator().manual_seed(0)
mug = random_shape("mug", g)
points, normals = mug.sample(2048, g, normals=True)
edge_points = sample_edges(mug.edges(), 256, g)
print(
    f"mug: {len(mug.edges())} sharp curves, edge samples within {distance_to_edges(edge_points, mug.edges()).max():.1e} of them"
)
hit = mug.intersect(torch.tensor([[3.0, 0.0, 0.3]]), torch.tensor([[-1.0, 0.0, 0.0]]))
print(f"a ray from x = 3 hits the mug at t = {hit.t.item():.4f}, normal {hit.normals[0].numpy().round(3)}")

# 2. metrics between two sets of clouds of one class
a, b = sample_shapes("mug", 12, 256, seed=1), sample_shapes("mug", 12, 256, seed=2)
exact = emd_exact(a[:4], b[:4])
auction = emd_auction(a[:4], b[:4], tol=0.01)
print(
    f"EMD exact {exact.numpy().round(4)}, auction {auction.value.numpy().round(4)} (certified gap <= {auction.certified_gap.max():.3%})"
)
print(
    "set metrics:",
    {k: round(v, 4) for k, v in evaluate(a, b, ["mmd-cd", "cov-cd", "1nna-cd", "jsd"]).items()},
)

# 3. a tiny pyramid, then upsampling a given 32-point cloud
cfg = LaplatGANConfig(levels=(32, 64, 128), encoder=(16, 32), bottleneck=16, decoder=(64,), z_dim=8,
                      gen_hidden=(16,), critic_hidden=(32, 32))  # fmt: skip
data = synthetic("mug", n_train=16, n_val=4, n_test=4, points=128, seed=0)
model = fit(
    data,
    cfg,
    LaplatTrainConfig(steps=5, ae_steps=5, batch_size=8, eval_every=0, checkpoint_every=0),
    plot=False,
)
up = model.upsample(data.test[0, :32], seed=0)
print({n: tuple(x.shape) for n, x in up.items()})
assert isinstance(model, LaplatGAN) and up[128].shape == (128, 3)
