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
