"""byol.lightning.BYOLModule: a few Trainer steps equal byol's own train_step, step for step."""

import copy

import lightning.pytorch as L
import pytest
import torch
from helpers import tiny_config
from torch.utils.data import DataLoader, TensorDataset

from byol.build import peak_lr
from byol.data.loader import TrainData
from byol.encoder_io import load_encoder
from byol.lightning import BYOLModule
from byol.optim import build_optimizer, param_groups
from byol.schedules import lr_schedule, tau_schedule
from byol.train.engine import augmentation_generator, train_step


def _trainer(**kwargs) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, **kwargs,
    )  # fmt: skip


@pytest.fixture
def images(small):
    data = TrainData(str(small["train"]), image_size=32, batch_size=16, cache_dir=str(small["cache"]), workers=0)
    return data.cached.images(torch.arange(64))  # real CIFAR images, uint8


@pytest.mark.parametrize("optimizer", ["lars", "sgd", "adamw"])
def test_lightning_steps_equal_train_step_on_the_same_batches_and_weights(small, images, optimizer):
    cfg = tiny_config(small["train"], small["cache"])
    cfg.optim.batch_size, cfg.optim.optimizer, cfg.optim.warmup_epochs = 16, optimizer, 0.5
    cfg.optim.scale_lr = optimizer != "adamw"  # as the presets: AdamW takes its rate as it is
    module = BYOLModule(cfg)
    reference = copy.deepcopy(module.method)
    loader = DataLoader(TensorDataset(images), batch_size=16, shuffle=False)
    _trainer(max_steps=4).fit(module, loader)
    assert module.total_steps == 4 and module.warmup_steps == 2 and module.global_step == 4

    # The same steps by hand: byol's augmentation draws, train_step, then the target's move.
    opt = cfg.optim
    peak = peak_lr(opt)  # one process, no accumulation
    ref_opt = build_optimizer(
        opt.optimizer, param_groups(reference.trained_modules(), opt.weight_decay), lr=peak,
        weight_decay=opt.weight_decay, momentum=opt.momentum, trust_coefficient=opt.trust_coefficient, clip=opt.clip_lr,
    )  # fmt: skip
    reference.train()
    for step in range(4):
        batch = images[step * 16 : (step + 1) * 16]
        views = module.augment(batch, augmentation_generator(cfg.run.seed, 0, step, 0, torch.device("cpu")))
        views = tuple(v.contiguous(memory_format=module.memory_format) for v in views)
        train_step(reference, ref_opt, [views], lr_schedule(step, 4, peak, 2))
        reference.after_step(tau_schedule(step, 4, opt.tau_base))
    ours, theirs = module.method.state_dict(), reference.state_dict()
    assert ours.keys() == theirs.keys()
    for key in ours:  # online, target (EMA), BatchNorm statistics
        torch.testing.assert_close(ours[key], theirs[key], atol=1e-5, rtol=1e-5, msg=key)
    initial = BYOLModule(cfg).method.state_dict()
    assert not torch.equal(initial["target_encoder.features.0.weight"], ours["target_encoder.features.0.weight"])


@pytest.mark.parametrize("clip", [None, 1.0])
def test_lightning_steps_bf16_mixed_with_or_without_gradient_clipping(small, images, clip):
    """AdamW takes the fused kernels on a CPU, which Lightning refuses to clip under mixed precision (they
    unscale gradients themselves): the module builds them unfused when the Trainer clips, fused otherwise."""
    cfg = tiny_config(small["train"], small["cache"])
    cfg.optim.batch_size, cfg.optim.optimizer, cfg.optim.scale_lr = 16, "adamw", False
    module = BYOLModule(cfg)
    trainer = _trainer(max_steps=2, precision="bf16-mixed", gradient_clip_val=clip)
    trainer.fit(module, DataLoader(TensorDataset(images), batch_size=16))
    assert module.global_step == 2
    assert trainer.optimizers[0].defaults["fused"] == (None if clip else True)


def test_lightning_module_refuses_a_loader_of_another_batch_size_and_saves_a_loadable_encoder(small, images, tmp_path):
    cfg = tiny_config(small["train"], small["cache"])
    cfg.optim.batch_size = 16
    module = BYOLModule(cfg)
    with pytest.raises(ValueError, match="batch_size is 8 but optim.batch_size is 16"):
        _trainer(max_steps=1).fit(module, DataLoader(TensorDataset(images), batch_size=8))
    module.save_encoder(tmp_path / "run")
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(load_encoder(tmp_path / "run")(x), module.encoder.eval()(x))


def test_with_accumulated_batches_the_target_moves_once_per_optimiser_step(small, images):
    cfg = tiny_config(small["train"], small["cache"])
    cfg.optim.batch_size, cfg.optim.optimizer, cfg.optim.scale_lr = 16, "lars", True
    module = BYOLModule(cfg)
    taus = []
    real = module.method.after_step
    module.method.after_step = lambda tau: taus.append(tau) or real(tau)
    _trainer(max_steps=2, accumulate_grad_batches=2).fit(module, DataLoader(TensorDataset(images), batch_size=16))
    assert module.global_step == 2 and taus == [
        tau_schedule(0, 2, cfg.optim.tau_base),
        tau_schedule(1, 2, cfg.optim.tau_base),
    ]
    assert module.peak_lr() == pytest.approx(cfg.optim.base_lr * 32 / 256)  # 16 images × 2 accumulated


def test_a_data_dependent_encoder_start_is_refused_rather_than_skipped():
    with pytest.raises(ValueError, match="encoder_init bn-mimic needs the run's first batch"):
        BYOLModule("cpu", {"model": {"encoder_norm": "groupnorm-ws", "encoder_init": "bn-mimic"}})
