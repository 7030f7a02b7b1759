"""The `parity` command's flags: one argparse parser, whose bad input is one `error:` line and exit 2."""

from __future__ import annotations

import argparse
from pathlib import Path

from parity.errors import SETTINGS, ParityInputError
from parity.settings.config import DTYPES, WORST_GRADIENTS, RunConfig
from parity.settings.optimizer_registry import OPTIMIZER_NAMES
from parity.settings.scenarios import SCENARIOS
from parity.version import __version__

__all__ = ["parser"]


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad input as one `error:` line and exit status 2, without the usage dump."""

    def error(self, message: str):
        flag, _, rest = message.partition(": ")
        # "argument --seed: --seed must be ..." -> "--seed must be ..."
        raise ParityInputError(rest if flag.startswith("argument ") and rest.startswith(flag[9:].split("/")[0]) else message)


def _typed(kind, flag: str, expected: str):
    def convert(text: str):
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be {expected} (received: {text})") from None
    convert.__name__ = expected  # argparse names the type in its own messages
    return convert


EXIT_STATUSES = """exit status:
  0    parity holds
  1    parity fails: your layers disagree with Keras (the terminal and summary.json say where)
  2    bad input: one error: line saying what was received and what is expected; nothing written
  3    the report could not be written (a full disk, a permission); the previous report is left as it was
  130  interrupted; nothing half-written"""

EXAMPLES = """examples:
  parity run                                   the default run; prints the verdict, writes reports/seed/
  parity run --dtype float64 --sample 0        ... in float64, and shows sample 0 on both sides: x, z, mask, W, dW
  parity check --layers my_layers.py --open    your Affine, Relu, ... against Keras; opens report.html
  parity check --layers my_layers.py --scenario deep --optimizer adam
  parity selftest                              plant known bugs in the reference layers: each must be caught"""


def parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="parity", allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Prove, sample by sample, that NumPy layers compute what Keras computes.",
                     epilog=f"{EXAMPLES}\n\n{EXIT_STATUSES.replace('exit status:', 'exit status of run and check:')}")
    parser.add_argument("--version", action="version", version=f"keras-parity {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    run = commands.add_parser("run", allow_abbrev=False, help="train the Keras model, copy its weights into the NumPy stack, compare both",
                              formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog=f"{_examples('parity run')}\n\n{EXIT_STATUSES}")
    _run_options(run)
    _reference_option(run)
    _report_options(run)
    check = commands.add_parser("check", allow_abbrev=False, help="the same comparison with your own layers, and the cause of each mismatch",
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=f"{_examples('parity check')}\n\n{EXIT_STATUSES}")
    check.add_argument("--layers", required=True, help="your layers: a .py file, a .ipynb notebook (its "
                       "definitions only, unless --run-all) or a dotted module name "
                       "(classes Affine, Relu/ReLU, Sigmoid, SoftmaxWithLoss, MeanSquaredError; others from the "
                       "reference), and your optimizer: the class of --optimizer's name (SGD, Momentum, Nesterov, "
                       "AdaGrad, RMSprop, Adam), else the book's")
    _run_options(check)
    _report_options(check)
    _reference_option(check)
    _grader_options(check, per_submission=False)
    check.add_argument("--timeout", type=_typed(float, "--timeout", "a number of seconds"),
                       help="wall-clock limit for the whole check, in seconds (default: none; with --run-all, 600 "
                       "for executing the notebook): past it the check stops, the results files say so, exit 124")
    record = commands.add_parser("record", allow_abbrev=False, help="compute a configuration's Keras side with Keras and "
                                 "write it to one file, with its provenance; later checks --reference it without TensorFlow")
    _run_options(record)
    _describe(record, "out", "the recording to write: a .npz file (an earlier recording there is replaced)")
    _describe(record, "quiet", "print nothing; the exit status says whether it was written (or, with --verify, holds)")
    record.add_argument("--verify", type=Path, metavar="FILE", help="compute FILE's configuration again with the "
                        "installed Keras and compare within the dtype's tolerance: exit 0 when it holds, 1 when it moved")
    selftest = commands.add_parser("selftest", allow_abbrev=False, help="plant known bugs in the reference layers; each must be caught")
    selftest.add_argument("--quiet", action="store_true", help="print nothing; the exit status is the verdict")
    bench = commands.add_parser("bench", allow_abbrev=False, help="measure the speed floors side by side; writes OUT/bench.json")
    bench.add_argument("--out", type=Path, default=Path("reports/bench"), help="folder for bench.json")
    bench.add_argument("--samples", type=_typed(int, "--samples", "an integer"), default=2_000_000,
                       help="probe samples to time (default: 2,000,000)")
    bench.add_argument("--steps", type=_typed(int, "--steps", "an integer"), default=20_000,
                       help="SGD steps to time (default: 20,000)")
    bench.add_argument("--memory-check", action="store_true",
                       help="also run 10 million samples and record the peak memory (about a minute)")
    bench.add_argument("--only", metavar="LINE", help="measure one line alone and judge its floor: cnn_probe (the cnn "
                       "probe's speedup) or cnn_run (parity run --scenario cnn beyond a bare import ending as the run "
                       "does; about a minute)")
    grade = commands.add_parser("grade", allow_abbrev=False, help="check many submissions, each in a Dask worker "
                                "process; writes OUT/gradebook.csv, gradebook.html and one report per submission")
    grade.add_argument("submissions", nargs="+", metavar="SUBMISSIONS", help=".py files or .ipynb notebooks, or "
                       "folders of them (the files directly inside, and each student's folder inside as one submission)")
    _run_options(grade)
    _reference_option(grade)
    _describe(grade, "out", "the gradebook folder (required): gradebook.csv, gradebook.html, gradebook.json and a "
              "report folder per submission")
    _describe(grade, "no_plots", "draw no plots in any report (default: plots only for failing submissions)")
    _describe(grade, "quiet", "print nothing but errors; the exit status is 0 once the gradebook is written")
    grade.add_argument("--all-plots", action="store_true", help="draw the plots in every submission's report "
                       "(about 1 s each; default: only failing submissions get them)")
    _grader_options(grade, per_submission=True)
    _cluster_options(grade)
    sweep = commands.add_parser("sweep", allow_abbrev=False, help="the reference layers over many seeds and "
                                "configurations; writes OUT/sweep.csv and sweep.json, exits 1 on any false alarm")
    sweep.add_argument("--seeds", required=True, help="seeds to run: 0-999, or 1,2,10-19")
    _run_options(sweep)
    _describe(sweep, "scenario", "comma-separated scenarios, e.g. seed,deep (default: seed)")
    _describe(sweep, "dtype", "comma-separated dtypes, e.g. float32,float64 (default: float32)")
    _describe(sweep, "out", "the sweep folder (required): sweep.csv and sweep.json")
    _describe(sweep, "quiet", "print nothing; the exit status is 0 when every run passed")
    _cluster_options(sweep)
    return parser


def _examples(command: str) -> str:
    """The examples of `command` alone, for its own --help."""
    lines = EXAMPLES.splitlines()
    return "\n".join([lines[0]] + [line for line in lines[1:] if line.strip().startswith(command + " ")])


def _report_options(parser: argparse.ArgumentParser) -> None:
    """What run and check do with their report: show one sample, open the page."""
    parser.add_argument("--sample", type=_typed(int, "--sample", "an integer, a sample's index"), metavar="N",
                        help="also show sample N on both sides, as the seed notebook printed it: x, each layer's z and "
                        "mask, W, dW1, db1, ..., dx, and whether the sides agree")
    parser.add_argument("--open", action="store_true", help="open report.html in the web browser when it is written")


def _describe(parser: argparse.ArgumentParser, dest: str, text: str) -> None:
    """A shared option's help as one command means it."""
    next(a for a in parser._actions if a.dest == dest).help = text


