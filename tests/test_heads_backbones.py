import pytest
import torch
import torchvision
from torch import nn

from byol.models import MLP, NORMS, available_backbones, build_encoder
from byol.models.norms import ChannelAffine


@pytest.mark.parametrize("norm", NORMS)
def test_mlp_shape_and_structure(norm):
    head = MLP(64, 128, 32, norm=norm)
    assert head(torch.randn(4, 64)).shape == (4, 32)
    assert isinstance(head[0], nn.Linear) and isinstance(head[2], nn.ReLU) and isinstance(head[3], nn.Linear)
    expected = {"batchnorm": nn.BatchNorm1d, "layernorm": nn.LayerNorm, "groupnorm": nn.GroupNorm,
                "affine": ChannelAffine, "none": nn.Identity}  # fmt: skip
    assert isinstance(head[1], expected[norm])
    assert len(head) == 4  # no norm on the output


def test_mlp_rejects_unknown_norm():
    with pytest.raises(ValueError, match="unknown norm"):
        MLP(8, 8, 8, norm="instancenorm")


@pytest.mark.parametrize("name", available_backbones())
@pytest.mark.parametrize("size", [32, 224])
def test_every_backbone_gives_documented_feature_dim(name, size):
    enc = build_encoder(name, width=0.25, image_size=size)
    out = enc.module.eval()(torch.randn(2, 3, size, size))
    assert out.shape == (2, enc.feature_dim)


def test_resnet_feature_dims_and_stems():
    assert build_encoder("resnet18").feature_dim == 512
    assert build_encoder("resnet50", width=0.5).feature_dim == 1024
    small = build_encoder("resnet18", image_size=32).module
    assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1)
    assert isinstance(small.maxpool, nn.Identity)
    big = build_encoder("resnet18", image_size=224).module
    assert big.conv1.kernel_size == (7, 7)
    forced = build_encoder("resnet18", image_size=32, small_images=False).module
    assert forced.conv1.kernel_size == (7, 7)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_width1_resnet_loads_strictly_into_torchvision(name):
    ours = build_encoder(name).module
    tv = getattr(torchvision.models, name)()
    tv.fc = nn.Identity()
    tv.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(tv.eval()(x), ours.eval()(x))


def test_unknown_backbone_is_clear():
    with pytest.raises(ValueError, match="unknown backbone 'vit'"):
        build_encoder("vit")
