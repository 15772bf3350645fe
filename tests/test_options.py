"""Every option with a wrong value is one line on stderr and exit code 2, never a traceback.

The cases come from the config dataclasses themselves, so a new option is covered when it is added.
"""

import dataclasses
import typing
from pathlib import Path

import pytest
import torch

from byol.cli.__main__ import main as cli
from byol.config import AugmentConfig, DataConfig, ModelConfig, OptimConfig, RunConfig
from byol.config.flags import flags, option_name

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


@pytest.mark.parametrize("flag", [f.name for f in flags() if f.type in (int, float)])
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
        (["--batch-size", "32", "--accumulate", "13"], "400 images make 12 batches, fewer than --accumulate 13"),
        (["--device", "cpu", "--set", "model.sync_bn=on"], "model.sync_bn=on needs CUDA"),
        *([] if torch.cuda.is_available() else [(["--device", "cuda"], "--device cuda: CUDA is not available")]),
    ],
)
def test_malformed_options_are_one_line(synthetic, args, message, tmp_path, capsys):
    base = ["pretrain", str(synthetic["train"]), "--out", str(tmp_path / "run"), "--preset", "cpu"]
    code = cli([*base, "--cache-dir", str(synthetic["cache"]), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err


def test_run_folder_refusals_are_one_line(synthetic, tmp_path, capsys):
    base = ["pretrain", str(synthetic["train"]), "--preset", "cpu", "--cache-dir", str(synthetic["cache"])]
    assert cli([*base, "--out", str(tmp_path / "new"), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--resume: no checkpoint in" in err, err
    orphan = tmp_path / "orphan"
    (orphan / "checkpoints").mkdir(parents=True)
    (orphan / "checkpoints" / "step-000000012.pt").write_bytes(b"")
    assert cli([*base, "--out", str(orphan)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds checkpoints but no config.yaml" in err, err


def test_shards_into_a_folder_that_holds_shards_are_refused(synthetic, tmp_path, capsys):
    pytest.importorskip("webdataset")
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "shard-000000.tar").write_bytes(b"")
    assert cli(["shard", str(synthetic["train"]), "--out", str(tmp_path / "shards")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds shards already" in err, err


def test_evaluating_on_classes_the_training_folder_lacks_is_refused(synthetic, tmp_path, capsys):
    from byol.encoder_io import encoder_meta, save_encoder
    from byol.models import build_encoder

    enc = build_encoder("convnet", width=0.25, image_size=32)
    meta = encoder_meta("convnet", 32, (0.5,) * 3, (0.25,) * 3, enc.feature_dim, 1.0, width=0.25)
    save_encoder(enc.module, meta, tmp_path / "enc")
    train = tmp_path / "two-classes"
    for cls in sorted(p.name for p in synthetic["train"].iterdir())[:2]:
        (train / cls).mkdir(parents=True)
        for f in sorted((synthetic["train"] / cls).iterdir())[:5]:
            (train / cls / f.name).symlink_to(f.resolve())
    args = ["eval", "knn", str(tmp_path / "enc"), "--train", str(train), "--test", str(synthetic["test"]), "--json"]
    assert cli(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "its classes class2, class3, class4," in err, err
    assert f"are not among the 2 classes of {train} (class0, class1)" in err, err


@pytest.mark.parametrize(
    "epochs, expected",
    [(40, (0.45, 1e-6, 0.97)), (100, (0.45, 1e-6, 0.99)), (300, (0.3, 1e-6, 0.99)), (1000, (0.2, 1.5e-6, 0.996)),
     (60, (0.45, 1e-6, 0.97)), (800, (0.2, 1.5e-6, 0.996))],
)  # fmt: skip
def test_the_imagenet_preset_takes_lr_weight_decay_and_tau_from_the_run_length(epochs, expected):
    """The official release's presets by run length (nearest on a log scale); a value the user sets wins."""
    from byol.config.presets import resolve

    cfg = resolve("imagenet", {"run": {"epochs": epochs}})
    assert (cfg.optim.base_lr, cfg.optim.weight_decay, cfg.optim.tau_base) == expected
    mine = resolve("imagenet", {"run": {"epochs": epochs}, "optim": {"base_lr": 0.4, "tau_base": 0.9995}})
    assert (mine.optim.base_lr, mine.optim.weight_decay, mine.optim.tau_base) == (0.4, expected[1], 0.9995)


def test_micro_batch_auto_halves_on_a_gpu_out_of_memory_error_until_a_step_fits():
    """The GPU path of ``fit_micro_batch``: a probe step that runs out of memory above 96 images."""
    from byol.train.memory import fit_micro_batch

    tried = []

    def probe(micro):
        tried.append(micro)
        if micro > 96:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    assert fit_micro_batch(1024, probe, torch.device("cuda")) == (64, "probe steps on the GPU")
    assert tried == [1024, 512, 256, 128, 64]


def test_the_version_is_the_packages_everywhere(capsys):
    """pyproject.toml, ``byol.__version__`` and ``byol --version`` say the same."""
    import tomllib
    from pathlib import Path

    import byol

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert byol.__version__ == pyproject["project"]["version"]
    with pytest.raises(SystemExit):
        cli(["--version"])
    assert capsys.readouterr().out.strip() == f"byol {byol.__version__}"


def test_every_flag_sets_a_config_key_that_exists_and_errors_name_the_flag():
    import argparse

    from byol.config import Config
    from byol.config.flags import add_flags, flag_values

    cfg = Config()
    for f in flags():
        *path, key = f.key.split(".")
        section = getattr(cfg, path[0])
        section = section[path[1]] if len(path) == 2 else section  # a method's options: methods.<name>.<key>
        assert hasattr(section, key), f.name
        assert option_name(f.key) == f.name
    assert option_name("model.projection_dim") == "--set model.projection_dim"
    parser = argparse.ArgumentParser()
    add_flags(parser)
    args = parser.parse_args(["--no-predictor", "--epochs", "3", "--compile"])
    assert flag_values(args) == {"model": {"use_predictor": False}, "run": {"epochs": 3.0, "compile": True}}


def test_help_is_each_options_docstring_and_lists_choices_from_their_registries(capsys, monkeypatch):
    """One text per option: ``byol pretrain --help`` prints each flag's config docstring
    (``option_help``), and a name added to a registry (a backbone here) is among the choices that
    ``--help`` lists and that validation accepts, with nobody writing it anywhere else."""
    import byol.models.backbones as backbones
    from byol.config import CHOICES, Config
    from byol.config.docs import option_docstrings, option_help
    from byol.errors import ByolError

    with pytest.raises(SystemExit):
        cli(["pretrain", "--help"])
    squeeze = lambda text: "".join(text.split())  # noqa: E731  (argparse wraps lines, even at hyphens)
    shown = squeeze(capsys.readouterr().out)
    for f in flags():
        doc = option_docstrings()[f.key]  # every flag's key has its docstring in the schema
        assert doc and squeeze(option_help(f.key)) in shown, f.name
    assert squeeze("The optimiser: lars is the paper's. One of: lars, sgd, adamw.") in shown
    assert "timm:<name>" in option_help("model.backbone") and "convnet" in option_help("model.backbone")
    monkeypatch.setitem(backbones._REGISTRY, "tinynet", backbones._REGISTRY["convnet"])
    assert "tinynet" in option_help("model.backbone") and "tinynet" in CHOICES["model.backbone"]()
    ModelConfig(backbone="tinynet").validate()
    with pytest.raises(ByolError, match=r"--optimizer must be one of lars, sgd, adamw, got 'adam'"):
        dataclasses.replace(Config().optim, optimizer="adam").validate()


def test_the_resume_policy_is_declared_on_the_fields_and_read_from_there():
    """Issue 42: a key a resume may change is declared so beside its field (``byol.config.resumable``);
    run_folder reads the set from the schema. The set is the one run_folder listed by hand before."""
    from dataclasses import fields

    from byol.config import DataConfig, RunConfig, resumable_keys
    from byol.train.run_folder import LENGTH_CHANGES, RESUMABLE_CHANGES

    assert set(RESUMABLE_CHANGES) == {
        "run.device", "run.precision", "run.log_every", "data.workers", "data.path", "data.cache_dir",
        "data.eval_crop", "data.allow_changed", "data.cache_on_device", "data.knn_test", "optim.base_lr",
        "optim.compiled_step", "run.compile_mode", "run.epochs", "run.time_budget",
    }  # fmt: skip
    assert set(LENGTH_CHANGES) <= set(RESUMABLE_CHANGES) and resumable_keys() == RESUMABLE_CHANGES
    declared = {f.name: bool(f.metadata.get("resumable")) for cls in (DataConfig, RunConfig) for f in fields(cls)}
    assert declared["path"] and declared["epochs"] and not declared["image_size"] and not declared["seed"]


def test_every_committed_run_folders_config_loads_as_it_was_written():
    """Behaviour unchanged across reshapings (issue 42): the config.yaml of every committed run folder
    (docs/results, written by byol since 2026-11-30) loads with today's schema, validates, and gives back
    every value it holds (keys that moved, in their new place), so ``byol pretrain`` on such a folder
    takes up the run it was."""
    import yaml

    from byol.config.io import load_yaml, upgrade

    def held(saved: dict, now: dict, prefix: str = "") -> list[str]:
        """The keys of ``saved`` whose value ``now`` does not give back."""
        out = []
        for key, value in saved.items():
            if isinstance(value, dict) and isinstance(now.get(key), dict):
                out += held(value, now[key], f"{prefix}{key}.")
            elif now.get(key) != value:
                out.append(f"{prefix}{key}: {value!r} -> {now.get(key)!r}")
        return out

    paths = sorted((Path(__file__).resolve().parents[1] / "docs" / "results").rglob("config.yaml"))
    assert len(paths) >= 40
    for path in paths:
        saved = upgrade(yaml.safe_load(path.read_text()))
        assert held(saved, load_yaml(path).validate().to_dict()) == [], path


def test_a_flag_declared_twice_is_refused_and_a_method_registered_later_brings_its_flags(monkeypatch):
    """The flag table is read from the schema when asked (``flags()``): a method registered after the
    module was imported brings its flag; two fields of one flag are an error naming both."""
    import dataclasses as dc

    from byol.config import option
    from byol.method import METHODS, MethodSpec

    def register(name: str, key: str, flag: str) -> None:
        """A method ``name`` whose options class has one field ``key`` with ``flag``."""
        options = dc.make_dataclass(name.title(), [(key, float, option(1.0, flag=flag))])
        options.SECTION = f"methods.{name}"
        monkeypatch.setitem(METHODS, name, MethodSpec(lambda *a: None, options))

    register("mine", "weight", "--mine-weight")
    assert ("--mine-weight", "methods.mine.weight") in {(f.name, f.key) for f in flags()}
    assert option_name("methods.mine.weight") == "--mine-weight"
    register("clash", "t", "--temperature")
    with pytest.raises(ValueError, match="--temperature is declared by both methods.simclr.temperature and methods.cl"):
        flags()
