"""The ``mlplab`` command line: parses options, calls the library, prints the results.

Nothing is computed here. Heavy libraries (NumPy, Keras, JAX) are imported inside the
commands so that ``mlplab --help`` stays instant. Any :class:`MlplabError` or usage
error becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from mlplab import __version__
from mlplab.errors import MlplabError

DATA_HELP = ("data source: auto (full MNIST if cached/downloadable, else the embedded "
             "sample), mnist-sample, mnist, fashion-mnist, a folder of IDX files, or an .npz")


def fail(message: str) -> None:
    click.echo(f"mlplab: error: {message}", err=True)
    sys.exit(2)


def terminal_progress(label: str, from_total: int = 1):
    """A ``progress(done, total)`` callback that shows a bar on stderr when it is a
    terminal and there are ``from_total`` steps or more (display only: no work here)."""
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None and total >= from_total and sys.stderr.isatty():
            bar = click.progressbar(length=total, label=label, file=sys.stderr)
        if bar is not None:
            bar.update(1)
            if done == total:
                bar.render_finish()

    return progress


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI with one-line errors and exit codes (0, 2, 130)."""
    try:
        cli.main(args=argv, prog_name="mlplab", standalone_mode=False)
    except MlplabError as e:
        fail(str(e))
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("mlplab: aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        ctx = getattr(e, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        fail(e.format_message().replace("\n", " ") + hint)
    except KeyboardInterrupt:
        click.echo("mlplab: interrupted", err=True)
        sys.exit(130)
    sys.exit(0)


def run() -> None:
    """The console script (and ``python -m mlplab``): :func:`main`, then a quick exit.

    Once Keras and JAX are loaded, the interpreter's own teardown of their module graph
    takes about 0.6 s after the work is done (a tenth of `mlplab lab`). The exit handlers
    still run and the standard streams are flushed, so nothing written is lost; only that
    teardown is skipped.
    """
    try:
        main()
    except SystemExit as e:
        code = e.code
    else:
        code = 0
    if isinstance(code, str):
        click.echo(code, err=True)
        code = 1
    code = code or 0
    if not any(m in sys.modules for m in ("jax", "keras", "tensorflow", "torch")):
        sys.exit(code)
    import atexit
    import os

    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mlplab")
def cli() -> None:
    """mlplab: train and understand MLP classifiers on MNIST-style digits.

    Start with `mlplab lab`: the classic Keras lab "MNIST with a multilayer perceptron",
    reproduced offline on real MNIST digits. Every command has --help.
    """


def load(source: str, *, echo_note: bool = True):
    from mlplab.data import load_dataset

    dataset = load_dataset(source)
    if echo_note and dataset.note:
        click.echo(dataset.note, err=True)
    return dataset


def epoch_line(row: dict, epochs: int, prefix: str = "") -> str:
    return (f"{prefix}Epoch {row['epoch']}/{epochs} - {row['seconds']:.2f}s - "
            f"loss: {row['loss']:.4f} - accuracy: {row['accuracy']:.4f} - "
            f"val_loss: {row['val_loss']:.4f} - val_accuracy: {row['val_accuracy']:.4f}")


# ---------------------------------------------------------------- lab


@cli.command()
@click.option("--data", default="auto", show_default=True, help=DATA_HELP)
@click.option("--epochs", default=5, show_default=True, type=click.IntRange(min=1),
              help="epochs per model")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1),
              help="samples per gradient step")
@click.option("--seed", default=42, show_default=True, type=int,
              help="random seed (same seed → the same history)")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="output directory  [default: runs/lab-<timestamp>]")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="use only the first N training samples (a quick smoke run)")
@click.option("--engine", type=click.Choice(["mlplab", "keras"]), default="mlplab",
              show_default=True, help="mlplab: fused JAX epochs; keras: plain model.fit")
@click.option("--verbose/--quiet", default=True, show_default=True,
              help="print the narrative, summaries and per-epoch lines")
