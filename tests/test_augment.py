import itertools
import math
import shutil

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF

from byol.constants import IMAGENET_MEAN, IMAGENET_STD
from byol.data import augment as A
from byol.data import kernels as K
from byol.data.augment import VIEW1, VIEW2, TwoViewAugment, ViewParams, default_views

N = 4000  # samples for the probability checks


def images(n=8, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g)


def per_image(fn, x, values):
    return torch.stack([fn(x[i], float(values[i])) for i in range(len(x))])


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (K.adjust_brightness, TF.adjust_brightness),
        (K.adjust_contrast, TF.adjust_contrast),
        (K.adjust_saturation, TF.adjust_saturation),
    ],
)
def test_linear_colour_ops_equal_torchvision(ours, theirs):
    x = images()
    f = torch.linspace(0.6, 1.4, len(x))
    torch.testing.assert_close(ours(x, f), per_image(theirs, x, f), atol=1e-5, rtol=0)


def test_hue_equals_torchvision():
    x = images()
    shift = torch.linspace(-0.1, 0.1, len(x))
    torch.testing.assert_close(K.adjust_hue(x, shift), per_image(TF.adjust_hue, x, shift), atol=1e-5, rtol=0)
    big = torch.linspace(-0.5, 0.5, len(x))
    torch.testing.assert_close(K.adjust_hue(x, big), per_image(TF.adjust_hue, x, big), atol=1e-5, rtol=0)


def test_grayscale_and_solarize_equal_torchvision():
    x = images()
    torch.testing.assert_close(K.grayscale(x), TF.rgb_to_grayscale(x), atol=1e-6, rtol=0)
    params = A.sample_view_params(len(x), ViewParams(solarize_p=1.0, jitter_p=0, grayscale_p=0, flip_p=0, blur_p=0))
    out = A.apply_view_params(x, params)
    torch.testing.assert_close(out, TF.solarize(x, 0.5), atol=1e-5, rtol=0)


@pytest.mark.parametrize("size", [32, 224])
def test_gaussian_blur_equals_torchvision(size):
    x = images(3, size)
    sigma = torch.tensor([0.1, 1.0, 2.0])
    k = K.blur_kernel_size(size)
    assert k == (3 if size == 32 else 23)
    expected = torch.stack([TF.gaussian_blur(x[i], [k, k], [float(s), float(s)]) for i, s in enumerate(sigma)])
    torch.testing.assert_close(K.gaussian_blur(x, sigma, k), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(K.gaussian_blur(x, torch.zeros(3), k), x)  # σ = 0 is the identity


@pytest.mark.parametrize("padding", ["reflect", "zeros"])
def test_blur_as_shifted_sums_equals_the_convolution(padding):
    # The form compiled into the view's kernels on a GPU (blur="taps") computes the same numbers.
    x = images(4, 40)
    sigma = torch.tensor([0.0, 0.5, 1.3, 2.0])
    for k in (3, 23):
        expected = K.gaussian_blur(x, sigma, k, padding)
        torch.testing.assert_close(K.gaussian_blur_taps(x, sigma, k, padding), expected, atol=1e-6, rtol=0)
    p = ViewParams(blur_p=1.0)
    params = A.sample_view_params(4, p, torch.Generator().manual_seed(0))
    raw = torch.randint(0, 256, (4, 3, 48, 48), dtype=torch.uint8)
    conv = A.apply_view_params(raw, params, 40, 5, blur="conv")
    assert not torch.equal(conv, A.apply_view_params(raw, params, 40, 0))  # the blur ran
    torch.testing.assert_close(A.apply_view_params(raw, params, 40, 5, blur="taps"), conv, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="blur must be one of auto, conv, taps"):
        TwoViewAugment(32, blur="fft")


def test_resized_crop_matches_torchvision_within_interpolation_tolerance():
    x = images(4, 64)
    boxes = torch.tensor([[0, 0, 64, 64], [8, 4, 40, 48], [20, 30, 30, 20], [5, 5, 16, 16]])
    ours = K.resized_crop(x, boxes, 32)
    for i, (top, left, h, w) in enumerate(boxes.tolist()):
        ref = TF.resized_crop(x[i], top, left, h, w, [32, 32], antialias=False)
        inner = (ours[i] - ref)[:, 1:-1, 1:-1]  # edges may blend a neighbouring pixel
        assert inner.abs().max() < 1e-4
        assert (ours[i] - ref).abs().mean() < 0.02
    # Identity box at the same size is exact.
    torch.testing.assert_close(K.resized_crop(x, boxes[:1].repeat(4, 1), 64), x, atol=1e-5, rtol=0)


def test_crop_boxes_stay_in_range():
    g = torch.Generator().manual_seed(0)
    boxes = A.sample_crop_boxes(N, 96, 128, (0.08, 1.0), (3 / 4, 4 / 3), g)
    top, left, h, w = boxes.T.float()
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 96).all() and (left + w <= 128).all()
    area = h * w / (96 * 128)
    assert area.min() >= 0.07 and area.max() <= 1.0
    aspect = w / h
    # Rounding to whole pixels widens the range a little on small boxes.
    assert aspect.min() > 0.7 and aspect.max() < 1.45
    assert area.std() > 0.2  # spread over the range, not one value
    # Impossible draws fall back to a centre crop of the largest in-range aspect.
    wide = A.sample_crop_boxes(10, 10, 100, (1.0, 1.0), (1.0, 1.0), g)
    assert (wide == torch.tensor([0, 45, 10, 10])).all()


