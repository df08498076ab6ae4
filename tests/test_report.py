"""The papermill pipeline end to end (smoke profile) and its failure behaviour."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from gan_lib import report

EXPECTED_FIGURES = ["fig1_real_samples.png", "data_intensity_histograms.png", "fig2_losses.png",
                    "fig3_halfway_final.png", "evolution_strip.png", "samples_final.png",
                    "fid_vs_iteration.png"]
EXPECTED_TABLES = ["data_summary", "fid", "is"]


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory):
    """One smoke pipeline run shared by the checks below (it takes about a minute)."""
    home = tmp_path_factory.mktemp("home")
    mp = pytest.MonkeyPatch()
    from gan_lib import config

    mp.setenv("GAN_LIB_HOME", str(home))
    mp.setattr(config, "RUNS_DIR", home / "runs")
    mp.setattr(config, "REPORTS_DIR", home / "reports")
    out = report.build_report(profile="smoke", run="smoke", source="phantom")
    yield out
    mp.undo()


def test_pipeline_writes_every_expected_file(smoke_report):
    reports = smoke_report.parent
    for name in EXPECTED_FIGURES:
        png = reports / "figures" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    for name in EXPECTED_TABLES:
        assert (reports / "tables" / f"{name}.csv").stat().st_size > 0
        assert (reports / "tables" / f"{name}.md").stat().st_size > 0
    executed = sorted(p.name[:2] for p in (reports / "notebooks").glob("*.ipynb"))
    assert executed == ["01", "02", "03", "04", "05"]
    assert not (reports / ".staging").exists()


def test_report_md_states_every_table_value_and_the_synthetic_source(smoke_report):
    md = smoke_report.read_text()
    assert "synthetic phantom data" in md.lower()
    fid = pd.read_csv(smoke_report.parent / "tables" / "fid.csv")
    numbers = fid.select_dtypes("number").to_numpy().ravel()
    assert len(numbers) > 0
    shown = {float(x) for x in re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", md.replace(",", ""))}
    for value in numbers:
        # The Markdown table rounds to 4 significant digits.
        assert any(abs(value - s) <= 5e-4 * max(1.0, abs(value)) for s in shown), value


def test_report_html_embeds_every_figure(smoke_report):
    html = (smoke_report.parent / "report.html").read_text()
    srcs = re.findall(r'<img[^>]*src="([^"]+)"', html)
    assert len(srcs) == len(EXPECTED_FIGURES)
    assert all(s.startswith("data:image/png;base64,") for s in srcs)


def test_rerun_gives_identical_tables(smoke_report, tmp_path):
    """Same profile, seed and data on a CPU: the pipeline's tables are reproduced exactly."""
    again = report.build_report(profile="smoke", run="smoke", source="phantom",
                                reports_dir=tmp_path / "again")
    for name in EXPECTED_TABLES:
        first = (smoke_report.parent / "tables" / f"{name}.csv").read_text()
        assert (again.parent / "tables" / f"{name}.csv").read_text() == first, name


def test_failing_notebook_keeps_previous_report(home):
    reports = home / "reports"
    (reports / "figures").mkdir(parents=True)
    (reports / "report.md").write_text("previous report")
    (reports / "figures" / "fig1_real_samples.png").write_bytes(b"old figure")
    with pytest.raises(report.NotebookFailed, match=r"01_explore_data.*cell"):
        report.build_report(profile="smoke", run="broken", source=str(home / "no-such-folder"))
    assert (reports / "report.md").read_text() == "previous report"
    assert (reports / "figures" / "fig1_real_samples.png").read_bytes() == b"old figure"
    assert (reports / ".failed" / "01_explore_data.ipynb").exists()
    assert not (reports / ".staging").exists()


def test_unknown_profile_fails_before_any_work(home):
    with pytest.raises(ValueError, match="Unknown profile 'fast'"):
        report.build_report(profile="fast")
    assert not (home / "reports").exists()


def test_headline_states_first_and_last_fid_with_n_and_the_floor():
    rec = {"metric": "fid", "name": "fid1024", "n_fake": 1024, "n_real": 2048}
    scores = {"scores": [
        {**rec, "kind": "generated", "iteration": 400, "value": 171.7},
        {**rec, "kind": "generated", "iteration": 200, "value": 299.4},
        {**rec, "kind": "floor", "iteration": None, "value": 4.96, "compared": "halves"},
        {**rec, "metric": "kid", "kind": "generated", "iteration": 200, "value": 0.4},
    ]}
    text = report.headline(scores)
    assert "299.4 at iteration 200 to 171.7 at iteration 400" in text
    assert "1,024 generated vs 2,048 real" in text and "5.0 (halves)" in text
    assert report.headline({}) == "The run was not scored."