def _reference_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reference", metavar="FILE", help="compare with a recorded Keras side (`parity record`; or a "
                        "shipped one: seed-float32, ...) instead of computing it: no TensorFlow is imported; the "
                        "options it was recorded with are its defaults, and one that contradicts it is an error")


def _grader_options(parser: argparse.ArgumentParser, per_submission: bool) -> None:
    """--gradescope, --prairielearn (a file for `check`; one per submission for `grade`) and --run-all."""
    if per_submission:
        for flag, name in (("--gradescope", "Gradescope"), ("--prairielearn", "PrairieLearn")):
            parser.add_argument(flag, action="store_true", help=f"also write {name}'s results.json for each "
                                f"submission, as OUT/{flag[2:]}/<submission>.json (bad input, timeouts and "
                                "crashes included)")
    else:
        parser.add_argument("--gradescope", type=Path, metavar="FILE", help="also write Gradescope's results.json "
                            "to FILE (its tests: one per class, one per phase; written for bad input, a timeout "
                            "and a crash too)")
        parser.add_argument("--prairielearn", type=Path, metavar="FILE", help="also write PrairieLearn's "
                            "results.json to FILE (bad input: gradable false)")
    parser.add_argument("--run-all", action="store_true", help="a notebook's every cell is executed first, on a "
                        "Jupyter kernel (nbclient), as Restart & Run All does; then its definitions are checked")


