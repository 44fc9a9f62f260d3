import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import IS_ROOT  # noqa: E402


@pytest.fixture
def unprivileged_tmp_path(tmp_path):
    """A folder for a command run by `helpers.unprivileged`, after `helpers.hand_over`: tmp_path for a
    normal user. As root, a fresh folder in the system's temp folder, removed afterwards: pytest's
    own folders are root's, mode 700 (pytest resets them so at every start), and `nobody` cannot
    reach anything under them."""
    if not IS_ROOT:
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="kagexp-test-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium driven by Playwright (its own browser download is out of reach here)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[dev]'")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("no chromium on the PATH: `make test` installs it as root with apt; or apt-get install chromium")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()
