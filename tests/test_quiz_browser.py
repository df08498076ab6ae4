"""The quiz page in a real headless browser: answered by keyboard, CSV downloaded, then scored.

Uses the system Chromium and its driver (Debian: ``apt-get install -y chromium
chromium-driver``; ``make test`` installs them when missing, .ci/ensure-browser) through
selenium; no browser is downloaded. Without them this test FAILS with that instruction: the
page is the study's instrument, so a green run must have opened it. ``CXR_GAN_NO_BROWSER=1``
skips it, for a machine that cannot have a browser (say why where you set it).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gan_lib import config
from gan_lib.studies import quiz
from tests.test_quiz import N, built, page_pngs, tiny_run  # noqa: F401 (fixtures)

INSTALL = "apt-get install -y chromium chromium-driver  (Debian/Ubuntu; make test does it)"


def find_browser() -> tuple[str, str]:
    """(chromium, chromedriver) from $CHROME_BIN / $CHROMEDRIVER, the PATH, or /usr/bin."""
    found = []
    for env, names in (("CHROME_BIN", ("chromium", "chromium-browser", "google-chrome")),
                       ("CHROMEDRIVER", ("chromedriver",))):
        candidates = [os.environ.get(env, "")] + [shutil.which(n) or f"/usr/bin/{n}"
                                                  for n in names]
        found.append(next((c for c in candidates if c and os.access(c, os.X_OK)), None))
    if None in found:
        pytest.fail(f"Chromium and chromedriver are needed for the quiz page test; install them: "
                    f"{INSTALL}. Found browser={found[0]}, driver={found[1]}. Set "
                    "CXR_GAN_NO_BROWSER=1 only where no browser can be installed.")
    return found[0], found[1]


@pytest.fixture
def browser(tmp_path):
    if os.environ.get("CXR_GAN_NO_BROWSER") == "1":
        pytest.skip("CXR_GAN_NO_BROWSER=1: the user chose to skip the browser test")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = find_browser()
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=900,1200"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(downloads)})
    yield driver, downloads
    driver.quit()


def press(driver, keys: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(keys).perform()


def wait_for(condition, timeout: float = 20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if result := condition():
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s")


def test_page_answered_by_keyboard_downloads_a_csv_that_scores(built, browser, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    page, key = built
    driver, downloads = browser
    truth = {i["id"]: i["truth"] for i in key["images"]}
    driver.get(page.as_uri())
    assert driver.find_element(By.ID, "qid").text == f"quiz {key['quiz_id']}"
    press(driver, "ada" + Keys.ENTER)  # the reader id field has the focus; Enter starts
    shot = driver.find_element(By.ID, "shot")
    seen = []
    for k in range(N):
        assert driver.find_element(By.ID, "progress").text == f"Image {k + 1} of {N}"
        image = int(shot.get_attribute("data-id"))
        width = driver.execute_script("return arguments[0].naturalWidth", shot)
        assert width == key["display"]["size"]  # the embedded PNG decoded at its size
        seen.append(image)
        # answer: right on every image but the first, which is answered wrong then back-spaced
        # and answered again, so Backspace is exercised too
        if k == 1:
            press(driver, Keys.BACKSPACE)
            assert driver.find_element(By.ID, "progress").text == "Image 1 of 40"
            press(driver, ("f" if truth[seen[0]] == "fake" else "r") + "4")
        press(driver, ("r" if (truth[image] == "fake") == (k == 0) else "f") + str(1 + k % 5))
    assert driver.find_element(By.ID, "done").is_displayed()
    assert seen == [i["id"] for i in key["images"]]  # the key's order
    driver.find_element(By.ID, "download").click()
    csv = wait_for(lambda: [p for p in downloads.glob("*.csv")])[0]
    assert csv.name == f"answers_{key['quiz_id']}_ada.csv"
    answers = page.parent / "answers"
    answers.mkdir()
    shutil.copy(csv, answers / csv.name)
    out = subprocess.run([sys.executable, "-m", "gan_lib", "quiz-score", str(answers / csv.name),
                          "--reports-dir", str(tmp_path / "reports")], capture_output=True,
                         text=True, cwd=config.REPO_ROOT, timeout=180,
                         env={**os.environ, "GAN_LIB_HOME": str(config.HOME)})
    assert out.returncode == 0, out.stderr[-2000:]
    table = pd.read_csv(tmp_path / "reports" / "tables" / "reader_study.csv")
    pooled = table.set_index("reader").loc["pooled"]
    assert (pooled["n"], pooled["correct"], pooled["accuracy"]) == (N, N, 1.0)
    assert pooled["95% CI low"] == pytest.approx(0.025 ** (1 / N))
    ratings = pd.read_csv(answers / csv.name)
    assert ratings["confidence"].tolist()[1:] == [1 + k % 5 for k in range(1, N)]
    assert (ratings["ms"] >= 0).all() and set(ratings["reader"]) == {"ada"}
    assert quiz.read_answers([answers / csv.name], key)["image"].tolist() == seen


def test_screenshot_of_an_image_page(built, browser, tmp_path):  # noqa: F811
    """index.html#reader=NAME starts at image 1 (the README's screenshot command uses it)."""
    from selenium.webdriver.common.by import By

    page, key = built
    driver, _ = browser
    driver.get(page.as_uri() + "#reader=demo")
    shot = driver.find_element(By.ID, "shot")
    assert shot.is_displayed() and int(shot.get_attribute("data-id")) == key["images"][0]["id"]
    assert driver.execute_script(
        "return getComputedStyle(arguments[0]).imageRendering", shot) == "pixelated"
    # the page's script unmasks the image to exactly the PNG that Python wrote
    wait_for(lambda: driver.execute_script("return arguments[0].complete", shot))
    gray = driver.execute_script("""
        const img = arguments[0], c = document.createElement("canvas");
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const ctx = c.getContext("2d"); ctx.drawImage(img, 0, 0);
        const rgba = ctx.getImageData(0, 0, c.width, c.height).data;
        return Array.from(rgba.filter((_, i) => i % 4 === 0));""", shot)
    expected = np.asarray(Image.open(io.BytesIO(page_pngs(page)[0])))
    assert np.array_equal(np.array(gray, dtype=np.uint8).reshape(expected.shape), expected)
    assert driver.save_screenshot(str(tmp_path / "quiz.png"))
    assert Path(tmp_path / "quiz.png").stat().st_size > 1000


def test_a_missing_browser_fails_with_the_install_command(monkeypatch):
    monkeypatch.delenv("CHROME_BIN", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium chromium-driver"):
        find_browser()
