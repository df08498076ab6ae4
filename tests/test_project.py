"""Project-level checks: the two ways to install agree, and notebooks stay reviewable."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import tomllib
import yaml

from gan_lib import config

ROOT = config.REPO_ROOT
NOTEBOOKS = sorted(config.NOTEBOOKS_DIR.glob("0*.ipynb"))
CHECK = "# NBVAL_CHECK_OUTPUT"


def _makefile_pins() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r'"([A-Za-z0-9_.-]+==[0-9][^"]*)"', text))


def test_environment_yml_agrees_with_pyproject_and_makefile():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    # The package itself, with the dev extras, carries every dependency: nothing listed twice.
    assert "-e .[dev]" in pip_section
    assert set(project["optional-dependencies"]) >= {"dev"}
    # The pins the Makefile installs outside pyproject are exactly the extra lines here.
    assert set(pip_section) - {"-e .[dev]"} == _makefile_pins()
    minimum = project["requires-python"].removeprefix(">=")
    assert tuple(map(int, python.split("=")[1].split("."))) >= tuple(map(int, minimum.split(".")))


def test_pyproject_declares_the_issue_dependencies():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=\[ ]", d)[0].lower() for d in deps["dependencies"]}
    dev = {re.split(r"[<>=\[ ]", d)[0].lower() for d in deps["optional-dependencies"]["dev"]}
    assert names >= {"torch", "torchvision", "numpy", "pillow", "matplotlib", "seaborn",
                     "pytorch-fid", "torch-fidelity", "medmnist", "papermill", "nbclient",
                     "ipykernel", "jupyterlab", "tqdm", "scipy", "scikit-learn", "statsmodels"}
    assert dev >= {"pytest", "nbval", "ruff", "selenium"}


def test_there_are_nine_ordered_notebooks():
    assert [p.name[:3] for p in NOTEBOOKS] == ["01_", "02_", "03_", "04_", "05_", "06_", "07_", "08_", "09_"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_clean(path: Path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: expected exactly one cell tagged 'parameters'"
    # nbformat 4.5 cell ids: without them nbformat warns now and will refuse the file later
    assert all(c.get("id") for c in nb["cells"]), f"{path.name}: cells without ids (normalize)"
    for i, cell in enumerate(code):
        src = "".join(cell["source"])
        checked = src.lstrip().startswith(CHECK)
        if not checked:
            assert cell["outputs"] == [], f"{path.name} cell {i}: stored outputs (clear them)"
            assert cell["execution_count"] is None, f"{path.name} cell {i}: stored execution count"
        else:
            assert cell["outputs"], f"{path.name} cell {i}: {CHECK} without an expected output"
        # Notebooks set parameters and call gan_lib; logic belongs in the library.
        assert not re.search(r"^\s*(def|class)\s", src, re.M), f"{path.name} cell {i} defines code"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_papermill_sees_every_parameter_with_its_help(path: Path):
    import papermill

    nb = json.loads(path.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    names = re.findall(r"^(\w+)\s*(?::[^=]*)?=", "".join(cell["source"]), re.M)
    seen = papermill.inspect_notebook(str(path))
    assert list(seen) == names, "papermill skips a line with more than one '=' (even in a comment)"
    assert all(p["help"] for p in seen.values()), "every parameter needs a comment for --help-notebook"


def _stub(folder: Path, name: str, body: str) -> None:
    (folder / name).write_text(f"#!/bin/sh\n{body}\n")
    (folder / name).chmod(0o755)


POPPLER = {"pdftotext", "pdfimages", "pdftoppm"}
ALL_TOOLS = {"chromium", "chromedriver", *POPPLER}


@pytest.mark.parametrize(("have", "uid", "expect", "message", "installs"), [
    ({"apt-get"}, 0, 0, "installing the distribution's chromium", "chromium chromium-driver "
     "poppler-utils"),
    ({"apt-get", "sudo"}, 1000, 0, "installing the distribution's chromium", "chromium "
     "chromium-driver poppler-utils"),
    ({"apt-get", "chromium", "chromedriver"}, 0, 0, "poppler-utils", "poppler-utils"),
    ({"apt-get", *POPPLER}, 0, 0, "chromium chromium-driver", "chromium chromium-driver"),
    ({"apt-get"}, 1000, 1, "report PDF tests (not root, and no sudo)", ""),
    (set(), 0, 1, "report PDF tests (no apt-get on this system)", ""),
    ({"apt-get", *ALL_TOOLS}, 0, 0, "", ""),
])
def test_make_test_installs_the_browser_when_missing(tmp_path, have, uid, expect, message,
                                                     installs):
    """.ci/ensure-browser (make test's first step) on a machine without Chromium or poppler:
    apt-get installs what is missing of chromium, chromium-driver and poppler-utils (sudo where
    not root), else a message says what to do."""
    import subprocess

    assert "sh .ci/ensure-browser" in (ROOT / "Makefile").read_text().split("\ntest:")[1]
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    _stub(bin_dir, "id", f"echo {uid}")
    makes = f"for c in {' '.join(sorted(ALL_TOOLS))}; do printf '#!/bin/sh\\n' > {bin_dir}/$c; " \
            f"/bin/chmod +x {bin_dir}/$c; done"
    stubs = {"apt-get": f'echo "apt-get $*" >> {log}\ncase "$*" in *install*) {makes};; esac',
             "sudo": f'echo "sudo" >> {log}\nexec "$@"', **dict.fromkeys(ALL_TOOLS, "")}
    for name in have:
        _stub(bin_dir, name, stubs[name])
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    done = subprocess.run(["/bin/sh", str(ROOT / ".ci" / "ensure-browser")], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == expect, done
    assert message in done.stdout + done.stderr
    calls = log.read_text().splitlines() if log.exists() else []
    if expect == 0 and message:
        assert calls[-1] == f"apt-get install -y -qq {installs}"
        assert ("sudo" in calls) == (uid != 0)
    else:
        assert not any("install" in c for c in calls)
    if expect:
        assert "CXR_GAN_NO_BROWSER=1 make test" in done.stderr
    skipped = subprocess.run(["/bin/sh", str(ROOT / ".ci" / "ensure-browser")],
                             env={**env, "CXR_GAN_NO_BROWSER": "1"}, capture_output=True,
                             text=True, timeout=60)
    assert skipped.returncode == 0 and "skipped" in skipped.stdout
