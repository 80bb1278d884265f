"""The README's two set-up commands are the ones CI runs and the ones that train."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), flags=re.DOTALL)


def test_readme_starts_with_install_and_train_then_tests():
    install_and_train, run_tests = _readme_commands()[:2]
    assert "\n" not in install_and_train and "\n" not in run_tests
    assert "pip install" in install_and_train and install_and_train.endswith("drl-ros train")
    assert "pytest" in run_tests


def test_ci_runs_the_readme_test_command_and_refuses_zero_tests():
    ci = (ROOT / ".ci" / "run").read_text()
    assert _readme_commands()[1] in ci
    assert '"$status" -eq 5' in ci


def test_readme_torch_pin_matches_setup():
    assert "torch==2.13.0" in (ROOT / "setup.cfg").read_text()