def lab(data: str, epochs: int, batch_size: int, seed: int, out: Path | None,
        limit: int | None, engine: str, verbose: bool) -> None:
    """Reproduce the seed lab: three MLPs on MNIST, curves, comparison and a report.

    Writes sample.png, model_1..model_3/ (model.keras, history.csv, curves.png, …),
    comparison.png, report.md and report.html into --out.
    """
    from mlplab.lab import LabOptions, default_out, run_lab

    dataset = load(data)  # fails before anything is written under --out
    options = LabOptions(data=data, epochs=epochs, batch_size=batch_size, seed=seed,
                         limit=limit, engine=engine)
    out = out or default_out()
    say = click.echo if verbose else (lambda s: None)
    progress = None
    if verbose and engine == "mlplab":
        def progress(model: str, row: dict) -> None:
            click.echo(epoch_line(row, epochs, prefix=f"{model} "))
    result = run_lab(dataset, out, options, echo=say, on_epoch=progress,
                     verbose=1 if verbose and engine == "keras" else 0)
    click.echo("\nmodel    params  val_loss  val_accuracy  seconds")
    for r in result.rows:
        click.echo(f"{r['model']:<8} {r['params']:>6,}  {r['val_loss']:8.4f}  "
                   f"{r['val_accuracy']:12.4f}  {r['seconds']:7.2f}")
    click.echo(f"\nReport: {out / 'report.html'} (lab finished in {result.seconds:.1f}s)")
    if result.status != "complete":
        click.echo("mlplab: the lab was interrupted; the report covers the finished models",
                   err=True)
        sys.exit(130)


# ---------------------------------------------------------------- data


@cli.group()
def data() -> None:
    """Inspect data sources."""


@data.command("info")
@click.option("--data", "source", default="auto", show_default=True, help=DATA_HELP)
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of text")
def data_info(source: str, as_json: bool) -> None:
    """Validate a data source; print sizes, class counts, pixel range and sha256 of each file."""
    info = load(source).info()
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"name:        {info['name']}")
    click.echo(f"train/test:  {info['train_size']:,} / {info['test_size']:,} images of "
               f"{'x'.join(map(str, info['image_shape']))}")
    click.echo(f"train class counts: {info['train_class_counts']}")
    click.echo(f"test class counts:  {info['test_class_counts']}")
    click.echo(f"pixel range: {info['pixel_min']}..{info['pixel_max']}")
    click.echo(f"sha256:      {info['sha256']} (whole data set)")
    for name, digest in info["files"].items():
        click.echo(f"  {digest}  {name}")


# ---------------------------------------------------------------- train


def config_options(func: Any) -> Any:
    """One CLI flag per TrainConfig field, named after it, with its help and default."""
    from mlplab.config import TrainConfig

    defaults = TrainConfig()
    for f in reversed(dataclasses.fields(TrainConfig)):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        if f.name == "layers":
            default = ",".join(map(str, default))
        help_text = f.metadata["help"]
        if "choices" in f.metadata:
            help_text += f" ({', '.join(f.metadata['choices'])})"
        help_text += f"  [default: {default}]"
        if f.type == "bool":
            option = click.option(f"{flag}/--no-{flag[2:]}", f.name, default=None,
                                  help=help_text)
        else:
            metavar = ("SIZES" if f.name == "layers" else
                       "N" if "int" in f.type or "float" in f.type else "TEXT")
            option = click.option(flag, f.name, default=None, help=help_text, metavar=metavar)
        func = option(func)
    return func


@cli.command()
@config_options
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="read fields from a TOML or JSON file (e.g. runs/X/config.json); flags "
                   "given on the command line win")
@click.option("--recipe", type=click.Choice(["lab", "best"]), default=None,
              help="start from a named recipe: lab (model_1) or best (the strongest MLP "
                   "recipe we know; see README)")
@click.option("--name", default=None, help="run name  [default: <timestamp>-<model>]")
@click.option("--runs-dir", type=click.Path(path_type=Path), default=Path("runs"),
              show_default=True, help="where run directories live")
@click.option("--resume", type=click.Path(path_type=Path), default=None,
              help="continue the run in this directory from its last checkpoint")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="train the same config with N seeds (seed, seed+1, …) as runs NAME-s<seed>")
@click.option("--verbose/--quiet", default=True, show_default=True,
              help="print per-epoch lines")
