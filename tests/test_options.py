"""Every option with a wrong value is one line on stderr and exit code 2, never a traceback.

The cases come from the config dataclasses themselves, so a new option is covered when it is added.
"""

import dataclasses
import typing

import pytest

from byol.cli.__main__ import main as cli
from byol.config import FLAGS, AugmentConfig, DataConfig, ModelConfig, OptimConfig, RunConfig, option_name

SECTIONS = {"data": DataConfig, "model": ModelConfig, "augment": AugmentConfig, "optim": OptimConfig, "run": RunConfig}


def wrong_values():
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            key, hint = f"{section}.{f.name}", hints[f.name]
            yield key, "[1, 2]" if hint is str else "abc"  # the wrong type
            if hint in (int, float) or typing.get_args(hint) in ((int, type(None)), (float, type(None))):
                yield key, "-1"  # out of range: no count, size, rate or time of byol may be negative


CASES = list(wrong_values())


@pytest.mark.parametrize("key, value", CASES, ids=[f"{k}={v}" for k, v in CASES])
def test_every_config_key_with_a_wrong_value_is_one_line(key, value, tmp_path, capsys):
    code = cli(["pretrain", str(tmp_path / "missing"), "--out", str(tmp_path / "run"), "--preset", "cpu",
                "--set", f"{key}={value}"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert option_name(key) in err or f"'{key}'" in err, err  # it names the option as the user sets it
    assert "does not exist" not in err  # refused before the data is looked at


@pytest.mark.parametrize("flag", [f for f, (_, _, typ, _) in FLAGS.items() if typ in (int, float)])
def test_every_numeric_flag_with_text_is_one_line(flag, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli(["pretrain", str(tmp_path), "--out", str(tmp_path / "run"), flag, "abc"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and flag in err, err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--batch-size", "0"], "--batch-size must be at least 2"),
        (["--batch-size", "1024"], "fewer than one batch of 1024"),
        (["--backbone", "vit"], "--backbone 'vit' is unknown"),
        (["--lr", "-1"], "--lr must be positive"),
        (["--set", "model.nrom=layernorm"], "unknown config key model.nrom"),
        (["--set", "nope.key=1"], "unknown config section 'nope'"),
        (["--set", "optim.batch_size"], "expected section.key=value"),
        (["--preset", "nope"], "--preset 'nope' is neither"),
        (["--preset", "missing.yaml"], "--preset 'missing.yaml' is neither"),
        (["--device", "tpu"], "--device must be"),
        (["--device", "cuda:x"], "--device 'cuda:x' is not a device"),
        (["--micro-batch", "1"], "--micro-batch must be auto or a whole number of at least 2"),
    ],
)
def test_malformed_options_are_one_line(small, args, message, tmp_path, capsys):
    base = ["pretrain", str(small["train"]), "--out", str(tmp_path / "run"), "--preset", "cpu"]
    code = cli([*base, "--cache-dir", str(small["cache"]), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
