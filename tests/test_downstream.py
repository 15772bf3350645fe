"""The encoder inside torchvision's detection and segmentation models and timm's features_only: the
weights arrive intact (the feature maps equal the encoder's own stages) and a few steps lower the loss."""

import copy

import pytest
import torch
from torch import nn

from byol.downstream import detection_backbone, feature_maps, frozen_batchnorm, segmentation_backbone
from byol.encoder_io import encoder_meta, load_encoder, save_encoder
from byol.errors import ByolError
from byol.models.backbones import build_encoder


def _trained_like(encoder: nn.Module, seed: int = 0) -> nn.Module:
    """Non-default BatchNorm statistics and affine values, as a pretrained encoder has: a copy that dropped
    or reset them would no longer match."""
    g = torch.Generator().manual_seed(seed)
    for m in encoder.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=g))  # signed: ReLU after max-pool would differ
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return encoder.eval()


@pytest.fixture
def run(tmp_path):
    """A run folder holding a width-0.25 ResNet-18 (ImageNet stem, 64 px) with trained-looking BatchNorm."""
    torch.manual_seed(0)
    enc = build_encoder("resnet18", width=0.25, image_size=64, small_images=False)
    _trained_like(enc.module)
    meta = encoder_meta("resnet18", 64, (0.5,) * 3, (0.25,) * 3, enc.feature_dim, width=0.25, small_images=False)
    save_encoder(enc.module, meta, tmp_path / "run")
    return tmp_path / "run"


