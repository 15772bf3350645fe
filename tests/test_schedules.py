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


def _curves(schedule, steps, tau_base=0.99):
    return [schedule.lr(s, 1.0) for s in steps], [schedule.tau(s, tau_base) for s in steps]


def _biggest_step(values):
    return max(abs(b - a) for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("stop_at", [1000, 600])  # a finished run; one broken off after its peak
def test_extending_a_run_re_warms_from_where_it_stands_with_no_jump(stop_at):
    from byol.train.state import Schedule

    old = Schedule(1000, 100, 50)
    before_lr, before_tau = _curves(old, range(stop_at + 1))
    extended = Schedule(1000, 100, 50)
    extended.extend(stop_at, 2000, 100)
    after = range(stop_at, 2001)
    lr, tau = _curves(extended, after)
    assert lr[0] == pytest.approx(before_lr[-1]) and tau[0] == pytest.approx(before_tau[-1])  # the join
    assert extended.total_steps == 2000 and lr[-1] == pytest.approx(0.0, abs=1e-12) and tau[-1] == 1.0
    # No jump: lr moves no more in a step than the original warm-up did, τ at most its whole range
    # (1 − τ_base) spread over the 100 steps of the re-warm.
    assert _biggest_step(lr) <= _biggest_step(before_lr + [0.0]) + 1e-9
    assert _biggest_step(tau) <= (1 - 0.99) / 100 + 1e-12
    top = max(range(len(lr)), key=lr.__getitem__)
    if stop_at == 1000:  # lr had decayed to 0: re-warmed over the warm-up's length, to the new length's cosine
        planned = Schedule(2000, 100, 50)
        assert top == 100 and lr[top] == pytest.approx(planned.lr(stop_at + 100, 1.0))
        assert all(a <= b for a, b in zip(lr[: top + 1], lr[1 : top + 1]))
        assert lr[top:] == pytest.approx(_curves(planned, range(stop_at + top, 2001))[0])  # then the planned run's
        assert min(tau) == pytest.approx(planned.tau(stop_at + 100, 0.99))  # τ came down from 1 with the lr
    assert all(a >= b for a, b in zip(lr[top:], lr[top + 1 :]))  # after the top, only down
