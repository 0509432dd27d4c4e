"""Command line: ``python -m mame {run,report,share,check,status,estimate,data}``. Errors print one line, never a traceback."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from mame import config

DEFAULT_PROFILE = "demo"
AUTO_PROFILE = "auto"  # the default with --data (make report DATA=): sized from the dataset and the machine


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mame", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run every stale run of the plan")
    _profile_args(run)
    run.add_argument("--only", help="stage, stage/backbone, stage/run-name, or =stage/run-name for exactly that run (comma-separated)")
    run.add_argument("--force", action="store_true", help="run the selected runs even if up to date")
    _executor_args(run)

    report = sub.add_parser("report", help="run what is stale, then render the deck (HTML and PDF)")
    _profile_args(report)
    report.add_argument("--no-run", action="store_true", help="render from the runs as they are")
    _executor_args(report)
    report.add_argument("--no-pdf", action="store_true", help="skip the PDF")
    report.add_argument("--rerender", action="store_true",
                        help="render the deck even when nothing it is made from changed since the last render")
    report.add_argument("--check", action="store_true",
                        help="open the deck in headless Chromium: JS errors, overflowing slides, screenshots")
    report.add_argument("--watch", action="store_true",
                        help="serve the deck live and render it again as runs finish or the plan, templates or styles "
                             "change (the page reloads itself); the stale runs start beside it unless --no-run")
    report.add_argument("--host", default=None,
                        help="with --watch: the address to serve on (default 127.0.0.1: this machine only); the server "
                             "answers loopback names and this one; beyond loopback (0.0.0.0) anyone on the network can read the deck")
    report.add_argument("--port", type=int, default=None,
                        help="with --watch: the port (default 8765, or a free one when it is taken; 0: any free one)")

    share = sub.add_parser("share", help="package the deck, its PDF and every run's metrics.json in one zip (or a static site)")
    _profile_args(share)
    share.add_argument("--with-notebooks", action="store_true", help="add each run's executed notebook")
    share.add_argument("--with-models", action="store_true", help="add each run's model.keras")
    share.add_argument("--site", type=Path, default=None,
                       help="write a static folder here instead (index.html = the deck, the PDF, the metrics, an index of runs): "
                            "a new or empty folder, or one an earlier --site made (replaced whole); any other is refused")

    check = sub.add_parser("check", help="check the plan file (schema, names, notebook parameters, every profile); runs nothing")
    check.add_argument("--plan", type=Path, default=None, help="plan file (default: experiments/plan.yaml)")

    status = sub.add_parser("status", help="show every plan entry as done / stale / failed / missing")
    _profile_args(status)
    estimate = sub.add_parser("estimate", help="expected compute time of each stage on one accelerator (FLOP count)")
    _profile_args(estimate)
    estimate.add_argument("--tflops", type=float, default=100.0,
                          help="sustained throughput of the accelerator in TFLOP/s (default 100)")
    estimate.add_argument("--markdown", action="store_true", help="print the table as markdown (as docs/estimates.md shows it)")
    estimate.add_argument("--gpus", default=None,
                          help="also the wall time on this many GPUs, one run each (comma-separated, e.g. 1,2,4,8): "
                               "runs start when what they need is done; the critical path through the plan bounds it")
    estimate.add_argument("--needs", action="store_true",
                          help="also what one run of each stage and backbone asks of a machine: GPU memory and disk (estimated)")
    estimate.add_argument("--overhead", type=float, default=60.0,
                          help="seconds each run costs beyond its FLOPs in the wall-time estimate (default 60: "
                               "kernel start, imports, data loading, validation)")
    estimate.add_argument("--write", type=Path, metavar="FILE",
                          help="rewrite what stands between this file's estimate markers: the markdown table, then the "
                               "--gpus and --needs tables (make docs: docs/estimates.md)")

    data = sub.add_parser("data", help="dataset tools")
    dsub = data.add_subparsers(dest="data_command", required=True)
    check = dsub.add_parser("check", help="images per class and split, sizes, duplicates, missing or unreadable images, "
                                          "the dataset's fingerprint")
    check.add_argument("dir", type=Path, help="the dataset: MAMe's folder (MAMe_dataset.csv and data_256/ or data/), a "
                                              "folder of class folders (in train/validation/test folders or not), a "
                                              "folder with a metadata.csv, or a CSV file")
    check.add_argument("--no-images", action="store_true", help="check the listing only (no image opened)")
    check.add_argument("--layout", choices=("auto", "folders", "csv"), default="auto", help="how the images are laid out")
    check.add_argument("--csv", default=None, help="the CSV in DIR naming the images (default: metadata.csv)")
    check.add_argument("--images", default=None, help="the folder below the CSV's that its file names start from")
    for role, default in (("file", "file_name"), ("label", "label"), ("split", "split")):
        check.add_argument(f"--{role}-column", default=None, help=f"the CSV's column of the image {role}s (default {default})")
    down = dsub.add_parser("download", help="download the official MAMe zips (md5-checked, resumable)")
    down.add_argument("--dest", type=Path, default=None, help="target folder (default: $MAME_DIR)")
    down.add_argument("--parts", default="metadata,data_256", help="metadata, data_256 and/or data")
    synth = dsub.add_parser("synth", help="generate the synthetic MAMe of a profile")
    _profile_args(synth)
    synth.add_argument("--out", type=Path, default=None, help="target folder (default: data/synthetic/<profile>)")
    synth.add_argument("--like-mame", type=Path, default=None, metavar="DIR",
                       help="instead: a synthetic MAMe of the real one's size in DIR: the official CSV's 37,407 rows, an "
                            "image each at data_256's 256x256 (about 0.6 GB; resumable: run it again to go on)")
    synth.add_argument("--images", type=int, default=None,
                       help="with --like-mame: about this many images, each split and class keeping its share")
    synth.add_argument("--jobs", "-j", type=int, default=None, help="with --like-mame: processes drawing images "
                                                                     "(default: every core)")
    return parser


def _executor_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", "-j", type=int, default=None,
                        help="runs at once (default: what is fastest here: one per GPU, else by cores; see docs/running.md)")
    parser.add_argument("--executor", choices=("local", "ray"), default="local",
                        help="local processes, one per run (default), or Ray tasks (a local Ray instance, or --address)")
    parser.add_argument("--address", default=None, help="Ray cluster to submit to (e.g. ray://head:10001 or auto)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads each run gets when runs go side by side (default: every core, as a run alone gets; "
                             "another count gives other numbers: TensorFlow's CPU results depend on it)")
    parser.add_argument("--fresh-kernels", action="store_true",
                        help="start every run's kernel from nothing instead of forking it from a server that has "
                             "TensorFlow already imported (slower by the import, seconds per run; same results)")
    parser.add_argument("--retries", type=int, default=None,
                        help="times a run whose worker was lost (killed, crashed) is started again (default 1)")


def _run_options(args) -> dict:
    from mame.engine.run.environment import default_jobs
    from mame.engine.run.scheduler import DEFAULT_RETRIES

    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs must be 1 or more, not {args.jobs}")
    if args.retries is not None and args.retries < 0:
        raise ValueError(f"--retries must be 0 or more, not {args.retries}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be 1 or more, not {args.threads}")
    if args.address and args.executor != "ray":
        raise ValueError("--address names a Ray cluster: add --executor ray")
    return {"jobs": args.jobs or default_jobs(args.executor), "executor": args.executor, "address": args.address,
            "threads": args.threads, "fresh_kernels": args.fresh_kernels,
            "retries": DEFAULT_RETRIES if args.retries is None else args.retries}


def _profile_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default=None,
                        help="smoke, demo (default), full, or auto (the default with --data: sized from the dataset "
                             "and this machine)")
    parser.add_argument("--plan", type=Path, default=None, help="plan file (default: experiments/plan.yaml)")
    parser.add_argument("--data", type=Path, default=None,
                        help="study this dataset instead of the profile's: a folder of class folders (optionally in "
                             "train/validation/test folders), a folder with a metadata.csv, or a CSV file; its runs go "
                             "to runs-<name>/ unless MAME_RUNS_DIR says where")


def _stop(signum, _frame) -> None:
    """SIGTERM's handler: unwind as Ctrl-C does, so the runs still going are stopped and their folders removed."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    main_thread = threading.current_thread() is threading.main_thread()
    saved = signal.signal(signal.SIGTERM, _stop) if main_thread else None
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, OSError) as exc:
        for line in str(exc).split("\n") or [type(exc).__name__]:  # a plan's problems: one line each (only \n splits)
            print(f"error: {line}", file=sys.stderr)
        return 2
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, saved)