def train(config_file: Path | None, recipe: str | None, name: str | None, runs_dir: Path,
          resume: Path | None, seeds: int, verbose: bool, **fields: Any) -> None:
    """Train one MLP configuration into a run directory (resumable, reproducible)."""
    from mlplab.config import make_config
    from mlplab.runs import resume_run, start_runs

    given = {k: v for k, v in fields.items() if v is not None}
    say = click.echo if verbose else (lambda s: None)
    if resume is not None:
        if given or config_file or recipe or seeds != 1:
            fail("--resume continues a run exactly as configured; give no other settings")
        result = resume_run(resume, echo=say, on_epoch=lambda row, c: say(epoch_line(row, c)))
        report_results([result])
        return
    config = make_config(recipe=recipe, config_file=config_file, overrides=given)
    results = start_runs(config, runs_dir=runs_dir, name=name, seeds=seeds, echo=say,
                         on_epoch=lambda row, c: say(epoch_line(row, c)),
                         load=lambda source: load(source))
    report_results(results)


def report_results(results: list) -> None:
    for run, result in results:
        final = result.history[-1] if result.history else {}
        click.echo(f"{run.path}: {result.status}, {len(result.history)} epochs, "
                   f"val_accuracy {final.get('val_accuracy', float('nan')):.4f}, "
                   f"{result.seconds:.1f}s training")
        if result.status == "interrupted":
            click.echo(f"stopped after saving; continue with: mlplab train --resume {run.path}",
                       err=True)
            sys.exit(130)


# ---------------------------------------------------------------- runs / compare


@cli.command("runs")
@click.option("--runs-dir", type=click.Path(path_type=Path), default=Path("runs"),
              show_default=True, help="where run directories live")
@click.option("--json", "as_json", is_flag=True, help="print JSON rows instead of a table")
def runs_cmd(runs_dir: Path, as_json: bool) -> None:
    """List runs: name, data, layers, optimizer, epochs done, best val accuracy, time, status."""
    from mlplab.runs import find_runs, summarize

    rows = [summarize(r) for r in find_runs(runs_dir)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"no runs under {runs_dir}/ (start one with `mlplab train` or `mlplab lab`)")
        return
    width = max(len(r["name"]) for r in rows)
    click.echo(f"{'run':<{width}}  {'data':<14} {'layers':<12} {'optimizer':<9} {'epochs':>7} "
               f"{'best val_acc':>12} {'seconds':>8}  status")
    for r in rows:
        best = "–" if r["best_val_accuracy"] is None else f"{r['best_val_accuracy']:.4f}"
        click.echo(f"{r['name']:<{width}}  {r['data'][:14]:<14} {r['layers'][:12]:<12} "
                   f"{r['optimizer']:<9} {r['epochs']:>7} {best:>12} {r['seconds']:>8.1f}  "
                   f"{r['status']}")


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="where to write comparison.png, comparison.md and comparison.json "
                   "[default: runs/compare-<timestamp>]")
def compare(run_dirs: tuple[Path, ...], out: Path | None) -> None:
    """Compare runs: overlaid curves and a table; seed groups get mean ± std and a verdict."""
    from mlplab.compare import compare_runs

    result = compare_runs(list(run_dirs), out=out)
    click.echo(result.text)
    click.echo(f"\nWrote {result.out}/comparison.png, comparison.md, comparison.json")


# ---------------------------------------------------------------- evaluate / show


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--data", default=None, help=DATA_HELP + "  [default: the run's own data; for "
              "a run validated on 'test-half' (tuning trials), the unseen half of its test set]")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="where to write evaluation.json/.html and PNGs  [default: the run directory]")
@click.option("--json", "as_json", is_flag=True,
              help="print evaluation.json to stdout (with --styles, styles.json under "
                   "\"styles\")")
@click.option("--styles", "with_styles", is_flag=True,
              help="also measure accuracy on people's kinds of image: the test digits "
                   "photographed, scanned, drawn in apps… (46 styles, through the same "
                   "preprocessing as `mlplab predict`); writes styles.json, styles.png and a "
                   "section of evaluation.html")
@click.option("--per-style", default=50, show_default=True, type=click.IntRange(1, 10_000),
              help="with --styles: test digits drawn in each style (spread over the test "
                   "set; more: a tighter interval, a longer wait)")
@click.option("--jobs", default=None, type=click.IntRange(1, 256),
              help="with --styles: processes making the styles' images  [default: every "
                   "core]")
