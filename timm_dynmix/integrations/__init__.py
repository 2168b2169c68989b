"""Integrations with other libraries' training code.

* :mod:`~timm_dynmix.integrations.timm`: :func:`register_timm`, ``dynmix-...`` strings in timm's transform factory;
* :mod:`~timm_dynmix.integrations.timm_train`: the ``--aug dynmix`` launcher for timm's train.py.

The submodules are imported on use.
"""