def _runs_beside(data: Path) -> None:
    """A dataset given with ``--data`` is this command's and its children's (``MAME_DATA``: the live deck's renders and
    runs) and keeps its runs and its deck apart (``runs-<name>/``, ``report-<name>/``), so that they never replace
    another dataset's, unless ``MAME_RUNS_DIR`` / ``MAME_REPORT_BUILD`` name a folder."""
    import os

    from mame.data.dataset_index import dataset_slug

    if not data.expanduser().exists():
        raise ValueError(f"--data {data}: no such file or folder")
    os.environ["MAME_DATA"] = str(data.expanduser().resolve())
    if not os.environ.get("MAME_RUNS_DIR"):
        os.environ["MAME_RUNS_DIR"] = str(config.ROOT / f"runs-{dataset_slug(data)}")
    if not os.environ.get("MAME_REPORT_BUILD"):  # its deck apart too: another deck's "what changed" is not its own
        os.environ["MAME_REPORT_BUILD"] = str(config.ROOT / f"report-{dataset_slug(data)}")
    print(f"dataset {data}: runs in {os.environ['MAME_RUNS_DIR']}, deck in {os.environ['MAME_REPORT_BUILD']}",
          file=sys.stderr)


def _dispatch(args) -> int:
    study = None
    if getattr(args, "profile", "") is None:  # a dataset folder without a profile: the auto profile sizes the study
        given = getattr(args, "data", None) is not None or config.dataset_override() is not None
        args.profile = AUTO_PROFILE if given and args.command != "data" else DEFAULT_PROFILE
    if args.command != "check" and hasattr(args, "plan"):  # a plan with a mistake stops every command before it starts
        from mame.engine.run.study import Study

        if getattr(args, "data", None) is not None:
            _runs_beside(args.data)
        # the plan loaded, its runs expanded and their cache keys computed once, for the whole command
        study = Study.load(args.profile, args.plan, data=getattr(args, "data", None))
        for line in study.profile.sizing:  # what the auto profile chose, before anything runs
            print(line, file=sys.stderr)
    if args.command == "run":
        from mame.engine.run.scheduler import run_plan, summary_table

        outcomes = run_plan(args.profile, only=args.only, force=args.force, plan_file=args.plan, study=study,
                            **_run_options(args))
        print(summary_table(outcomes))
        return 1 if any(o.state in ("failed", "skipped") for o in outcomes) else 0
    if args.command == "report":
        return _report(args, study)
    if args.command == "share":
        from mame.deck.share.bundle import share

        share(args.profile, plan_file=args.plan, with_notebooks=args.with_notebooks, with_models=args.with_models,
              site=args.site, study=study)
        return 0
    if args.command == "check":
        from mame.engine.plan.load import check_plan

        print(check_plan(args.plan))
        return 0
    if args.command == "status":
        from mame.engine.run.status import collect, format_status

        left_out: list = []
        entries = collect(args.profile, args.plan, left_out=left_out, study=study)
        print(format_status(entries, args.profile, left_out))
        return 0
    if args.command == "estimate":
        import os

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow loads: no C++ log lines
        from mame.estimate import estimate, format_estimate, format_markdown

        # a dataset folder's own sizes and classes (read, not generated); MAMe's otherwise
        dataset = study.prepare().dataset if study.profile.data.get("source") == "folder" else None
        rows = estimate(args.profile, tflops=args.tflops, plan_file=args.plan, dataset=dataset, plan=study.plan)
        print(format_markdown(rows, args.tflops) if args.markdown else format_estimate(rows, args.profile, args.tflops))
        if not args.markdown and not args.write:  # the docs' tables stay FLOP counts: they do not depend on a machine
            from mame.estimate import format_measured, measured
            from mame.measured_costs import measured_costs

            costs = measured_costs(config.runs_dir())
            found = measured(args.profile, costs, plan_file=args.plan, dataset=dataset, plan=study.plan)
            print(format_measured(found, costs, config.runs_dir()))
        extras = []
        if args.gpus:
            from mame.estimate import format_wall, wall_times

            counts = [int(g) for g in str(args.gpus).split(",") if g.strip()]
            if not counts or min(counts) < 1:
                raise ValueError(f"--gpus takes counts of 1 or more, e.g. 1,2,4 (not {args.gpus!r})")
            walls = wall_times(args.profile, counts, tflops=args.tflops, plan_file=args.plan, overhead_s=args.overhead,
                               dataset=dataset, plan=study.plan)
            extras.append(format_wall(walls, args.profile, args.tflops))
        if args.needs:
            from mame.estimate import format_needs, needs_table

            extras.append(format_needs(needs_table(args.profile, plan_file=args.plan, dataset=dataset, plan=study.plan), args.profile))
        for text in extras:
            print()
            print(text)
        if args.write:
            from mame.estimate import markdown_block, replace_block

            block = markdown_block(format_markdown(rows, args.tflops), extras)
            args.write.write_text(replace_block(args.write.read_text(encoding="utf-8"), block, where=str(args.write)),
                                  encoding="utf-8")
            print(f"{args.write}: estimate of profile {args.profile} written")
        return 0
    return _data(args, study)


