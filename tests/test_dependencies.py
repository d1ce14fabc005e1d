"""Runtime vs development dependencies: the image installs only the runtime lock, which holds no test or lint
tool, and covers everything the shipped code imports; the development lock agrees with it on every version.

``docker build`` is not available here, so the Dockerfile is read, not run.
"""

from __future__ import annotations

import ast
import re
import shlex
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUNTIME_LOCK = "requirements.txt"
DEV_LOCK = "requirements-dev.txt"
DEV_TOOLS = {
    "pytest",
    "pytest-asyncio",
    "pytest-timeout",
    "pytest-xdist",
    "hypothesis",
    "playwright",
    "moto",
    "ruff",
    "mypy",
    "boto3-stubs",
    "types-requests",
}
#: the code the image runs: the Airflow-free domain, the adapters, the DAG files
SHIPPED = ("include", "plugins", "dags")
OUR_PACKAGES = {"video_pipeline", "video_pipeline_airflow", "video_pipeline_dev", "dags", "tests"}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock: str) -> dict[str, str]:
    """``name -> version`` of a uv-compiled lock; every requirement line must be an exact pin."""
    result: dict[str, str] = {}
    for line in (REPO / lock).read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.fullmatch(
            r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;]+)(?:\s*;.*)?", line.strip()
        )
        assert match, f"{lock}: not an exact pin: {line!r}"
        result[normalize(match[1])] = match[2]
    return result


def direct_requirements(source: str) -> set[str]:
    names = set()
    for line in (REPO / source).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(normalize(re.split(r"[\[<>=!~; ]", line, maxsplit=1)[0]))
    return names


def is_dev_tool(name: str) -> bool:
    return (
        name in DEV_TOOLS
        or name.startswith(("pytest", "types-", "mypy-"))
        or name.endswith("-stubs")
        or name in {"hypothesis", "playwright", "moto", "ruff", "mypy"}
    )


def test_runtime_lock_has_no_development_tools() -> None:
    runtime = pins(RUNTIME_LOCK)
    assert not sorted(name for name in runtime if is_dev_tool(name))
    assert {
        "apache-airflow",
        "apache-airflow-providers-fab",
        "httpx",
        "pydantic",
        "boto3",
        "pillow",
        "av",
    } <= set(runtime)


def test_development_lock_has_the_tools_at_the_runtime_versions() -> None:
    runtime, dev = pins(RUNTIME_LOCK), pins(DEV_LOCK)
    assert set(dev) >= DEV_TOOLS
    disagree = {
        name: (version, dev.get(name)) for name, version in runtime.items() if dev.get(name) != version
    }
    assert not disagree, f"the dev lock installs other versions than the image: {disagree}"
    dev_in = (REPO / "requirements-dev.in").read_text().splitlines()
    assert "-r requirements.in" in dev_in and "-c requirements.txt" in dev_in


@pytest.mark.parametrize(
    ("source", "lock"), [("requirements.in", RUNTIME_LOCK), ("requirements-dev.in", DEV_LOCK)]
)
def test_each_lock_is_compiled_from_its_input(source: str, lock: str) -> None:
    text = (REPO / lock).read_text()
    assert f"uv pip compile {source} --python-version 3.11 -o {lock}" in text.splitlines()[1]
    assert direct_requirements(source) <= set(pins(lock))
    assert not direct_requirements("requirements.in") & DEV_TOOLS


def dockerfile_instructions() -> list[tuple[str, list[str]]]:
    """(INSTRUCTION, shell words) per Dockerfile instruction, with continuation lines joined."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), shlex.split(rest)))
    return instructions


def test_the_image_installs_only_the_runtime_lock() -> None:
    instructions = dockerfile_instructions()
    copied = {
        words[-1]: words[-2]
        for keyword, words in instructions
        if keyword == "COPY" and "requirements" in " ".join(words)
    }
    assert list(copied.values()) == [RUNTIME_LOCK], f"the image copies {copied}"
    installs = [
        words
        for keyword, words in instructions
        if keyword == "RUN" and "install" in words and ({"pip", "uv"} & {Path(w).name for w in words})
    ]
    assert installs, "no install step found"
    runtime_lock_in_image = next(iter(copied))
    for words in installs:
        files = [words[i + 1] for i, word in enumerate(words) if word in ("-r", "--requirement", "-c")]
        packages = [
            w for w in words[words.index("install") + 1 :] if not w.startswith("-") and w not in files
        ]
        if files:
            assert files == [runtime_lock_in_image], words
        else:  # our own packages only, nothing resolved from an index
            assert "--no-deps" in words and all(p.startswith("/opt/airflow") for p in packages), words
    assert not [words for _, words in instructions if "requirements-dev" in " ".join(words)]


def imported_top_level_modules(root: Path) -> set[str]:
    modules = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module.split(".")[0])
    return modules


def test_shipped_code_imports_only_runtime_packages() -> None:
    """Every third-party module the image's code imports comes from a package in the runtime lock (so moving a
    package to the dev lock cannot break the image unnoticed)."""
    runtime = set(pins(RUNTIME_LOCK))
    modules = set().union(*(imported_top_level_modules(REPO / part) for part in SHIPPED))
    third_party = modules - set(sys.stdlib_module_names) - OUR_PACKAGES - {"__future__"}
    owners = packages_distributions()
    outside = {}
    for module in sorted(third_party):
        distributions = {normalize(d) for d in owners.get(module, [])}
        assert distributions, f"{module} is imported but no installed package provides it"
        if not distributions & runtime:
            outside[module] = sorted(distributions)
    assert not outside, f"shipped code imports packages missing from {RUNTIME_LOCK}: {outside}"
    assert {"airflow", "pydantic", "httpx", "av", "PIL", "boto3"} <= third_party


def test_make_install_covers_both_locks() -> None:
    makefile = (REPO / "Makefile").read_text()
    stamp = re.search(r"^STAMP := .*$", makefile, re.M)
    assert stamp and RUNTIME_LOCK in stamp[0] and DEV_LOCK in stamp[0]
    rule = re.search(r"^\$\(STAMP\): (.*)$", makefile, re.M)
    assert rule and {RUNTIME_LOCK, DEV_LOCK} <= set(rule[1].split())
    assert re.search(rf"uv pip install .*-r {RUNTIME_LOCK} -r {DEV_LOCK}", makefile)
    lock = makefile[makefile.index("\nlock:") :].split("\n\n")[0]
    assert lock.index(f"-o {RUNTIME_LOCK}") < lock.index(
        f"-o {DEV_LOCK}"
    )  # the dev lock is constrained by it


def test_the_image_has_neither_the_harness_nor_the_fakes() -> None:
    """The embedded Airflow, the fake provider servers and moto live in the development package (``dev/``), which
    the image never copies; the product's packages never import it."""
    copied = {
        w
        for keyword, words in dockerfile_instructions()
        if keyword == "COPY"
        for w in words[:-1]
        if "=" not in w
    }
    assert not {w for w in copied if w.rstrip("/").split("/")[0] in ("dev", "tests", "bench", "scripts", ".")}
    shipped_imports = set().union(*(imported_top_level_modules(REPO / part) for part in SHIPPED))
    assert "video_pipeline_dev" not in shipped_imports and "tests" not in shipped_imports
    assert not list((REPO / "plugins").rglob("local.py"))
