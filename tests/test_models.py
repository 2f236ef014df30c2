"""Backbones: shapes at every size and channel count, input adaptation, weights, registry."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from spinecls.models import (
    BACKBONES,
    MAX_WIDTH,
    InceptionCNN,
    SimpleCNN,
    TorchvisionBackbone,
    adapt_input_conv,
    build_backbone,
    check_backbone_params,
    register_backbone,
    takes_weights,
)


@pytest.mark.parametrize(
    "name", ["simple", "inception", "vgg16", "resnet18", "efficientnet_b0", "densenet121"]
)
@pytest.mark.parametrize("channels", [1, 2, 3])
def test_output_shapes_at_32_64_96_px(name, channels):
    torch.manual_seed(0)
    net = build_backbone(name, channels, 5, 3).eval()
    with torch.no_grad():
        for size in (32, 64, 96):
            condition, severity = net(torch.rand(2, channels, size, size))
            assert condition.shape == (2, 5) and severity.shape == (2, 3)
            assert torch.isfinite(condition).all() and torch.isfinite(severity).all()


def test_registry_lists_the_study_models_and_the_next_steps():
    assert {"simple", "inception", "vgg16", "resnet18", "efficientnet_b0", "densenet121"} <= set(
        BACKBONES
    )
    with pytest.raises(ValueError, match="backbone must be one of"):
        build_backbone("alexnet", 1, 5, 3)
    assert [name for name in BACKBONES if takes_weights(name)] == [
        "vgg16",
        "resnet18",
        "efficientnet_b0",
        "densenet121",
    ]


def test_new_backbone_is_one_registry_entry():
    class Tiny(nn.Module):
        def __init__(self, in_channels, n_conditions, n_severities, width=4):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(in_channels, width, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()
            )
            self.condition = nn.Linear(width, n_conditions)
            self.severity = nn.Linear(width, n_severities)

        def forward(self, x):
            h = self.body(x)
            return self.condition(h), self.severity(h)

    register_backbone("tiny-test", Tiny)
    try:
        net = build_backbone("tiny-test", 2, 5, 3, width=6)
        assert net.body[0].out_channels == 6
        assert [t.shape for t in net(torch.zeros(1, 2, 16, 16))] == [(1, 5), (1, 3)]
    finally:
        del BACKBONES["tiny-test"]
    with pytest.raises(TypeError):
        register_backbone("bad", 3)


def test_a_class_or_a_builder_is_a_backbone_without_the_registry():
    def builder(in_channels, n_conditions, n_severities, width=4):
        return SimpleCNN(in_channels, n_conditions, n_severities, widths=(width, width, width))

    assert build_backbone(builder, 1, 5, 3, width=6).features[0].out_channels == 6
    assert isinstance(build_backbone(InceptionCNN, 1, 5, 3, hidden=8), InceptionCNN)
    assert not takes_weights(builder) and takes_weights(BACKBONES["vgg16"])
    with pytest.raises(ValueError, match="not a built SimpleCNN"):
        build_backbone(SimpleCNN(1, 5, 3), 1, 5, 3)
    with pytest.raises(TypeError, match="returned a 'int' object, not a torch.nn.Module"):
        build_backbone(lambda *args: 3, 1, 5, 3)
    with pytest.raises(ValueError, match="a torch.nn.Module class or a callable"):
        build_backbone(3, 1, 5, 3)


def test_parameters_are_checked_before_anything_is_built():
    check_backbone_params("simple", {"hidden": 64, "widths": (8, 8, 8), "dropout": 0.5})
    with pytest.raises(TypeError, match=r"no parameter hiden \(did you mean hidden\?\)"):
        check_backbone_params("simple", {"hiden": 64})
    with pytest.raises(TypeError, match=r"no parameter module__freeze"):
        check_backbone_params("simple", {"freeze": True}, prefix="module__")
    too_wide = [
        ("simple", {"hidden": MAX_WIDTH + 1}, r"hidden must be an int in \[1, 4096\]"),
        ("simple", {"widths": (8, 8)}, r"widths must be 3 ints"),
        ("simple", {"widths": (8, 0, 8)}, r"widths\[1\] must be an int"),
        ("inception", {"branch": (8,) * 5 + (10**6,)}, r"branch\[5\] must be an int"),
        ("resnet18", {"dropout": 1.5}, r"dropout must be a number in \[0, 1\]"),
        ("resnet18", {"freeze_features": "yes"}, r"freeze_features must be True or False"),
        ("resnet18", {"weights": 3}, r"weights must be None, a file path"),
    ]
    for name, params, message in too_wide:
        with pytest.raises(ValueError, match=message):
            check_backbone_params(name, params)
    # the constructors run the same checks first
    with pytest.raises(ValueError, match=r"hidden must be an int in \[1, 4096\]"):
        SimpleCNN(1, 5, 3, hidden=10**9)
    check_backbone_params("resnet18", {"hidden": None})  # linear heads


def test_one_channel_adaptation_equals_the_grey_image_fed_three_times():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 8, 3, padding=1)
    grey = torch.rand(2, 1, 12, 12)
    adapted = adapt_input_conv(conv, 1)
    assert adapted.in_channels == 1
    torch.testing.assert_close(adapted(grey), conv(grey.repeat(1, 3, 1, 1)), rtol=1e-5, atol=1e-5)


def test_two_channel_adaptation_repeats_and_rescales_kernels():
    conv = nn.Conv2d(3, 4, 3, bias=False)
    adapted = adapt_input_conv(conv, 2)
    torch.testing.assert_close(adapted.weight, conv.weight[:, :2] * 1.5)
    assert adapt_input_conv(conv, 3) is conv


def test_heads_sit_on_pooled_features_not_the_25088_wide_classifier():
    net = build_backbone("vgg16", 1, 5, 3)
    heads = sum(p.numel() for p in net.heads.parameters())
    assert heads < 300_000
    assert not any(isinstance(m, nn.Linear) and m.in_features == 25088 for m in net.modules())


def test_local_state_dict_is_loaded_before_the_classifier_is_replaced(tmp_path):
    torch.manual_seed(1)
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    net = TorchvisionBackbone("resnet18", 1, 5, 3, weights=path)
    torch.testing.assert_close(net.features[0].weight, reference.conv1.weight.sum(1, keepdim=True))
    torch.testing.assert_close(net.features[4][0].conv1.weight, reference.layer1[0].conv1.weight)


def test_torchvision_weight_names_read_the_cache_and_never_download(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(FileNotFoundError) as info:
        TorchvisionBackbone("vgg16", 1, 5, 3, weights="IMAGENET1K_V1")
    message = str(info.value)
    assert "vgg16-397923af.pth" in message and str(tmp_path / "torch") in message
    assert "nothing is downloaded" in message
    # a file placed where the message says is used
    torch.manual_seed(2)
    reference = torchvision.models.resnet18(weights=None)
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    filename = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    torch.save(reference.state_dict(), cache / filename)
    net = TorchvisionBackbone("resnet18", 3, 5, 3, weights="IMAGENET1K_V1")
    torch.testing.assert_close(net.features[0].weight, reference.conv1.weight)


def test_a_weights_enum_member_is_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    member = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    with pytest.raises(FileNotFoundError, match="ResNet18_Weights.IMAGENET1K_V1 are not in"):
        TorchvisionBackbone("resnet18", 1, 5, 3, weights=member)
    torch.manual_seed(3)
    reference = torchvision.models.resnet18(weights=None)
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(reference.state_dict(), cache / member.url.rsplit("/", 1)[-1])
    for weights in (member, "ResNet18_Weights.IMAGENET1K_V1", "DEFAULT"):
        net = TorchvisionBackbone("resnet18", 3, 5, 3, weights=weights)
        torch.testing.assert_close(net.features[0].weight, reference.conv1.weight)
    with pytest.raises(ValueError, match="are not vgg16's weights; expected one of"):
        TorchvisionBackbone("vgg16", 1, 5, 3, weights=member)


def test_bad_weights_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="pretrained weights file not found"):
        TorchvisionBackbone("resnet18", 1, 5, 3, weights=tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="neither a file nor one of resnet18's weights"):
        TorchvisionBackbone("resnet18", 1, 5, 3, weights="IMAGENET9")
    # another architecture's file: which keys, not torch's page of them
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.pth")
    with pytest.raises(ValueError) as info:
        TorchvisionBackbone("efficientnet_b0", 1, 5, 3, weights=tmp_path / "r18.pth")
    message = str(info.value)
    assert "r18.pth are not a state dict of torchvision's efficientnet_b0" in message
    assert "missing (features.0.0.weight" in message and "unexpected (conv1.weight" in message
    state = torchvision.models.resnet18(weights=None).state_dict()
    state["conv1.weight"] = state["conv1.weight"][:, :1]
    torch.save(state, tmp_path / "grey.pth")
    with pytest.raises(ValueError, match=r"1 reshaped \(conv1.weight \(64, 1, 7, 7\) \(expected"):
        TorchvisionBackbone("resnet18", 1, 5, 3, weights=tmp_path / "grey.pth")
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="hold a list, not a state dict"):
        TorchvisionBackbone("resnet18", 1, 5, 3, weights=tmp_path / "list.pth")


def test_freeze_features_keeps_only_the_heads_trainable():
    net = build_backbone("resnet18", 1, 5, 3, freeze_features=True)
    assert not any(p.requires_grad for p in net.features.parameters())
    assert all(p.requires_grad for p in net.heads.parameters())


def test_simple_cnn_is_three_conv_blocks_and_two_dense_layers():
    net = SimpleCNN(1, 5, 3)
    convs = [m for m in net.features if isinstance(m, nn.Conv2d)]
    dense = [m for m in net.dense if isinstance(m, nn.Linear)]
    assert len(convs) == 3 and len(dense) == 2
    inception = build_backbone("inception", 1, 5, 3).inception
    assert inception.out_channels == 32 + 64 + 16 + 16
    out = inception(torch.zeros(1, 64, 8, 8))
    assert out.shape == (1, 128, 8, 8)


def test_cumulative_link_gives_ordered_probabilities_that_sum_to_one():
    from spinecls.models import CumulativeLink

    link = CumulativeLink(3)
    with torch.no_grad():
        link.steps.fill_(-5.0)  # any raw value keeps the thresholds ordered
        theta = link.thresholds()
        assert theta[1] > theta[0]
        scores = torch.linspace(-6, 6, 13)[:, None]
        p = link(scores).exp()
    torch.testing.assert_close(p.sum(dim=1), torch.ones(13))
    # P(y <= k) = sigmoid(theta_k - score), and a higher score shifts mass upwards
    torch.testing.assert_close(p[:, 0], torch.sigmoid(theta[0] - scores[:, 0]))
    torch.testing.assert_close(p[:, :2].sum(dim=1), torch.sigmoid(theta[1] - scores[:, 0]))
    assert (p[:, 0].diff() < 0).all() and (p[:, 2].diff() > 0).all()
    # far scores keep finite gradients (log-probabilities computed without cancellation)
    far = torch.tensor([[-1e3], [1e3], [0.0]], requires_grad=True)
    CumulativeLink(4)(far).sum().backward()
    assert torch.isfinite(far.grad).all()
    fresh = CumulativeLink(5)(torch.zeros(1, 1)).exp()
    torch.testing.assert_close(fresh, torch.full((1, 5), 0.2))  # starts with equal shares


class _FixedScore(nn.Module):
    """A backbone whose severity score is always 2: one condition logit row, one score."""

    def forward(self, x):
        return torch.zeros(len(x), 5), torch.full((len(x), 1), 2.0)


def test_ordinal_backbone_puts_the_grades_in_the_classes_columns():
    from spinecls.models import OrdinalSeverity, build_ordinal

    torch.manual_seed(0)
    net = build_ordinal("simple", 1, 5, [1, 0, 2]).eval()
    with torch.no_grad():
        condition, log_p = net(torch.rand(4, 1, 32, 32))
        score = net.backbone(torch.rand(4, 1, 32, 32))[1]
    assert condition.shape == (4, 5) and log_p.shape == (4, 3) and score.shape == (4, 1)
    fixed = OrdinalSeverity(_FixedScore(), [1, 0, 2])
    with torch.no_grad():
        grades = fixed.link(torch.full((1, 1), 2.0))[0]  # lowest grade first
        _, by_column = fixed(torch.zeros(1, 1, 8, 8))
    # column 1 holds the lowest grade, column 0 the middle one, column 2 the highest
    torch.testing.assert_close(by_column[0], grades[[1, 0, 2]])
    with pytest.raises(ValueError, match="one severity score"):
        OrdinalSeverity(nn.Identity(), [0, 1, 2])((torch.zeros(1, 5), torch.zeros(1, 3)))
    with pytest.raises(ValueError, match="permutation"):
        OrdinalSeverity(nn.Identity(), [0, 0, 2])
