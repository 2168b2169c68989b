"""The DynMix / AugMix paper's CIFAR architectures and the fast CPU net, registered in timm's model registry.

================================  =========================================================================
timm name                         architecture
================================  =========================================================================
``wrn40_2``                       WideResNet-40-2 (Zagoruyko & Komodakis; pre-activation, dropout 0)
``resnext29_32x4d``               ResNeXt-29 (32x4d) (Xie et al.; cardinality 32, bottleneck width 4)
``densenet_bc_100_12``            DenseNet-BC, growth rate 12, depth 100 (Huang et al.)
``allconv``                       All-Convolutional net (Springenberg et al., BN + GELU variant of AugMix)
``resnet8_cifar``                 CIFAR ResNet-8 (He et al., 3 stages 16/32/64, 1 block each), for fast CPU runs
``resnet20_cifar``                CIFAR ResNet-20 (3 blocks per stage)
``fastnet_cifar`` / ``_s``        FastNet-CIFAR: frozen patch-whitening stem, 3 stages (64/256/256 or 32/128/256)
================================  =========================================================================

Their ``pretrained_cfg`` says 32x32 inputs, no crop (``crop_pct`` 1) and the normalization of the AugMix CIFAR
recipe (mean = std = 0.5). All follow timm's model interface (``forward_features``, ``forward_head``,
``get_classifier``, ``reset_classifier``, ``num_classes``, ``num_features``) and are built with
``timm.models.build_model_with_cfg``, so ``timm.create_model("local-dir:...")``/``"hf-hub:..."`` load them after
``import timm_dynmix``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn

__all__ = ["WideResNet", "ResNeXtCifar", "DenseNetBC", "AllConvNet", "ResNetCifar", "FastCifarNet", "CIFAR_MODELS",
           "CIFAR_MEAN", "CIFAR_STD", "count_params"]

CIFAR_MEAN = (0.5, 0.5, 0.5)
CIFAR_STD = (0.5, 0.5, 0.5)


class _CifarNet(nn.Module):
    """timm's model interface on top of ``self.features`` (-> feature map) and ``self.fc``."""

    features: nn.Sequential

    def __init__(self, num_features: int, num_classes: int, drop_rate: float, global_pool: str = "avg"):
        super().__init__()
        if global_pool != "avg":
            raise ValueError(f"{type(self).__name__} supports global_pool='avg' only, got {global_pool!r}")
        self.num_classes = num_classes
        self.num_features = self.head_hidden_size = num_features
        self.drop_rate = drop_rate
        self.global_pool = "avg"
        self.fc: nn.Module = nn.Linear(num_features, num_classes) if num_classes > 0 else nn.Identity()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool not in (None, "avg"):
            raise ValueError(f"{type(self).__name__} supports global_pool='avg' only, got {global_pool!r}")
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(2, 3))
        if self.drop_rate > 0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _bn_relu(ch: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(ch), nn.ReLU(inplace=True)]


# ---------------------------------------------------------------------------------------------------- WideResNet
class _WideBlock(nn.Module):
    """Pre-activation basic block: BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3, 1x1 shortcut on a shape change."""

    def __init__(self, cin: int, cout: int, stride: int, drop: float):
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(cin), nn.BatchNorm2d(cout)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.drop = drop
        self.shortcut = None if (cin == cout and stride == 1) else nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = F.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(o)
        o = F.relu(self.bn2(self.conv1(o)))
        if self.drop > 0:
            o = F.dropout(o, p=self.drop, training=self.training)
        return self.conv2(o) + skip


class WideResNet(_CifarNet):
    """WideResNet-depth-widen for 32x32 inputs (depth = 6n + 4)."""

    def __init__(self, depth: int = 40, widen: int = 2, num_classes: int = 10, in_chans: int = 3,
                 drop_rate: float = 0.0, block_drop: float = 0.0, global_pool: str = "avg"):
        if (depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n + 4, got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        super().__init__(widths[3], num_classes, drop_rate, global_pool)
        layers: list[nn.Module] = [nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False)]
        cin = widths[0]
        for stage, cout in enumerate(widths[1:]):
            for i in range(n):
                layers.append(_WideBlock(cin, cout, 2 if (stage > 0 and i == 0) else 1, block_drop))
                cin = cout
        self.features = nn.Sequential(*layers, *_bn_relu(cin))
        self._init_weights()


