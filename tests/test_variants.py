"""The ablation variants and the SimCLR baseline, each alone: heads, τ's ends, GroupNorm + WS,
no colour, NT-Xent, and the flags that select them."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from byol import build_encoder
from byol.build import encoder_meta
from byol.build import method as build_method
from byol.config.presets import resolve
from byol.encoder_io import load_encoder, save_encoder
from byol.losses import nt_xent_loss
from byol.method import BYOL, SimCLR
from byol.models.heads import MLP
from byol.models.norms import ChannelAffine, WSConv2d, group_count, mimic_batchnorm
from byol.schedules import tau_schedule


def test_heads_have_a_bias_on_the_first_linear_and_none_on_the_last_as_the_official_release():
    head = MLP(32, 64, 16)
    first, last = head[0], head[3]
    assert first.bias is not None and last.bias is None


def test_tau_base_one_keeps_the_target_frozen_and_zero_holds_it_at_zero():
    assert [tau_schedule(k, 100, 1.0) for k in (0, 50, 100)] == [1.0, 1.0, 1.0]
    assert [tau_schedule(k, 100, 0.0) for k in (0, 50, 99, 100)] == [0.0, 0.0, 0.0, 0.0]
    assert tau_schedule(0, 100, 0.99) == pytest.approx(0.99) and tau_schedule(100, 100, 0.99) == 1.0


def _direct_nt_xent(z1, z2, t):
    """Chen et al. 2020, algorithm 1, written out pair by pair."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n2 = len(z)
    total = 0.0
    for i in range(n2):
        j = (i + n2 // 2) % n2
        sims = [math.exp(float(z[i] @ z[k]) / t) for k in range(n2) if k != i]
        total += -math.log(math.exp(float(z[i] @ z[j]) / t) / sum(sims))
    return total / n2


def test_nt_xent_equals_a_direct_computation_on_a_fixed_batch():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    for t in (0.1, 0.5):
        assert float(nt_xent_loss(z1, z2, t)) == pytest.approx(_direct_nt_xent(z1, z2, t), rel=1e-5)
    assert float(nt_xent_loss(z1, z1.clone() * 3, 0.5)) < float(nt_xent_loss(z1, z2, 0.5))  # positives aligned


def tiny_encoder(norm="batchnorm"):
    torch.manual_seed(0)
    return build_encoder("convnet", width=0.25, image_size=16, norm=norm)


def test_simclr_is_encoder_and_projector_with_nt_xent_and_nothing_to_move():
    enc = tiny_encoder()
    m = SimCLR(enc.module, enc.feature_dim, projector_hidden=32, projection_dim=8, temperature=0.5)
    g = torch.Generator().manual_seed(1)
    v1, v2 = torch.randn(4, 3, 16, 16, generator=g), torch.randn(4, 3, 16, 16, generator=g)
    out = m(v1, v2)
    z2 = m.online_projector(m.online_encoder(v2))
    torch.testing.assert_close(out.loss, nt_xent_loss(out.projection_view1, z2, 0.5))
    before = [p.clone() for p in m.parameters()]
    m.after_step(0.5)
    assert all(torch.equal(a, b) for a, b in zip(before, m.parameters()))
    assert not any(isinstance(x, BYOL) for x in m.modules()) and not hasattr(m, "target_encoder")
    assert sum(p.numel() for mod in m.trained_modules() for p in mod.parameters()) == sum(
        p.numel() for p in m.parameters()
    )


def test_build_method_follows_the_config():
    cfg = resolve("cpu", {"model": {"method": "simclr"}, "methods": {"simclr": {"temperature": 0.2}}})
    enc = tiny_encoder()
    m = build_method(cfg, enc.module, enc.feature_dim)
    assert isinstance(m, SimCLR) and m.temperature == 0.2
    cfg = resolve("cpu", {"model": {"use_predictor": False}})
    m = build_method(cfg, tiny_encoder().module, enc.feature_dim)
    assert isinstance(m, BYOL) and isinstance(m.predictor, nn.Identity)
    temperature = {p: resolve(p, {}).methods["simclr"].temperature for p in ("imagenet", "cifar10", "cpu")}
    assert temperature == {"imagenet": 0.1, "cifar10": 0.5, "cpu": 0.5}


def test_simclrs_options_are_its_own_section_and_a_config_written_before_still_loads(tmp_path):
    """SimCLR's options live in ``methods.simclr`` (not the shared model section); a run folder's
    config.yaml from before the move (model.temperature, model.simclr_recipe) loads with them moved, so
    it still resumes; errors name the flag or --set key."""
    import yaml

    from byol.config import Config
    from byol.config.io import config_from_dict, load_yaml
    from byol.errors import ByolError

    assert "temperature" not in Config().to_dict()["model"]
    assert Config().to_dict()["methods"] == {"simclr": {"temperature": 0.5, "recipe": "byol"}}
    old = {"model": {"method": "simclr", "temperature": 0.3, "simclr_recipe": "paper"}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    cfg = load_yaml(tmp_path / "config.yaml")
    assert (cfg.methods["simclr"].temperature, cfg.methods["simclr"].recipe) == (0.3, "paper")
    assert resolve("cpu", old).augment.view1 == resolve("cpu", old).augment.view2  # the paper's views came too
    assert config_from_dict(cfg.to_dict()) == cfg  # and it round-trips in the new place
    with pytest.raises(ByolError, match=r"--temperature must be positive, got -1"):
        resolve("cpu", {"methods": {"simclr": {"temperature": -1}}})
    with pytest.raises(ByolError, match=r"--simclr-recipe must be one of byol, paper, got 'x'"):
        resolve("cpu", {"methods": {"simclr": {"recipe": "x"}}})
    with pytest.raises(ByolError, match=r"unknown config key methods.byol; methods with options: simclr"):
        config_from_dict({"methods": {"byol": {}}})
    with pytest.raises(ByolError, match=r"unknown config key methods.simclr.temp; known: recipe, temperature"):
        config_from_dict({"methods": {"simclr": {"temp": 1}}})


@pytest.mark.parametrize("name", ["convnet", "resnet18"])
def test_groupnorm_ws_encoder_has_no_batch_statistics(name):
    torch.manual_seed(0)
    enc = build_encoder(name, width=0.25, image_size=32, norm="groupnorm-ws").module.train()
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in enc.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in enc.modules())
    assert all(type(m) is not nn.Conv2d for m in enc.modules())
    g = torch.Generator().manual_seed(2)
    x = torch.randn(8, 3, 32, 32, generator=g)
    other = torch.cat([x[:1], torch.randn(7, 3, 32, 32, generator=g) * 5])
    # A sample's output does not depend on the rest of its batch, in training mode.
    torch.testing.assert_close(enc(x)[:1], enc(other)[:1], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(enc(x)[:1], enc(x[:1]), rtol=1e-4, atol=1e-5)
    bn = build_encoder(name, width=0.25, image_size=32).module.train()
    assert not torch.allclose(bn(x)[:1], bn(other)[:1], atol=1e-3)  # BatchNorm's does


def test_weight_standardised_convolution_uses_zero_mean_unit_variance_filters():
    conv = WSConv2d(3, 4, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.mul_(7).add_(2)
    x = torch.randn(2, 3, 8, 8)
    w = conv.weight
    w_hat = (w - w.mean(dim=(1, 2, 3), keepdim=True)) / torch.sqrt(
        w.var(dim=(1, 2, 3), unbiased=False, keepdim=True) + 1e-5
    )
    torch.testing.assert_close(conv(x), F.conv2d(x, w_hat, padding=1))


def test_groupnorm_ws_encoder_is_saved_and_rebuilt_as_such(tmp_path):
    cfg = resolve("cpu", {"model": {"encoder_norm": "groupnorm-ws", "width": 0.25}})
    enc = build_encoder("convnet", 0.25, 32, norm="groupnorm-ws")
    meta = encoder_meta(cfg, enc.feature_dim)
    assert meta["norm"] == "groupnorm-ws"
    save_encoder(enc.module, meta, tmp_path)
    loaded = load_encoder(tmp_path)
    assert any(isinstance(m, WSConv2d) for m in loaded.modules())
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(loaded.eval()(x), enc.module.eval()(x))


def test_no_color_turns_off_jitter_and_grayscale_in_both_views_only():
    cfg = resolve("cpu", {"augment": {"color": False}})
    v1, v2 = cfg.augment.views()
    assert v1.jitter_p == v2.jitter_p == v1.grayscale_p == v2.grayscale_p == 0.0
    assert v2.solarize_p == cfg.augment.view2.solarize_p == 0.2 and v1.crop_scale == cfg.augment.view1.crop_scale
    assert resolve("cpu", {}).augment.views()[0].jitter_p == 0.8


def test_variant_flags_reach_the_config():
    from byol.cli.__main__ import build_parser
    from byol.cli.pretrain import overrides_from_args

    args = build_parser().parse_args(
        ["pretrain", "data", "--out", "o", "--no-predictor", "--no-color", "--head-norm", "layernorm",
         "--encoder-norm", "groupnorm-ws", "--method", "simclr", "--temperature", "0.3", "--tau-base", "1"]
    )  # fmt: skip
    cfg = resolve("cpu", overrides_from_args(args))
    assert (cfg.model.use_predictor, cfg.augment.color, cfg.model.norm) == (False, False, "layernorm")
    assert (cfg.model.encoder_norm, cfg.model.method) == ("groupnorm-ws", "simclr")
    assert cfg.methods["simclr"].temperature == 0.3
    assert cfg.optim.tau_base == 1.0


def test_groupnorm_ws_refuses_timm_layers_it_would_strip_and_converts_plain_timm_resnets():
    """timm's BatchNormAct2d holds the activation (a GroupNorm in its place would drop it) and
    Conv2dSame pads itself: refused, naming the layer; a timm ResNet's plain layers convert."""
    timm = pytest.importorskip("timm")
    from timm.layers import BatchNormAct2d
    from timm.layers.conv2d_same import Conv2dSame

    from byol.models.norms import WSConv2d, groupnorm_ws

    for layer, kind in ((BatchNormAct2d(8), "BatchNormAct2d"), (Conv2dSame(3, 8, 3), "Conv2dSame")):
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Sequential(layer))
        with pytest.raises(ValueError, match=rf"and 1\.0 is a timm\..*{kind}; use --encoder-norm batchnorm"):
            groupnorm_ws(net)
    enc = build_encoder("timm:resnet10t", image_size=32, norm="groupnorm-ws").module
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in enc.modules())
    assert all(isinstance(m, WSConv2d) for m in enc.modules() if isinstance(m, torch.nn.Conv2d))
    assert timm.__version__


def test_a_backbone_groupnorm_ws_cannot_convert_is_a_one_line_error(synthetic, tmp_path, capsys):
    pytest.importorskip("timm")
    from byol.cli.__main__ import main as cli

    args = ["pretrain", str(synthetic["train"]), "--out", str(tmp_path / "run"), "--preset", "cpu", "--epochs", "1",
            "--backbone", "timm:mobilenetv3_small_050", "--encoder-norm", "groupnorm-ws", "--workers", "0",
            "--cache-dir", str(synthetic["cache"])]  # fmt: skip
    assert cli(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "BatchNormAct2d; use --encoder-norm batchnorm" in err, err


def test_groupnorm_groups_hold_at_least_eight_channels_and_old_encoders_keep_their_groups(tmp_path):
    """Wu & He's 32 groups where the channels allow, never under 8 channels a group (gcd(32, C) gave
    the cpu convnet 1–4, InstanceNorm in all but name); an encoder saved without ``group_channels``
    is rebuilt with the groups it was trained with."""
    assert [group_count(c) for c in (64, 128, 256, 512)] == [8, 16, 32, 32]  # ResNet-18
    assert [group_count(c) for c in (8, 12, 16, 48)] == [1, 1, 2, 4]
    assert all(group_count(c, 1) == math.gcd(32, c) for c in range(1, 600))
    enc = build_encoder("convnet", 0.25, 32, norm="groupnorm-ws").module
    norms = [m for m in enc.modules() if isinstance(m, nn.GroupNorm)]
    assert norms and all(m.num_channels // m.num_groups >= 8 for m in norms)
    cfg = resolve("cpu", {"model": {"encoder_norm": "groupnorm-ws", "width": 0.25}})
    meta = encoder_meta(cfg, 64)
    assert meta["group_channels"] == 8
    old = build_encoder("convnet", 0.25, 32, norm="groupnorm-ws", group_channels=1).module
    del meta["group_channels"]
    save_encoder(old, meta, tmp_path)
    groups = [m.num_groups for m in load_encoder(tmp_path).modules() if isinstance(m, nn.GroupNorm)]
    assert groups == [math.gcd(32, m.num_channels) for m in norms] and groups != [m.num_groups for m in norms]


def test_bn_mimicking_start_gives_every_channel_batchnorms_start_statistics():
    """After ``mimic_batchnorm`` on a batch, each GroupNorm's output has zero mean and unit variance
    per channel over that batch, as a BatchNorm layer's at its start; fresh GroupNorms do not
    (their statistics are per sample and group, not per channel)."""
    torch.manual_seed(0)
    enc = build_encoder("resnet18", 0.25, 32, norm="groupnorm-ws").module
    images = torch.randn(64, 3, 32, 32) * 0.5 + 0.2
    stats = []

    def record(_m, _i, out):
        var, mean = torch.var_mean(out, dim=(0, 2, 3), unbiased=False)
        stats.append((mean.abs().max().item(), (var - 1).abs().max().item()))

    def measure():
        stats.clear()
        handles = [m.register_forward_hook(record) for m in enc.modules() if isinstance(m, nn.GroupNorm)]
        with torch.no_grad():
            out = enc(images)
        for h in handles:
            h.remove()
        return out

    measure()
    assert max(m for m, _ in stats) > 0.1 or max(v for _, v in stats) > 0.1
    assert mimic_batchnorm(enc, images) == len(stats) == 20  # 1 + 8 blocks × 2 + 3 shortcuts
    measure()
    assert max(m for m, _ in stats) < 1e-3 and max(v for _, v in stats) < 1e-2, stats
    x = images[:1]  # and still no batch statistics: a sample's output is its own
    torch.testing.assert_close(enc(x), measure()[:1], rtol=1e-4, atol=1e-5)


def test_the_batchnorm_free_encoder_of_per_channel_affines_starts_as_batchnorm_from_the_first_batch(tmp_path):
    """``--encoder-norm affine``: every BatchNorm a learned per-channel scale and shift with no statistics
    (a sample's output is its own); ``mimic_batchnorm`` sets them from one batch so each channel starts at
    zero mean and unit variance over it (Richemond et al. 2020's BatchNorm-free start); a saved encoder
    loads back as the same function."""
    torch.manual_seed(0)
    enc = build_encoder("resnet18", 0.25, 32, norm="affine").module
    assert not [m for m in enc.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    affines = [m for m in enc.modules() if isinstance(m, ChannelAffine)]
    assert len(affines) == 20  # 1 + 8 blocks × 2 + 3 shortcuts, as BatchNorm layers
    images = torch.randn(64, 3, 32, 32) * 0.5 + 0.2
    stats = []

    def record(_m, _i, out):
        var, mean = torch.var_mean(out, dim=(0, 2, 3), unbiased=False)
        stats.append((mean.abs().max().item(), (var - 1).abs().max().item()))

    handles = [m.register_forward_hook(record) for m in affines]
    with torch.no_grad():
        enc(images)
    assert max(m for m, _ in stats) > 0.1 or max(v for _, v in stats) > 0.1  # the default start is not there
    assert mimic_batchnorm(enc, images) == 20
    stats.clear()
    with torch.no_grad():
        out = enc(images)
    for h in handles:
        h.remove()
    assert max(m for m, _ in stats) < 1e-3 and max(v for _, v in stats) < 1e-2, stats
    with torch.no_grad():
        torch.testing.assert_close(enc(images[:1]), out[:1], rtol=1e-4, atol=1e-5)  # no batch statistics
    with torch.autocast("cpu", torch.bfloat16):  # the layer keeps autocast's dtype, as BatchNorm does
        assert all(
            m(torch.ones(2, m.weight.numel(), 4, 4, dtype=torch.bfloat16)).dtype == torch.bfloat16 for m in affines
        )
    cfg = resolve("cpu", {"model": {"backbone": "resnet18", "encoder_norm": "affine", "width": 0.25}})
    save_encoder(enc, encoder_meta(cfg, 128), tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(load_encoder(tmp_path)(images[:4]), out[:4], rtol=1e-4, atol=1e-5)


def test_the_bn_mimicking_start_with_affine_heads_starts_every_layer_there_and_the_target_with_it(synthetic):
    """``--head-norm affine`` with ``--encoder-init bn-mimic``: after the encoder, the projector's and the
    predictor's affines are set from the encoder's features of the first batch, so each of their hidden
    features starts at zero mean and unit variance over it; the target's projector starts equal."""
    from helpers import tiny_config

    from byol.device import DevicePolicy
    from byol.dist import DistInfo
    from byol.errors import ByolError
    from byol.train.setup import build_model

    cfg = tiny_config(synthetic["train"], synthetic["cache"], epochs=1)
    cfg.model.encoder_norm, cfg.model.norm, cfg.model.encoder_init = "affine", "affine", "bn-mimic"
    torch.manual_seed(0)
    views = torch.randn(64, 3, 32, 32)
    method, *_ = build_model(cfg.validate(), DevicePolicy(torch.device("cpu")), DistInfo(), lambda: views)
    heads = [
        m for h in (method.online_projector, method.predictor) for m in h.modules() if isinstance(m, ChannelAffine)
    ]
    assert len(heads) == 2 and not any(torch.all(m.weight == 1) for m in heads)
    stats = []
    record = lambda _m, _i, out: stats.append(torch.var_mean(out, 0, unbiased=False))  # noqa: E731
    handles = [m.register_forward_hook(record) for m in heads]
    with torch.no_grad():
        method.predictor(method.online_projector(method.online_encoder(views)))
    for h in handles:
        h.remove()
    assert all(mean.abs().max() < 1e-3 and (var - 1).abs().max() < 1e-2 for var, mean in stats), stats
    for a, b in zip(method.online_projector.parameters(), method.target_projector.parameters(), strict=True):
        assert torch.equal(a, b)
    cfg.model.method = "simclr"
    with pytest.raises(ByolError, match=r"sets BYOL's projector and predictor, not simclr's"):
        cfg.validate()


@pytest.mark.parametrize("norm, layer", [("groupnorm-ws", nn.GroupNorm), ("affine", ChannelAffine)])
def test_a_run_with_the_bn_mimicking_start_starts_both_networks_there_and_trains(synthetic, tmp_path, norm, layer):
    from helpers import tiny_config

    from byol.device import DevicePolicy
    from byol.dist import DistInfo
    from byol.errors import ByolError
    from byol.train.pretrain import pretrain
    from byol.train.setup import build_model

    cfg = tiny_config(synthetic["train"], synthetic["cache"], epochs=1)
    cfg.model.encoder_norm, cfg.model.encoder_init = norm, "bn-mimic"
    views = torch.randn(32, 3, 32, 32)
    method, *_ = build_model(cfg.validate(), DevicePolicy(torch.device("cpu")), DistInfo(), lambda: views)
    online = [m.weight for m in method.online_encoder.modules() if isinstance(m, layer)]
    target = [m.weight for m in method.target_encoder.modules() if isinstance(m, layer)]
    assert online and not all(torch.all(w == 1) for w in online)  # moved from the layer's ones
    assert all(torch.equal(a, b) for a, b in zip(online, target, strict=True))  # the target starts there too
    result = pretrain(cfg, tmp_path / "run", progress=False)
    assert result.steps > 0 and math.isfinite(result.final_loss)
    cfg.model.encoder_norm = "batchnorm"
    with pytest.raises(ByolError, match=r"--encoder-init bn-mimic sets GroupNorm or per-channel affine layers"):
        cfg.validate()