def _rate(mask: torch.Tensor) -> float:
    return mask.float().mean().item()


def _within_binomial(rate: float, p: float, n: int = N) -> bool:
    return abs(rate - p) <= 4 * math.sqrt(p * (1 - p) / n) + 1e-9


@pytest.mark.parametrize("view, blur, solarize", [(VIEW1, 1.0, 0.0), (VIEW2, 0.1, 0.2)])
def test_probabilities_are_met_per_view(view, blur, solarize):
    g = torch.Generator().manual_seed(1)
    p = A.sample_view_params(N, view, g)
    assert _within_binomial(_rate(p["flip"]), 0.5)
    assert _within_binomial(_rate(p["grayscale"]), 0.2)
    assert _within_binomial(_rate(p["blur_sigma"] > 0), blur)
    if solarize:
        assert _within_binomial(_rate(p["solarize"]), solarize)
    else:
        assert "solarize" not in p  # probability 0: the op is left out of the graph
    jittered = (p["jitter_factors"] != 1).any(1) | (p["hue_shift"] != 0)
    assert _within_binomial(_rate(jittered), 0.8)
    sig = p["blur_sigma"][p["blur_sigma"] > 0]
    assert sig.min() >= 0.1 and sig.max() <= 2.0
    b, c, s = p["jitter_factors"][jittered].T
    assert b.min() >= 0.6 and b.max() <= 1.4 and c.min() >= 0.6 and c.max() <= 1.4
    assert s.min() >= 0.8 and s.max() <= 1.2
    assert p["hue_shift"].abs().max() <= 0.1
    # Every permutation of the four jitter ops occurs (random order per sample).
    assert len({tuple(o) for o in p["jitter_order"].tolist()}) == 24


def test_observed_outputs_follow_the_drawn_solarise_and_grayscale():
    # The drawn parameters are what the images get: grayscale samples have equal channels.
    g = torch.Generator().manual_seed(2)
    x = images(512)
    params = A.sample_view_params(512, ViewParams(grayscale_p=0.5, jitter_p=0.0, blur_p=0.0, flip_p=0.0), g)
    out = A.apply_view_params(x, params)
    equal_channels = (out[:, 0] - out[:, 1]).abs().amax(dim=(1, 2)) < 1e-6
    assert torch.equal(equal_channels, params["grayscale"])