# ------------------------------------------------------------------------------------------------------- ResNeXt
class _NeXtBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, cardinality: int, width: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, width, 1, bias=False), *_bn_relu(width),
            nn.Conv2d(width, width, 3, stride, 1, groups=cardinality, bias=False), *_bn_relu(width),
            nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = nn.Identity() if (cin == cout and stride == 1) else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class ResNeXtCifar(_CifarNet):
    """ResNeXt-depth (cardinality x base width) for 32x32 inputs: 3 stages of (depth - 2) / 9 bottlenecks."""

    def __init__(self, depth: int = 29, cardinality: int = 32, base_width: int = 4, num_classes: int = 10,
                 in_chans: int = 3, drop_rate: float = 0.0, global_pool: str = "avg"):
        if (depth - 2) % 9:
            raise ValueError(f"ResNeXt depth must be 9n + 2, got {depth}")
        n = (depth - 2) // 9
        super().__init__(1024, num_classes, drop_rate, global_pool)
        layers: list[nn.Module] = [nn.Conv2d(in_chans, 64, 3, 1, 1, bias=False), *_bn_relu(64)]
        cin = 64
        for stage in range(3):
            width = cardinality * base_width * 2 ** stage
            cout = 256 * 2 ** stage
            for i in range(n):
                layers.append(_NeXtBlock(cin, cout, 2 if (stage > 0 and i == 0) else 1, cardinality, width))
                cin = cout
        self.features = nn.Sequential(*layers)
        self._init_weights()


# ------------------------------------------------------------------------------------------------------ DenseNet
class _DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int):
        super().__init__()
        self.body = nn.Sequential(*_bn_relu(cin), nn.Conv2d(cin, 4 * growth, 1, bias=False),
                                  *_bn_relu(4 * growth), nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], 1)


class DenseNetBC(_CifarNet):
    """DenseNet-BC (bottleneck + compression 0.5) for 32x32 inputs; depth = 6n + 4."""

    def __init__(self, depth: int = 100, growth: int = 12, num_classes: int = 10, in_chans: int = 3,
                 drop_rate: float = 0.0, global_pool: str = "avg"):
        if (depth - 4) % 6:
            raise ValueError(f"DenseNet-BC depth must be 6n + 4, got {depth}")
        n = (depth - 4) // 6
        ch = 2 * growth
        layers: list[nn.Module] = [nn.Conv2d(in_chans, ch, 3, 1, 1, bias=False)]
        for block in range(3):
            for _ in range(n):
                layers.append(_DenseLayer(ch, growth))
                ch += growth
            if block < 2:
                out = ch // 2
                layers += [*_bn_relu(ch), nn.Conv2d(ch, out, 1, bias=False), nn.AvgPool2d(2)]
                ch = out
        super().__init__(ch, num_classes, drop_rate, global_pool)
        self.features = nn.Sequential(*layers, *_bn_relu(ch))
        self._init_weights()


# ------------------------------------------------------------------------------------------------------- AllConv
class AllConvNet(_CifarNet):
    """All-Convolutional net (96/192 channels, strided convs instead of pooling) with BatchNorm and GELU."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0, width: int = 96,
                 global_pool: str = "avg"):
        w1, w2 = width, 2 * width

        def conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, k, stride, k // 2), nn.BatchNorm2d(cout), nn.GELU()]

        super().__init__(w2, num_classes, drop_rate, global_pool)
        self.features = nn.Sequential(
            *conv(in_chans, w1), *conv(w1, w1), *conv(w1, w1, stride=2), nn.Dropout(0.25),
            *conv(w1, w2), *conv(w2, w2), *conv(w2, w2, stride=2), nn.Dropout(0.25),
            *conv(w2, w2), *conv(w2, w2, k=1), *conv(w2, w2, k=1))
        self._init_weights()


# -------------------------------------------------------------------------------------------------- CIFAR ResNet
class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), *_bn_relu(cout),
                                  nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = nn.Identity() if (cin == cout and stride == 1) else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class ResNetCifar(_CifarNet):
    """He et al.'s CIFAR ResNet-depth (depth = 6n + 2; 16/32/64 channels), 1x1 projection shortcuts."""

    def __init__(self, depth: int = 20, num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0,
                 global_pool: str = "avg"):
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2, got {depth}")
        n = (depth - 2) // 6
        super().__init__(64, num_classes, drop_rate, global_pool)
        layers: list[nn.Module] = [nn.Conv2d(in_chans, 16, 3, 1, 1, bias=False), *_bn_relu(16)]
        cin = 16
        for stage, cout in enumerate((16, 32, 64)):
            for i in range(n):
                layers.append(_BasicBlock(cin, cout, 2 if (stage > 0 and i == 0) else 1))
                cin = cout
        self.features = nn.Sequential(*layers)
        self._init_weights()


