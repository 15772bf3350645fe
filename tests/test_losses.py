import torch

from byol.losses import regression_loss


def test_aligned_is_zero_and_opposite_is_four():
    x = torch.randn(16, 32)
    assert torch.allclose(regression_loss(x, x), torch.tensor(0.0), atol=1e-6)
    assert torch.allclose(regression_loss(x, -x), torch.tensor(4.0), atol=1e-6)


def test_equals_two_minus_two_cosine_and_is_scale_invariant():
    p, z = torch.randn(8, 16), torch.randn(8, 16)
    expected = (2 - 2 * torch.nn.functional.cosine_similarity(p, z)).mean()
    assert torch.allclose(regression_loss(p, z), expected, atol=1e-6)
    assert torch.allclose(regression_loss(5.0 * p, z), expected, atol=1e-6)
    assert torch.allclose(regression_loss(p, 0.01 * z), expected, atol=1e-6)
