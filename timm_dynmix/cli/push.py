"""``timm-dynmix push OUTPUT_DIR REPO_ID [--private] [--revision REV] [--create-pr] [--allow-incomplete]``: upload a
model folder."""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``timm-dynmix push``."""
    parser.description = ("Upload a saved model folder (config.json, model.safetensors, README.md, plots/) to the "
                          "Hugging Face Hub in one commit. The token comes from HF_TOKEN or `hf auth login`.")
    parser.add_argument("output_dir", metavar="OUTPUT_DIR", help="folder written by training / save_pretrained")
    parser.add_argument("repo_id", metavar="REPO_ID", help="Hub repo id, e.g. my-org/wrn40_2.dynmix_cifar10")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--revision", default=None, help="branch to commit to (created when missing)")
    parser.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    parser.add_argument("--commit-message", default=None, help="commit title")
    parser.add_argument("--allow-incomplete", action="store_true",
                        help="push a run that stopped before its planned end (results.json: completed false)")


def run(args: argparse.Namespace) -> int:
    """Run ``timm-dynmix push``."""
    from timm_dynmix.errors import endpoint_url
    from timm_dynmix.hub.push import push_to_hub

    info = push_to_hub(args.output_dir, args.repo_id, private=args.private, revision=args.revision,
                       create_pr=args.create_pr, commit_message=args.commit_message,
                       allow_incomplete=args.allow_incomplete)
    print(f"pushed {args.output_dir} to {endpoint_url()}/{args.repo_id}: {info}")
    if getattr(info, "pr_url", None):
        print(f"pull request: {info.pr_url}")
    return 0
