import subprocess
import sys

from PIL import Image

from timm_dynmix import __version__
from timm_dynmix.cli import main


def test_version():
    out = subprocess.run([sys.executable, "-m", "timm_dynmix.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"timm-dynmix {__version__}"


def test_preview_writes_grid(tmp_path, real_images, capsys):
    src = tmp_path / "cat.png"
    real_images[0].save(src)
    out = tmp_path / "grid.png"
    assert main(["preview", str(src), "--aug", "dynmix-m5-windep", "--out", str(out), "--rows", "3",
                 "--tile", "64"]) == 0
    grid = Image.open(out)
    assert grid.size[0] == 4 * (64 + 8) and grid.size[1] > 3 * 64
    assert "dynmix-m5-d2-p0.5-a1-windep" in capsys.readouterr().out
    # the grid is not blank: the input tile holds the (enlarged) image
    assert len(set(grid.crop((4, 34, 68, 98)).get_flattened_data())) > 50


def test_preview_default_sample_photo(tmp_path):
    out = tmp_path / "g.png"
    assert main(["preview", "--out", str(out), "--rows", "1", "--tile", "48"]) == 0
    assert out.is_file()


def test_preview_errors(tmp_path, capsys):
    assert main(["preview", str(tmp_path / "missing.png"), "--out", str(tmp_path / "x.png")]) == 2
    assert "no image file" in capsys.readouterr().err
    assert main(["preview", "--aug", "dynmix-z9", "--out", str(tmp_path / "x.png")]) == 2
    assert "unknown section 'z9'" in capsys.readouterr().err


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "preview" in capsys.readouterr().out


def test_train_command_refuses_bad_options(capsys):
    assert main(["train", "--aug", "blur"]) == 2
    assert "unknown --aug 'blur'" in capsys.readouterr().err
