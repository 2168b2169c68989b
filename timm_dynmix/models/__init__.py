"""Models: the CIFAR architectures registered in timm (:mod:`~timm_dynmix.models.cifar`) and the wrapper that
trains a transformers image classifier like a timm model (:mod:`~timm_dynmix.models.transformers`, imported only
when asked for: it loads transformers).

``import timm_dynmix.models`` registers ``wrn40_2``, ``fastnet_cifar``, ... in timm, as the former ``models`` module
did; its names are re-exported here.
"""

from __future__ import annotations

from timm_dynmix.models.cifar import (
    CIFAR_MEAN,
    CIFAR_MODELS,
    CIFAR_STD,
    AllConvNet,
    DenseNetBC,
    FastCifarNet,
    ResNetCifar,
    ResNeXtCifar,
    WideResNet,
    count_params,
)

__all__ = ["WideResNet", "ResNeXtCifar", "DenseNetBC", "AllConvNet", "ResNetCifar", "FastCifarNet", "CIFAR_MODELS",
           "CIFAR_MEAN", "CIFAR_STD", "count_params"]
