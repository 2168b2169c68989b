"""load_image_data and the decoded datasets."""

import io
import time

import datasets
import numpy as np
import pytest
from conftest import CIFAR10_DIR, cifar10_test_arrays, make_image_folder
from PIL import Image

from timm_dynmix.data.datasets import (
    DatasetLoadError,
    DecodedImageDataset,
    DecodedIterableDataset,
    decode_image,
    load_image_data,
)


def test_digits_embedded():
    d = load_image_data("digits")
    assert len(d.train) == 1437 and len(d.eval) == 360 and d.num_classes == 10
    assert d.label_names == [str(i) for i in range(10)] and d.input_size == 32
    img, label = DecodedImageDataset(d.train, d.image_column, d.label_column)[0]
    assert img.size == (32, 32) and img.mode == "RGB" and 0 <= label < 10
    # the fixed split is stratified: every class in both splits
    assert set(d.eval[d.label_column]) == set(range(10))


def test_shared_cifar10_npz_loads():
    if not (CIFAR10_DIR / "cifar10_train_jpeg.npz").is_file():
        pytest.skip("CIFAR-10 copy not found at ../shared/data/cifar10")
    d = load_image_data("cifar10", data_dir=CIFAR10_DIR)
    assert len(d.train) == 50000 and len(d.eval) == 10000
    assert d.label_names[:3] == ["airplane", "automobile", "bird"]
    assert "JPEG" in d.provenance
    assert d.train[d.label_column][:10] == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]  # official training order
    x_test, y_test = cifar10_test_arrays(5)
    test = DecodedImageDataset(d.eval, d.image_column, d.label_column)
    for i in range(5):
        img, label = test[i]
        assert label == y_test[i] and np.array_equal(np.asarray(img), x_test[i])
    # the folder also works as a plain path
    assert len(load_image_data(str(CIFAR10_DIR)).eval) == 10000


def test_image_folder_and_columns(tmp_path):
    root = make_image_folder(tmp_path / "pets")
    d = load_image_data(str(root))
    assert len(d.train) == 18 and len(d.eval) == 18 and d.label_names == ["cat", "dog", "eel"]
    ds = DecodedImageDataset(d.train, d.image_column, d.label_column)
    assert ds[0][0].size == (32, 32)
    with pytest.raises(DatasetLoadError, match="label column 'species' not in dataset"):
        load_image_data(str(root), label_column="species")
    with pytest.raises(DatasetLoadError, match="split 'holdout' not in dataset"):
        load_image_data(str(root), eval_split="holdout")


def test_save_to_disk_parquet_and_npz(tmp_path):
    folder = make_image_folder(tmp_path / "src", n_per_class=3)
    source = datasets.load_dataset("imagefolder", data_dir=str(folder))
    source.save_to_disk(str(tmp_path / "saved"))
    saved = load_image_data(str(tmp_path / "saved"))
    assert len(saved.train) == 9 and saved.label_names == ["cat", "dog", "eel"]
    (tmp_path / "pq").mkdir()
    source["train"].to_parquet(str(tmp_path / "pq" / "train.parquet"))
    source["test"].to_parquet(str(tmp_path / "pq" / "test.parquet"))
    pq = load_image_data(str(tmp_path / "pq"))
    assert len(pq.train) == 9 and len(pq.eval) == 9
    assert DecodedImageDataset(pq.train, pq.image_column, pq.label_column)[4][0].size == (32, 32)
    x = np.random.default_rng(0).integers(0, 255, (6, 16, 16, 3), dtype=np.uint8)
    np.savez(tmp_path / "tiny.npz", x_train=x, y_train=np.arange(6) % 2, class_names=np.array(["a", "b"]))
    npz = load_image_data(str(tmp_path / "tiny.npz"))
    img, label = DecodedImageDataset(npz.train, npz.image_column, npz.label_column)[3]
    assert np.array_equal(np.asarray(img), x[3]) and label == 1 and npz.label_names == ["a", "b"]
    np.savez(tmp_path / "bad.npz", x_train=x, y_train=np.arange(5))
    with pytest.raises(DatasetLoadError, match="6 images but 5 labels"):
        load_image_data(str(tmp_path / "bad.npz"))


def test_corrupt_image_gets_the_fallback(tmp_path, caplog):
    root = make_image_folder(tmp_path / "c", n_per_class=4, corrupt=2)
    d = load_image_data(str(root))
    ds = DecodedImageDataset(d.train, d.image_column, d.label_column)
    fallback_img, fallback_label = ds[0]
    broken = [i for i in range(len(ds)) if "broken" in str(d.train[i][d.image_column]["path"])]
    assert len(broken) == 2
    for i in broken:
        img, label = ds[i]
        assert label == fallback_label and img.tobytes() == fallback_img.tobytes()
    assert ds.fallback_count == 2
    assert "undecodable image" in caplog.text


def test_bad_names_fail_fast():
    with pytest.raises(DatasetLoadError, match="unknown dataset 'cifar11'"):
        load_image_data("cifar11")
    with pytest.raises(DatasetLoadError, match=r"no dataset at \./nowhere"):
        load_image_data("./nowhere")
    start = time.time()
    with pytest.raises(DatasetLoadError, match="--data-dir"):
        load_image_data("some-org/some-uncached-dataset")
    assert time.time() - start < 15  # no half-minute of retries


def test_streaming_local_dataset_shards_by_rank(tmp_path):
    folder = make_image_folder(tmp_path / "s", n_per_class=4)
    d = load_image_data(str(folder), streaming=True)
    assert d.streaming and d.label_names == ["cat", "dog", "eel"]
    seen = []
    for rank in range(2):
        stream = DecodedIterableDataset(d.train, d.image_column, d.label_column, rank=rank, world_size=2)
        items = list(stream)
        assert all(img.size == (32, 32) for _, img, _ in items)
        seen.append([i for i, _, _ in items])
    assert len(seen[0]) + len(seen[1]) == 12
    assert not set(seen[0]) & set(seen[1])


def test_decode_image_inputs(tmp_path):
    buf = io.BytesIO()
    Image.new("L", (9, 9), 7).save(buf, format="PNG")
    assert decode_image({"bytes": buf.getvalue(), "path": None}).mode == "RGB"
    assert decode_image(buf.getvalue()).size == (9, 9)
    with pytest.raises(TypeError):
        decode_image(3.5)
    with pytest.raises(OSError):
        decode_image(b"not an image")
