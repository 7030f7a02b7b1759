"""Configuration: scenario defaults < TOML file < flags, and every rejection names its key."""

from pathlib import Path

import pytest

from parity.settings.config import ParityInputError, read_file, resolve
from parity.settings.spec import DenseSpec


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def test_scenario_defaults_fill_an_empty_configuration():
    config = resolve({})
    assert (config.scenario, config.dtype, config.seed, config.data_seed, config.samples, config.epochs) == (
        "seed", "float32", 44, 1337, 200, 20)
    assert config.layers == (DenseSpec(2, "relu"), DenseSpec(1, "linear"))


def test_file_overrides_scenario_and_flags_override_file(tmp_path):
    path = write(tmp_path, """
scenario = "deep"
seed = 7
dtype = "float64"
[data]
seed = 5
samples = 50
noise = 0.1
[model]
layers = [{units = 4, activation = "sigmoid"}, {units = 1}]
[train]
epochs = 3
lr = 0.1
[compare]
atol = 1e-9
""")
    config = resolve({"seed": 9, "epochs": None}, path)
    assert config.scenario == "deep" and config.seed == 9 and config.data_seed == 5 and config.dtype == "float64"
    assert config.samples == 50 and config.noise == 0.1 and config.epochs == 3 and config.lr == 0.1
    assert config.layers == (DenseSpec(4, "sigmoid"), DenseSpec(1, "linear"))
    assert config.atol == 1e-9 and config.rtol is None
    assert config.as_dict()["layers"] == [{"units": 4, "activation": "sigmoid"}, {"units": 1, "activation": "linear"}]


def test_data_path_in_the_file_is_relative_to_the_file(tmp_path):
    path = write(tmp_path, '[data]\nkind = "csv"\npath = "points.csv"\n')
    assert read_file(path)["data_path"] == (tmp_path / "points.csv").resolve()


BAD_FILES = [
    ('colour = "red"\n', "colour is not a known key or section"),
    ('[data]\nsampels = 10\n', "[data] sampels is not a known key; allowed in [data]: kind, samples"),
    ('[data]\nsamples = "ten"\n', "[data] samples must be an integer (received: 'ten')"),
    ('[data]\nsamples = 1\n', "--samples must be at least 2 (received: 1)"),
    ('[data]\nkind = "spiral"\n', "[data] kind must be one of linear, blobs, bars, csv (received: spiral)"),
    ('[data]\nkind = "csv"\n', '[data] kind = "csv" needs a file: --data FILE.csv'),
    ('[data]\nnoise = -1\n', "[data] noise must be a finite number >= 0 (received: -1.0)"),
    ('[train]\nlr = true\n', "[train] lr must be a number (received: True)"),
    ('[train]\nepochs = 2.5\n', "[train] epochs must be an integer (received: 2.5)"),
    ('[model]\nlayers = [{units = 0}]\n', "[model] layers[0].units must be at least 1 (received: 0)"),
    ('[model]\nlayers = [{units = 2, activation = "tanh"}]\n', "layers[0].activation must be one of relu, sigmoid"),
    ('[model]\nlayers = [{units = 2, act = "relu"}]\n', "layers[0] has unknown key 'act'"),
    ('[model]\nlayers = []\n', "[model] layers must list at least one layer"),
    ('[model]\nloss = "hinge"\n', "[model] loss must be one of mean_squared_error"),
    ('[compare]\nrtol = -1\n', "[compare] rtol must be a finite number >= 0 (received: -1.0)"),
    ('data = 3\n', "[data] must be a table (received: data = 3)"),
    ('dtype = float64\n', "is not valid TOML"),
]


@pytest.mark.parametrize("text,message", BAD_FILES, ids=[m[:40] for _, m in BAD_FILES])
def test_bad_configuration_names_the_key_and_value(tmp_path, text, message):
    with pytest.raises(ParityInputError) as error:
        resolve({}, write(tmp_path, text))
    assert message in str(error.value)


def test_missing_configuration_file(tmp_path):
    with pytest.raises(ParityInputError, match="--config file not found"):
        resolve({}, tmp_path / "nope.toml")


def test_a_file_saved_with_a_byte_order_mark_is_read(tmp_path):
    """Notepad saves UTF-8 with a byte-order mark, which TOML itself refuses ("Invalid statement (at line 1, column 1)")."""
    path = tmp_path / "notepad.toml"
    path.write_bytes(b"\xef\xbb\xbfseed = 7\r\n[train]\r\nepochs = 3\r\n")
    config = resolve({}, path)
    assert (config.seed, config.epochs) == (7, 3)


def test_a_data_path_from_the_file_is_blamed_on_the_file_and_its_key_and_a_flag_overrides_it(tmp_path):
    path = write(tmp_path, '[data]\npath = "points.csv"\n')
    with pytest.raises(ParityInputError) as error:
        resolve({}, path)
    assert str(error.value) == (f'run.toml: [data] path = "points.csv" names no file (looked for {tmp_path}/points.csv: '
                                "a relative path is relative to the TOML file)")
    (tmp_path / "given.csv").write_text("x,y\n1,2\n3,4\n")
    assert resolve({"data_path": tmp_path / "given.csv"}, path).data_path == tmp_path / "given.csv"


