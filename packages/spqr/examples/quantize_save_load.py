"""Quantize a small random Llama with SpQR (the w3 preset), save it, load it back and check it.

Runs in seconds on a CPU: the model is random (its quality means nothing), the calibration data are
random token ids. Shows the three things a user touches: the config, the in-place verb and the
checkpoint functions, plus the one-copy memory of a loaded model.
"""

import tempfile

import torch

import spqr
from papercore.llm import zoo

torch.manual_seed(0)
model = zoo.random_model("llama", vocab_size=256, hidden_size=128, intermediate_size=256, num_layers=1).eval()
calib = torch.randint(0, 256, (8, 64), generator=torch.Generator().manual_seed(0))
ids = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(1))
with torch.no_grad():
    before = model(ids).logits

config = spqr.SpQRConfig.from_preset("w3")  # 3-bit weights, 3-bit statistics over 16x16, tau 0.2
report = spqr.quantize_(model, config, calib, progress=False)  # every decoder linear -> QuantizedLinear
print(f"quantized {len(report.layers)} linears: {report.bits_per_parameter:.3f} bits per parameter, "
      f"outliers {100 * report.outlier_share:.2f}%")  # fmt: skip

with tempfile.TemporaryDirectory() as out:
    spqr.save_quantized(model, out, config=config)
    loaded = spqr.load_quantized(out)
    with torch.no_grad():
        after = loaded(ids).logits
        assert torch.equal(after, model(ids).logits)  # the checkpoint round-trips exactly
    layers = [m for m in loaded.modules() if isinstance(m, spqr.QuantizedLinear)]
    held = sum(m.nbytes for m in layers)  # in memory: the kernel layout, which replaced the stored buffers
    stored = sum(m.stored_bits // 8 for m in layers) + sum(
        m.bias.numel() * 4 for m in layers if m.bias is not None
    )
    print(f"{len(layers)} quantized linears hold {held} bytes for {stored} stored ({held / stored:.3f}x)")
    assert held <= 1.05 * stored

change = (after - before).norm() / before.norm()
print(f"relative change of the logits: {change:.3f}")
