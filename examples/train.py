"""Train a robust image classifier with DynMix + JSD (or a timm baseline) under Accelerate.

    accelerate launch examples/train.py                                   # embedded digits data, ~1 minute on CPU
    accelerate launch examples/train.py -c examples/configs/cifar10_wrn40_2.yaml --data-dir CIFAR10_COPY
    accelerate launch examples/train.py --dataset uoft-cs/cifar10 --model wrn40_2 --aug dynmix --epochs 100

Every option is a field of ``timm_dynmix.train.TrainConfig``; flags override the YAML recipe given with ``-c``.
"""

import argparse
import sys

from timm_dynmix.train import add_arguments, config_from_args, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    try:
        config = config_from_args(parser.parse_args())  # defaults <- YAML recipe <- flags, validated up front
        results = train(config)
    except (ValueError, FileNotFoundError) as e:  # bad options or data: one clear line, no traceback
        sys.exit(f"error: {e}")
    if results["process_index"] != 0:
        return
    metrics = results["metrics"]
    print(f"done: eval top-1 {metrics.get('clean_top1', float('nan')):.2f}% after {results['epochs']} epochs "
          f"({results['train_samples_per_s']:.0f} samples/s); outputs in {config.output_dir}")


if __name__ == "__main__":
    main()
