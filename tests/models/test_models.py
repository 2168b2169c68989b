import pytest
import timm
import torch

import timm_dynmix
from timm_dynmix.models import CIFAR_MODELS, count_params

# published parameter counts (millions): WRN-40-2 2.2, DenseNet-BC-100-12 0.8, All-Conv 1.4, ResNet-20 0.27
EXPECTED_M = {"wrn40_2": 2.24, "densenet_bc_100_12": 0.77, "allconv": 1.41, "resnet20_cifar": 0.27,
              "resnet8_cifar": 0.08, "resnext29_32x4d": 4.78}


@pytest.mark.parametrize("name", list(CIFAR_MODELS))
def test_registered_cifar_models(name):
    assert timm.is_model(name) and timm_dynmix.models is not None
    model = timm.create_model(name, num_classes=7).eval()
    assert model.pretrained_cfg["input_size"] == (3, 32, 32) and model.pretrained_cfg["mean"] == (0.5, 0.5, 0.5)
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
        feats = model.forward_head(model.forward_features(torch.randn(2, 3, 32, 32)), pre_logits=True)
    assert out.shape == (2, 7) and feats.shape == (2, model.num_features)
    model.reset_classifier(3)
    assert model.get_classifier().out_features == 3


def test_parameter_counts_match_the_papers():
    for name, millions in EXPECTED_M.items():
        n = count_params(timm.create_model(name, num_classes=10)) / 1e6
        assert n == pytest.approx(millions, abs=0.02), (name, n)


def test_bad_arguments():
    with pytest.raises(ValueError, match="depth must be 6n \\+ 4"):
        timm.create_model("wrn40_2", depth=41)
    with pytest.raises(ValueError, match="global_pool='avg' only"):
        timm.create_model("resnet8_cifar", global_pool="max")


def test_fastnet_whitening_whitens_patches_and_freezes_the_stem():
    torch.manual_seed(0)
    # correlated channels: a whitening stem must decorrelate them
    base = torch.randn(64, 1, 32, 32)
    images = torch.cat([base, 0.8 * base + 0.2 * torch.randn_like(base), torch.randn(64, 1, 32, 32)], 1)
    model = timm.create_model("fastnet_cifar_s", num_classes=10)
    stem = model.features[0]
    assert stem.weight.requires_grad and stem.out_channels == 24
    model.init_whitening(images, eps=1e-6)
    assert not stem.weight.requires_grad and stem.bias.requires_grad
    w = stem.weight.detach()
    assert torch.equal(w[:12], -w[12:])  # each eigenvector with both signs
    with torch.no_grad():
        out = torch.nn.functional.conv2d(images, w[:12])  # the whitened patches, no bias
    flat = out.permute(1, 0, 2, 3).reshape(12, -1)
    cov = torch.cov(flat)
    assert torch.allclose(cov, torch.eye(12), atol=0.05), cov.diagonal()
    # the stem stays out of the optimizer's trainable parameters
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert id(stem.weight) not in trainable


def test_fastnet_head_and_bad_arguments():
    model = timm.create_model("fastnet_cifar_s", num_classes=10).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (3, 256, 3, 3)
        pooled = model.forward_head(feats, pre_logits=True)
        assert torch.equal(pooled, feats.amax(dim=(2, 3)))
        assert torch.allclose(model(x), model.fc(pooled) * model.logit_scale)
    assert model.fc.bias is None and model.global_pool == "max"
    with pytest.raises(ValueError, match="global_pool='max' only"):
        timm.create_model("fastnet_cifar", global_pool="avg")
    with pytest.raises(ValueError, match="three positive integers"):
        timm.create_model("fastnet_cifar", widths=(64, 0, 256))
    with pytest.raises(ValueError, match="logit_scale must be > 0"):
        timm.create_model("fastnet_cifar", logit_scale=0.0)
    with pytest.raises(ValueError, match=r"needs a \(N, 3, H >= 2, W >= 2\) float batch, got \(2, 1, 32, 32\)"):
        model.init_whitening(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match="global_pool='max' only"):
        model.reset_classifier(5, global_pool="avg")
    model.reset_classifier(5)
    assert model.fc.out_features == 5 and model.fc.bias is None


def test_models_package_layout():
    """``timm_dynmix.models`` is a package: the CIFAR nets live in ``models.cifar`` (where timm finds their
    entrypoints), the old ``from timm_dynmix.models import ...`` names still resolve, and timm creates every one."""
    import timm_dynmix.models.cifar as cifar
    from timm_dynmix.models import FastCifarNet

    assert FastCifarNet is cifar.FastCifarNet and set(CIFAR_MODELS) >= {"fastnet_cifar", "fastnet_cifar_s", "wrn40_2"}
    for name in CIFAR_MODELS:
        assert timm.models.model_entrypoint(name).__module__ == "timm_dynmix.models.cifar", name
    assert isinstance(timm.create_model("fastnet_cifar_s", num_classes=3), FastCifarNet)
