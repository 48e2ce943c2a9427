"""`flukeid`: the command line beside the Dagster UI.

flukeid synth OUT_DIR --scale 0.05 --seed 0     generate a synthetic Kaggle-layout data set
      [--variant standard|lookalike|harsh] [--lookalikes S] [--washout S] [--hard-photos S]   harder data
      [--encounters S]   a share of the whales' test photos listed as encounters, EXIF times on test photos
      [--layout kaggle2019|happywhale]   the 2019 competition's layout (default) or the 2022 Happywhale one
flukeid score SUBMISSION SOLUTION               MAP@5 of a submission against a solution file (either layout)
flukeid update [--experiments]                  materialize only what is stale or missing (the sweep only if asked)
flukeid init-home                               create $DAGSTER_HOME's storage once, before any run
flukeid review [--port 8765]                    the review page on http://127.0.0.1:8765 (decide uncertain photos)
flukeid experiments [--run] [--write-docs PATH]  the experiment sweep: print its comparison, run it, write its page
"""

from __future__ import annotations

import argparse
import sys


def _share(text: str) -> float:
    """argparse type of a share option (argparse names the option in its error): a float in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a share between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a share between 0 and 1, got {text!r}")
    return value


def _add_review_parser(commands) -> None:
    import os

    review = commands.add_parser(
        "review", help="the local review page: decide the uncertain test photos (served on 127.0.0.1)"
    )
    review.add_argument(
        "--storage",
        default=os.environ.get("FLUKEID_STORAGE_DIR", "storage"),
        help="storage folder holding review_queue/ (default: $FLUKEID_STORAGE_DIR or storage)",
    )
    review.add_argument(
        "--data",
        default=os.environ.get("FLUKEID_DATA_DIR", "data/demo"),
        help="the data folder (default: $FLUKEID_DATA_DIR or data/demo)",
    )
    review.add_argument(
        "--decisions",
        default=None,
        help="the decisions file (default: $FLUKEID_DECISIONS_FILE, relative to the data folder, or "
        "<data>/reviews/decisions.csv)",
    )
    review.add_argument(
        "--reviewer", default=os.environ.get("USER", ""), help="name written with each decision"
    )
    review.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    review.add_argument("--port", type=int, default=8765)


def _review(args) -> int:
    import os
    from pathlib import Path

    import uvicorn

    from review.app import create_app

    data = Path(args.data).expanduser()
    if args.decisions:
        decisions = Path(args.decisions).expanduser()
    else:  # as the pipeline's FlukeData reads it: relative to the data folder unless absolute
        decisions = Path(os.environ.get("FLUKEID_DECISIONS_FILE", "reviews/decisions.csv")).expanduser()
        decisions = decisions if decisions.is_absolute() else data / decisions
    app = create_app(Path(args.storage).expanduser(), data, decisions, args.reviewer)
    print(f"review page: http://{args.host}:{args.port}/  (decisions: {decisions}; Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _add_experiments_parser(commands) -> None:
    import os

    experiments = commands.add_parser(
        "experiments",
        help="the experiment sweep (configs/experiments.yaml): print the stored comparison; --run materializes "
        "the missing or stale partitions and the comparison; --write-docs writes docs/experiments.md from it",
    )
    experiments.add_argument("--run", action="store_true", help="run the missing or stale partitions first")
    experiments.add_argument(
        "--jobs", type=int, default=2, help="worker processes for --run (default 2; 1: this one)"
    )
    experiments.add_argument(
        "--only", nargs="+", default=(), metavar="EXPERIMENT", help="run these experiments only"
    )
    experiments.add_argument("--dry-run", action="store_true", help="with --run: print the plan, run nothing")
    experiments.add_argument(
        "--profile", default=None, help="run-config profile in configs/ (default: $FLUKEID_PROFILE or demo)"
    )
    experiments.add_argument(
        "--storage",
        default=os.environ.get("FLUKEID_STORAGE_DIR", "storage"),
        help="storage folder holding experiment_comparison/ (default: $FLUKEID_STORAGE_DIR or storage)",
    )
    experiments.add_argument(
        "--write-docs", default=None, metavar="PATH", help="write the comparison as this page"
    )


def _experiments(args) -> int:
    import os

    if args.profile:
        os.environ["FLUKEID_PROFILE"] = args.profile  # before definitions load: versions fold the profile in
    from pipelines.experiments import stored_comparison, write_docs

    failed: list[str] = []
    if args.run:
        from dagster import DagsterInstance

        from pipelines.definitions import defs
        from pipelines.experiments import sweep
        from pipelines.home import init_home

        if os.environ.get("DAGSTER_HOME"):
            init_home()
        with DagsterInstance.get() as instance:
            failed = sweep(defs, instance, jobs=args.jobs, only=args.only, dry_run=args.dry_run)
        if args.dry_run:
            return 0
        if failed:
            print(f"failed partitions: {', '.join(failed)}", file=sys.stderr)
    try:
        value = stored_comparison(args.storage)
    except FileNotFoundError as error:
        print(f"error: {error} (flukeid experiments --run materializes it)", file=sys.stderr)
        return 2
    print(value["text"]["terminal"], end="")
    if args.write_docs:
        for path in write_docs(value, args.write_docs):
            print(f"wrote {path}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="flukeid", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    synth = commands.add_parser(
        "synth", help="generate synthetic fluke photos in the Kaggle layout, with ground truth"
    )
    synth.add_argument("out_dir")
    synth.add_argument(
        "--scale", type=float, default=0.05, help="1.0 reproduces the real data's counts (default 0.05)"
    )
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    synth.add_argument("--quiet", action="store_true", help="no progress bar")
    synth.add_argument(
        "--variant",
        choices=("standard", "lookalike", "harsh"),
        default="standard",
        help="preset of harder data: lookalike = --lookalikes 0.3 --washout 0.1; harsh = --hard-photos 0.3 "
        "--washout 0.15 --lookalikes 0.1 (the flags below override it; default standard: all 0)",
    )
    synth.add_argument(
        "--lookalikes",
        type=_share,
        default=None,
        metavar="SHARE",
        help="share of known whales that are near copies of another (same outline, a few marks differ)",
    )
    synth.add_argument(
        "--washout",
        type=_share,
        default=None,
        metavar="SHARE",
        help="share of whales whose fluke is nearly all white or all black",
    )
    synth.add_argument(
        "--hard-photos",
        type=_share,
        default=None,
        metavar="SHARE",
        help="share of photos that are small, strongly blurred, backlit or show the dorsal side",
    )
    synth.add_argument(
        "--encounters",
        type=_share,
        default=0.0,
        metavar="SHARE",
        help="share of the whales with 2+ test photos whose test photos are one encounter in encounters.csv; "
        "above 0, every test photo also gets an EXIF capture time (default 0: neither)",
    )
    synth.add_argument(
        "--layout",
        choices=("kaggle2019", "happywhale"),
        default="kaggle2019",
        help="kaggle2019: train.csv Image,Id, train/ and test/ (default); happywhale: the same set as the 2022 "
        "competition wrote it (train.csv image,species,individual_id, train_images/, test_images/, "
        "new_individual) plus train photos of other species",
    )

    score = commands.add_parser(
        "score",
        help="MAP@5 of a Kaggle-format submission against a solution file (2019 Image,Id or 2022 "
        "image,predictions / image,individual_id; new_individual counts as new_whale)",
    )
    score.add_argument("submission")
    score.add_argument("solution")

    update = commands.add_parser(
        "update", help="observe the data folder and materialize only stale or missing assets"
    )
    update.add_argument(
        "--profile", default=None, help="run-config profile in configs/ (default: $FLUKEID_PROFILE or demo)"
    )
    update.add_argument("--dry-run", action="store_true", help="print what would run, run nothing")
    update.add_argument(
        "--experiments",
        action="store_true",
        help="then the experiment sweep's missing or stale partitions too (as flukeid experiments --run)",
    )

    commands.add_parser("outputs", help="print where the outputs are and the validation MAP@5")

    home = commands.add_parser(
        "init-home",
        help="create the Dagster home's storage once (before concurrent runs; make and CI run it)",
    )
    home.add_argument("--home", default=None, help="the home folder (default: $DAGSTER_HOME)")
    _add_review_parser(commands)
    _add_experiments_parser(commands)

    args = parser.parse_args(argv)
    if args.command == "synth":
        from synth import generate

        summary = generate(
            args.out_dir,
            scale=args.scale,
            seed=args.seed,
            workers=args.workers,
            progress=not args.quiet,
            variant=args.variant,
            lookalikes=args.lookalikes,
            washout=args.washout,
            hard_photos=args.hard_photos,
            encounters=args.encounters,
            layout=args.layout,
        )
        for key, value in summary.items():
            print(f"{key}: {value}")
        return 0
    if args.command == "score":
        from core.scoring import format_score, score_submission

        try:
            result = score_submission(args.submission, args.solution)
        except (ValueError, FileNotFoundError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(format_score(result))
        return 0
    if args.command == "update":
        import os

        if args.profile:
            os.environ["FLUKEID_PROFILE"] = (
                args.profile
            )  # before definitions load: versions fold the profile in
        from dagster import DagsterInstance

        from pipelines.definitions import defs
        from pipelines.home import init_home
        from pipelines.update import update as run_update

        if os.environ.get("DAGSTER_HOME"):
            init_home()
        with DagsterInstance.get() as instance:
            run_update(defs, instance, profile=args.profile, dry_run=args.dry_run)
            if args.experiments:
                from pipelines.experiments import sweep

                if sweep(defs, instance, dry_run=args.dry_run):
                    return 1
        return 0
    if args.command == "init-home":
        from pipelines.home import init_home

        try:
            print(f"dagster home ready: {init_home(args.home)}")
        except RuntimeError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        return 0
    if args.command == "review":
        return _review(args)
    if args.command == "experiments":
        return _experiments(args)
    if args.command == "outputs":
        from pipelines.outputs import describe_outputs

        print(describe_outputs())
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
