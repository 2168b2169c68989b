import dataclasses

import pytest

import timm_dynmix
from timm_dynmix.augment.baselines import AugMixConfig
from timm_dynmix.augment.config import DynMixConfig
from timm_dynmix.augment.spec import AUG_FAMILIES, STEP_AUGMENTATIONS, AugSpec, create_aug_spec

# (string, family, canonical string, views, device with "auto")
CASES = [
    ("none", "none", "none", 0, "loader"),
    ("mixup", "mixup", "mixup", 0, "loader"),
    ("cutmix", "cutmix", "cutmix", 0, "loader"),
    ("autoaugment", "autoaugment", "autoaugment", 0, "loader"),
    ("autoaugment-imagenet", "autoaugment", "autoaugment-imagenet", 0, "loader"),
    ("rand-m9-mstd0.5", "autoaugment", "rand-m9-mstd0.5", 0, "loader"),
    ("original-mstd0.5", "autoaugment", "original-mstd0.5", 0, "loader"),
    ("v0", "autoaugment", "v0", 0, "loader"),
    ("random-autoaugment", "random-autoaugment", "random-autoaugment", 0, "loader"),
    ("augmix", "augmix", "augmix_official-s3-w3-d0-a1", 2, "step"),
    ("augmix_official-s1-d2", "augmix", "augmix_official-s1-w3-d2-a1", 2, "step"),
    ("augmix-timm", "augmix-timm", "augmix-m3-w3", 2, "loader"),
    ("augmix-m5-w2-d-1-a0.5", "augmix-timm", "augmix-m5-w2-d-1-a0.5", 2, "loader"),
    ("dynmix", "dynmix", "dynmix-m3-d2-p0.5-a1-wpair-b0-n2-ocifar", 2, "step"),
    ("dynmix-m5-d1-windep-n3-oimagenet", "dynmix", "dynmix-m5-d1-a1-windep-b0-n3-oimagenet", 3, "step"),
    ("dynmix-a0.00001-b1-oflip_h.rotate", "dynmix", "dynmix-m3-d2-p0.5-a0.00001-wpair-b1-n2-oflip_h.rotate", 2,
     "step"),
    ("prime-ospatial-n1", "prime", "prime-w3-d3-n1-j12-ospatial-k3-s4-icenter-m100-r100-t0.01-b0", 1, "step"),
]


def test_the_families_are_a_closed_set_covered_here():
    assert set(AUG_FAMILIES) == {c[1] for c in CASES} and set(STEP_AUGMENTATIONS) <= set(AUG_FAMILIES)
    assert timm_dynmix.AugSpec is AugSpec and timm_dynmix.create_aug_spec is create_aug_spec


@pytest.mark.parametrize(("aug", "family", "canonical", "views", "device"), CASES)
def test_parse_and_round_trip(aug, family, canonical, views, device):
    spec = create_aug_spec(aug)
    assert (spec.family, str(spec), spec.canonical, spec.views, spec.device) == (family, canonical, canonical, views,
                                                                                 device)
    assert spec.source == aug and spec.has_views == (views > 0) and AugSpec.parse(aug) == spec
    again = create_aug_spec(str(spec))
    assert again == spec and str(again) == canonical  # the canonical string round-trips
    if spec.has_views:  # with the views and device given, any spec round-trips
        other = spec.with_views(5).with_device("loader") if family != "prime" else spec.with_views(5)
        assert create_aug_spec(str(other), num_mixes=other.views, device=other.device) == other
    assert spec.name == ("augmix" if family == "augmix-timm" else family)
    assert spec.transform_string == (None if family in ("none", "mixup", "cutmix") else canonical)


def test_params_are_the_typed_configs():
    dyn = create_aug_spec("dynmix-m5-n3")
    assert isinstance(dyn.params, DynMixConfig) and dyn.params.magnitude == 5 and dyn.given == {"m", "n"}
    assert isinstance(create_aug_spec("augmix").params, AugMixConfig)
    prime = create_aug_spec("prime-imagenet")
    assert prime.params.diffeo_cut == 500 and prime.params.num_mixes == prime.views == 2
    assert create_aug_spec("augmix-timm").params == "augmix-m3-w3" and create_aug_spec("mixup").params is None
    assert create_aug_spec("rand-m9").timm_string == "rand-m9" and create_aug_spec("autoaugment").timm_string is None
    assert create_aug_spec("augmix").step_class.__name__ == "AugMixBatch"
    assert create_aug_spec("prime").step_class.__name__ == "PrimeBatch"
    assert create_aug_spec("dynmix").step_family == "dynmix" and create_aug_spec("augmix-timm").step_family is None
    with pytest.raises(ValueError, match="no batched version"):
        _ = create_aug_spec("rand-m9").step_class


