import time

import torch

from def3d import (
    DGCNN,
    DataConfig,
    DEF3DTrainConfig,
    ModelConfig,
    UNet,
    build_model,
    load_model,
    make_patches,
    train,
)
from def3d.models import _edge_features


def test_edge_features_use_the_k_nearest_points():
    x = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [5, 0, 0], [5.5, 0, 0]]])
    e = _edge_features(x, 2)
    # point 0's neighbours: itself and point 1 -> differences 0 and (1, 0, 0)
    diffs = sorted(e[0, 0, :, 3].tolist())
    assert diffs == [0.0, 1.0]


def test_networks_output_per_point_and_per_pixel_channels():
    net = DGCNN(244, depth=2, width=16, k=8, mlp=32)
    assert net(torch.randn(2, 64, 3)).shape == (2, 64, 244)
    unet = UNet(1, "resnet18", 32)
    assert unet(torch.randn(1, 2, 32, 32)).shape == (1, 32, 32, 1)
    assert build_model(ModelConfig(pca_channel=True))[0].blocks[0].lin.in_features == 8


def test_small_dgcnn_overfits_8_patches(tmp_path):
    d = DataConfig(patch_points=128, noise="0")
    data = make_patches(d, 8, 0)
    m = ModelConfig(depth=2, width=32, k=8, mlp=64, head="mse")
    t = DEF3DTrainConfig(
        steps=60, batch_size=8, lr=3e-3, decay=1.0, eval_every=0, checkpoint_every=0, log_every=10
    )
    torch.manual_seed(0)
    start = time.perf_counter()
    model = train(m, d, t, out=tmp_path / "run", device="cpu", plot=False, data=(data, data))
    assert time.perf_counter() - start < 30
    import json

    hist = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [h["loss"] for h in hist if "loss" in h]
    assert losses[-1] < losses[0] / 10
    assert losses[-1] < float(data["distances"].var())  # better than the best constant
    again = load_model(tmp_path / "run")
    x = torch.randn(1, 128, 3)
    assert torch.allclose(again.net(x), model.net.eval()(x), atol=1e-6)
