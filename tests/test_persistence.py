"""spinecls.persistence: model files without pickle, checked before anything is built."""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch
import torchvision
from sklearn.pipeline import Pipeline
from skorch.exceptions import DeviceWarning

from spinecls import DualHeadClassifier, LumbarPatchTransformer
from spinecls.persistence import (
    decode_params,
    encode_params,
    load_pipeline,
    save_pipeline,
)

TINY = dict(max_epochs=1, batch_size=8, valid_size=None, random_state=0)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.random((16, 1, 32, 32), dtype=np.float32)
    y = np.column_stack([np.arange(16) % 5, np.arange(16) % 3])
    return X, y


@pytest.fixture(scope="module")
def saved(data, tmp_path_factory):
    clf = DualHeadClassifier(module__widths=(4, 8, 8), module__hidden=8, **TINY).fit(*data)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    clf.save(path, metadata={"transformer": {"patch_size": 32}})
    return clf, path


def _tampered(saved, tmp_path, change) -> Path:
    state = torch.load(saved[1], weights_only=True)
    change(state)
    path = tmp_path / "tampered.pt"
    torch.save(state, path)
    return path


def test_round_trip_keeps_parameters_weights_and_metadata(saved, data):
    clf, path = saved
    loaded = DualHeadClassifier.load(path)
    for got, want in zip(loaded.predict_proba(data[0]), clf.predict_proba(data[0])):
        np.testing.assert_array_equal(got, want)
    assert loaded.get_params() == clf.get_params()
    assert loaded.get_params()["module__widths"] == (4, 8, 8)  # a tuple again, not a list
    assert loaded.metadata_ == {"transformer": {"patch_size": 32}}
    assert loaded.n_features_in_ == 1 and loaded.input_shape_ == (1, 32, 32)


def test_loading_leaves_the_callers_torch_generator_alone(saved):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    DualHeadClassifier.load(saved[1])
    np.testing.assert_array_equal(torch.rand(3), expected)


def test_a_failed_save_leaves_the_earlier_file_and_no_partial_file(saved, tmp_path, monkeypatch):
    clf, _ = saved
    target = tmp_path / "model.pt"
    target.write_bytes(b"earlier model")

    def broken(obj, file):
        Path(file).write_bytes(b"half a model")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(KeyboardInterrupt):
        clf.save(target)
    assert target.read_bytes() == b"earlier model"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.pop("classes"), r"tampered.pt: the model file has no 'classes' entry"),
        (lambda s: s.update(params=3), r"tampered.pt: 'params' has the wrong type \(int\)"),
        (lambda s: s.update(params="{"), r"tampered.pt: 'params' is not valid JSON"),
        (lambda s: s.update(version=2), r"version 2 model file; this spinecls reads version 1"),
        (lambda s: s.update(format="spinecls.Other"), r"its format is 'spinecls.Other'"),
        (lambda s: s.update(input_shape="[1, 0, 32]"), r"'input_shape' must be a list of positive"),
        (lambda s: s.update(classes='[["a"], ["b", "c"]]'), r"lists of at least two labels"),
        (
            lambda s: s["state_dict"].update({"heads.condition.1.weight": torch.zeros(4, 8)}),
            r"'heads.condition.1.weight' has shape \(4, 8\), the model expects \(5, 8\)",
        ),
        (
            lambda s: s["state_dict"].pop("heads.severity.1.bias"),
            r"the weights do not fit the model: missing \['heads.severity.1.bias'\]",
        ),
        (
            lambda s: s.update(params=json.dumps({**json.loads(s["params"]), "lrr": 1})),
            r"unexpected parameter 'lrr' \(did you mean 'lr'\?\)",
        ),
        (
            lambda s: s.update(classes="[[0, 0, 1, 2, 3], [0, 1, 2]]"),
            r"'classes' must list distinct labels of one type per output; got \[0, 0, 1, 2, 3\]",
        ),
        (
            lambda s: s.update(classes='[[0, 1, 2, 3, "4"], [0, 1, 2]]'),
            r"distinct labels of one type per output; got \[0, 1, 2, 3, '4'\]",
        ),
        (
            lambda s: s["state_dict"]["heads.severity.1.weight"].fill_(float("nan")),
            r"the weights hold NaN values; see \['heads.severity.1.weight'\]",
        ),
        (
            lambda s: s["state_dict"].update({"heads.severity.1.bias": torch.zeros(3).long()}),
            r"'heads.severity.1.bias' holds torch.int64, the model expects torch.float32",
        ),
    ],
    ids=[
        "missing-entry",
        "wrong-type",
        "bad-json",
        "newer-version",
        "other-format",
        "bad-input-shape",
        "bad-classes",
        "wrong-shape",
        "missing-tensor",
        "unknown-parameter",
        "repeated-class",
        "mixed-classes",
        "nan-weights",
        "integer-weights",
    ],
)
def test_a_damaged_file_gives_one_line_naming_the_file(saved, tmp_path, change, message):
    path = _tampered(saved, tmp_path, change)
    with pytest.raises(ValueError, match=message) as info:
        DualHeadClassifier.load(path)
    assert "\n" not in str(info.value) and "tampered.pt" in str(info.value)


