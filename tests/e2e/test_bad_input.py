"""Bad input, at every boundary, is one `error:` line and exit 2, with nothing written (issue 6's table)."""


import pytest

from parity import cli
from testkit import FIXTURES

LINEAR = "x,y\n" + "".join(f"{i / 10},{-i / 20}\n" for i in range(20))

# (id, files to write into the test folder, argv after the command, text the error must contain)
CASES = [
    # flags
    ("dtype", {}, ["run", "--dtype", "float16"], "--dtype must be float32 or float64 (received: float16)"),
    ("scenario", {}, ["run", "--scenario", "spiral"], "--scenario must be one of seed, sigmoid, softmax, deep"),
    ("samples text", {}, ["run", "--samples", "many"], "--samples must be an integer (received: many)"),
    ("samples 1", {}, ["run", "--samples", "1"], "--samples must be at least 2"),
    ("train 0", {}, ["run", "--train", "0"], "--train must be between 1 and --samples"),
    ("train > samples", {}, ["run", "--samples", "10", "--train", "11"], "--train must be between 1 and --samples (10)"),
    ("epochs -1", {}, ["run", "--epochs", "-1"], "--epochs must be 0 (no fit) or more"),
    ("lr 0", {}, ["run", "--lr", "0"], "--lr must be a finite number above 0"),
    ("lr inf", {}, ["run", "--lr", "inf"], "--lr must be a finite number above 0 (received: inf)"),
    ("lr text", {}, ["run", "--lr", "fast"], "--lr must be a number (received: fast)"),
    ("batch 0", {}, ["run", "--batch-size", "0"], "--batch-size must be at least 1"),
    ("seed -1", {}, ["run", "--seed", "-1"], "--seed must be an integer in [0, 4294967295]"),
    ("seed huge", {}, ["run", "--seed", str(2**32)], "--seed must be an integer in [0, 4294967295]"),
    ("unknown flag", {}, ["run", "--loud"], "unrecognized arguments: --loud"),
    ("data overflows float32", {"d.csv": "x,y\n1,2\n1e39,4\n"}, ["run", "--data", "{tmp}/d.csv"],
     "row 3, column 'x': 1e39 does not fit in float32 (largest magnitude 3.403e+38); use --dtype float64"),
    ("abbreviated flag", {}, ["run", "--epoch", "5"], "unrecognized arguments: --epoch 5"),  # --sample is a flag of its own
    ("unknown command", {}, ["train"], "invalid choice: 'train'"),
    ("check without layers", {}, ["check"], "the following arguments are required: --layers"),
    # configuration file
    ("config missing", {}, ["run", "--config", "{tmp}/none.toml"], "--config file not found"),
    ("config syntax", {"c.toml": "seed = \n"}, ["run", "--config", "{tmp}/c.toml"], "is not valid TOML"),
    ("config unknown key", {"c.toml": "[train]\nepoch = 3\n"}, ["run", "--config", "{tmp}/c.toml"],
     "c.toml: [train] epoch is not a known key"),
    ("config wrong type", {"c.toml": "[train]\nlr = \"0.1\"\n"}, ["run", "--config", "{tmp}/c.toml"],
     "c.toml: [train] lr must be a number (received: '0.1')"),
    ("config out of range", {"c.toml": "[data]\nnoise = -0.5\n"}, ["run", "--config", "{tmp}/c.toml"],
     "[data] noise must be a finite number >= 0 (received: -0.5)"),
    ("config bad activation", {"c.toml": "[model]\nlayers = [{units = 2, activation = \"gelu\"}]\n"},
     ["run", "--config", "{tmp}/c.toml"], "[model] layers[0].activation must be one of relu, sigmoid, linear, softmax"),
    ("config softmax with mse", {"c.toml": "[model]\nlayers = [{units = 2, activation = \"softmax\"}]\n"},
     ["run", "--config", "{tmp}/c.toml"], "loss mean_squared_error needs a non-softmax output layer"),
    # the optimizer (issue 12)
    ("optimizer name", {}, ["run", "--optimizer", "adamw"],
     "--optimizer must be one of sgd, momentum, nesterov, adagrad, rmsprop, adam (received: 'adamw'); did you mean adam?"),
    ("optimizer with lr 0", {}, ["run", "--optimizer", "adam", "--lr", "0"], "--lr must be a finite number above 0"),
    ("config optimizer without name", {"c.toml": "[train]\noptimizer = {lr = 0.1}\n"}, ["run", "--config", "{tmp}/c.toml"],
     "c.toml: [train] optimizer has no name: give name = one of sgd"),
    ("config optimizer type", {"c.toml": "[train]\noptimizer = 3\n"}, ["run", "--config", "{tmp}/c.toml"],
     'c.toml: [train] optimizer must be a name or a table like {name = "adam", lr = 0.001} (received: 3)'),
    ("config optimizer name", {"c.toml": "[train]\noptimizer = \"adamax\"\n"}, ["run", "--config", "{tmp}/c.toml"],
     "c.toml: [train] optimizer must be one of sgd, momentum"),
    ("config optimizer value", {"c.toml": "[train]\noptimizer = {name = \"adam\", beta1 = 1.0}\n"},
     ["run", "--config", "{tmp}/c.toml"], "c.toml: [train] optimizer.beta1 must be a number in [0, 1) (received: 1.0)"),
    ("config optimizer keras keyword", {"c.toml": "[train]\noptimizer = {name = \"rmsprop\", rho = 0.9}\n"},
     ["run", "--config", "{tmp}/c.toml"], "c.toml: [train] optimizer.rho is not a hyperparameter of rmsprop "
     "(the book's RMSprop takes lr = 0.01, decay_rate = 0.99); rho is Keras's name for the book's decay_rate"),
    ("config optimizer key of another", {"c.toml": "[train]\noptimizer = {name = \"adam\", momentum = 0.9}\n"},
     ["run", "--config", "{tmp}/c.toml"], "c.toml: [train] optimizer.momentum is not a hyperparameter of adam"),
    ("config two learning rates", {"c.toml": "[train]\nlr = 0.01\noptimizer = {name = \"adam\", lr = 0.002}\n"},
     ["run", "--config", "{tmp}/c.toml"], "c.toml: [train] lr (0.01) and [train] optimizer.lr (0.002) both give "
     "the learning rate; keep one"),
    ("optimizer class misspelt", {}, ["check", "--layers", str(FIXTURES / "optimizers_broken.py"), "--optimizer", "momentum"],
     "has no class Momentum for the optimizer momentum (names match case-insensitively); your module has `Momentmu`: "
     "did you mean Momentum?"),
    ("optimizer class not constructible", {}, ["check", "--layers", str(FIXTURES / "optimizers_broken.py")],
     "SGD(lr, weight_decay) cannot be constructed with the run's hyperparameters"),
    ("optimizer update signature", {}, ["check", "--layers", str(FIXTURES / "optimizers_broken.py"),
                                        "--optimizer", "nesterov"], "Nesterov.update(self, params) cannot be called as "
     "update(params, grads)"),
    # data file
    ("data missing", {}, ["run", "--data", "{tmp}/none.csv"], "--data file not found"),
    ("data empty", {"d.csv": ""}, ["run", "--data", "{tmp}/d.csv"], "is empty"),
    ("data ragged", {"d.csv": "x,y\n1,2\n3,4,5\n"}, ["run", "--data", "{tmp}/d.csv"], "has ragged rows"),
    ("data nan", {"d.csv": "x,y\n1,2\n3,nan\n"}, ["run", "--data", "{tmp}/d.csv"], "row 3, column 'y': expected a finite number"),
    ("data no targets", {"d.csv": "x,z\n1,2\n3,4\n"}, ["run", "--data", "{tmp}/d.csv"], "has no target (y) columns"),
    ("data too few rows", {"d.csv": LINEAR}, ["run", "--data", "{tmp}/d.csv", "--samples", "50"],
     "--samples is 50 but --data"),
    ("data width vs model", {"d.csv": "x0,x1,y\n1,2,3\n4,5,6\n"}, ["run", "--data", "{tmp}/d.csv", "--scenario", "softmax"],
     "the data have class label 6 but the model outputs 3 classes (labels 0..2)"),
    # saved model
    ("model missing", {}, ["run", "--model", "{tmp}/none.keras"], "--model file not found"),
    ("model not keras", {"m.h5": "x"}, ["run", "--model", "{tmp}/m.h5"], "--model must be a .keras file"),
    ("model garbage", {"m.keras": "not a zip"}, ["run", "--model", "{tmp}/m.keras"], "could not be loaded with safe mode on"),
    # layers module
    ("layers missing", {}, ["check", "--layers", "{tmp}/none.py"], "--layers file not found"),
    ("layers import error", {}, ["check", "--layers", str(FIXTURES / "failing_import.py")], "failed to import: ZeroDivisionError"),
    ("layers no classes", {}, ["check", "--layers", str(FIXTURES / "no_layers.py")], "has none of the classes"),
    ("layers no module", {}, ["check", "--layers", "no_such_module_here"], "--layers module no_such_module_here not found"),
    # output folder
    ("out is a file", {"taken": "x"}, ["run", "--out", "{tmp}/taken"], "--out must be a folder"),
    ("out under a file", {"taken": "x"}, ["run", "--out", "{tmp}/taken/report"], "--out must be a folder path"),
    ("out holds other files", {"mine/notes.txt": "keep"}, ["run", "--out", "{tmp}/mine"],
     "holds files that are not a keras-parity report"),
    ("out holds another tool's summary.json", {"theirs/summary.json": '{"verdict": "pass"}', "theirs/notes.txt": "keep"},
     ["run", "--out", "{tmp}/theirs"], "holds files that are not a keras-parity report"),
    ("out is the current folder", {}, ["run", "--out", "."], "not the current folder or one above it"),
    # issue 19: every input has its exit status and a message that says what was typed, and where it came from
    ("lr overflows float32", {}, ["run", "--lr", "1e300"],
     "--lr 1e+300 does not fit in float32 (largest magnitude 3.403e+38); use a smaller --lr, or --dtype float64"),
    ("lr is 0 in float32", {}, ["run", "--lr", "1e-50"], "--lr 1e-50 is 0 in float32 (smallest step 1.401e-45)"),
    ("batch size beyond int32", {}, ["run", "--batch-size", "99999999999999999999"],
     "--batch-size must be at most 2147483647 (received: 99999999999999999999)"),
    ("epochs beyond int32", {}, ["run", "--epochs", "2147483648"], "--epochs must be at most 2147483647"),
    ("noise overflows float32", {"c.toml": "[data]\nnoise = 1e300\n"}, ["run", "--config", "{tmp}/c.toml"],
     "[data] noise = 1e+300 makes targets that do not fit in float32"),
    ("out empty", {}, ["run", "--out", ""], "--out must be a path (received: '')"),
    ("out= empty", {}, ["run", "--out="], "--out must be a path (received: '')"),
    ("config empty", {}, ["run", "--config", ""], "--config must be a path (received: '')"),
    ("data path empty", {}, ["run", "--data", ""], "--data must be a path (received: '')"),
    ("layers empty", {}, ["check", "--layers", ""], "--layers must be a .py file, a .ipynb notebook or a dotted module name (received: '')"),
    ("grade submission empty", {}, ["grade", "", "--out", "{tmp}/book"],
     "SUBMISSIONS must be .py files, notebooks or folders of them (received: '')"),
    ("config is a folder", {"conf/c.toml": ""}, ["run", "--config", "{tmp}/conf"], "/conf is a folder, not a file"),
    ("data is a folder", {"points/d.csv": ""}, ["run", "--data", "{tmp}/points"], "/points is a folder, not a file"),
    ("layers is a folder", {"mine/layers.py": ""}, ["check", "--layers", "{tmp}/mine"], "/mine is a folder, not a file"),
    ("model is a folder", {"m.keras/x": ""}, ["run", "--model", "{tmp}/m.keras"], "/m.keras is a folder, not a file"),
    ("config data path missing", {"c.toml": '[data]\npath = "points.csv"\n'}, ["run", "--config", "{tmp}/c.toml"],
     'c.toml: [data] path = "points.csv" names no file (looked for '),
    ("config data path a folder", {"c.toml": '[data]\npath = "pts"\n', "pts/a.csv": ""}, ["run", "--config",
                                                                                        "{tmp}/c.toml"],
     'c.toml: [data] path = "pts" is a folder, not a file'),
    ("model and config layers", {"c.toml": "[model]\nlayers = [{units = 2}]\n", "m.keras": "x"},
     ["run", "--model", "{tmp}/m.keras", "--config", "{tmp}/c.toml"], "--model and [model] layers in c.toml"),
]


def test_the_table_is_large_and_distinct():
    assert len(CASES) >= 30 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name,files,argv,message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_error_line_and_writes_nothing(tmp_path, capsys, name, files, argv, message):
    for file, text in files.items():
        (tmp_path / file).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / file).write_text(text)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    out = tmp_path / "report"
    if argv and "--out" not in argv:
        argv += ["--out", str(out)]
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    assert "Traceback" not in captured.err
    assert message in captured.err, captured.err
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # no report, no temporary folder, nothing removed


def test_parity_alone_prints_the_usage_and_the_commands_and_exits_2(capsys):
    assert cli.main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("usage: parity")
    for command in ("run", "check", "selftest", "bench"):
        assert f"\n    {command} " in captured.err
    assert captured.err.rstrip().splitlines()[-1] == "error: choose a command: run, check, record, selftest, bench, grade or sweep"