def test_jitter_random_order_matters_and_matches_sequential_ops():
    x = images(2)
    shift = torch.tensor([0.08, 0.08])
    # Sample 0: brightness then hue; sample 1: hue then brightness.
    params = A.sample_view_params(2, ViewParams(jitter_p=0, grayscale_p=0, flip_p=0, blur_p=0, solarize_p=0))
    params["jitter_factors"] = torch.tensor([[1.3, 1.0, 1.0], [1.3, 1.0, 1.0]])
    params["hue_shift"] = shift
    params["jitter_order"] = torch.tensor([[0, 3, 1, 2], [3, 0, 1, 2]])
    out = A.apply_view_params(x, params)
    first = TF.adjust_hue(TF.adjust_brightness(x[0], 1.3), 0.08)
    second = TF.adjust_brightness(TF.adjust_hue(x[1], 0.08), 1.3)
    torch.testing.assert_close(out[0], first, atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1], second, atol=1e-5, rtol=0)


def test_every_jitter_order_matches_sequential_torchvision_ops():
    # One sample per permutation of (brightness, contrast, saturation, hue), strong factors so that
    # clamping happens and order matters; each must equal torchvision's ops applied in that order.
    orders = list(itertools.permutations(range(4)))
    x = images(len(orders), 16, seed=3)
    params = A.sample_view_params(len(x), ViewParams(jitter_p=0, grayscale_p=0, flip_p=0, blur_p=0, solarize_p=0))
    params["jitter_factors"] = torch.tensor([[1.4, 0.6, 1.2]]).repeat(len(x), 1)
    params["hue_shift"] = torch.full((len(x),), 0.1)
    params["jitter_order"] = torch.tensor(orders)
    out = A.apply_view_params(x, params)
    ops = [
        lambda im: TF.adjust_brightness(im, 1.4),
        lambda im: TF.adjust_contrast(im, 0.6),
        lambda im: TF.adjust_saturation(im, 1.2),
        lambda im: TF.adjust_hue(im, 0.1),
    ]
    for i, order in enumerate(orders):
        ref = x[i]
        for op in order:
            ref = ops[op](ref)
        torch.testing.assert_close(out[i], ref, atol=1e-5, rtol=0, msg=f"jitter order {order}")
    # And the order matters for these images: not all 24 results are the same.
    assert (out - out[:1]).abs().amax() > 0.05


def test_flip_and_crop_in_one_pass_equal_crop_then_flip():
    x = images(4, 40)
    boxes = torch.tensor([[0, 0, 40, 40], [3, 5, 30, 20], [10, 2, 12, 33], [0, 7, 40, 33]])
    flip = torch.tensor([True, False, True, True])
    plain = K.resized_crop(x, boxes, 24)
    flipped = torch.where(flip.view(-1, 1, 1, 1), plain.flip(-1), plain)
    for gather in (True, False):  # the compiled kernel's gather and the eager roi_align
        ours = torch.stack(K.crop_channels(x, boxes, 24, flip, gather=gather), dim=1)
        torch.testing.assert_close(ours, flipped, atol=1e-5, rtol=0)
    # The gather is exact for the identity box (pre-cropped images).
    identity = torch.tensor([[0, 0, 40, 40]]).expand(4, 4)
    assert torch.equal(torch.stack(K.crop_channels(x, identity, 40, gather=True), dim=1), x)
    # uint8 input is scaled to [0, 1] on the way.
    x8 = (x * 255).round().to(torch.uint8)
    torch.testing.assert_close(K.resized_crop(x8, boxes, 24), K.resized_crop(x8.float() / 255, boxes, 24))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None, reason="needs a C++ compiler")
def test_compiled_views_equal_eager_views():
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    v = default_views(224)  # blur on: the compiled graph includes the blur
    eager = TwoViewAugment(32, *v)(x, torch.Generator().manual_seed(0))
    compiled = TwoViewAugment(32, *v, compile=True)(x, torch.Generator().manual_seed(0))
    for a, b in zip(eager, compiled):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def test_two_copies_of_one_image_get_different_views_and_seed_reproduces():
    x = images(1, 32).repeat(2, 1, 1, 1)
    aug = TwoViewAugment(32, *default_views(32))
    v1, v2 = aug(x, torch.Generator().manual_seed(0))
    assert not torch.allclose(v1[0], v1[1])
    assert not torch.allclose(v1[0], v2[0])
    w1, w2 = aug(x, torch.Generator().manual_seed(0))
    assert torch.equal(v1, w1) and torch.equal(v2, w2)