def test_a_huge_stored_width_is_refused_before_anything_is_allocated(saved, tmp_path, monkeypatch):
    def huge(state):
        state["params"] = json.dumps({**json.loads(state["params"]), "module__hidden": 10**9})

    path = _tampered(saved, tmp_path, huge)
    built = []
    monkeypatch.setattr(torch.nn.Linear, "reset_parameters", lambda self: built.append(self))
    with pytest.raises(ValueError, match=r"module__hidden must be an int in \[1, 4096\]"):
        DualHeadClassifier.load(path)
    assert built == []


def test_files_that_need_pickle_are_refused_without_suggesting_it(tmp_path):
    torch.save({"format": "spinecls.DualHeadClassifier", "params": Path("x")}, tmp_path / "p.pt")
    with pytest.raises(ValueError, match="holds objects other than tensors") as info:
        DualHeadClassifier.load(tmp_path / "p.pt")
    assert "weights_only" not in str(info.value)
    with open(tmp_path / "plain.pkl", "wb") as f:
        pickle.dump({"format": "spinecls.DualHeadClassifier"}, f, protocol=5)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="plain.pkl is not a model file written by"):
            DualHeadClassifier.load(tmp_path / "plain.pkl")
    assert [str(w.message) for w in record] == []  # not torch's about the pickle protocol
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="junk.pt is not a model file written by"):
        DualHeadClassifier.load(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError):
        DualHeadClassifier.load(tmp_path / "missing.pt")


