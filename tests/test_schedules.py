import math

import pytest

from byol.schedules import lr_schedule, scaled_lr, tau_schedule


def test_tau_starts_at_base_and_ends_at_one():
    assert tau_schedule(0, 1000, 0.996) == pytest.approx(0.996)
    assert tau_schedule(1000, 1000, 0.996) == 1.0
    assert tau_schedule(500, 1000, 0.996) == pytest.approx(0.998)
    values = [tau_schedule(k, 100, 0.99) for k in range(101)]
    assert all(a <= b for a, b in zip(values, values[1:]))


def test_lr_warmup_and_cosine_end_points():
    peak = scaled_lr(0.2, 4096)
    assert peak == pytest.approx(3.2)
    assert lr_schedule(0, 1000, peak, warmup_steps=100) == 0.0
    assert lr_schedule(50, 1000, peak, warmup_steps=100) == pytest.approx(peak / 2)
    assert lr_schedule(100, 1000, peak, warmup_steps=100) == pytest.approx(peak)
    assert lr_schedule(550, 1000, peak, warmup_steps=100) == pytest.approx(peak / 2)
    assert lr_schedule(1000, 1000, peak, warmup_steps=100) == pytest.approx(0.0, abs=1e-12)
    assert lr_schedule(0, 10, 1.0) == 1.0
    assert lr_schedule(5, 10, 1.0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 2)))
