"""Issue 20: learner code checked as it is written. No reference stands in silently for a class under a name the
tool does not map; an optimizer that cannot be driven is bad input, not a failed parity; a correct paper-form Adam
with its own epsilon passes with the convention named; a step that changes nothing and half a bias correction are
named. Through `parity check` and `parity.check`, one fixture module per pattern (tests/fixtures/learner_*.py)."""

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import parity
from parity import cli
from testkit import FIXTURES

SHORT = ["--epochs", "2", "--no-plots"]


@pytest.fixture(scope="module")
def references():
    return {}


@pytest.fixture
def shared_keras(monkeypatch, references):
    """Keras fits once per configuration for the whole file: the reference does not depend on the classes."""
    from parity.keras_side import reference as runner

    real = runner.keras_reference

    def cached(prepared):
        key = replace(prepared.config, out=None, classes=())
        if key not in references:
            references[key] = real(prepared)
        return references[key]

    monkeypatch.setattr(runner, "keras_reference", cached)
    monkeypatch.setattr(sys, "path", list(sys.path))


def check(module: str, *flags: str, out: Path, capsys) -> tuple[int, str, dict | None]:
    """(exit status, what the terminal printed on stderr or stdout, summary.json or None)."""
    status = cli.main(["check", "--layers", str(FIXTURES / module), "--out", str(out), *SHORT, *flags])
    captured = capsys.readouterr()
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else None
    return status, captured.err if status == 2 else captured.out, summary


def refused(status: int, err: str, out: Path) -> None:
    assert status == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and not out.exists()


def roots(summary: dict) -> list[dict]:
    return [f for f in summary["findings"] if f["severity"] == "error" and not f.get("consequence_of")]


# -- 1. no silent substitute --------------------------------------------------------------------------------------
def test_an_unmapped_nesterov_class_is_refused_with_how_to_map_it(tmp_path, capsys):
    status, err, _ = check("learner_nesterov_misnamed.py", "--optimizer", "nesterov", out=tmp_path / "r", capsys=capsys)
    refused(status, err, tmp_path / "r")
    assert "has no class Nesterov for --optimizer nesterov, but defines nefterovmomentumSGD (update)" in err
    assert "--class Nesterov=nefterovmomentumSGD" in err and '[classes] Nesterov = "nefterovmomentumSGD"' in err


@pytest.mark.parametrize("how", ["flag", "toml"])
def test_a_mapped_nesterov_class_is_checked_and_its_crash_is_a_finding_on_it(how, tmp_path, capsys, shared_keras):
    if how == "flag":
        mapping = ["--class", "Nesterov=nefterovmomentumSGD"]
    else:
        (tmp_path / "c.toml").write_text('[classes]\nnesterov = "nefterovmomentumSGD"\n')
        mapping = ["--config", str(tmp_path / "c.toml")]
    status, text, summary = check("learner_nesterov_misnamed.py", "--optimizer", "nesterov", "--dtype", "float64",
                                  *mapping, out=tmp_path / "r", capsys=capsys)
    assert status == 1
    [root] = roots(summary)
    assert (root["code"], root["layer"], root["method"]) == ("layer_error", "Nesterov", "update")
    assert root["class_name"] == "nefterovmomentumSGD"
    assert root["where"].endswith("learner_nesterov_misnamed.py:39")
    assert summary["optimizer"]["class"].startswith("yours (nefterovmomentumSGD from ")
    assert summary["config"]["classes"] == {"Nesterov": "nefterovmomentumSGD"}
    assert text.splitlines()[2] == "checked: your Nesterov; the reference stands in for Affine, Relu, MeanSquaredError"


def test_a_dense_layer_class_is_not_silently_replaced_by_the_reference_affine(tmp_path, capsys, shared_keras):
    status, err, _ = check("learner_dense_layer.py", out=tmp_path / "r", capsys=capsys)
    refused(status, err, tmp_path / "r")
    assert "defines Dense (forward and backward) under a name the tool does not map, and this run would use the " \
           "reference Affine in its place" in err and "--class Affine=Dense" in err
    status, text, summary = check("learner_dense_layer.py", "--dtype", "float64", "--class", "Affine=Dense",
                                  out=tmp_path / "mapped", capsys=capsys)
    assert status == 0 and summary["layers"]["Affine"].startswith("yours (Dense from ")
    assert "checked: your Affine, Relu; the reference stands in for MeanSquaredError, SGD" in text.splitlines()


def test_the_keyword_form_maps_a_class_in_python_and_a_name_it_lacks_is_refused(shared_keras):
    report = parity.check(str(FIXTURES / "learner_dense_layer.py"), Affine="Dense", dtype="float64", epochs=2,
                          plots=False)
    assert report.passed and report.summary["layers"]["Affine"].startswith("yours (Dense")
    with pytest.raises(parity.ParityInputError, match=r"^Affine=Dnse: layers=.*has no class Dnse; did you mean Dense"):
        parity.check(str(FIXTURES / "learner_dense_layer.py"), Affine="Dnse")
    with pytest.raises(parity.ParityInputError, match=r"map it: Affine=Dense \(a TOML file"):
        parity.check(str(FIXTURES / "learner_dense_layer.py"))


def test_class_flags_are_checked_before_any_work(tmp_path, capsys):
    for flags, text in ((["--class", "Afine=Dense"], "--class Afine=Dense: Afine is none of the book's classes"),
                        (["--class", "Affine"], "--class Affine must be BOOK_CLASS=YOUR_CLASS"),
                        (["--class", "Affine=Dnse"], "has no class Dnse; did you mean Dense?")):
        status, err, _ = check("learner_dense_layer.py", *flags, out=tmp_path / "r", capsys=capsys)
        refused(status, err, tmp_path / "r")
        assert text in err
    assert cli.main(["run", "--class", "Affine=Dense", "--out", str(tmp_path / "r")]) == 2
    assert "--class maps classes of your module" in capsys.readouterr().err


