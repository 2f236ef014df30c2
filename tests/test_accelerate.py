"""Training on accelerators: accelerate (one and two CPU processes), bf16, channels-last,
DataLoader workers; all on CPU, with 32 px images and a few samples."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch
from sklearn.base import clone
from torch.utils.data import DataLoader, TensorDataset

from spinecls import DualHeadClassifier
from spinecls._utils.accelerate import autocast, seed_worker
from spinecls.augment import AugmentedDataset, lateral_swap, make_augmentation
from spinecls.classifier._net import make_net

from . import _accelerate_worker as worker

needs_accelerate = pytest.mark.skipif(
    importlib.util.find_spec("accelerate") is None,
    reason="Hugging Face accelerate is not installed (pip install 'spinecls[accelerate]')",
)
PARAMS = dict(max_epochs=2, batch_size=8, valid_size=None, random_state=0)
SMALL = dict(module__widths=(8, 8, 8), module__hidden=16)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.random((16, 1, 32, 32), dtype=np.float32)
    y = np.column_stack([rng.integers(0, 3, 16), rng.integers(0, 3, 16)])
    return X, y


@pytest.fixture(scope="module")
def plain(data):
    return DualHeadClassifier(**PARAMS, **SMALL).fit(*data)


@pytest.fixture
def accelerator():
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    yield Accelerator(cpu=True)
    # accelerate keeps its state per process: the next test may want other settings.
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def _assert_close(got, want, atol):
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, atol=atol, rtol=0)


@needs_accelerate
def test_one_process_accelerator_trains_the_same_model(data, plain, accelerator):
    from skorch.hf import AccelerateMixin

    clf = DualHeadClassifier(**PARAMS, **SMALL, accelerator=accelerator).fit(*data)
    assert isinstance(clf.net_, AccelerateMixin)
    assert clf.net_.device is None  # the accelerator places the model
    np.testing.assert_allclose(
        clf.history_[:, "train_loss"], plain.history_[:, "train_loss"], atol=1e-6
    )
    _assert_close(clf.predict_proba(data[0]), plain.predict_proba(data[0]), atol=1e-6)


@needs_accelerate
def test_clone_and_get_params_keep_the_same_accelerator(accelerator):
    clf = DualHeadClassifier(accelerator=accelerator)
    assert clf.get_params()["accelerator"] is accelerator
    assert clone(clf).accelerator is accelerator  # Accelerator.__deepcopy__ returns itself


@needs_accelerate
def test_saved_file_stores_no_accelerator_and_loads_without_one(data, accelerator, tmp_path):
    clf = DualHeadClassifier(**PARAMS, **SMALL, accelerator=accelerator, precision="32")
    clf.fit(*data).save(tmp_path / "model.pt")
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert json.loads(state["params"])["accelerator"] is None
    loaded = DualHeadClassifier.load(tmp_path / "model.pt")
    assert loaded.accelerator is None and loaded.net_.device == "cpu"
    _assert_close(loaded.predict_proba(data[0]), clf.predict_proba(data[0]), atol=1e-6)


@needs_accelerate
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"device": "cuda:1"}, "differs from the accelerator's device cpu"),
        ({"precision": "bf16"}, r"Accelerator\(mixed_precision='bf16'\)"),
    ],
)
def test_settings_that_contradict_the_accelerator_are_refused(data, accelerator, params, message):
    with pytest.raises(ValueError, match=message):
        DualHeadClassifier(accelerator=accelerator, **params).fit(*data)


def test_an_accelerator_that_is_not_one_is_refused(data):
    pytest.importorskip("accelerate", reason="the message needs accelerate to name its class")
    with pytest.raises(ValueError, match="accelerate.Accelerator or None; got 'auto'"):
        DualHeadClassifier(accelerator="auto").fit(*data)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_accelerate
def test_two_cpu_processes_train_the_model_one_process_trains(tmp_path):
    """gloo data parallelism: a batch of 16 on each of two processes = 32 on one."""
    out = tmp_path / "probas.npz"
    src = Path(__file__).resolve().parents[1] / "src"
    base = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
        "WORLD_SIZE": "2",
        "LOCAL_WORLD_SIZE": "2",
        "OMP_NUM_THREADS": "1",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, worker.__file__, str(out)],
            env={**base, "RANK": str(rank), "LOCAL_RANK": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(2)
    ]
    try:
        logs = [p.communicate(timeout=240)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(logs)[-3000:]
    got = np.load(out)
    assert int(got["processes"]) == 2

    X, y = worker.data()
    one = DualHeadClassifier(
        backbone=worker.NoBatchNorm, batch_size=worker.GLOBAL_BATCH, **worker.PARAMS
    ).fit(X, y)
    want = one.predict_proba(X)
    _assert_close([got["condition"], got["severity"]], want, atol=1e-5)
    assert np.abs(want[1] - 1 / want[1].shape[1]).max() > 1e-3  # it learnt something


def test_bf16_autocast_on_cpu_trains_and_predicts_float32(data):
    clf = DualHeadClassifier(**{**PARAMS, "max_epochs": 3}, **SMALL, precision="bf16")
    clf.fit(*data)
    losses = clf.history_[:, "train_loss"]
    assert losses[-1] < losses[0]
    seen = []
    conv = next(m for m in clf.net_.module_.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda module, args, output: seen.append(output.dtype))
    probas = clf.predict_proba(data[0])
    assert seen and set(seen) == {torch.bfloat16}  # the convolutions ran in bf16
    assert [p.shape for p in probas] == [(16, len(c)) for c in clf.classes_]
    assert {p.dtype for p in probas} == {np.dtype(np.float32)}
    np.testing.assert_allclose(probas[1].sum(axis=1), 1, atol=1e-5)


def test_fp16_without_cuda_is_refused_with_the_alternative(data):
    with pytest.raises(ValueError, match=r"precision='fp16' needs a CUDA device.*'bf16'"):
        DualHeadClassifier(precision="fp16").fit(*data)


def test_channels_last_keeps_weights_channels_last_and_predicts_the_same(data, plain):
    clf = DualHeadClassifier(**PARAMS, **SMALL, channels_last=True).fit(*data)
    convs = [m for m in clf.net_.module_.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    _assert_close(clf.predict_proba(data[0]), plain.predict_proba(data[0]), atol=1e-5)


def test_loader_workers_give_the_same_model_and_pin_memory_only_on_cuda(data, plain):
    clf = DualHeadClassifier(**PARAMS, **SMALL, num_workers=2).fit(*data)
    assert clf.net_.iterator_train__num_workers == 2
    assert clf.net_.iterator_train__pin_memory is False
    _assert_close(clf.predict_proba(data[0]), plain.predict_proba(data[0]), atol=1e-6)
    params = DualHeadClassifier(device="cuda", num_workers=1).get_params()
    net = make_net(params, classes=[np.arange(3), np.arange(3)], in_channels=1)
    assert net.iterator_train__pin_memory is True and net.iterator_valid__pin_memory is True


def test_each_loader_worker_draws_its_own_augmentations():
    images = torch.zeros(2, 1, 32, 32)
    images[:, :, 4:12, 2:10] = 1  # the same asymmetric image twice
    dataset = AugmentedDataset(
        TensorDataset(images, torch.zeros(2, 2, dtype=torch.long)),
        make_augmentation(A.Affine(rotate=(-30, 30), p=1.0), random_state=0),
        lateral_swap(np.array(["Left Neural Foraminal Narrowing"])),
    )
    torch.manual_seed(0)
    loader = DataLoader(dataset, batch_size=1, num_workers=2, worker_init_fn=seed_worker)
    first, second = (batch[0] for batch in loader)  # one sample from each worker
    assert not torch.equal(first, second)


def test_one_autocast_helper_serves_the_nets_and_the_localizer():
    """PrecisionMixin.infer and LevelLocalizer.predict both enter this region."""
    with autocast("bf16", "cpu"):
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    with autocast("32", torch.device("cpu")):
        assert not torch.is_autocast_enabled("cpu")


def test_each_loader_worker_of_the_localizer_draws_its_own_augmentations():
    from spinecls.localization._volumes import StackDataset

    images = np.zeros((3, 1, 32, 32), dtype=np.float32)
    images[:, :, 4:12, 2:10] = 0.8  # the same asymmetric stack twice
    targets = np.array([[1, 8.0, 8.0, 1.0]], dtype=np.float32)
    dataset = StackDataset([(images, targets)] * 2, augment=True, seed=0)
    torch.manual_seed(0)
    loader = DataLoader(dataset, batch_size=1, num_workers=2, worker_init_fn=seed_worker)
    (first, _), (second, _) = loader  # one sample from each worker
    assert not torch.equal(first, second)
    # without the seeding each worker's copy of the generator draws alike
    copies = DataLoader(dataset, batch_size=1, num_workers=2)
    (first, _), (second, _) = copies
    assert torch.equal(first, second)
