import pytest
import torch

from neural_ot.nets import ConvResNet, UNet, build_map, build_potential


@pytest.mark.parametrize("kind", ["mlp", "resnet", "unet"])
def test_maps_start_at_the_identity_and_use_the_noise(kind):
    torch.manual_seed(0)
    T = build_map(kind, 64, 3, 64, 2, image_shape=(1, 8, 8))
    x, z = torch.randn(5, 64), torch.randn(5, 3)
    assert torch.equal(T(x, z), x)  # zeroed last layer: T = id at initialisation
    with torch.no_grad():
        for p in T.parameters():
            p.add_(0.1 * torch.randn_like(p))
    assert T(x, z).shape == (5, 64) and not torch.allclose(T(x, z), T(x, z + 1))


def test_unet_shapes_and_errors():
    u = UNet((3, 16, 12), z_dim=0, base=8, residual=False)
    assert u(torch.randn(2, 3 * 16 * 12)).shape == (2, 576)
    with pytest.raises(ValueError, match="divisible by 4"):
        UNet((1, 10, 10))
    with pytest.raises(ValueError, match="image shape"):
        build_map("unet", 64, 0, 64, 2)


def test_potentials_are_scalar():
    assert build_potential("mlp", 10, 16, 2)(torch.randn(4, 10)).shape == (4,)
    assert build_potential("resnet", 10, 16, 2)(torch.randn(4, 10)).shape == (4,)
    f = build_potential("resnet", 3 * 32 * 32, 64, 2, image_shape=(3, 32, 32))
    assert isinstance(f, ConvResNet) and f(torch.randn(2, 3 * 32 * 32)).shape == (2,)
    with pytest.raises(ValueError, match="potential_net"):
        build_potential("icnn", 3, 8, 1)
