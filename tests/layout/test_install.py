"""A non-editable install ships every subpackage: the wheel, installed into a fresh virtual environment, runs
`parity run` from a folder that holds no source tree.

All of it happens outside this process (pip, venvs, `parity` processes): the wheel and both installs are queued with
the session (start_early, conftest's started_early) and run on the machine's other core while other modules' tests
run here; each test waits for its part, and an assertion that failed there is raised here with its message."""

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from concurrent.futures import Executor, Future
from pathlib import Path

import pytest
from testkit import ROOT

SUBPACKAGES = sorted(p.name for p in (ROOT / "parity").iterdir() if (p / "__init__.py").exists())


def build_wheel(out: Path) -> Path:
    out.mkdir()
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (found,) = out.glob("keras_parity-*.whl")
    return found


def start_early(folder: Path, lane: Executor) -> dict[str, Future]:
    """The wheel, then each install and what it runs, queued with the session (conftest's started_early). The lane
    starts its jobs in the order queued, so the wheel is being built before either install waits for it."""
    wheel = lane.submit(build_wheel, folder / "wheel")
    return {"wheel": wheel, "full": lane.submit(install_and_run, wheel, folder / "full"),
            "light": lane.submit(install_light_and_check, wheel, folder / "light")}


@pytest.fixture(scope="module")
def installs(started_early) -> dict[str, Future]:
    return started_early[__name__]


@pytest.fixture(scope="module")
def wheel(installs) -> Path:
    return installs["wheel"].result()


def test_the_wheel_holds_every_subpackage(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert SUBPACKAGES and all(f"parity/{p}/__init__.py" in names for p in SUBPACKAGES), SUBPACKAGES
    assert not any(n.startswith("tests/") for n in names)


def install_and_run(wheel: Future, tmp_path: Path) -> None:
    """The wheel with every dependency: `import parity` finds the installed copy and `parity run` writes a report."""
    wheel = wheel.result()
    tmp_path.mkdir()
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PATH": str(env_dir / "bin")}
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                              str(wheel)], capture_output=True, text=True, timeout=300, env=clean)
    assert install.returncode == 0, install.stderr[-2000:]
    # The dependencies (TensorFlow is 600 MB) come from this interpreter's environment, as a path on sys.path, added
    # after the install (pip would take this checkout's editable install there for the package itself): that
    # folder's .pth files, the editable finder among them, are not processed.
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run([str(python), "-c", "import parity; print(parity.__file__)"], cwd=elsewhere,
                           capture_output=True, text=True, timeout=120, env=clean)
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout + where.stderr
    run = subprocess.run([str(env_dir / "bin" / "parity"), "run", "--no-plots", "--quiet", "--samples", "40",
                          "--epochs", "1", "--out", str(tmp_path / "report")], cwd=elsewhere,
                         capture_output=True, text=True, timeout=300, env=clean)
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "report" / "summary.json").is_file()


def test_a_non_editable_install_in_a_fresh_venv_runs_parity_run(installs):
    installs["full"].result()  # its assertions ran in the lane; the first that failed is raised here


# What a recorded check needs (pyproject's dependencies less TensorFlow, Keras and Dask), with what they require.
LIGHT = ("numpy", "pandas", "pyarrow", "matplotlib", "tqdm")


def _with_requirements(names) -> list:
    """The installed distributions `names` need, transitively (markers evaluated here, extras left out)."""
    from importlib.metadata import distribution

    from packaging.requirements import Requirement

    found, todo = {}, list(names)
    while todo:
        dist = distribution(todo.pop())
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in found:
            continue
        found[key] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return list(found.values())


def install_light_and_check(wheel: Future, tmp_path: Path) -> None:
    """The README's light install: the package without its dependencies, then numpy, pandas, pyarrow, matplotlib and
    tqdm. Here they are borrowed from this environment, each distribution's own files linked into a fresh venv
    (what `pip install` would put there, without the download); TensorFlow, Keras and Dask are not among them."""
    from parity.keras_side.recording_file import shipped_names

    wheel = wheel.result()
    tmp_path.mkdir()
    assert {f"parity/keras_side/recordings/{n}.npz" for n in shipped_names()} <= set(zipfile.ZipFile(wheel).namelist())
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    borrowed = _with_requirements(LIGHT)
    names = {d.metadata["Name"].lower() for d in borrowed}
    assert not names & {"tensorflow", "keras", "dask", "distributed"}, names
    for dist in borrowed:
        for top in {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}:
            source = Path(dist.locate_file(top))
            if source.exists() and not (site / top).exists():
                (site / top).symlink_to(source)
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PATH": str(env_dir / "bin")}
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                              str(wheel)], capture_output=True, text=True, timeout=300, env=clean)
    assert install.returncode == 0, install.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    no_tf = subprocess.run([str(python), "-c", "import tensorflow"], capture_output=True, text=True, env=clean)
    assert no_tf.returncode == 1 and "No module named 'tensorflow'" in no_tf.stderr
    layers = ROOT / "tests" / "fixtures" / "relu_without_mask.py"
    check = subprocess.run([str(env_dir / "bin" / "parity"), "check", "--layers", str(layers), "--reference",
                            "seed-float64", "--out", str(tmp_path / "report")], cwd=elsewhere,
                           capture_output=True, text=True, timeout=300, env=clean)
    assert check.returncode == 1, check.stdout + check.stderr  # the planted bug, found without TensorFlow
    assert "mask_mismatch" in check.stdout and "Keras side: recorded by Keras" in check.stdout
    assert {"report.html", "summary.json", "stepping.png"} <= {p.name for p in (tmp_path / "report").iterdir()}
    live = subprocess.run([str(env_dir / "bin" / "parity"), "run", "--quiet"], cwd=elsewhere, capture_output=True,
                          text=True, timeout=300, env=clean)
    assert live.returncode == 2 and live.stderr.startswith("error: TensorFlow and Keras cannot be imported here")
    assert "--reference FILE" in live.stderr and live.stderr.count("\n") == 1


def test_an_install_without_tensorflow_checks_against_a_recording(installs):
    installs["light"].result()  # its assertions ran in the lane; the first that failed is raised here