def _executor_argv(args) -> list[str]:
    """The executor options as ``mame run`` takes them (the live deck starts the runs in a process of their own)."""
    argv = ["--executor", args.executor] + (["--address", args.address] if args.address else [])
    for flag, value in (("--jobs", args.jobs), ("--threads", args.threads), ("--retries", args.retries)):
        argv += [flag, str(value)] if value is not None else []
    return argv + (["--fresh-kernels"] if args.fresh_kernels else [])


def _report(args, study) -> int:
    from mame.deck.render.build import build

    if args.watch:
        from mame.deck.live.server import serve

        _run_options(args)  # the same checks of the executor options as a run gets
        if args.check:
            raise ValueError("--check opens the deck once; with --watch open the page the server prints")
        return serve(args.profile, plan_file=args.plan, host=args.host, port=args.port,
                     run_args=None if args.no_run else _executor_argv(args))
    from mame.engine.run.scheduler import summary_table

    result = build(args.profile, run=not args.no_run, pdf=not args.no_pdf, check=args.check, plan_file=args.plan,
                   run_options=_run_options(args), rerender=args.rerender, study=study)
    if result.outcomes:
        print(summary_table(result.outcomes))
    print(f"deck: {result.html}")
    if result.pdf:
        print(f"pdf:  {result.pdf}")
    if result.check is not None:
        print(result.check.summary())
    gaps = [e.run.id for e in result.entries if e.state in ("failed", "missing", "unreadable")]
    if gaps:
        print(f"placeholders for {len(gaps)} run(s): {', '.join(gaps)}")
    return 0 if result.ok else 1


