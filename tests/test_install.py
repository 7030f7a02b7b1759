"""A non-editable install ships every subpackage: the wheel, installed into a fresh virtual environment, runs
`parity run` from a folder that holds no source tree."""

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = sorted(p.name for p in (ROOT / "parity").iterdir() if (p / "__init__.py").exists())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (found,) = out.glob("keras_parity-*.whl")
    return found


def test_the_wheel_holds_every_subpackage(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert SUBPACKAGES and all(f"parity/{p}/__init__.py" in names for p in SUBPACKAGES), SUBPACKAGES
    assert not any(n.startswith("tests/") for n in names)


def test_a_non_editable_install_in_a_fresh_venv_runs_parity_run(wheel, tmp_path):
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
