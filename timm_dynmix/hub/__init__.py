"""The Hugging Face Hub: save (timm's Hub format), load, push, model cards and the run summary they share.

* :mod:`~timm_dynmix.hub.save`: :func:`save_pretrained`, :func:`hub_config` (``config.json``);
* :mod:`~timm_dynmix.hub.push`: :func:`push_to_hub`, :func:`check_repo_id`;
* :mod:`~timm_dynmix.hub.card`: the model card (template in ``templates/``) and the evaluation report format;
* :mod:`~timm_dynmix.hub.summary`: :class:`RunSummary`, what a run's ``results.json`` says about it.

Re-exported from below for compatibility: :func:`create_model` (``timm.create_model`` with our architectures, clear
errors) and :func:`check_weights_file` from :mod:`timm_dynmix.models.load`; :class:`HubError` (one error with a
reason and a remedy for every Hub failure) and :class:`WeightsError` from :mod:`timm_dynmix.errors`. The former
module paths ``timm_dynmix.hub.load`` and ``timm_dynmix.hub.errors`` are deprecated aliases of those.

``from timm_dynmix.hub import save_pretrained`` (and the other names of the former ``hub`` module) keeps working.
"""

from __future__ import annotations

from timm_dynmix.errors import HubError, WeightsError
from timm_dynmix.hub.card import write_card
from timm_dynmix.hub.push import check_repo_id, push_to_hub
from timm_dynmix.hub.save import CONFIG_NAME, WEIGHTS_NAME, hub_config, save_pretrained
from timm_dynmix.hub.summary import RunSummary
from timm_dynmix.models.load import check_weights_file, create_model, register_architectures, requires_timm_dynmix

__all__ = [
    "HubError", "WeightsError", "check_weights_file", "save_pretrained", "push_to_hub", "create_model", "hub_config",
    "check_repo_id", "register_architectures", "requires_timm_dynmix", "CONFIG_NAME", "WEIGHTS_NAME", "write_card",
    "RunSummary",
]
