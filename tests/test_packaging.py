"""The dependency lists agree, the public API exists, and the one-command setup is wired up."""

import re
import tomllib
from pathlib import Path

import switch_sae_mini

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_requirements() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])


def _environment_requirements() -> set[str]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = lines.index("  - pip:")
    reqs = set()
    for line in lines[start + 1:]:
        match = re.match(r"^\s{6}- (.+)$", line)
        if match and not match.group(1).startswith("-e "):
            reqs.add(match.group(1).strip())
    return reqs


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    pyproject, env = _pyproject_requirements(), _environment_requirements()
    assert pyproject == env, f"only in pyproject: {pyproject - env}; only in environment.yml: {env - pyproject}"


def test_public_api_names_exist():
    for name in switch_sae_mini.__all__:
        assert hasattr(switch_sae_mini, name), name
    for name in ("SAEConfig", "make_sae", "train", "save", "load", "flops"):
        assert name in switch_sae_mini.__all__


def test_make_pins_torch_in_the_same_pip_command_and_ci_runs_make_test():
    makefile = (ROOT / "Makefile").read_text()
    install = [line for line in makefile.splitlines() if "pip install" in line]
    # every pip command that can pull torch in pins it in the same command (the peers' venv included)
    assert install and all("torch==$(TORCH_VERSION)" in line for line in install)
    assert any('-e ".[dev]"' in line for line in install)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_version_is_one_number_and_notebooks_install_that_release():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert version == switch_sae_mini.__version__
    assert f"## {version}" in (ROOT / "CHANGELOG.md").read_text()
    for path in sorted((ROOT / "notebooks").glob("[0-9]*.py")):
        assert f"switch_sae_mini@v{version}" in path.read_text(), f"{path.name}: the setup cell must install v{version}"


def test_old_module_names_keep_working_as_attributes():
    import switch_sae_mini as ssm

    for name in ("activations", "metrics", "flops", "checks", "notebook", "plotting", "analysis", "evaluation", "gpu"):
        assert hasattr(ssm, name), name
    assert ssm.gpu is ssm.device and ssm.notebook.harvest is ssm.data.harvest
