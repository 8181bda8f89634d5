"""The visual loss on a synthetic scene, and a few steps of MSG-V (seconds on a CPU).

1. a ray-cast scene with exact depth and normals; its x4 LR input by area averaging;
2. MSE_v of bicubic and of the joint bilateral filter against the truth, and the identity
   MSE_v = the unclamped 3-light render MSE;
3. a tiny MSG-Net trained for a few steps with L2 + MSE_v, then used on the scene.
"""

import os

import torch

os.environ.setdefault("PAPERCORE_PROGRESS", "0")
torch.set_num_threads(1)

from depth_sr import (  # noqa: E402
    LIGHTS3,
    DSRTrainConfig,
    MSGConfig,
    bicubic,
    evaluate,
    fit,
    joint_bilateral,
    make_lr,
    mean_metrics,
    mse_v,
    normals,
    render,
    synthetic_scene,
    synthetic_scenes,
)

scene = synthetic_scene(0, 64)
lr = make_lr(scene.depth, 4)[None, None]
rgb = scene.rgb[None]
gt = scene.depth[None]
for name, f in (("bicubic", bicubic), ("joint bilateral", joint_bilateral)):
    m = mean_metrics(evaluate(f(lr, rgb), gt, scene.K))
    print(f"{name:16s} rmse {m['rmse']:.3f}  MSE_v {m['msev']:.4f}  SSIM(renders) {m['ssim']:.3f}")

pred = torch.nan_to_num(bicubic(lr, rgb)[:, 0].double(), nan=0.0)
n1, ok1 = normals(pred, scene.K)
n2, ok2 = normals(gt.double(), scene.K)
ok = ok1 & ok2
renders = ((render(n1, LIGHTS3.double(), clamp=False) - render(n2, LIGHTS3.double(), clamp=False)) ** 2).mean(
    1
)
assert abs(float(renders[ok].mean()) - float(mse_v(pred, gt.double(), scene.K))) < 1e-9
print("MSE_v equals the unclamped 3-light render MSE")

msg = MSGConfig(scale=4, width=8, y_channels=8, depth_channels=8)
model = fit(msg, DSRTrainConfig(steps=20, batch_size=4, crop=32, loss="mix", checkpoint_every=0, eval_every=0),
            synthetic_scenes(8, seed=1, size=64), plot=False)  # fmt: skip
out = model.upsample(lr, rgb)
print(
    f"MSG-V after 20 steps: {out.shape[-2]}x{out.shape[-1]}, MSE_v {float(mse_v(out[:, 0], gt, scene.K)):.4f}"
)