def evaluate(run_dir: Path, data: str | None, out: Path | None, as_json: bool,
             with_styles: bool, per_style: int, jobs: int | None) -> None:
    """Evaluate a run on the test set: per-class scores, confusion, mistakes, calibration;
    with --styles, also on people's own kinds of image, style by style."""
    from mlplab.evaluation import evaluate_run, write_evaluation
    from mlplab.runs import open_run

    given = click.get_current_context().get_parameter_source
    if not with_styles and any(given(name) == click.core.ParameterSource.COMMANDLINE
                               for name in ("per_style", "jobs")):
        fail("--per-style and --jobs go with --styles")
    run = open_run(run_dir)
    result, dataset = evaluate_run(run.path, data=data)
    out = out or run.path
    styles = None
    if with_styles:
        from mlplab.evaluation import STYLE_RATIO, evaluate_styles
        from mlplab.inference import load_forward

        forward = load_forward(run.model_path)  # (evaluate_run's API, used by the notebook)

        styles = evaluate_styles(forward, dataset, per_style=per_style, jobs=jobs,
                                 progress=terminal_progress("styles"))  # (about a minute)
    write_evaluation(result, dataset.x_test, out, title=f"Evaluation of {run.path}",
                     styles=styles)
    if as_json:
        doc = result.to_dict()
        if styles is not None:
            doc = {**doc, "styles": styles.to_dict()}
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(f"{run.path} on {dataset.name}: accuracy {result.accuracy:.4f}, loss "
               f"{result.loss:.4f}, ECE {result.ece:.4f}")
    click.echo("class precision recall     f1 support")
    for c in result.per_class:
        click.echo(f"{c['class']:>5} {c['precision']:9.4f} {c['recall']:6.4f} {c['f1']:6.4f} "
                   f"{c['support']:7d}")
    click.echo("confusion (rows: true, columns: predicted)")
    for i, row in enumerate(result.confusion):
        click.echo(f"{i:>3} " + " ".join(f"{v:5d}" for v in row))
    if styles is not None:
        click.echo(f"people's kinds of image ({styles.digits} test digits in each style, "
                   f"plain accuracy on them {styles.plain_accuracy:.4f}):")
        click.echo(f"{'style':<34} accuracy  95% interval   ratio  failed")
        for row in styles.styles:
            ratio = "-" if row["ratio"] is None else f"{row['ratio']:.3f}"
            low, high = row["interval"]
            click.echo(f"{row['style']:<34} {row['accuracy']:8.3f}  {low:.3f}-{high:.3f} "
                       f"{ratio:>7} {row['failed']:7d}")
        weak = styles.below_target()
        click.echo(f"{len(weak)} of {len(styles.styles)} styles clearly (their whole "
                   f"interval) below {STYLE_RATIO}× the plain accuracy"
                   + (f": {', '.join(weak)}" if weak else ""))
    click.echo(f"Wrote {out / 'evaluation.html'}, evaluation.json, confusion.png, "
               "mistakes.png, reliability.png" + (", styles.json, styles.png" if styles else ""))


@cli.command()
@click.option("--data", "source", default="auto", show_default=True, help=DATA_HELP)
@click.option("--split", type=click.Choice(["train", "test"]), default="train",
              show_default=True, help="which split to show")
@click.option("--n", "count", default=64, show_default=True, type=click.IntRange(1, 400),
              help="how many digits")
@click.option("--label", type=click.IntRange(0, 9), default=None, help="only this digit")
@click.option("--out", type=click.Path(path_type=Path), default=Path("samples.png"),
              show_default=True, help="the grid PNG to write")
def show(source: str, split: str, count: int, label: int | None, out: Path) -> None:
    """Write a grid PNG of sample digits with their labels, and print class counts."""
    from mlplab.evaluation import show_samples
    from mlplab.runs import write_bytes

    samples = show_samples(load(source), split=split, n=count, label=label)
    write_bytes(out, samples.png)
    click.echo(f"{samples.name} {split}: {sum(samples.counts):,} digits; class counts "
               f"{samples.counts}")
    click.echo(f"Wrote {out} ({samples.shown} digits)")


# ---------------------------------------------------------------- predict


PROGRESS_FROM = 20  # images: a bar on the terminal while a folder this big is preprocessed


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--top", default=3, show_default=True, type=click.IntRange(1, 10),
              help="how many of the most likely digits to print")
@click.option("--json", "as_json", is_flag=True,
              help='print one JSON object per image: {"file", "digit", "probabilities"}')
@click.option("--show", type=click.Path(path_type=Path), default=None,
              help="write 'what the model sees' PNGs (original | 28×28 input) into this folder")
@click.option("--normalize-stroke", is_flag=True,
              help="bring every stroke to MNIST's median width (very thick or thin strokes "
                   "are always adjusted)")
