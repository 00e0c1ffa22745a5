"""`python -m core suspects SWEEP`: the suspect-label ranking as a table, JSON or CSV."""
from __future__ import annotations

import argparse
import json

import pandas as pd

from core.cli_args import UserError
from core.quality.suspects import Suspect, SuspectsError, rank_suspects
from core.runs.store import RunStore
from core.text import csv_text


def suspects_table(suspects: list[Suspect], outliers: bool) -> pd.DataFrame:
    """The columns a person reads: rank, score, whether cleanlab flags it, given -> suggested, path."""
    frame = pd.DataFrame({"rank": [s.rank for s in suspects],
                          "score": [round(s.label_quality, 4) for s in suspects],
                          "issue": ["yes" if s.flagged else "" for s in suspects],
                          "given": [s.given for s in suspects],
                          "suggested": [s.suggested for s in suspects]})
    if outliers:
        frame["outlier"] = [round(s.outlier_score, 4) for s in suspects]
    frame["path"] = [s.path for s in suspects]
    return frame


def print_suspects(store: RunStore, args: argparse.Namespace) -> int:
    """Print the ranking of `args.name` (its first `args.top` images) in the format asked for."""
    try:
        ranked = rank_suspects(store, args.name, top_trials=args.trials, with_outliers=args.outliers)
    except SuspectsError as error:
        raise UserError(str(error)) from None
    shown = ranked[:args.top]
    if args.json:
        print(json.dumps([s.to_json() for s in shown], indent=2))
    elif args.csv:
        print(csv_text(pd.DataFrame([s.to_json() for s in shown], columns=list(Suspect.__dataclass_fields__))),
              end="")
    else:
        with pd.option_context("display.width", 200, "display.max_columns", 10, "display.max_colwidth", 120):
            print(suspects_table(shown, args.outliers).to_string(index=False))
        flagged = sum(s.flagged for s in ranked)
        source = "the best trial" if args.trials == 1 else f"up to the {args.trials} best trials, averaged"
        print(f"\n{flagged} of {len(ranked)} training images flagged as label issues by cleanlab "
              f"(out-of-fold scores of {source})")
    return 0
