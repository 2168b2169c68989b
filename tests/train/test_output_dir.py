"""--output-dir naming an existing file (or a path under one) is refused in one line before anything loads."""

from __future__ import annotations

import pytest

from timm_dynmix.cli import main
from timm_dynmix.train import TrainConfig


@pytest.mark.parametrize("below", ["", "sub/run"])
def test_output_dir_that_is_a_file(tmp_path, capsys, below):
    afile = tmp_path / "results.txt"
    afile.write_text("keep me")
    out = afile / below if below else afile
    what = "not a folder" if not below else "so no folder can be made under it"
    with pytest.raises(ValueError, match=f"{afile} is an existing file, {what}; choose another --output-dir"):
        TrainConfig(output_dir=str(out)).validate()
    assert main(["train", "--output-dir", str(out), "--max-steps", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"timm-dynmix train: error: --output-dir {out}: {afile} is an "), err
    assert afile.read_text() == "keep me"


def test_output_dir_folder_or_new_path_passes(tmp_path):
    TrainConfig(output_dir=str(tmp_path)).validate()
    TrainConfig(output_dir=str(tmp_path / "new" / "run")).validate()