@click.option("--jobs", default=None, type=click.IntRange(1, 256),
              help="processes that preprocess the images side by side (used from "
                   "8 files on)  [default: every core]")
def predict(run_dir: Path, images: tuple[Path, ...], top: int, as_json: bool,
            show: Path | None, normalize_stroke: bool, jobs: int | None) -> None:
    """Predict the digit in your own images (photos, scans, drawings; files or folders).

    Each image goes through MNIST-style preprocessing: polarity, background and lighting
    removal, crop to the ink, 20-px box, centring by mass. Bad files get one error line
    each; the others are still predicted, and the exit code is then 2.
    """
    from mlplab.prediction import predict_files

    results = predict_files(run_dir, list(images), show=show,
                            normalize_stroke=normalize_stroke, jobs=jobs,
                            progress=terminal_progress("preprocessing", PROGRESS_FROM))
    if not results:
        fail("no image files found in the given folders")
    for r in results:
        if r.error:
            click.echo(f"mlplab: error: {r.error}", err=True)
        elif as_json:
            click.echo(json.dumps(r.to_json()))
        else:
            ranked = ", ".join(f"{d} ({p:.1%})" for d, p in r.top(top))
            click.echo(f"{r.file}: {r.digit}   top {top}: {ranked}")
    if any(r.error for r in results):
        sys.exit(2)


# ---------------------------------------------------------------- tune


STORAGE_HELP = ("study storage URL, e.g. postgresql://user:pw@host/db to share one study "
                "between workers on many machines  [default: sqlite file runs/tune-NAME/study.db]")


@cli.group(invoke_without_command=True)
@click.option("--study", default=None, help="study name (workers with the same name and "
              "storage cooperate)")
@click.option("--trials", default=20, show_default=True, type=click.IntRange(min=1),
              help="work until the study has N finished (complete or pruned) trials")
@click.option("--timeout", default=None, type=click.FloatRange(min=1),
              help="stop this worker after S seconds")
@click.option("--storage", default=None, help=STORAGE_HELP)
@click.option("--data", default="mnist-sample", show_default=True, help=DATA_HELP)
@click.option("--epochs", default=50, show_default=True, type=click.IntRange(min=1),
              help="epochs budget per trial; pruning stops most trials at 3, 9 or 27 epochs, "
                   "so only promising ones use it all")
@click.option("--limit", default=None, type=click.IntRange(min=1),
              help="use only the first N training samples")
@click.option("--validation", default="test-half", show_default=True,
              help="what trials are compared on: 'test-half', a fixed half of the test set "
                   "(`mlplab evaluate` of the best trial then tests on the other, unseen "
                   "half; the embedded sample's 5,000 training digits all train), a held-out "
                   "fraction of the training data such as 0.1, or 'test' (then the test "
                   "accuracy of the best trial is optimistic)")
@click.option("--pruner", type=click.Choice(["halving", "hyperband", "median", "none"]),
              default="halving", show_default=True,
              help="stop unpromising trials early on per-epoch validation accuracy: halving "
                   "(successive halving: at epochs 3, 9, 27… only the top third go on), "
                   "hyperband (several halving brackets, some patient), median (stop below "
                   "the median of earlier trials at the same epoch; gentle) or none")
@click.option("--seed", default=42, show_default=True, type=int, help="TPE sampler seed")
@click.option("--runs-dir", type=click.Path(path_type=Path), default=Path("runs"),
              show_default=True, help="where trial run directories live")
@click.option("--heartbeat", default=10, show_default=True, type=click.IntRange(min=1),
              help="seconds between worker heartbeats; a trial silent for 3× this is "
                   "marked failed and retried")
