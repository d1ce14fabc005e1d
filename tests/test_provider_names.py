"""Adding a provider touches its own module, its fake and its tests: no module outside the providers package
names one (code, comments or strings), so nothing else can branch on a provider."""

from __future__ import annotations

import re
from pathlib import Path

from video_pipeline.providers import registry

REPO = Path(__file__).resolve().parents[1]
PROVIDERS_PACKAGE = REPO / "include" / "video_pipeline" / "providers"


def test_no_module_outside_the_providers_package_names_a_provider() -> None:
    names = registry.all_names()  # image/clip providers and voices
    assert len(names) >= 2
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b", re.IGNORECASE)
    offenders = [
        f"{path.relative_to(REPO)}:{n}: {line.strip()}"
        for root in ("include", "plugins", "dags")
        for path in sorted((REPO / root).rglob("*.py"))
        if PROVIDERS_PACKAGE not in path.parents
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if pattern.search(line)
    ]
    assert offenders == []


def test_the_readme_lists_every_provider_and_model() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Providers") :]
    section = section[: section.index("\n## ", 1)]
    for name in registry.names():
        assert f"`{name}`" in section
        for model in registry.get(name).models:
            assert f"`{model}`" in section, f"{name} {model} is missing from the README's Providers table"


def test_the_readme_lists_every_voice_and_model() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Narration") :]
    section = section[: section.index("\n## ", 1)]
    for name in registry.speech_names():
        voice = registry.speech(name)
        assert f"`{name}`" in section
        assert voice.conn_id is None or f"`{voice.conn_id}`" in section
        for model in voice.models:
            assert f"`{model}`" in section, f"{name} {model} is missing from the README's Narration table"
