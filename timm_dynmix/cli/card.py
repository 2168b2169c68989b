"""``timm-dynmix card OUTPUT_DIR [--eval-report DIR ...] [--repo-id ORG/NAME]``: (re)write a model card."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``timm-dynmix card``."""
    parser.add_argument("output_dir", metavar="OUTPUT_DIR",
                        help="a saved model folder (config.json; results.json is read when present)")
    parser.add_argument("--eval-report", metavar="DIR", nargs="+", default=[], action="extend",
                        help="evaluation report folder(s) holding report.json, for the results and model-index")
    parser.add_argument("--repo-id", metavar="ORG/NAME", default=None,
                        help="Hub repo id for the usage code (push fills it in otherwise)")
    parser.add_argument("--results", metavar="FILE", default=None,
                        help="training record to read instead of OUTPUT_DIR/results.json")
    parser.add_argument("--license", default=None, help="license id for the card (default: the config's)")


def run(args: argparse.Namespace) -> int:
    """Run ``timm-dynmix card``: (re)write the card from config.json, results.json and evaluation reports."""
    from timm_dynmix.fileio import read_json
    from timm_dynmix.hub.card import write_card

    folder = Path(args.output_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    results_file = Path(args.results) if args.results else folder / "results.json"
    results = None
    if results_file.is_file():
        results = read_json(results_file, "results file")
    elif args.results:
        raise FileNotFoundError(f"results file {results_file} does not exist")
    else:
        print(f"note: no results.json in {folder}; the card will have no training recipe")
    path = write_card(folder, results=results, eval_reports=args.eval_report, repo_id=args.repo_id,
                      license=args.license)
    print(f"wrote {path}")
    return 0