@click.pass_context
def tune(ctx: click.Context, study: str | None, trials: int, timeout: float | None,
         storage: str | None, data: str, epochs: int, limit: int | None, pruner: str,
         seed: int, runs_dir: Path, heartbeat: int, validation: str) -> None:
    """Hyperparameter search with Optuna (TPE + pruning) over the training configuration.

    Searches layers (1-3), units, activation, dropout, optimizer, learning rate (log scale),
    batch size and weight decay, each trial an ordinary run in runs/tune-NAME/trial-0007.

    \b
      mlplab tune --study mlp --trials 30          # SQLite in runs/tune-mlp/study.db
      mlplab tune best mlp                         # best trial -> runs/mlp-best (a run)
      mlplab tune report mlp                       # runs/tune-mlp/tune.html

    Start the same command on several machines with one PostgreSQL --storage and they share
    the study until it has N finished trials; a killed worker's trial is marked failed by
    the others after three missed heartbeats and retried.
    """
    if ctx.invoked_subcommand is not None:
        return
    if not study:
        fail("--study NAME is required (or use `mlplab tune best|report NAME`)")
    from mlplab.tuning import SearchSpace
    from mlplab.tuning import tune as run_tune

    def show_trial(t: dict) -> None:
        value = "–" if t["value"] is None else f"{t['value']:.4f}"
        click.echo(f"trial {t['number']:>4} {t['state']:<8} val_accuracy {value}  "
                   f"epochs {t['epochs']:>3}  {t['params']}")

    space = SearchSpace(data=data, epochs=epochs, limit=limit, validation=validation)
    result = run_tune(study_name=study, trials=trials, runs_dir=runs_dir, storage=storage,
                      timeout=timeout, space=space,
                      seed=seed, pruner=pruner, heartbeat=heartbeat, on_trial=show_trial)
    best = result.best
    if best is None:
        click.echo("no complete trial yet")
    else:
        click.echo(f"best: trial {best.number}, val_accuracy {best.value:.4f}, {best.params}")


def study_command(name: str, out_help: str) -> Callable:
    """``mlplab tune NAME-OF-COMMAND STUDY`` with the options every study command shares."""
    def decorate(fn: Callable) -> Callable:
        for option in reversed([
                tune.command(name), click.argument("name"),
                click.option("--storage", default=None, help=STORAGE_HELP),
                click.option("--runs-dir", type=click.Path(path_type=Path),
                             default=Path("runs"), show_default=True,
                             help="where the study's runs live"),
                click.option("--out", type=click.Path(path_type=Path), default=None,
                             help=out_help)]):
            fn = option(fn)
        return fn
    return decorate


@study_command("best", "where to put the exported run  [default: runs/NAME-best]")
def tune_best(name: str, storage: str | None, runs_dir: Path, out: Path | None) -> None:
    """Export the best trial as a run directory (for evaluate, predict, serve)."""
    from mlplab.tuning import export_best

    path = export_best(name, runs_dir=runs_dir, storage=storage, out=out)
    click.echo(f"Exported the best trial to {path}")


@study_command("report", "folder for tune.html  [default: runs/tune-NAME]")
def tune_report(name: str, storage: str | None, runs_dir: Path, out: Path | None) -> None:
    """Write tune.html: optimization history, parameter importances, parallel coordinates."""
    from mlplab.tuning import write_report

    path = write_report(name, runs_dir=runs_dir, storage=storage, out=out)
    click.echo(f"Wrote {path}")


# ---------------------------------------------------------------- serve


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to listen on (0.0.0.0 exposes the model to your network)")
@click.option("--port", default=8000, show_default=True, type=int, help="TCP port")
@click.option("--max-upload-mb", default=10.0, show_default=True,
              type=click.FloatRange(min=0.01, max=1024), help="largest request body (413 above)")
@click.option("--batch", is_flag=True,
              help="micro-batch the model calls of concurrent requests (more throughput for "
                   "big models, more latency per request)")
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="print one line per request")
def serve(run_dir: Path, host: str, port: int, max_upload_mb: float, batch: bool,
          access_log: bool) -> None:
    """Serve a run: the draw-a-digit page at / and the HTTP API (docs at /docs)."""
    from mlplab import serving

    limits = serving.Limits(max_bytes=int(max_upload_mb * 2**20))
    serving.serve(run_dir, host=host, port=port, limits=limits, batch=batch,
                  access_log=access_log, echo=click.echo)


# ---------------------------------------------------------------- bench


def fmt_ratio(v: float) -> str:
    return f"{v:.2f}×"


@cli.group(invoke_without_command=True)
@click.option("--model", type=click.Choice(["model_1", "model_2", "model_3"]), default="model_1",
              show_default=True, help="which lab model to train")
@click.option("--data", default=None,
              help="data source  [default: fashion-mnist (60k) when Debian's "
                   "dataset-fashion-mnist is installed, else mnist-sample]")
@click.option("--epochs", default=5, show_default=True, type=click.IntRange(min=2),
              help="epochs per contender (the first one includes compiling)")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1),
              help="batch size for every contender")