# -- 2. undrivable means exit 2 -----------------------------------------------------------------------------------
def test_an_update_that_takes_the_network_is_refused_naming_the_method_that_takes_params(tmp_path, capsys):
    status, err, _ = check("learner_network_optimizer.py", "--optimizer", "momentum", out=tmp_path / "r",
                           capsys=capsys)
    refused(status, err, tmp_path / "r")
    assert "Momentum.update(self, network, grads) cannot be driven" in err
    assert "AttributeError: 'dict' object has no attribute 'layers'" in err
    assert "Momentum.updateParams(self, params, grads) does take them" in err


# -- 3. mirror what the class holds ---------------------------------------------------------------------------------
@pytest.mark.parametrize("module", ["learner_adam_paper_held.py", "learner_adam_paper_literal.py"])
def test_a_paper_form_adam_with_epsilon_1e8_passes_with_the_convention_named(module, tmp_path, capsys, shared_keras):
    status, text, summary = check(module, "--optimizer", "adam", "--dtype", "float64", out=tmp_path / "r",
                                  capsys=capsys)
    assert status == 0, text
    warnings = [f for f in summary["findings"] if f["severity"] == "warning"]
    assert warnings and all(f["code"] == "convention" and f["layer"] == "Adam" for f in warnings)
    assert any(f.get("cause") == "epsilon_on_corrected" for f in warnings)
    assert summary["rows"]["stepping"]["convention"] > 0 and summary["rows"]["stepping"]["fail"] == 0
    keras_epsilon = summary["optimizer"]["keras"]["arguments"]["epsilon"]
    if module == "learner_adam_paper_held.py":  # held: Keras is built with the class's epsilon
        assert keras_epsilon == 1e-8
        assert any(f.get("cause") == "epsilon_value" for f in warnings)
    else:  # a literal: a replay of the common values finds it; Keras keeps the run's
        assert keras_epsilon == 1e-7
        assert any(f.get("epsilon") == 1e-8 for f in warnings)
    assert "excused: 160 steps (stepping) by Adam's convention named below" in text


def test_epsilon_is_a_setting_and_keras_is_built_with_it(shared_keras):
    report = parity.run(optimizer="adam:epsilon=1e-8", dtype="float64", epochs=2, plots=False)
    assert report.passed and not report.warnings
    assert report.summary["optimizer"]["keras"]["arguments"]["epsilon"] == 1e-8
    assert report.summary["config"]["optimizer"]["hyperparameters"]["epsilon"] == 1e-8
    with pytest.raises(parity.ParityInputError, match=r"epsilon.* must be a number in \(0, 1\)"):
        parity.run(optimizer={"name": "adam", "epsilon": 0.0})
    with pytest.raises(parity.ParityInputError, match="is not a hyperparameter of momentum"):
        parity.run(optimizer="momentum:epsilon=1e-8")


# -- 4. named bugs ------------------------------------------------------------------------------------------------
def test_a_step_that_assigns_nothing_is_named_at_its_line(tmp_path, capsys, shared_keras):
    status, _, summary = check("learner_optimizer_bugs.py", "--dtype", "float64", out=tmp_path / "r", capsys=capsys)
    assert status == 1
    [root] = roots(summary)
    assert (root["code"], root["layer"]) == ("no_update", "SGD")
    assert root["where"].endswith("learner_optimizer_bugs.py:13")
    assert "`params[key] -+ self.lr * grads[key]` is an expression whose value is thrown away" in root["message"]
    assert "did you mean `-=`?" in root["message"]


def test_half_a_bias_correction_is_named(tmp_path, capsys, shared_keras):
    status, _, summary = check("learner_optimizer_bugs.py", "--optimizer", "adam", "--dtype", "float64",
                               out=tmp_path / "r", capsys=capsys)
    assert status == 1
    [root] = roots(summary)
    assert (root["code"], root["cause"]) == ("bias_correction", "bias_correction_beta2_only")
    assert root["evidence"] <= 1e-12


def test_a_module_of_optimizers_without_the_runs_is_refused_naming_those_it_has(tmp_path, capsys):
    """No layers and no SGD: a default run would check nothing of the learner's."""
    status, err, _ = check("optimizers_learner.py", out=tmp_path / "r", capsys=capsys)
    refused(status, err, tmp_path / "r")
    assert "has no class SGD for --optimizer sgd and no layer classes: nothing of yours would be checked. Its " \
           "optimizers: momentum, RMSProp, Adam, AdaGrad; pick one with --optimizer momentum" in err


def test_one_velocity_for_every_parameter_is_named_on_the_error_it_raises(tmp_path, capsys, shared_keras):
    """W1's velocity (1, 2) cannot be added into b1 (2,): the learner's update raises, and the replay of a shared
    velocity raises the same error at the same step, so the finding says which mistake it is."""
    status, _, summary = check("learner_shared_velocity.py", "--optimizer", "momentum", "--dtype", "float64",
                               out=tmp_path / "r", capsys=capsys)
    assert status == 1
    [root] = roots(summary)
    assert (root["code"], root["layer"], root["cause"]) == ("layer_error", "Momentum", "shared_state")
    assert root["where"].endswith("learner_shared_velocity.py:17")
    assert "with one velocity array shared by every parameter raises the same error at the same step" in root["message"]
