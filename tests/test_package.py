"""The installed package (a built wheel, not the checkout) carries what it needs to render."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

from gan_lib import config

RENDER = """
import json, pathlib, sys
from gan_lib import config, storage, report
assert report.__file__.startswith(sys.argv[1]), report.__file__  # the installed copy
home = pathlib.Path(sys.argv[2])
run_dir = home / "runs" / "r"
cfg = config.make_train_config("smoke", name="r")
storage.write_json(run_dir / "config.json", {"config": cfg.to_dict(), "data": {
    "source": "phantom", "description": "synthetic phantom data", "kind": "phantom",
    "fingerprint": "f", "n_images": 256, "is_synthetic": True}, "versions": {"torch": "x"},
    "git_commit": None, "device": "cpu", "precision": "fp32"})
out = home / "reports"
report.render_report(out, run_dir, "smoke", [{"notebook": "01_explore_data.ipynb", "seconds": 1.0}],
                     make_pdf=False)
print((out / "report.md").read_text())
"""


def test_wheel_ships_the_template_and_renders_a_report(tmp_path):
    dist, site = tmp_path / "dist", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--quiet", "-w", str(dist), str(config.REPO_ROOT)], check=True, timeout=300)
    wheel = next(dist.glob("gan_lib-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        assert {"gan_lib/report/templates/report.md.j2",
                "gan_lib/studies/templates/quiz.html"} <= set(z.namelist())
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target",
                    str(site), str(wheel)], check=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(site), "GAN_LIB_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-c", RENDER, str(site), str(tmp_path / "home")],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("# Generating pediatric chest X-rays with a DCGAN")
    # every value the template shows is escaped Markdown text (safe_text.markdown): "\\_"
    assert "**Synthetic data.**" in out.stdout and "| 01\\_explore\\_data.ipynb | 1.0 |" in out.stdout
