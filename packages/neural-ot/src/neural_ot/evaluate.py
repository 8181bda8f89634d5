r"""How well a map transfers classes, and how close its images are to the target.

* :class:`Classifier`: a small network trained on the **target domain** (domain B) with all its
  labels; it judges transported images. Its penultimate layer is the feature net of FD-features.
* :func:`transfer_accuracy`: :math:`\frac{1}{n}\sum_i \frac{1}{S}\sum_s [\,h(T(x_i, z_s)) = \sigma(\ell_i)\,]`,
  the accuracy **averaged over S noise draws per source point** (for a deterministic map S = 1).
* :func:`plan_accuracy`: the same for a discrete plan π (POT ``emd``): the plan's mass sent to the right
  class, :math:`\sum_{ij} \pi_{ij} [h(y_j) = \sigma(\ell_i)]`.
* :func:`papercore.ot.metrics.frechet_distance` on pixels (**FD-pixel**) or in the classifier's
  features (**FD-classifier-features**). Neither is FID: no Inception network is involved.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["Classifier", "emd_plan", "fd_pixel", "fd_features", "plan_accuracy", "train_classifier",
           "transfer_accuracy"]  # fmt: skip


class Classifier(nn.Module):
    """MLP (or, for images of side >= 16, a small CNN) classifier; ``features(x)`` is its penultimate layer."""

    def __init__(self, dim: int, classes: int, image_shape=None, width: int = 256):
        super().__init__()
        self.image_shape = tuple(image_shape) if image_shape else None
        if self.image_shape and self.image_shape[1] >= 16:
            c, h, w = self.image_shape
            self.body = nn.Sequential(
                nn.Unflatten(1, self.image_shape), nn.Conv2d(c, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                nn.Linear(64 * (h // 4) * (w // 4), width), nn.ReLU(),
            )  # fmt: skip
        else:
            self.body = nn.Sequential(nn.Linear(dim, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU())
        self.head = nn.Linear(width, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    @torch.no_grad()
    def predict(self, x, batch: int = 4096) -> np.ndarray:
        t = torch.as_tensor(np.asarray(x, dtype=np.float32)) if not isinstance(x, torch.Tensor) else x.float()
        dev = next(self.parameters()).device
        self.eval()
        return torch.cat([self(c.to(dev)).argmax(1).cpu() for c in t.split(batch)]).numpy()


def train_classifier(x, labels, image_shape=None, steps: int = 600, batch: int = 128, lr: float = 1e-3,
                     seed: int = 0, device="cpu", noise: float = 0.1) -> Classifier:  # fmt: skip
    """Train a :class:`Classifier` on labelled target-domain data (Adam, Gaussian input noise ``noise``
    as augmentation, so it also reads slightly imperfect transported images)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32)).to(device)
    yt = torch.as_tensor(np.asarray(labels, dtype=np.int64)).to(device)
    clf = Classifier(xt.shape[1], int(yt.max()) + 1, image_shape).to(device)
    opt = torch.optim.Adam(clf.parameters(), lr=lr)
    for _ in range(steps):
        i = torch.randint(0, len(xt), (batch,), generator=g).to(device)
        xb = xt[i] + noise * torch.randn(batch, xt.shape[1], generator=g).to(device)
        loss = nn.functional.cross_entropy(clf(xb), yt[i])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return clf.eval().requires_grad_(False)


def transfer_accuracy(tmap, x, labels, perm, classify, draws: int = 8, seed: int = 0) -> float:
    """Accuracy of ``classify(T(x, z))`` against ``perm[labels]``, averaged over ``draws`` noise
    draws per point (1 for a deterministic map). ``classify``: points -> class ids."""
    draws = draws if getattr(tmap, "stochastic", False) else 1
    g = torch.Generator().manual_seed(seed)
    expected = np.asarray(perm)[np.asarray(labels)]
    hits = [np.asarray(classify(tmap.transport(x, generator=g))) == expected for _ in range(draws)]
    return float(np.mean(hits))


def emd_plan(x, y) -> np.ndarray:
    """POT's exact plan ``ot.emd`` between uniform empirical measures, squared Euclidean cost."""
    import ot

    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return ot.emd(ot.unif(len(xa)), ot.unif(len(ya)), ot.dist(xa, ya), numItermax=2_000_000)


def plan_accuracy(plan: np.ndarray, labels, perm, target_classes) -> float:
    """The plan's mass moved to the right class: ``Σ_ij π_ij [target_classes_j == perm[labels_i]]``."""
    expected = np.asarray(perm)[np.asarray(labels)]
    return float((plan * (expected[:, None] == np.asarray(target_classes)[None])).sum() / plan.sum())


def fd_pixel(x, y) -> float:
    """Fréchet distance between the Gaussian statistics of two image sets on raw pixels (FD-pixel, not FID)."""
    from papercore.ot.metrics import frechet_distance

    return frechet_distance(
        torch.as_tensor(np.asarray(x, dtype=np.float32)), torch.as_tensor(np.asarray(y, dtype=np.float32))
    )


def fd_features(x, y, clf: Classifier) -> float:
    """Fréchet distance in the target classifier's penultimate features (FD-classifier-features, not FID)."""
    from papercore.ot.metrics import frechet_distance

    dev = next(clf.parameters()).device
    feats = lambda a: clf.features(a.to(dev)).cpu()  # noqa: E731
    return frechet_distance(torch.as_tensor(np.asarray(x, dtype=np.float32)), torch.as_tensor(np.asarray(y, dtype=np.float32)),
                            features=feats)  # fmt: skip