# -- the optimizer and its learning rate ------------------------------------------------------------------
def test_the_optimizer_defaults_to_the_scenarios_plain_sgd():
    assert (resolve({}).optimizer.name, resolve({}).lr) == ("sgd", 0.01)
    softmax = resolve({"scenario": "softmax"})
    assert (softmax.optimizer.hyper, softmax.lr) == ({"lr": 0.05}, 0.05)  # the scenario's SGD learning rate


def test_another_optimizer_takes_the_books_learning_rate_not_the_scenarios():
    adam = resolve({"optimizer": "adam"})
    assert adam.lr == adam.optimizer.hyper["lr"] == 0.001 and adam.optimizer.given == ()
    assert resolve({"scenario": "softmax", "optimizer": "rmsprop"}).lr == 0.01  # the book's, not the scenario's 0.05
    explicit = resolve({"optimizer": "adam", "lr": 0.02})
    assert explicit.optimizer.hyper == {"lr": 0.02, "beta1": 0.9, "beta2": 0.999} and explicit.optimizer.given == ("lr",)


def test_the_optimizer_table_in_the_file_and_the_flags_over_it(tmp_path):
    path = write(tmp_path, '[train]\noptimizer = {name = "rmsprop", lr = 0.002, decay_rate = 0.9}\n')
    from_file = resolve({}, path)
    assert (from_file.optimizer.name, from_file.optimizer.hyper, from_file.lr) == (
        "rmsprop", {"lr": 0.002, "decay_rate": 0.9}, 0.002)
    assert resolve({"lr": 0.05}, path).optimizer.hyper == {"lr": 0.05, "decay_rate": 0.9}  # --lr over the file
    assert resolve({"optimizer": "rmsprop"}, path).optimizer.hyper == {"lr": 0.002, "decay_rate": 0.9}
    other = resolve({"optimizer": "adam"}, path)  # another optimizer: the file's rmsprop table does not apply
    assert (other.optimizer.hyper, other.lr) == ({"lr": 0.001, "beta1": 0.9, "beta2": 0.999}, 0.001)
    named = resolve({}, write(tmp_path, '[train]\nlr = 0.03\noptimizer = "momentum"\n'))
    assert (named.optimizer.hyper, named.lr) == ({"lr": 0.03, "momentum": 0.9}, 0.03)
    assert from_file.as_dict()["optimizer"] == {"name": "rmsprop", "book_class": "RMSprop",
                                                "hyperparameters": {"lr": 0.002, "decay_rate": 0.9, "epsilon": 1e-7},
                                                "given": ["decay_rate", "lr"], "conventions": ["epsilon_inside_root"]}


def test_one_source_giving_two_learning_rates_is_refused():
    with pytest.raises(ParityInputError, match=r"^--lr \(0\.1\) and --optimizer\{\.\.\., 'lr': \.\.\.\} \(0\.2\) both give"):
        resolve({"lr": 0.1, "optimizer": {"name": "adam", "lr": 0.2}})
    assert resolve({"lr": 0.2, "optimizer": {"name": "adam", "lr": 0.2}}).lr == 0.2  # the same value twice is one


def test_a_classes_table_maps_book_names_and_the_flags_win_key_by_key(tmp_path):
    path = write(tmp_path, '[classes]\naffine = "Dense"\nNesterov = "nefterovmomentumSGD"\n')
    config = resolve({"classes": ["Nesterov=MyNesterov", "relu=LeakyRelu"]}, path)
    assert dict(config.classes) == {"Affine": "Dense", "Nesterov": "MyNesterov", "Relu": "LeakyRelu"}
    assert config.as_dict()["classes"] == dict(config.classes)
    assert "classes" not in resolve({}).as_dict()  # a run without a mapping records what it always did


@pytest.mark.parametrize("text, message", [
    ('[classes]\nAfine = "Dense"\n', "run.toml: [classes] Afine = 'Dense': Afine is none of the book's classes"),
    ('[classes]\nAffine = 3\n', "run.toml: [classes] Affine = 3: the class to map must be a class name"),
    ('classes = "Dense"\n', "run.toml: [classes] must be a table"),
])
def test_a_bad_classes_table_names_its_key(tmp_path, text, message):
    with pytest.raises(ParityInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        resolve({}, write(tmp_path, text))


def test_epsilon_is_an_optimizer_setting_in_the_file_or_after_the_name(tmp_path):
    path = write(tmp_path, '[train]\noptimizer = {name = "adam", epsilon = 1e-8}\n')
    from_file = resolve({}, path).optimizer
    assert (from_file.epsilon, from_file.given, from_file.values()["epsilon"]) == (1e-8, ("epsilon",), 1e-8)
    flagged = resolve({"optimizer": "adam:epsilon=1e-6,lr=0.002"}, path)
    assert (flagged.optimizer.epsilon, flagged.lr, sorted(flagged.optimizer.given)) == (1e-6, 0.002, ["epsilon", "lr"])
    assert resolve({"optimizer": "rmsprop"}).optimizer.epsilon == 1e-7  # the book's, which Keras is built with
    assert resolve({"optimizer": "momentum"}).optimizer.epsilon is None
    with pytest.raises(ParityInputError, match=r"'eps': ...} is not a hyperparameter of adam .*; did you mean epsilon"):
        resolve({"optimizer": "adam:eps=1e-8"})
    with pytest.raises(ParityInputError, match=r"must be a number \(received: 'small'\)"):
        resolve({"optimizer": "adam:epsilon=small"})
    with pytest.raises(ParityInputError, match="settings are key=value pairs after the name"):
        resolve({"optimizer": "adam:epsilon"})