# ----------------------------------------------------------------------------------------------- fast CIFAR net
class FastCifarNet(_CifarNet):
    """A small, fast CIFAR network in the style of the public fast-CIFAR results (airbench, ResNet-9 of D. Page).

    Layout: a 2x2 convolution without padding (``2 * in_chans * 4`` channels, 32 -> 31 px) + GELU, then three
    groups of conv3x3 -> max-pool 2 -> BN -> GELU -> conv3x3 -> BN -> GELU (31 -> 15 -> 7 -> 3 px), a global max
    pool and a bias-free linear classifier whose logits are scaled by ``logit_scale``. :meth:`init_whitening` sets
    the first layer to the whitening transform of the training images' 2x2 patches (each eigenvector with both
    signs) and freezes its weights; the trainer calls it when it holds the images in memory.

    Args:
        widths: Output channels of the three groups.
        num_classes: Classifier outputs (0: no classifier).
        in_chans: Input channels.
        drop_rate: Dropout before the classifier.
        logit_scale: Constant factor on the logits (small values keep the early softmax soft).
        bn_momentum: BatchNorm running-statistics momentum (PyTorch convention).
        global_pool: Only ``"max"`` (the network's own head).
    """

    def __init__(self, widths: tuple[int, int, int] = (64, 256, 256), num_classes: int = 10, in_chans: int = 3,
                 drop_rate: float = 0.0, logit_scale: float = 1 / 9, bn_momentum: float = 0.4,
                 global_pool: str = "max"):
        if global_pool != "max":
            raise ValueError(f"FastCifarNet supports global_pool='max' only, got {global_pool!r}")
        if len(widths) != 3 or any(not isinstance(w, int) or w < 1 for w in widths):
            raise ValueError(f"FastCifarNet widths must be three positive integers, got {widths!r}")
        if not logit_scale > 0:
            raise ValueError(f"FastCifarNet logit_scale must be > 0, got {logit_scale!r}")
        super().__init__(widths[-1], num_classes, drop_rate)
        self.global_pool = "max"
        self.logit_scale = float(logit_scale)
        self.fc = nn.Linear(widths[-1], num_classes, bias=False) if num_classes > 0 else nn.Identity()
        stem = 2 * in_chans * 4
        layers: list[nn.Module] = [nn.Conv2d(in_chans, stem, 2, 1, 0), nn.GELU()]
        cin = stem
        for w in widths:
            layers += [nn.Conv2d(cin, w, 3, 1, 1, bias=False), nn.MaxPool2d(2),
                       nn.BatchNorm2d(w, momentum=bn_momentum), nn.GELU(),
                       nn.Conv2d(w, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w, momentum=bn_momentum), nn.GELU()]
            cin = w
        self.features = nn.Sequential(*layers)
        self._init_weights()

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the 2x2 stem to whiten the patches of ``images`` (N, C, H, W, normalized floats) and freeze it.

        The weights are ``[V / sqrt(lambda + eps), -V / sqrt(lambda + eps)]`` for the eigen-decomposition
        ``(lambda, V)`` of the patch covariance; the bias is zero and stays trainable.

        Raises:
            ValueError: if ``images`` is not a 4-D batch with the stem's input channels and at least 2x2 pixels.
        """
        conv = self.features[0]
        if not isinstance(conv, nn.Conv2d):
            raise TypeError(f"init_whitening needs a Conv2d first layer, got {type(conv).__name__}")
        c = conv.in_channels
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != c or min(
                images.shape[2:]) < 2:
            got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"init_whitening needs a (N, {c}, H >= 2, W >= 2) float batch, got {got}")
        patches = F.unfold(images.float(), kernel_size=2).transpose(1, 2).reshape(-1, c * 4).double()
        patches = patches - patches.mean(0)
        cov = patches.T @ patches / max(1, patches.shape[0] - 1)
        eigvals, eigvecs = torch.linalg.eigh(cov)
        w = (eigvecs / torch.sqrt(eigvals.clamp_min(0) + eps)).T.reshape(c * 4, c, 2, 2)
        conv.weight.copy_(torch.cat([w, -w]).to(conv.weight.dtype))
        if conv.bias is not None:
            conv.bias.zero_()
        conv.weight.requires_grad_(False)

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool not in (None, "max"):
            raise ValueError(f"FastCifarNet supports global_pool='max' only, got {global_pool!r}")
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes, bias=False) if num_classes > 0 else nn.Identity()

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.amax(dim=(2, 3))
        if self.drop_rate > 0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.fc(x) * self.logit_scale


# ------------------------------------------------------------------------------------------------------ registry
def _cfg(**kwargs: Any) -> dict[str, Any]:
    return {"num_classes": 10, "input_size": (3, 32, 32), "pool_size": None, "crop_pct": 1.0,
            "interpolation": "bilinear", "mean": CIFAR_MEAN, "std": CIFAR_STD, "first_conv": "features.0",
            "classifier": "fc", "license": "apache-2.0", **kwargs}


CIFAR_MODELS: dict[str, tuple[type[_CifarNet], dict[str, Any], str]] = {
    "wrn40_2": (WideResNet, {"depth": 40, "widen": 2}, "WideResNet-40-2"),
    "resnext29_32x4d": (ResNeXtCifar, {"depth": 29, "cardinality": 32, "base_width": 4}, "ResNeXt-29 (32x4d)"),
    "densenet_bc_100_12": (DenseNetBC, {"depth": 100, "growth": 12}, "DenseNet-BC (k=12, d=100)"),
    "allconv": (AllConvNet, {}, "All-Convolutional Network"),
    "resnet8_cifar": (ResNetCifar, {"depth": 8}, "CIFAR ResNet-8"),
    "resnet20_cifar": (ResNetCifar, {"depth": 20}, "CIFAR ResNet-20"),
    "fastnet_cifar": (FastCifarNet, {"widths": (64, 256, 256)}, "FastNet-CIFAR (64/256/256)"),
    "fastnet_cifar_s": (FastCifarNet, {"widths": (32, 128, 256)}, "FastNet-CIFAR-S (32/128/256)"),
}

default_cfgs = generate_default_cfgs({name: _cfg() for name in CIFAR_MODELS})


def _create(variant: str, pretrained: bool = False, **kwargs: Any) -> Any:  # the variant's class
    cls, arch_args, _ = CIFAR_MODELS[variant]
    return build_model_with_cfg(cls, variant, pretrained, **{**arch_args, **kwargs})


@register_model
def wrn40_2(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """WideResNet-40-2 for 32x32 inputs (the AugMix / DynMix CIFAR main model)."""
    return _create("wrn40_2", pretrained, **kwargs)


@register_model
def resnext29_32x4d(pretrained: bool = False, **kwargs: Any) -> ResNeXtCifar:
    """ResNeXt-29 (32x4d) for 32x32 inputs."""
    return _create("resnext29_32x4d", pretrained, **kwargs)


@register_model
def densenet_bc_100_12(pretrained: bool = False, **kwargs: Any) -> DenseNetBC:
    """DenseNet-BC (k=12, depth 100) for 32x32 inputs."""
    return _create("densenet_bc_100_12", pretrained, **kwargs)


@register_model
def allconv(pretrained: bool = False, **kwargs: Any) -> AllConvNet:
    """All-Convolutional network for 32x32 inputs."""
    return _create("allconv", pretrained, **kwargs)


@register_model
def resnet8_cifar(pretrained: bool = False, **kwargs: Any) -> ResNetCifar:
    """CIFAR ResNet-8 (fast CPU runs)."""
    return _create("resnet8_cifar", pretrained, **kwargs)


@register_model
def resnet20_cifar(pretrained: bool = False, **kwargs: Any) -> ResNetCifar:
    """CIFAR ResNet-20."""
    return _create("resnet20_cifar", pretrained, **kwargs)


def count_params(model: nn.Module) -> int:
    """Number of parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())



@register_model
def fastnet_cifar(pretrained: bool = False, **kwargs: Any) -> FastCifarNet:
    """Fast CIFAR net (patch-whitening stem, widths 64/256/256): the CPU recipe's model."""
    return _create("fastnet_cifar", pretrained, **kwargs)


@register_model
def fastnet_cifar_s(pretrained: bool = False, **kwargs: Any) -> FastCifarNet:
    """Fast CIFAR net at widths 32/128/256."""
    return _create("fastnet_cifar_s", pretrained, **kwargs)
