"""Fair comparisons: runs are compared only when their resolved configurations differ in what is compared.

Every training run records its *resolved* configuration (``results.json["resolved"]``: every option after the
automatic choices, such as the data path, the first-layer initialisation, the precision and memory format, the
number of views, the effective learning rate). Code that puts runs side by side (the robustness study, ``timm-dynmix
eval --compare``) calls :func:`check_comparable` first: it refuses runs whose resolved configurations differ in
anything but the declared fields (:data:`COMPARED_FIELDS`: the augmentation and its loss; :data:`SEED_FIELDS` where
seeds are averaged), naming each differing field and its values, unless the caller allows that field explicitly
(``--allow-diff FIELD``; the allowed differences are then printed under the table).

The study of round 2 compared arms that trained different networks (a frozen whitened stem on one data path, a
learned one on the other) and nothing recorded it; this module is what stops that from happening again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["ANY_FIELD", "COMPARED_FIELDS", "SEED_FIELDS", "BOOKKEEPING_FIELDS", "IncomparableRunsError",
           "config_differences", "check_comparable", "format_allowed_differences"]

#: The augmentation and its loss: what a comparison of augmentation methods compares.
COMPARED_FIELDS: frozenset[str] = frozenset({
    "aug", "aug_name", "aug_string", "aug_device", "jsd", "jsd_weight", "num_mixes", "views", "mixup_alpha",
    "cutmix_alpha",
})
#: Fields that vary between the seeds of one arm (allowed when seeds are averaged or compared).
SEED_FIELDS: frozenset[str] = frozenset({"seed"})
#: Options that do not change what is trained (where files go, how often to save, trackers, worker and thread
#: counts: every draw is seeded per sample, so they do not change the data either); never compared.
BOOKKEEPING_FIELDS: frozenset[str] = frozenset({
    "output_dir", "resume", "checkpoint_every", "keep_checkpoints", "report_to", "push_to_hub", "diagnostics",
    "num_workers", "workers", "num_threads", "data_dir", "eval_every",
})


#: ``--allow-diff '*'``: compare anyway, whatever differs (every difference is printed under the table).
ANY_FIELD = "*"


class IncomparableRunsError(ValueError):
    """Runs whose resolved configurations differ in more than the compared fields."""


def _flat(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{name}."))
        else:
            out[name] = list(value) if isinstance(value, tuple) else value
    return out


def config_differences(a: Mapping[str, Any], b: Mapping[str, Any],
                       ignore: Iterable[str] = BOOKKEEPING_FIELDS) -> dict[str, tuple[Any, Any]]:
    """The fields (nested keys joined with ``.``) whose values differ between two resolved configurations.

    A field missing on one side counts as a difference (its value shown as ``<missing>``). Fields in ``ignore``
    (matched on the whole dotted name or its last part) are skipped.
    """
    ignore = set(ignore)
    fa, fb = _flat(a), _flat(b)
    missing = "<missing>"
    diffs = {}
    for key in sorted(set(fa) | set(fb)):
        if key in ignore or key.rsplit(".", 1)[-1] in ignore:
            continue
        va, vb = fa.get(key, missing), fb.get(key, missing)
        if va != vb:
            diffs[key] = (va, vb)
    return diffs


def check_comparable(runs: Mapping[str, Mapping[str, Any] | None], *, compared: Iterable[str] = COMPARED_FIELDS,
                     allow_diff: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """Check that the resolved configurations of ``runs`` differ only in ``compared`` and ``allow_diff`` fields.

    Args:
        runs: Run name -> its resolved configuration (``results.json["resolved"]``); None when the run did not
            record one (refused: it cannot be checked).
        compared: The fields the comparison is about (default: the augmentation and its loss).
        allow_diff: Further fields the caller accepts to differ (``--allow-diff``); reported in the return value.
            ``"*"`` (:data:`ANY_FIELD`) accepts any difference and runs without a recorded configuration.

    Returns:
        For each allowed field (of ``allow_diff``) that does differ: run name -> its value, for printing under the
        table (:func:`format_allowed_differences`).

    Raises:
        IncomparableRunsError: naming the runs without a resolved configuration, or each differing field with the
            values of the runs (and how to allow it).
        ValueError: if ``runs`` is empty.
    """
    if not runs:
        raise ValueError("check_comparable needs at least one run")
    allowed = set(allow_diff)
    unrecorded = [name for name, cfg in runs.items() if not cfg]
    if ANY_FIELD in allowed:  # the caller accepts any difference: report every one
        known = {n: c for n, c in runs.items() if c}
        shown: dict[str, dict[str, Any]] = {}
        if unrecorded:
            shown["<resolved configuration>"] = {n: "not recorded" for n in unrecorded}
        if len(known) > 1:
            ref_name = next(iter(known))
            for name, cfg in known.items():
                for key, (va, vb) in config_differences(known[ref_name], cfg, ignore=BOOKKEEPING_FIELDS).items():
                    if key not in compared:
                        shown.setdefault(key, {ref_name: va})[name] = vb
        return shown
    if unrecorded:
        raise IncomparableRunsError(
            f"{len(unrecorded)} run(s) recorded no resolved configuration, so nobody can check that they trained "
            f"the same way: {', '.join(unrecorded)} (results written before runs recorded it lack "
            "results.json['resolved']; re-run them, or pass --allow-diff '*' to compare them anyway)")
    ignore = set(BOOKKEEPING_FIELDS) | set(compared) | allowed
    names = list(runs)
    ref_name, ref = names[0], runs[names[0]] or {}  # every run recorded one (checked above)
    problems: dict[str, dict[str, Any]] = {}
    for name in names[1:]:
        for key, (va, vb) in config_differences(ref, runs[name] or {}, ignore=ignore).items():
            problems.setdefault(key, {ref_name: va})[name] = vb
    if problems:
        lines = [f"  {key}: " + ", ".join(f"{n}={v!r}" for n, v in values.items()) for key, values in problems.items()]
        raise IncomparableRunsError(
            "these runs did not train the same way: their resolved configurations differ in "
            f"{', '.join(problems)} (not an augmentation/loss field):\n" + "\n".join(lines)
            + "\nre-run them on one configuration, or pass --allow-diff FIELD to compare them anyway (the difference "
              "is then printed under the table)")
    differing: dict[str, dict[str, Any]] = {}
    flat = {n: _flat(c) for n, c in runs.items()}  # type: ignore[arg-type]
    for key in sorted(allowed):
        values = {n: f.get(key, "<missing>") for n, f in flat.items()}
        if len({repr(v) for v in values.values()}) > 1:
            differing[key] = values
    return differing


def format_allowed_differences(shown: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Markdown lines stating the differences a comparison was allowed to have (empty when none)."""
    if not shown:
        return []
    lines = ["", "**Not an identical configuration**: these runs also differ in (allowed with --allow-diff):"]
    for key, values in shown.items():
        lines.append(f"- `{key}`: " + ", ".join(f"{n} = {v!r}" for n, v in values.items()))
    return lines