@pytest.mark.parametrize("size", [32, 224])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_output_shape_dtype_and_range(size, dtype):
    x = torch.randint(0, 256, (3, 3, size + 8, size + 8), dtype=torch.uint8)
    if dtype == torch.float32:
        x = x.float() / 255
    aug = TwoViewAugment(size, *default_views(size))
    v1, v2 = aug(x, torch.Generator().manual_seed(0))
    for v in (v1, v2):
        assert v.shape == (3, 3, size, size) and v.dtype == torch.float32
    lo = (0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    hi = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    for c in range(3):
        assert v1[:, c].min() >= lo[c] - 1e-4 and v1[:, c].max() <= hi[c] + 1e-4
    raw = TwoViewAugment(size, mean=None, std=None)(x, torch.Generator().manual_seed(0))[0]
    assert raw.min() >= 0 and raw.max() <= 1


def test_precropped_path_skips_the_crop():
    x = images(4, 32)
    no_change = ViewParams(flip_p=0, jitter_p=0, grayscale_p=0, blur_p=0, solarize_p=0)
    aug = TwoViewAugment(32, no_change, no_change, mean=None, std=None)
    v1, v2 = aug(crops=(x, x.flip(-1)))
    torch.testing.assert_close(v1, x)
    torch.testing.assert_close(v2, x.flip(-1))


def test_small_image_presets_turn_blur_off():
    v1, v2 = default_views(32)
    assert v1.blur_p == 0 and v2.blur_p == 0 and v2.solarize_p == 0.2
    v1, v2 = default_views(224)
    assert v1.blur_p == 1.0 and v2.blur_p == 0.1 and v1.solarize_p == 0.0


@pytest.mark.parametrize("kw", [{"blur_p": 1.5}, {"crop_scale": (0.5, 0.2)}, {"hue": 0.7}])
def test_view_params_validate(kw):
    with pytest.raises(ValueError, match="augment"):
        ViewParams(**kw)


def test_bicubic_crop_matches_torchvision_inside_the_box():
    x = images(2, 64)
    boxes = torch.tensor([[8, 4, 40, 48], [5, 5, 16, 16]])
    ours = K.resized_crop(x, boxes, 32, mode="bicubic")
    for i, (top, left, h, w) in enumerate(boxes.tolist()):
        ref = TF.resized_crop(x[i], top, left, h, w, [32, 32], TF.InterpolationMode.BICUBIC, antialias=False)
        assert (ours[i] - ref.clamp(0, 1))[:, 3:-3, 3:-3].abs().max() < 1e-4


# The official release's colour ops (TensorFlow's), written out in NumPy from their formulas, one
# image (H, W, 3) at a time: what `augment.jitter: official` must compute.
def _np_rgb_to_hsv(x):
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    v = x.max(-1)
    c = v - x.min(-1)
    s = np.where(v > 0, c / np.where(v > 0, v, 1), 0.0)
    safe = np.where(c > 0, c, 1)
    h = np.where(v == r, (g - b) / safe, np.where(v == g, (b - r) / safe + 2, (r - g) / safe + 4)) / 6
    h = np.where(c > 0, h % 1.0, 0.0)
    return h, s, v


def _np_hsv_to_rgb(h, s, v):
    c = s * v
    hp = (h % 1.0) * 6
    x = c * (1 - np.abs(hp % 2 - 1))
    sector = np.floor(hp).astype(int) % 6
    table = [(c, x, 0 * c), (x, c, 0 * c), (0 * c, c, x), (0 * c, x, c), (x, 0 * c, c), (c, 0 * c, x)]
    rgb = np.zeros(h.shape + (3,))
    for k, (rr, gg, bb) in enumerate(table):
        rgb[sector == k] = np.stack([rr, gg, bb], -1)[sector == k]
    return rgb + (v - c)[..., None]


def _np_official_op(x, op, value):
    if op == 0:  # brightness: add δ
        y = x + value
    elif op == 1:  # contrast: towards each channel's own mean
        m = x.mean(axis=(0, 1), keepdims=True)
        y = value * (x - m) + m
    elif op == 2:  # saturation: scale HSV saturation
        h, s, v = _np_rgb_to_hsv(x)
        y = _np_hsv_to_rgb(h, np.clip(s * value, 0, 1), v)
    else:  # hue: rotate
        h, s, v = _np_rgb_to_hsv(x)
        y = _np_hsv_to_rgb((h + value) % 1.0, s, v)
    return np.clip(y, 0, 1)


def test_official_colour_jitter_equals_a_numpy_transcription_of_tensorflows_ops():
    from byol.data.official_jitter import colour_jitter_official

    g = torch.Generator().manual_seed(0)
    n = 6
    x = torch.rand(n, 3, 9, 7, generator=g, dtype=torch.float64)
    order = torch.stack([torch.randperm(4, generator=g) for _ in range(n)])
    factors = torch.stack([torch.empty(n).uniform_(-0.4, 0.4, generator=g),  # brightness δ
                           torch.empty(n).uniform_(0.6, 1.4, generator=g),  # contrast
                           torch.empty(n).uniform_(0.8, 1.2, generator=g)], 1).double()  # fmt: skip
    shift = torch.empty(n).uniform_(-0.1, 0.1, generator=g).double()
    got = torch.stack(colour_jitter_official(tuple(x.unbind(1)), order, factors, shift), 1)
    for i in range(n):
        y = x[i].permute(1, 2, 0).numpy()
        for op in order[i].tolist():
            value = float(shift[i]) if op == 3 else float(factors[i, op])
            y = _np_official_op(y, op, value)
        np.testing.assert_allclose(got[i].permute(1, 2, 0).numpy(), y, atol=1e-9)


def test_official_mode_draws_brightness_as_an_offset_and_blurs_with_zero_padding():
    from byol.data.augment import sample_view_params
    from byol.data.kernels import blur_kernel_size, gaussian_blur

    p = ViewParams(jitter_p=1.0)
    params = sample_view_params(512, p, torch.Generator().manual_seed(0), jitter="official")
    b = params["jitter_factors"][:, 0]
    assert b.min() < -0.3 and b.max() > 0.3 and b.abs().max() <= 0.4  # δ ∈ [−0.4, 0.4], not a factor near 1
    x = torch.ones(1, 3, 9, 9)
    zero_padded = gaussian_blur(x, torch.tensor([1.0]), 5, padding="zeros")
    assert zero_padded[0, 0, 0, 0] < 0.6 and zero_padded[0, 0, 4, 4] == pytest.approx(1.0)  # edges darken
    assert torch.allclose(gaussian_blur(x, torch.tensor([1.0]), 5), x)  # reflection keeps a flat image
    assert [blur_kernel_size(s, 0.1, "official") for s in (32, 96, 224)] == [3, 9, 23]
    assert [blur_kernel_size(s, 0.1) for s in (32, 96, 224)] == [3, 11, 23]


def test_official_jitter_runs_end_to_end_and_is_the_imagenet_presets():
    from byol.config.presets import resolve

    assert resolve("imagenet", {}).augment.jitter == "official" and resolve("cpu", {}).augment.jitter == "torchvision"
    aug = TwoViewAugment(32, jitter="official", mean=None, std=None)
    v1, v2 = aug(torch.randint(0, 256, (8, 3, 40, 40), dtype=torch.uint8), torch.Generator().manual_seed(0))
    assert v1.shape == (8, 3, 32, 32) and float(v1.min()) >= 0 and float(v2.max()) <= 1
    with pytest.raises(ValueError, match="jitter must be one of torchvision, official"):
        TwoViewAugment(32, jitter="tf")