def _cluster_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=_typed(float, "--timeout", "a number of seconds"), default=60.0,
                        help="wall-clock limit per submission or run, in seconds (default: 60)")
    parser.add_argument("--workers", type=_typed(int, "--workers", "an integer"),
                        help="worker processes of the local cluster (default: one per core)")
    parser.add_argument("--memory-limit", help="memory per local worker process: 2GB, 1.5GiB, ... or auto, the "
                        "machine's memory split among the workers (default: auto)")
    parser.add_argument("--scheduler", help="address of a running Dask scheduler (`dask scheduler`), e.g. "
                        "tcp://10.0.0.5:8786, instead of a local cluster")


def _run_options(run: argparse.ArgumentParser) -> None:
    run.add_argument("--scenario", help="built-in scenario (default: seed): " + "; ".join(
        f"{name}: {s.description}" for name, s in SCENARIOS.items()))
    run.add_argument("--config", type=Path, help="TOML file with the run's settings; flags override it")
    run.add_argument("--model", type=Path, help="a saved Keras model (.keras, a chain of Dense layers), loaded "
                     "with safe mode on; compared at its own weights unless --epochs is given")
    run.add_argument("--data", type=Path, help="CSV file: x* columns are inputs, y* targets (or as configured)")
    run.add_argument("--dtype", help=f"{' or '.join(DTYPES)}, both sides (default: float32)")
    run.add_argument("--seed", type=_typed(int, "--seed", "an integer"),
                     help=f"seeds Keras's initial weights and fit shuffling (default: {RunConfig.seed})")
    run.add_argument("--data-seed", type=_typed(int, "--data-seed", "an integer"),
                     help=f"seeds the synthetic data (default: {RunConfig.data_seed}, the notebook's data)")
    run.add_argument("--samples", type=_typed(int, "--samples", "an integer"), help="data size (default: 200)")
    run.add_argument("--train", type=_typed(int, "--train", "an integer"),
                     help="leading samples used for fitting and stepping (default: 80%% of the samples)")
    run.add_argument("--epochs", type=_typed(int, "--epochs", "an integer"),
                     help="Keras fit epochs; 0 compares at the initial weights (default: 20)")
    run.add_argument("--lr", type=_typed(float, "--lr", "a number"),
                     help="learning rate, for the fit and for stepping (default: the scenario's for sgd, 0.01; "
                          "the book's default for the other optimizers)")
    run.add_argument("--optimizer", help="the optimizer both sides fit and step with, with the book's defaults: "
                     f"{', '.join(OPTIMIZER_NAMES)} (default: sgd); settings after a colon, such as "
                     "adam:epsilon=1e-8,lr=0.002, or in the TOML file's [train] optimizer table")
    run.add_argument(SETTINGS["classes"].flag, dest=SETTINGS["classes"].dest, action="append", metavar="BOOK=YOURS",
                     help="use your class YOURS as the book's BOOK, such as --class Affine=Dense or "
                          "--class Nesterov=NesterovSGD (repeatable; a TOML file's [classes] table does the same)")
    run.add_argument("--batch-size", type=_typed(int, "--batch-size", "an integer"),
                     help="fit batch size, and the batch probe's (default: 10)")
    run.add_argument("--out", type=Path, help="report folder (default: reports/<scenario>/)")
    run.add_argument("--format", default="csv", help="table format: csv or parquet (default: csv)")
    run.add_argument("--no-plots", action="store_true", help="write tables and summary only")
    run.add_argument("--all-gradients", action="store_true", help="write every gradient entry to the gradients "
                     f"table (default: the rows that do not pass, and the {WORST_GRADIENTS} largest differences of "
                     "each gradient per phase)")
    run.add_argument("--quiet", action="store_true", help="print nothing; the exit status is the verdict")
    run.add_argument("--verbose", action="store_true", help="print every finding in full")



