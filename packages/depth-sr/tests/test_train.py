import torch

from depth_sr.config import MSGConfig
from depth_sr.msg import MSGNet
from depth_sr.scenes import synthetic_scenes
from depth_sr.train import CropSampler, losses, pretrained


def test_crops_keep_the_camera_and_losses_match_their_definitions():
    scenes = synthetic_scenes(2, seed=0, size=32)
    g = torch.Generator().manual_seed(0)
    lr, rgb, hr, K = CropSampler(scenes, 4, 16)(3, g)
    assert lr.shape == (3, 1, 4, 4) and rgb.shape == (3, 3, 16, 16) and hr.shape == (3, 1, 16, 16)
    # the crop's principal point moved by its offset: find the offset by matching the depth
    for i in range(3):
        j = next(j for j in range(2) for t in range(0, 17, 4) for l in range(0, 17, 4)
                 if torch.equal(scenes[j].depth[t : t + 16, l : l + 16], hr[i, 0]))  # fmt: skip
        assert K[i, 0] == scenes[j].K.fx
    net = MSGNet(MSGConfig(scale=4, width=4, y_channels=4, depth_channels=4))
    out = losses(net, (lr, rgb, hr, K), "mix", lam=0.5)
    pred = net(lr, rgb)
    lo = lr.flatten(1).min(1).values[:, None, None, None]
    rng = lr.flatten(1).max(1).values[:, None, None, None] - lo
    l2 = (((pred - hr) / rng) ** 2).mean()
    assert torch.allclose(out["l2"], l2, rtol=1e-4)
    assert torch.allclose(out["loss"], out["l2"] + 0.5 * out["msev"])


def test_builtin_model_is_cached_and_verified(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERCORE_CACHE", str(tmp_path))
    tiny = dict(steps=2, batch_size=2, n_train=2, n_val=1, width=4, y_channels=4, depth_channels=4)
    a = pretrained(4, **tiny)
    (folder,) = list((tmp_path / "depth-sr").iterdir())
    assert (folder / "manifest.json").is_file() and a.config.scale == 4
    stamp = (folder / "msg.safetensors").stat().st_mtime_ns
    b = pretrained(4, **tiny)  # from the cache
    assert (folder / "msg.safetensors").stat().st_mtime_ns == stamp
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    (folder / "msg.safetensors").write_bytes(b"corrupt")
    c = pretrained(4, **tiny)  # does not verify: trained again
    assert c.config.scale == 4 and (folder / "msg.safetensors").stat().st_size > 100
