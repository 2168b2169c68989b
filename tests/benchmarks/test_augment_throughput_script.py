"""The throughput benchmark runs (--quick smoke mode) and writes its JSON report, so that it cannot rot."""

import importlib.util
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "augment_throughput.py"


@pytest.mark.slow
def test_benchmark_quick(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("augment_throughput", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    threads, states = torch.get_num_threads(), (torch.get_rng_state(), random.getstate(), np.random.get_state())
    try:  # the benchmark sets 1 thread and seeds the global generators: restore them for the other tests
        assert bench.main(["--quick", "--threads", "1", "2", "--out", str(tmp_path / "bench.json")]) == 0
    finally:
        torch.set_num_threads(threads)
        torch.set_rng_state(states[0])
        random.setstate(states[1])
        np.random.set_state(states[2])
    text = capsys.readouterr().out
    assert "claim:" in text and "machine:" in text and "versions:" in text and "| 224 px | timm AugMix |" in text
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["quick"] and set(report["results"]) == {"32", "224"}
    names = {r["name"] for r in report["results"]["32"]}
    assert {"timm AugMix", "torchvision AugMix", "DynMix PIL", "DynMix batched CPU, views",
            "AugMix batched CPU, views", "AugMix batched CPU, views, per-sample seeds"} <= names
    for rows in report["results"].values():
        assert rows[0]["name"] == "timm AugMix" and rows[0]["ratio_vs_timm_augmix"] == 1.0
        assert all(r["samples_per_s"] > 0 and len(r["run_seconds"]) == report["runs"] for r in rows)
    prime = "PRIME batched CPU, views" in names
    assert ("skipped" in report["prime"]) is not prime
    assert len(report["targets"]) == 5 + prime and all(isinstance(t["met"], bool) for t in report["targets"])
    two = report["results_threads"]["2"]
    assert set(two) == {"32", "224"} and two["32"][0]["name"] == "timm AugMix"
    assert {"torchvision AugMix", "AugMix batched CPU, views"} <= {r["name"] for r in two["32"]}
