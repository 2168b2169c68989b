"""The ``--aug`` string is parsed once per training run (issue #32): the config parses it into an ``AugSpec`` and
every layer below (data, transforms, the step augmentation, the results) takes the spec; the hub layer parses the
recorded canonical string once more when it writes ``config.json`` and the model card from ``results.json``.

Every family's string parser is wrapped with a counter in every ``timm_dynmix`` module that holds it
(``from ... import`` copies included). A call counts as a parse when its argument is a string: the classes pass their
typed config through the same functions (``parse_config(DynMixConfig)`` returns it unchanged), which parses nothing.
"""

import dataclasses
import sys
from collections import Counter

import pytest

import timm_dynmix.augment.baselines
import timm_dynmix.augment.config
import timm_dynmix.augment.prime
import timm_dynmix.augment.spec
import timm_dynmix.augment.timm_aug
import timm_dynmix.hub.summary
import timm_dynmix.train.loop
from timm_dynmix.train import TrainConfig, train

# (module, function): each family's string grammar. _parse_sections is DynMix's (parse_config and given_keys both
# go through it); create_aug_spec is the one entry point above them.
PARSERS = [("timm_dynmix.augment.config", "_parse_sections"), ("timm_dynmix.augment.baselines", "parse_augmix_config"),
           ("timm_dynmix.augment.prime", "parse_prime_config"), ("timm_dynmix.augment.timm_aug", "parse_timm_aug"),
           ("timm_dynmix.augment.spec", "create_aug_spec")]
TINY = {"max_train_samples": 16, "max_eval_samples": 8, "batch_size": 8, "epochs": 1, "num_workers": 0,
        "max_steps": 1}


def _count_parses(monkeypatch) -> Counter:
    counts: Counter = Counter()
    for module_name, name in PARSERS:
        original = getattr(sys.modules[module_name], name)

        def counted(*args, __original=original, __name=name, **kwargs):
            if args and isinstance(args[0], str):
                counts[(__name, args[0])] += 1
            return __original(*args, **kwargs)

        for module in [m for n, m in list(sys.modules.items()) if n.startswith("timm_dynmix") and m is not None]:
            if getattr(module, name, None) is original:
                monkeypatch.setattr(module, name, counted)
    return counts


@pytest.mark.parametrize(("aug", "family_parser"), [("dynmix-m3", "_parse_sections"),
                                                    ("augmix", "parse_augmix_config"),
                                                    ("prime-w2", "parse_prime_config")])
def test_each_family_string_is_parsed_once_per_run_and_once_for_the_card(monkeypatch, tmp_path, aug, family_parser):
    timm_dynmix.hub.summary.recorded_spec.cache_clear()  # the hub layer parses each recorded string once per process
    counts = _count_parses(monkeypatch)
    res = train(TrainConfig(aug=aug, output_dir=str(tmp_path), **TINY))
    assert res["aug_device"] == "step" and res["jsd"]
    recorded = res["aug"]  # the canonical string (DynMix: with the op set chosen for the image size)
    assert recorded != aug and (tmp_path / "README.md").is_file()
    parsed = {key: n for key, n in counts.items() if key[0] == family_parser}
    # once from the config (the user's string), once when config.json and the card are written (the recorded one)
    assert parsed == {(family_parser, aug): 1, (family_parser, recorded): 1}, dict(counts)
    assert counts[("create_aug_spec", aug)] == 1 and counts[("create_aug_spec", recorded)] == 1, dict(counts)
    assert sum(counts.values()) == 4, dict(counts)  # and no other string was parsed (no timm string, no other family)


def test_replace_keeps_the_spec_and_reparses_only_a_new_string(monkeypatch):
    counts = _count_parses(monkeypatch)
    cfg = TrainConfig(aug="dynmix-n3")
    spec = cfg.spec
    same = dataclasses.replace(cfg, epochs=3, aug_device="step", num_mixes=3)
    assert same.spec is not None and same.spec == spec and same.mixes == 3 and same.aug_string == str(spec)
    assert sum(counts.values()) == 2  # create_aug_spec + the DynMix grammar, once
    other = dataclasses.replace(cfg, aug="augmix")
    assert other.spec.family == "augmix" and other.aug_name == "augmix" and other.mixes == 2
    assert counts[("parse_augmix_config", "augmix")] == 1 and sum(counts.values()) == 4
    assert "_aug_spec" not in cfg.to_dict() and cfg.to_dict()["aug"] == "dynmix-n3"