def test_other_files_are_refused_in_one_line(saved, tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    (tmp_path / "truncated.pt").write_bytes(saved[1].read_bytes()[:4000])
    (tmp_path / "empty.pt").write_bytes(b"")
    for name in ("other.pt", "tensor.pt"):
        with pytest.raises(ValueError, match=f"{name} is not a model file written by Dual") as info:
            DualHeadClassifier.load(tmp_path / name)
        assert "\n" not in str(info.value)
    for name in ("truncated.pt", "empty.pt"):
        with pytest.raises(ValueError, match="not a complete torch archive") as info:
            DualHeadClassifier.load(tmp_path / name)
        assert "\n" not in str(info.value) and "weights_only" not in str(info.value)
    with pytest.raises(IsADirectoryError, match="is a directory, not a model file"):
        DualHeadClassifier.load(tmp_path)


def _saved_for(saved, tmp_path, device: str) -> Path:
    return _tampered(
        saved,
        tmp_path,
        lambda s: s.update(params=json.dumps({**json.loads(s["params"]), "device": device})),
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_model_saved_on_cuda_loads_on_the_cpu_with_a_warning(saved, data, tmp_path):
    path = _saved_for(saved, tmp_path, "cuda")
    with pytest.warns(DeviceWarning, match=r"saved for device='cuda'.*loaded on 'cpu'"):
        loaded = DualHeadClassifier.load(path)
    assert loaded.device == "cpu" and loaded.net_.device == "cpu"
    assert {p.device.type for p in loaded.net_.module_.parameters()} == {"cpu"}
    for got, want in zip(loaded.predict_proba(data[0]), saved[0].predict_proba(data[0])):
        np.testing.assert_array_equal(got, want)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert DualHeadClassifier.load(path, device="cpu").device == "cpu"
    with pytest.raises(ValueError, match="device cuda cannot be used"):
        DualHeadClassifier.load(saved[1], device="cuda")


def test_a_saved_device_that_is_no_device_is_refused(saved, tmp_path):
    with pytest.raises(ValueError, match="tampered.pt: device='bogus' is not a torch device"):
        DualHeadClassifier.load(_saved_for(saved, tmp_path, "bogus"))


def test_a_torch_device_parameter_is_saved_by_name(data, tmp_path):
    clf = DualHeadClassifier(device=torch.device("cpu"), module__hidden=8, **TINY).fit(*data)
    clf.save(tmp_path / "m.pt")
    assert DualHeadClassifier.load(tmp_path / "m.pt").device == "cpu"


def test_save_checks_its_destination_before_writing(saved, tmp_path):
    clf = saved[0]
    (tmp_path / "folder").mkdir()
    (tmp_path / "a-file").write_text("mine")
    with pytest.raises(IsADirectoryError, match="folder is a directory: give a file name"):
        clf.save(tmp_path / "folder")
    with pytest.raises(FileNotFoundError, match="the directory .*missing does not exist"):
        clf.save(tmp_path / "missing" / "m.pt")
    with pytest.raises(NotADirectoryError, match="a-file is not a directory"):
        clf.save(tmp_path / "a-file" / "m.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "folder"]
    assert list((tmp_path / "folder").iterdir()) == []


def test_parameter_values_json_cannot_hold_round_trip():
    params = {
        "widths": (4, 8),
        "weights_by_code": {0: 1.0, 2: 4.0},
        "tagged_looking": {"tuple": [1]},
        "optimizer": torch.optim.RMSprop,
        "augment": A.HorizontalFlip(p=0.25),
        "weights": torchvision.models.ResNet18_Weights.IMAGENET1K_V1,
        "path": Path("a/b.pth"),
        "random_state": np.random.RandomState(0),
        "scalar": np.float32(0.5),
    }
    stored = json.loads(json.dumps(encode_params(params)))
    assert stored["weights"] == {"torchvision.weights": "ResNet18_Weights.IMAGENET1K_V1"}
    back = decode_params(stored)
    assert back["widths"] == (4, 8) and back["weights_by_code"] == {0: 1.0, 2: 4.0}
    assert back["tagged_looking"] == {"tuple": [1]}
    assert back["optimizer"] is torch.optim.RMSprop
    assert isinstance(back["augment"], A.HorizontalFlip) and back["augment"].p == 0.25
    assert back["weights"] is torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    assert back["path"] == str(Path("a/b.pth")) and back["random_state"] is None
    assert back["scalar"] == 0.5
    with pytest.raises(ValueError, match="cannot save backbone=.*register it"):
        encode_params({"backbone": DualHeadClassifier})
    with pytest.raises(ValueError, match="parameter 'optimizer' cannot be read"):
        decode_params({"optimizer": {"torch.optim": "os"}})


def test_a_model_with_a_backbone_class_is_not_saved(data, tmp_path):
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self, in_channels, n_conditions, n_severities):
            super().__init__()
            self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.condition = nn.Linear(in_channels, n_conditions)
            self.severity = nn.Linear(in_channels, n_severities)

        def forward(self, x):
            h = self.pool(x)
            return self.condition(h), self.severity(h)

    clf = DualHeadClassifier(backbone=Tiny, **TINY).fit(*data)
    with pytest.raises(ValueError, match="cannot save backbone="):
        clf.save(tmp_path / "m.pt")
    assert list(tmp_path.iterdir()) == []


def test_a_model_with_torchvision_weights_saves_them_as_json(data, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    member = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(torchvision.models.resnet18().state_dict(), cache / member.url.rsplit("/", 1)[-1])
    clf = DualHeadClassifier(backbone="resnet18", weights=member, module__hidden=8, **TINY)
    clf.fit(*data)
    clf.save(tmp_path / "m.pt")
    params = json.loads(torch.load(tmp_path / "m.pt", weights_only=True)["params"])
    assert params["weights"] == {"torchvision.weights": "ResNet18_Weights.IMAGENET1K_V1"}
    (cache / member.url.rsplit("/", 1)[-1]).unlink()  # loading needs the file's weights only
    loaded = DualHeadClassifier.load(tmp_path / "m.pt")
    assert loaded.weights is member
    for got, want in zip(loaded.predict_proba(data[0]), clf.predict_proba(data[0])):
        np.testing.assert_array_equal(got, want)


# -- whole pipelines -------------------------------------------------------------------
@pytest.fixture(scope="module")
def pipeline_file(rsna_frame, tmp_path_factory):
    pipe = Pipeline([
        ("patches", LumbarPatchTransformer(patch_size=40, output_size=32, n_jobs=1)),
        ("clf", DualHeadClassifier(max_epochs=1, valid_size=None, random_state=0)),
    ])  # fmt: skip
    pipe.fit(rsna_frame, rsna_frame[["condition", "severity"]])
    path = tmp_path_factory.mktemp("pipeline") / "model.pt"
    save_pipeline(pipe, path, metadata={"note": "kept"})
    return pipe, path


def test_a_saved_pipeline_loads_as_the_same_pipeline(pipeline_file, rsna_frame):
    pipe, path = pipeline_file
    loaded = load_pipeline(path, n_jobs=2, verbose=0)
    assert loaded.named_steps["patches"].get_params()["patch_size"] == 40
    assert loaded.named_steps["patches"].get_params()["n_jobs"] == 2
    assert loaded.named_steps["clf"].metadata_["note"] == "kept"
    rows = rsna_frame.head(10)
    for a, b in zip(pipe.predict_proba(rows), loaded.predict_proba(rows)):
        np.testing.assert_array_equal(a, b)


def test_the_file_records_only_what_shapes_the_patches(pipeline_file):
    recorded = DualHeadClassifier.load(pipeline_file[1]).metadata_["transformer"]
    assert recorded == {
        "blur": None,
        "mode": "crop",
        "normalize": "percentile",
        "output_size": 32,
        "patch_size": 40,
        "patch_size_mm": None,
        "slices": 1,
    }


def test_load_pipeline_refuses_settings_that_would_change_the_patches(pipeline_file):
    with pytest.raises(ValueError, match=r"\['patch_size'\] come from the model file"):
        load_pipeline(pipeline_file[1], patch_size=8)


def test_a_classifier_file_without_its_transformer_is_refused_in_one_line(saved):
    clf, path = saved
    bare = path.with_name("bare.pt")
    clf.save(bare)
    with pytest.raises(ValueError, match="does not record how its patches were made") as info:
        load_pipeline(bare)
    assert "\n" not in str(info.value)


def test_save_pipeline_needs_a_transformer_and_a_savable_model(saved, tmp_path):
    with pytest.raises(ValueError, match="LumbarPatchTransformer and a fitted"):
        save_pipeline(Pipeline([("clf", saved[0])]), tmp_path / "m.pt")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("runtime", [{"memory": "/tmp/cache"}, {"data_dir": "/elsewhere"}])
def test_a_file_cannot_choose_where_data_is_read_or_cached(saved, tmp_path, runtime):
    recipe = {"patch_size": 32, "output_size": 32, **runtime}
    path = _tampered(
        saved, tmp_path, lambda s: s.update(metadata=json.dumps({"transformer": recipe}))
    )
    with pytest.raises(
        ValueError, match=rf"tampered.pt: .* run-time parameters \['{[*runtime][0]}'\]"
    ):
        load_pipeline(path, data_dir=tmp_path)


def test_load_pipeline_puts_the_model_on_the_chosen_device(pipeline_file, tmp_path):
    state = torch.load(pipeline_file[1], weights_only=True)
    state["params"] = json.dumps({**json.loads(state["params"]), "device": "cuda"})
    torch.save(state, tmp_path / "cuda.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = load_pipeline(tmp_path / "cuda.pt", device="cpu")
    assert loaded.named_steps["clf"].net_.device == "cpu"