@click.option("--only", default=None, help="comma-separated contenders to run "
              "(mlplab, keras, keras-tensorflow, sklearn, numpy)  [default: all]")
@click.option("--lab", "whole_lab", is_flag=True,
              help="time the whole `mlplab lab` against the seed's plain script instead")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@click.pass_context
def bench(ctx: click.Context, model: str, data: str | None, epochs: int, batch_size: int,
          only: str | None, whole_lab: bool, as_json: bool) -> None:
    """Benchmark training speed against Keras fit, scikit-learn and NumPy, side by side.

    Each contender runs in its own process on the same data; the table gives first-epoch
    seconds, steady seconds per epoch, total, final val accuracy, peak RSS and each one's
    ratio to ours. Subcommands: `bench predict` (inference) and `bench serve` (HTTP).
    """
    if ctx.invoked_subcommand is not None:
        return
    from mlplab import benchmarks as b

    data = data or b.default_data()
    progress = (lambda s: click.echo(s, err=True)) if not as_json else (lambda s: None)
    if whole_lab:
        timings = b.bench_lab(data=data, epochs=epochs, progress=progress)
        if as_json:
            click.echo(json.dumps([dataclasses.asdict(t) for t in timings], indent=2))
            return
        click.echo(f"whole lab (3 models × {epochs} epochs) on {data}:")
        for t in timings:
            click.echo(f"  {t.name:<42} {t.seconds:8.1f}s  {t.error}")
        if len(timings) == 2 and not any(t.error for t in timings):
            ratio = timings[0].seconds / timings[1].seconds
            click.echo(f"ratio mlplab lab / seed script: {ratio:.2f} (target <= 0.3: "
                       f"{'PASS' if ratio <= 0.3 else 'FAIL'})")
        return
    contenders = tuple(only.split(",")) if only else b.CONTENDERS
    unknown = [c for c in contenders if c not in b.CONTENDERS]
    if unknown:
        fail(f"--only: unknown contender {unknown[0]!r}; choose from {', '.join(b.CONTENDERS)}")
    click.echo(f"{model}, batch {batch_size}, {epochs} epochs on {data}", err=True)
    results = b.bench_training(data=data, model=model, epochs=epochs, batch_size=batch_size,
                               contenders=contenders, progress=progress)
    rat, checks = b.ratios(results), b.training_checks(results)
    if as_json:
        click.echo(json.dumps({"data": data, "model": model, "epochs": epochs,
                               "batch_size": batch_size, "results": [r.row() for r in results],
                               "ratios_to_mlplab": rat, "checks": checks}, indent=2))
        return
    click.echo(f"{'contender':<30} {'1st epoch':>9} {'steady/ep':>9} {'total':>8} "
               f"{'val_acc':>8} {'peak RSS':>9} {'steady ×ours':>12} {'total ×ours':>11}")
    for r in results:
        if r.error:
            click.echo(f"{r.label:<30} skipped: {r.error}")
            continue
        q = rat.get(r.contender, {})
        click.echo(f"{r.label:<30} {r.first_epoch:8.2f}s {r.steady:8.3f}s {r.total:7.2f}s "
                   f"{r.val_accuracy:8.4f} {r.peak_rss_mb:7.0f}MB "
                   f"{fmt_ratio(q['steady']) if q else '-':>12} "
                   f"{fmt_ratio(q['total']) if q else '-':>11}")
    for c in checks:
        click.echo(f"{c['check']}: {c['value']:.3f} (target {c['target']}) "
                   f"{'PASS' if c['ok'] else 'FAIL'}")


@bench.command("predict")
@click.option("--run", "run_dir", default=None, type=click.Path(path_type=Path),
              help="a run whose model to time  [default: a freshly trained lab model_1]")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of text")