def test_num_mixes_image_size_and_device():
    spec = create_aug_spec("dynmix", num_mixes=4, image_size=224, device="loader")
    assert spec.views == spec.params.num_mixes == 4 and spec.params.op_set_name == "imagenet"
    assert spec.device == "loader" and create_aug_spec("dynmix", device="model").device == "step"
    assert create_aug_spec("augmix", num_mixes=1).views == 1 and create_aug_spec("dynmix-n3", num_mixes=3).views == 3
    sized = create_aug_spec("dynmix-m4").with_image_size(96)
    assert sized.params.op_set_name == "imagenet" and sized.source == "dynmix-m4-oimagenet" and sized.gives_ops
    assert sized.with_image_size(32) is sized  # the op set is settled now
    kept = create_aug_spec("dynmix-ocifar")
    assert kept.with_image_size(224) is kept  # a named op set is kept at any size
    assert create_aug_spec(spec) is spec and create_aug_spec(spec, num_mixes=2).views == 2
    assert create_aug_spec(spec, device="step").device == "step"
    assert dataclasses.replace(spec, source="x") == spec  # source and given are not compared


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"aug": "blur"}, ValueError, "unknown --aug 'blur'"),
    ({"aug": "autoaugment-svhn"}, ValueError, "unknown --aug 'autoaugment-svhn'"),
    ({"aug": 3}, TypeError, "must be a string or an AugSpec"),
    ({"aug": "dynmix-m30"}, ValueError, "magnitude"),
    ({"aug": "dynmix-x3"}, ValueError, "unknown section 'x3'"),
    ({"aug": "augmix_official-w0"}, ValueError, "width must be in"),
    ({"aug": "augmix-m3-w0"}, ValueError, "section 'w0'"),
    ({"aug": "rand-m9-q3"}, ValueError, "unknown key 'q'"),
    ({"aug": "prime-k4"}, ValueError, "PRIME"),
    ({"aug": "dynmix-n2", "num_mixes": 3}, ValueError, "--num-mixes 3 contradicts n2"),
    ({"aug": "prime-n1", "num_mixes": 2}, ValueError, "--num-mixes 2 contradicts n1"),
    ({"aug": "augmix", "num_mixes": 9}, ValueError, r"--num-mixes must be in \[1, 8\]"),
    ({"aug": "dynmix", "device": "gpu"}, ValueError, "--aug-device must be"),
    ({"aug": "augmix-timm", "device": "step"}, ValueError, "runs the augmentation batched inside the training step"),
    ({"aug": "prime", "device": "loader"}, ValueError, "batched in the training step only"),
])
def test_bad_input_is_refused_with_a_clear_error(kwargs, error, match):
    with pytest.raises(error, match=match):
        create_aug_spec(**kwargs)


def test_the_constructor_checks_consistency():
    with pytest.raises(ValueError, match="family must be one of"):
        AugSpec("blur")
    with pytest.raises(ValueError, match="views must be 0 for mixup"):
        AugSpec("mixup", views=2)
    with pytest.raises(ValueError, match="differs from the config's num_mixes"):
        AugSpec("dynmix", DynMixConfig(), views=3, device="step")
    with pytest.raises(ValueError, match="no batched version"):
        AugSpec("none", device="step")
    with pytest.raises(ValueError, match="makes no views"):
        create_aug_spec("cutmix").with_views(2)


def test_create_transform_takes_the_spec_without_parsing_again(monkeypatch):
    from timm_dynmix import create_transform
    from timm_dynmix.augment.baselines import AugMix
    from timm_dynmix.data.views import DynMixViews

    specs = {aug: create_aug_spec(aug) for aug in ("dynmix-m4", "augmix", "augmix-timm", "autoaugment", "mixup")}

    def refuse(*args, **kwargs):
        raise AssertionError("parsed again")

    monkeypatch.setattr("timm_dynmix.data.transforms_factory.create_aug_spec", refuse)
    views = create_transform(96, is_training=True, aug=specs["dynmix-m4"])
    assert isinstance(views, DynMixViews) and views.dynmix.config.magnitude == 4
    assert views.dynmix.config.op_set_name == "imagenet"  # no op set in the string: the set for 96 px
    assert isinstance(create_transform(32, is_training=True, aug=specs["augmix"], separate=True)[1], AugMix)
    assert "AugMixAugment" in repr(create_transform(32, is_training=True, aug=specs["augmix-timm"]))
    assert "AutoAugmentStar" in repr(create_transform(32, is_training=True, aug=specs["autoaugment"]))
    plain = create_transform(32, is_training=True, aug=specs["mixup"]).transforms  # check, crop, flip, to tensor
    assert [type(t).__name__ for t in plain] == ["CheckImage", "RandomCrop", "RandomHorizontalFlip", "Compose"]


def test_the_hub_layer_reads_the_recorded_string_through_the_spec():
    from timm_dynmix.hub.summary import RunSummary

    for aug, tag in (("augmix_official-s3-w3-d0-a1", "augmix_digits"), ("augmix-m3-w3", "augmix_digits"),
                     ("dynmix-m3-d2-p0.5-a1-wpair-b0-n2-ocifar", "dynmix_digits"), ("none", "none_digits"),
                     ("dynmix-zz9", "dynmix_digits")):  # an unparseable record keeps its first section
        run = RunSummary.from_results({"aug": aug, "dataset": {"name": "digits"}})
        assert run.tag == tag, aug
        assert (run.aug["spec"] is None) == (aug == "dynmix-zz9") and run.aug["is_dynmix"] == (aug.startswith("dyn")
                                                                                               and "zz" not in aug)
