import math

import pytest
import torch

from timm_dynmix import DynMixDataset, JsdLoss, create_transform
from timm_dynmix.data.datasets import DecodedImageDataset, load_image_data
from timm_dynmix.train.hf_trainer import DynMixCollator, EpochCallback, jsd_compute_loss


@pytest.fixture(scope="module")
def digits():
    d = load_image_data("digits")
    train = DecodedImageDataset(d.train.select(range(48)), d.image_column, d.label_column)
    test = DecodedImageDataset(d.eval.select(range(16)), d.image_column, d.label_column,
                               transform=create_transform(32, is_training=False, mean=(0.5,) * 3, std=(0.5,) * 3))
    views = create_transform(32, is_training=True, aug="dynmix", mean=(0.5,) * 3, std=(0.5,) * 3)
    return DynMixDataset(train, views, seed=0), test


def test_collator_and_loss(digits):
    train, test = digits
    batch = DynMixCollator()([train[i] for i in range(4)])
    assert batch["pixel_values"].shape == (12, 3, 32, 32) and batch["labels"].tolist() == [train[i][1] for i in
                                                                                           range(4)]
    logits = torch.randn(12, 10)
    loss = jsd_compute_loss(3, 12.0)({"logits": logits}, batch["labels"])
    torch.testing.assert_close(loss, JsdLoss(3, 12.0)(logits, batch["labels"]))
    single = DynMixCollator()([test[i] for i in range(4)])
    assert single["pixel_values"].shape == (4, 3, 32, 32)
    ce = jsd_compute_loss(3)({"logits": logits[:4]}, single["labels"])
    torch.testing.assert_close(ce, torch.nn.functional.cross_entropy(logits[:4], single["labels"]))
    with pytest.raises(ValueError, match="empty batch"):
        DynMixCollator()([])


def test_trainer_runs_with_dynmix_views(digits, tmp_path):
    from transformers import AutoModelForImageClassification, ResNetConfig, Trainer, TrainingArguments

    train, test = digits
    model = AutoModelForImageClassification.from_config(
        ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=10))
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=8,
                             per_device_eval_batch_size=8, use_cpu=True, report_to=[], remove_unused_columns=False,
                             save_strategy="no", logging_steps=1, dataloader_num_workers=0, learning_rate=0.01)
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=test, data_collator=DynMixCollator(),
                      compute_loss_func=jsd_compute_loss(num_splits=3, weight=12.0),
                      callbacks=[EpochCallback(train)])
    out = trainer.train()
    assert out.global_step == 3 and math.isfinite(out.training_loss)
    metrics = trainer.evaluate()
    assert math.isfinite(metrics["eval_loss"])


def test_epoch_callback_is_a_trainer_callback():
    from transformers import TrainerCallback

    class Data:
        epoch = None

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

    data = Data()
    callback = EpochCallback(data)
    assert isinstance(EpochCallback, type) and isinstance(callback, TrainerCallback)
    callback.on_epoch_begin(None, type("State", (), {"epoch": 2.0})(), None)
    assert data.epoch == 2
    with pytest.raises(TypeError, match="needs a dataset with set_epoch"):
        EpochCallback([1, 2, 3])