def _stages(encoder: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The encoder's own intermediate outputs, read with forward hooks while it runs as byol runs it."""
    out = {}
    hooks = [getattr(encoder, n).register_forward_hook(lambda m, i, o, n=n: out.__setitem__(n, o)) for n in
             ("layer1", "layer2", "layer3", "layer4")]  # fmt: skip
    encoder(x)
    for h in hooks:
        h.remove()
    return out


def test_the_pyramid_s_inputs_are_the_encoder_s_stages_with_batchnorm_frozen_as_torchvision_does(run):
    encoder, x = load_encoder(run), torch.randn(2, 3, 64, 64)
    expected = _stages(encoder, x)
    got = feature_maps(run)(x)
    assert list(got) == list(expected) and all(torch.equal(got[k], expected[k]) for k in expected)

    backbone = detection_backbone(run)
    body = backbone.body(x)  # BackboneWithFPN's body: the stages the FPN reads
    assert [t.shape for t in body.values()] == [t.shape for t in expected.values()]
    for mine, theirs in zip(body.values(), expected.values()):
        torch.testing.assert_close(mine, theirs, atol=1e-4, rtol=1e-4)  # FrozenBatchNorm2d: the same map, rounded apart
    from torchvision.ops.misc import FrozenBatchNorm2d

    norms = [m for m in backbone.modules() if isinstance(m, nn.BatchNorm2d | FrozenBatchNorm2d)]
    assert norms and all(isinstance(m, FrozenBatchNorm2d) for m in norms)
    trains = {n.split(".")[0] for n, p in backbone.body.named_parameters() if p.requires_grad}
    assert trains == {"layer2", "layer3", "layer4"}  # torchvision's default: 3 trainable stages
    assert backbone.out_channels == 256 and set(backbone(x)) == {"0", "1", "2", "3", "pool"}
    every = detection_backbone(run, trainable_layers=5, freeze_batchnorm=False)
    assert all(p.requires_grad for p in every.parameters())
    assert any(isinstance(m, nn.BatchNorm2d) for m in every.modules())
    with pytest.raises(ByolError, match="trainable_layers"):
        detection_backbone(run, trainable_layers=6)


def test_a_convnet_encoder_is_refused_in_one_line_naming_its_backbone(tmp_path):
    enc = build_encoder("convnet", width=0.25, image_size=32)
    meta = encoder_meta("convnet", 32, (0.5,) * 3, (0.25,) * 3, enc.feature_dim, width=0.25)
    save_encoder(enc.module, meta, tmp_path / "conv")
    with pytest.raises(ByolError, match="convnet encoder has no ResNet stages") as e:
        detection_backbone(tmp_path / "conv")
    assert "\n" not in str(e.value)
    with pytest.raises(ByolError, match="^the module given: a ConvNet encoder") as e:
        feature_maps(enc.module)  # a module passed as is: named by its class, not its multi-line repr
    assert "\n" not in str(e.value)


def _boxes_set(n: int = 4, side: int = 64, seed: int = 0):
    """Images with one bright square each and its box: a detector that learns finds them."""
    g = torch.Generator().manual_seed(seed)
    images, targets = [], []
    for _ in range(n):
        img = torch.rand(3, side, side, generator=g) * 0.2
        x0, y0 = (int(v) for v in torch.randint(0, side // 2, (2,), generator=g))
        size = int(torch.randint(side // 4, side // 2, (1,), generator=g))
        img[:, y0 : y0 + size, x0 : x0 + size] = 1.0
        images.append(img)
        targets.append({"boxes": torch.tensor([[x0, y0, x0 + size, y0 + size]], dtype=torch.float32),
                        "labels": torch.tensor([1])})  # fmt: skip
    return images, targets


def test_a_faster_rcnn_on_the_encoder_trains_a_few_steps_and_its_loss_falls(run):
    from torchvision.models.detection import FasterRCNN

    torch.manual_seed(0)
    backbone = detection_backbone(run)  # four stages and a pooled level: FasterRCNN's default five anchor sizes
    model = FasterRCNN(backbone, num_classes=2, min_size=64, max_size=64, image_mean=[0.5] * 3,
                       image_std=[0.25] * 3, rpn_batch_size_per_image=64, box_batch_size_per_image=32)  # fmt: skip
    images, targets = _boxes_set()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.002, momentum=0.9)
    model.train()
    losses = []
    for _ in range(16):
        loss = sum(model(images, targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-4:]) < 0.7 * sum(losses[:4]), losses  # measured when written: 0.51
    model.eval()
    with torch.no_grad():
        out = model(images[:1])
    assert set(out[0]) == {"boxes", "scores", "labels"}


def test_a_segmentation_head_on_the_encoder_trains_a_few_steps_and_its_loss_falls(run):
    from torchvision.models.segmentation.deeplabv3 import DeepLabHead, DeepLabV3
    from torchvision.models.segmentation.fcn import FCNHead

    torch.manual_seed(0)
    backbone, channels, aux_channels = segmentation_backbone(run, aux=True)
    x = torch.randn(4, 3, 64, 64)
    assert torch.equal(backbone(x)["out"], _stages(load_encoder(run), x)["layer4"])  # BatchNorm kept as trained
    # train mode, BatchNorm on the batch's statistics: the stem runs in byol's order (conv, norm, ReLU, pool)
    torch.testing.assert_close(backbone.train()(x)["out"], _stages(load_encoder(run).train(), x)["layer4"])
    model = DeepLabV3(backbone, DeepLabHead(channels, 2), FCNHead(aux_channels, 2))
    images, targets = _boxes_set(n=8)
    masks = torch.zeros(len(images), 64, 64, dtype=torch.long)
    for mask, t in zip(masks, targets):
        x0, y0, x1, y1 = (int(v) for v in t["boxes"][0])
        mask[y0:y1, x0:x1] = 1
    batch = torch.stack(images)
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    model.train()
    losses = []
    for _ in range(12):
        out = model(batch)
        loss = nn.functional.cross_entropy(out["out"], masks) + 0.5 * nn.functional.cross_entropy(out["aux"], masks)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert out["out"].shape == (8, 2, 64, 64)
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3, losses


def test_timm_features_only_loads_the_exported_weights_and_gives_the_same_stages(tmp_path):
    """A width-1 ResNet-18 (timm has no width multiplier): byol export's state dict loads strictly into
    timm's ``features_only`` ResNet-18, whose feature maps are the stem's and the four stages'."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    enc = _trained_like(build_encoder("resnet18", image_size=64, small_images=False).module)
    meta = encoder_meta("resnet18", 64, (0.5,) * 3, (0.25,) * 3, 512, small_images=False)
    save_encoder(enc, meta, tmp_path / "r18")
    from byol.encoder_io import export_encoder

    weights = export_encoder(tmp_path / "r18", tmp_path / "r18.safetensors")
    from safetensors.torch import load_file

    model = timm.create_model("resnet18", pretrained=False, features_only=True).eval()
    model.load_state_dict(load_file(weights), strict=True)
    x = torch.randn(2, 3, 64, 64)
    maps = model(x)
    expected = _stages(load_encoder(tmp_path / "r18"), x)
    assert model.feature_info.module_name() == ["act1", *expected]
    for got, want in zip(maps[1:], expected.values()):
        torch.testing.assert_close(got, want)


def test_frozen_batchnorm_keeps_the_statistics_and_the_function():
    torch.manual_seed(0)
    block = _trained_like(nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Sequential(nn.BatchNorm2d(8))))
    x = torch.randn(2, 3, 8, 8)
    before = block(x)
    frozen = frozen_batchnorm(copy.deepcopy(block))
    torch.testing.assert_close(frozen.train()(x), before)  # train mode: still the stored statistics
    assert not any(isinstance(m, nn.BatchNorm2d) for m in frozen.modules())
    plain = nn.Sequential(nn.BatchNorm2d(8, affine=False), nn.SyncBatchNorm(8)).eval()  # no affine; synced
    torch.testing.assert_close(frozen_batchnorm(copy.deepcopy(plain))(before), plain(before))


def test_a_retinanet_takes_the_p6_p7_pyramid_torchvision_builds_for_it(run):
    from torchvision.models.detection import RetinaNet
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7

    backbone = detection_backbone(run, returned_layers=(2, 3, 4), extra_blocks=LastLevelP6P7(256, 256))
    model = RetinaNet(backbone, num_classes=2, min_size=64, max_size=64).eval()  # its five default anchor sizes
    with torch.no_grad():
        assert len(backbone(torch.rand(1, 3, 64, 64))) == 5 and set(model([torch.rand(3, 64, 64)])[0]) == {
            "boxes", "scores", "labels"}  # fmt: skip