def bench_predict_cmd(run_dir: Path | None, as_json: bool) -> None:
    """Time one-image and 10,000-image inference against model.predict, and preprocessing.

    Preprocessing is timed per kind of image people send and over the user-style images of
    the accuracy test. Beside it, the lab's Keras fit epoch is timed on random data to say
    how fast this host runs against the reference machine the 5 ms target was set on: each
    time is also given at that speed, since a shared host can run 2-4× slower on a busy day.
    """
    from mlplab.benchmarks import bench_predict, predict_checks

    r = bench_predict(run=str(run_dir) if run_dir else None)
    if as_json:
        click.echo(json.dumps({**r, "checks": predict_checks(r)}, indent=2))
        return
    for key, label in (("one_image_ms", "one image"), ("10000_images_ms", "10,000 images")):
        ours, theirs = r[key]["mlplab"], r[key]["model.predict"]
        click.echo(f"{label:<14} mlplab {ours:9.3f} ms   model.predict {theirs:9.3f} ms   "
                   f"{theirs / ours:6.1f}× faster")
    click.echo(f"same predictions: {r['same_predictions']}")
    host = r.get("host")
    if host:
        click.echo(f"host speed: the lab's Keras fit epoch took {host['fit_epoch_s']:.2f} s "
                   f"here, {host['reference_fit_epoch_s']:.2f} s on the reference machine: "
                   f"this host ran at {host['speed']:.2f}× its speed")
    speedup, *preprocessing = predict_checks(r)
    click.echo(f"one-image speed-up: {speedup['value']:.1f}× (target {speedup['target']}: "
               f"{'PASS' if speedup['ok'] else 'FAIL'})")
    for c in preprocessing:
        of_it = f", decoding {c['decoding_ms']:.2f} ms of it" if c["decoding_ms"] else ""
        there = (f"; {c['at_reference_ms']:.2f} ms at the reference speed: "
                 f"{'PASS' if c['ok_at_reference'] else 'FAIL'}") if "at_reference_ms" in c else ""
        click.echo(f"{c['check']}: {c['value']:.2f} ms/image{of_it} (target {c['target']}: "
                   f"{'PASS' if c['ok'] else 'FAIL'} here{there})")


@bench.command("serve")
@click.option("--run", "run_dir", default=None, type=click.Path(path_type=Path),
              help="the run to serve  [default: a freshly trained lab model_1]")
@click.option("--clients", default=50, show_default=True, type=click.IntRange(1, 1000),
              help="concurrent keep-alive clients")
@click.option("--seconds", default=60.0, show_default=True, type=click.FloatRange(0.1, 600),
              help="how long to send requests (after the warm-up)")
@click.option("--warmup", default=3.0, show_default=True, type=click.FloatRange(0, 60),
              help="seconds of load before measuring (not counted)")
@click.option("--batch", is_flag=True, help="serve with micro-batching (mlplab serve --batch)")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of text")
def bench_serve_cmd(run_dir: Path | None, clients: int, seconds: float, warmup: float,
                    batch: bool, as_json: bool) -> None:
    """Load `mlplab serve` on loopback: 28×28 PNG predictions from N clients for T seconds.

    Prints requests/s, latency and server-time percentiles, errors and the server's RSS.
    """
    from mlplab.benchmarks import bench_serve

    r = bench_serve(run=run_dir, clients=clients, seconds=seconds, warmup=warmup, batch=batch,
                    progress=(lambda s: None) if as_json else (lambda s: click.echo(s, err=True)))
    if as_json:
        click.echo(json.dumps(r, indent=2))
        return
    lat, srv = r["latency_ms"], r["server_ms"]
    click.echo(f"{r['requests']:,} requests in {r['seconds']:.1f} s from {r['clients']} clients"
               f": {r['requests_per_s']:.0f} requests/s, {r['errors']} errors, "
               f"{r['accuracy']:.1%} of answers right")
    click.echo(f"latency (client)  p50 {lat['p50']:.2f} ms  p95 {lat['p95']:.2f} ms  "
               f"p99 {lat['p99']:.2f} ms")
    click.echo(f"server time       p50 {srv['p50']:.2f} ms  p95 {srv['p95']:.2f} ms  "
               f"p99 {srv['p99']:.2f} ms")
    click.echo(f"CPU per request   server {r['server_cpu_ms_per_request']:.2f} ms, load "
               f"generator {r['client_cpu_ms_per_request']:.2f} ms")
    click.echo(f"server RSS        {r['rss_ready_mb']:.0f} MB ready, {r['rss_start_mb']:.0f} MB "
               f"after warm-up, {r['rss_end_mb']:.0f} MB at the end "
               f"({r['rss_growth_pct']:+.1f} %)")
    for e in r["error_samples"]:
        click.echo(f"  error: {e}")
    for c in r["checks"]:
        click.echo(f"{c['check']}: {c['value']:.4g} (target {c['target']}) "
                   f"{'PASS' if c['ok'] else 'FAIL'}")


if __name__ == "__main__":  # pragma: no cover
    main()