def _data(args, study) -> int:
    if args.data_command == "check":
        from mame.data.folder_check import check_any

        columns = {role: getattr(args, f"{role}_column") for role in ("file", "label", "split")
                   if getattr(args, f"{role}_column")}
        text, ok = check_any(args.dir, verify_images=not args.no_images, layout=args.layout, csv_file=args.csv,
                             images=args.images, columns=columns or None)
        print(text)
        return 0 if ok else 1
    if args.data_command == "download":
        from mame.data.download import download

        dest = args.dest or config.real_data_dir()
        if dest is None:
            raise ValueError("say where to download: --dest DIR or MAME_DIR=DIR")
        for path in download(dest, parts=tuple(p.strip() for p in args.parts.split(","))):
            print(path)
        return 0
    if args.like_mame is not None:
        from mame.data.synthetic.like_mame import generate_like_mame

        generate_like_mame(args.like_mame, images=args.images, jobs=args.jobs)
        print(f"it reads as MAMe: python -m mame data check {args.like_mame}; make report PROFILE=full "
              f"MAME_DIR={args.like_mame}")
        return 0
    if args.images is not None or args.jobs is not None:
        raise ValueError("--images and --jobs go with --like-mame DIR")
    from mame.data.synthetic.generator import SynthSpec, generate
    from mame.engine.run.study import prepare_dataset

    profile = study.profile
    if profile.data.get("source") != "synthetic":
        raise ValueError(f"profile {profile.name!r} reads the real MAMe (data.source: {profile.data.get('source')}); "
                         f"synthetic data belongs to profiles with data.source: synthetic, such as smoke and demo")
    if args.out is None:
        print(prepare_dataset(profile)["path"])
        return 0
    fields = {k: v for k, v in profile.data.items() if k != "source"}
    print(generate(args.out, SynthSpec.from_dict({"seed": profile.seed, **fields})))
    return 0
