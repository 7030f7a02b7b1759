"""Each run setting's names live in one table (parity.errors.SETTINGS): the command line has each flag under the
name the table gives, `parity.check` each keyword, and a message spells a setting as the door that shows it does."""

import inspect

import pytest

import parity
from parity import api
from parity.cli_commands import flags_of
from parity.cli_parser import parser
from parity.errors import SETTINGS, ParityInputError, arg, arg_given
from parity.settings.config import RunConfig


def test_every_setting_is_a_run_config_field_with_a_flag_on_each_checking_command_and_a_keyword_in_python():
    fields = set(inspect.signature(RunConfig).parameters)
    keywords = set(inspect.signature(parity.check).parameters)
    for command in ("run", "check", "grade", "record"):
        actions = {a.dest: a for a in parser()._subparsers._group_actions[0].choices[command]._actions}
        for name, setting in SETTINGS.items():
            assert name in fields
            assert setting.flag in actions[setting.dest].option_strings, (command, name)
            assert setting.keyword == "" or setting.keyword in keywords, name
    assert set(api.OPTIONS) == {s.keyword for s in SETTINGS.values() if s.keyword} | {"format", "reference", "run_all"}


def test_the_command_lines_flags_become_the_run_config_fields_the_table_names():
    args = parser().parse_args(["check", "--layers", "x.py", "--seed", "5", "--batch-size", "4", "--data", "d.csv",
                                "--no-plots", "--all-gradients", "--class", "Affine=Dense", "--quiet"])
    flags = flags_of(args)
    assert set(flags) == set(SETTINGS) - {"config_path"}  # the command reads --config itself
    assert (flags["seed"], flags["batch_size"], str(flags["data_path"]), flags["classes"]) == (5, 4, "d.csv",
                                                                                            ["Affine=Dense"])
    assert (flags["plots"], flags["all_gradients"], flags["quiet"]) == (False, True, True)
    assert flags_of(parser().parse_args(["run"]))["plots"] is None  # not given: the file or the default says


@pytest.mark.parametrize("name, cli, python", [("seed", "--seed 5", "seed=5"), ("data_path", "--data 5", "data=5"),
                                               ("batch_size", "--batch-size 5", "batch_size=5"),
                                               ("plots", "--no-plots 5", "plots=5"), ("layers", "--layers 5",
                                                                                      "layers=5")])
def test_a_message_spells_a_setting_as_its_door_does(name, cli, python):
    error = ParityInputError(f"{arg_given(name, 5)} is wrong")
    assert str(error) == f"{cli} is wrong"
    assert str(error.for_door("python")) == f"{python} is wrong"
    assert str(ParityInputError(f"{arg('classes')}Affine=Dense").for_door("python")) == "Affine=Dense"
