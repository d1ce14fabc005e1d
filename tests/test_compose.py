"""Static checks of docker-compose.yaml (no Docker engine on these machines): it parses, everything it names
exists, the Airflow services agree on executor, metadata DB and broker, and the deployment defaults are safe —
every secret required and generated, Airflow without MinIO's root user, presigned URLs signed for a published
address, FAB as the auth manager, a bucket-scoped S3 user created by minio-init.

Compose's own variable interpolation is reproduced by ``interpolate`` (the subset the file uses), so the tests
see the values the containers would get from a ``.env`` written by ``scripts/gen-env.sh``.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import re
import stat
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}
ALL_AIRFLOW = [*AIRFLOW_SERVICES, "airflow-init"]
FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
#: empty by design: without a key only the offline storyboard provider runs
OPTIONAL = {"RUNWAY_API_KEY", "FAL_KEY", "OPENAI_API_KEY", "ELEVENLABS_API_KEY"}
#: names of secrets (an S3 access key id is a user name, its secret key the secret)
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|(?<!ACCESS)_KEY$")

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, ${NAME:+alt}, $NAME, and $$ (a $)
_REFERENCE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(Exception):
    """Compose refuses to start: a ``${NAME:?…}`` or ``${NAME?…}`` variable is unset (or empty for ``:?``)."""


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """The parsed compose file with variables substituted as compose does (strings, recursively)."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["name"] or match["bare"]
        op, arg, current = match["op"], match["arg"] or "", env.get(name)
        if op is None:
            return current or ""
        unset_or_empty = not current if op.startswith(":") else current is None
        if op.endswith("-"):
            return arg if unset_or_empty else current or ""
        if op.endswith("?"):
            if unset_or_empty:
                raise MissingVariable(f"{name}: {arg}")
            return current or ""
        return "" if unset_or_empty else arg  # :+ / +

    return _REFERENCE.sub(substitute, value)


def references(value: Any) -> list[tuple[str, str | None]]:
    """Every ``${NAME…}`` in the parsed file, as (name, operator)."""
    if isinstance(value, dict):
        return [ref for item in value.values() for ref in references(item)]
    if isinstance(value, list):
        return [ref for item in value for ref in references(item)]
    if not isinstance(value, str):
        return []
    return [(m["name"] or m["bare"], m["op"]) for m in _REFERENCE.finditer(value) if not m["escaped"]]


def read_env_file(path: Path) -> dict[str, str]:
    pairs = (
        line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#")
    )
    return {name: value for name, value in pairs}


def gen_env(path: Path, **overrides: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k not in read_env_file(REPO / ".env.example")}
    subprocess.run(
        ["sh", str(REPO / "scripts" / "gen-env.sh"), str(path)],
        check=True,
        capture_output=True,
        env={**environ, **overrides},
    )
    return read_env_file(path)


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "docker-compose.yaml").read_text()))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A ``.env`` as ``scripts/gen-env.sh`` writes it."""
    return gen_env(tmp_path_factory.mktemp("deploy") / ".env")


@pytest.fixture(scope="module")
def compose(raw: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """The file as the containers see it, with the generated ``.env``."""
    return dict(interpolate(raw, env))


def secret_names() -> set[str]:
    return {name for name in read_env_file(REPO / ".env.example") if SECRET_NAME.search(name)} - OPTIONAL


def test_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "redis", "minio", "minio-init", "airflow-init", *AIRFLOW_SERVICES} <= set(services)
    for name, command in AIRFLOW_SERVICES.items():
        assert services[name]["command"] == command


def test_airflow_services_agree(compose: dict[str, Any]) -> None:
    envs = [compose["services"][name]["environment"] for name in ALL_AIRFLOW]
    for key in (
        "AIRFLOW__CORE__EXECUTOR",
        "AIRFLOW__CORE__AUTH_MANAGER",
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__API__SECRET_KEY",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__CELERY__BROKER_URL",
        "AIRFLOW_CONN_AWS_DEFAULT",
    ):
        assert len({env[key] for env in envs}) == 1, key
    assert envs[0]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert "@postgres/" in envs[0]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert envs[0]["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")


def test_named_files_and_volumes_exist(raw: dict[str, Any]) -> None:
    declared = set(raw["volumes"])
    for name, service in raw["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name}: {source} is missing"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
        if "build" in service:
            assert (REPO / service["build"] / "Dockerfile").is_file()
    assert (REPO / ".env.example").is_file()
    assert "RUNWAY_API_KEY=" in (REPO / ".env.example").read_text()


def test_depends_on_known_services(raw: dict[str, Any]) -> None:
    services = raw["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"


# --- secrets ----------------------------------------------------------------------------------------------


def test_every_secret_is_required(raw: dict[str, Any], env: dict[str, str]) -> None:
    """Each secret is ``${NAME:?…}`` everywhere it is used (no default to fall back on), and compose refuses to
    start when any one of them is unset or left empty, as in an unfilled copy of ``.env.example``."""
    refs = references(raw)
    secrets = secret_names()
    assert {"FERNET_KEY", "AIRFLOW_JWT_SECRET", "POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD"} <= secrets
    for name, op in refs:
        if name in secrets:
            assert op == ":?", f"${{{name}}} must be required (:?), is {op!r}"
    assert {name for name, _ in refs} >= secrets, "a secret in .env.example is never used"
    for name in sorted(secrets):
        for broken in ({k: v for k, v in env.items() if k != name}, {**env, name: ""}):
            with pytest.raises(MissingVariable, match=f"^{name}:"):
                interpolate(raw, broken)
    interpolate(raw, env)  # and starts with all of them


def test_every_variable_compose_reads_is_in_the_env_example(raw: dict[str, Any]) -> None:
    example = read_env_file(REPO / ".env.example")
    missing = {name for name, _ in references(raw)} - set(example)
    assert not missing, f"compose reads {missing}, which .env.example (and so gen-env.sh) does not write"
    assert all(not example[name] for name in secret_names()), ".env.example must not ship a secret"


def test_gen_env_writes_fresh_distinct_secrets(tmp_path: Path, env: dict[str, str]) -> None:
    from cryptography.fernet import Fernet

    again = gen_env(tmp_path / ".env")
    secrets = secret_names()
    for generated in (env, again):
        assert all(generated[name] for name in secrets)
        assert len({generated[name] for name in secrets}) == len(secrets), "two secrets share a value"
        for name in secrets - {"FERNET_KEY"}:
            assert re.fullmatch(r"[0-9a-f]{48}", generated[name]), name  # 192 bits; safe in URLs and JSON
        Fernet(generated["FERNET_KEY"].encode())  # a valid key
        assert len(base64.urlsafe_b64decode(generated["FERNET_KEY"])) == 32
        assert generated["RUNWAY_API_KEY"] == ""
    assert all(env[name] != again[name] for name in secrets), "a secret was not regenerated"
    assert stat.S_IMODE((tmp_path / ".env").stat().st_mode) == 0o600


def test_gen_env_never_overwrites_and_takes_settings_from_the_environment(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    first = gen_env(target, MINIO_PUBLIC_URL="https://s3.example.com", RUNWAY_API_KEY="key_from_env")
    assert first["MINIO_PUBLIC_URL"] == "https://s3.example.com" and first["RUNWAY_API_KEY"] == "key_from_env"
    before = target.read_bytes()
    result = subprocess.run(["sh", str(REPO / "scripts" / "gen-env.sh"), str(target)], capture_output=True)
    assert result.returncode != 0 and b"not overwriting" in result.stderr
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [".env"]  # no temp file left behind


# --- S3: least privilege, reachable presigned URLs ---------------------------------------------------------


def test_airflow_has_no_minio_root_credentials(
    raw: dict[str, Any], compose: dict[str, Any], env: dict[str, str]
) -> None:
    for name in ALL_AIRFLOW:
        assert "env_file" not in raw["services"][name], f"{name} would receive every .env value"
        assert not {ref for ref, _ in references(raw["services"][name])} & {
            "MINIO_ROOT_USER",
            "MINIO_ROOT_PASSWORD",
        }
        values = compose["services"][name]["environment"].values()
        assert not any(env["MINIO_ROOT_PASSWORD"] in str(value) for value in values), name
        aws = json.loads(compose["services"][name]["environment"]["AIRFLOW_CONN_AWS_DEFAULT"])
        assert (aws["login"], aws["password"]) == (env["VIDEO_S3_ACCESS_KEY"], env["VIDEO_S3_SECRET_KEY"])
        assert aws["login"] != env["MINIO_ROOT_USER"]
    # the root user is known only to MinIO and the init container that creates the bucket user
    holders = {name for name, service in raw["services"].items() if "MINIO_ROOT_PASSWORD" in str(service)}
    assert holders == {"minio", "minio-init"}


def published(service: dict[str, Any]) -> dict[int, str]:
    """container port → host address ('' for every interface) of a service's published ports."""
    ports = {}
    for spec in service.get("ports", []):
        *host, _host_port, container_port = (["", *str(spec).split(":")])[-3:]
        ports[int(container_port)] = host[0] if host else ""
    return ports


def test_presigned_urls_point_at_a_published_port(compose: dict[str, Any]) -> None:
    airflow_env = compose["services"]["airflow-apiserver"]["environment"]
    public = urlsplit(airflow_env["AIRFLOW_VAR_VIDEO_PIPELINE_S3_PUBLIC_ENDPOINT_URL"])
    internal = urlsplit(json.loads(airflow_env["AIRFLOW_CONN_AWS_DEFAULT"])["extra"]["endpoint_url"])
    assert internal.hostname == "minio"  # Airflow's own traffic stays on the compose network
    assert public.scheme == "http" and public.hostname == "localhost" and public.port == 9000
    minio = compose["services"]["minio"]
    s3_port = int(re.search(r"--address \"?:(\d+)", minio["command"])[1])  # type: ignore[index]
    ports = published(minio)
    assert s3_port == internal.port == 9000
    # the S3 API is published on every interface at the port the public URL names; the console only locally
    assert any(str(spec) == f"{public.port}:{s3_port}" for spec in minio["ports"]), minio["ports"]
    assert ports[s3_port] == ""
    assert ports[9001] == "127.0.0.1"
    for name in ALL_AIRFLOW:
        assert compose["services"][name]["environment"][
            "AIRFLOW_VAR_VIDEO_PIPELINE_S3_PUBLIC_ENDPOINT_URL"
        ] == (public.geturl())


def test_minio_init_creates_a_bucket_scoped_user(compose: dict[str, Any], env: dict[str, str]) -> None:
    script = compose["services"]["minio-init"]["command"][-1]
    bucket = env["VIDEO_BUCKET"]
    assert f"mc mb --ignore-existing local/{bucket}" in script
    policy_name, policy_file = re.search(r"mc admin policy create local (\S+) (\S+)", script).groups()  # type: ignore[union-attr]
    assert re.search(r'mc admin user add local "\$VIDEO_S3_ACCESS_KEY" "\$VIDEO_S3_SECRET_KEY"', script)
    assert re.search(rf'mc admin policy attach local {policy_name} --user "\$VIDEO_S3_ACCESS_KEY"', script)
    written = re.search(rf"printf '%s' '(\{{.*\}})' > {re.escape(policy_file)}", script)
    assert written, "the policy document is not the file that is created"
    policy = json.loads(written[1])
    resources = {resource for statement in policy["Statement"] for resource in statement["Resource"]}
    actions = {action for statement in policy["Statement"] for action in statement["Action"]}
    assert resources == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}
    assert all(statement["Effect"] == "Allow" for statement in policy["Statement"])
    assert not [a for a in actions if "*" in a or not a.startswith("s3:") or "Policy" in a or "Acl" in a]
    # what S3Storage does: head/get, put (and conditional put, multipart), copy, delete, list
    assert {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"} <= actions
    assert "MINIO_ROOT" not in str(compose["services"]["minio-init"].get("env_file", ""))


FAKE_MC = r"""#!/bin/sh
# mc as far as minio-init uses it: records each call; a second attach of one policy fails as MinIO does
echo "$*" >> "$MC_LOG"
case "$1 $2 $3" in
  "admin policy create") cp "$6" "$MC_STATE/created-policy.json" ;;
  "admin policy attach")
    if [ -n "${MC_ATTACH_ERROR:-}" ]; then echo "mc: <ERROR> $MC_ATTACH_ERROR" >&2; exit 1; fi
    if [ -e "$MC_STATE/attached" ]; then
      echo "mc: <ERROR> Unable to make user/group policy association. The specified policy change is already in effect. (Specified policy update has no net effect)." >&2
      exit 1
    fi
    touch "$MC_STATE/attached" ;;
esac
"""


def run_minio_init(compose: dict[str, Any], tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    service = compose["services"]["minio-init"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "mc").write_text(FAKE_MC)
    (bin_dir / "mc").chmod(0o755)
    script = service["command"][-1].replace("/tmp/video-bucket-policy.json", str(tmp_path / "policy.json"))
    environ = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "MC_LOG": str(tmp_path / "mc.log"),
        "MC_STATE": str(tmp_path),
        **service["environment"],
        **extra,
    }
    return subprocess.run(
        [service["entrypoint"], *service["command"][:-1], script], env=environ, text=True, capture_output=True
    )


def test_minio_init_can_run_again_and_stops_on_a_real_error(
    compose: dict[str, Any], env: dict[str, str], tmp_path: Path
) -> None:
    """Restarting the stack runs minio-init again: the second attach, which mc reports as an error, is fine;
    any other mc error fails the init (so Airflow, which waits for it, does not start without its user)."""
    first = run_minio_init(compose, tmp_path)
    assert first.returncode == 0, first.stderr
    second = run_minio_init(compose, tmp_path)
    assert second.returncode == 0, second.stderr
    calls = (tmp_path / "mc.log").read_text().splitlines()
    assert (
        calls[0] == f"alias set local http://minio:9000 {env['MINIO_ROOT_USER']} {env['MINIO_ROOT_PASSWORD']}"
    )
    assert f"admin user add local {env['VIDEO_S3_ACCESS_KEY']} {env['VIDEO_S3_SECRET_KEY']}" in calls
    assert sum(call.startswith("admin policy attach") for call in calls) == 2
    assert json.loads((tmp_path / "created-policy.json").read_text())["Statement"][0]["Resource"] == [
        f"arn:aws:s3:::{env['VIDEO_BUCKET']}"
    ]
    failed = run_minio_init(compose, tmp_path, MC_ATTACH_ERROR="The specified user does not exist.")
    assert failed.returncode != 0 and "user does not exist" in failed.stderr


def test_deployment_policy_is_set_for_every_airflow_process(
    raw: dict[str, Any], compose: dict[str, Any]
) -> None:
    """The policy Variables (gates nightly runs must have, budget cap, budget required) come from required
    settings, with safe values in .env.example: both gates, a cap, budgets required."""
    policy = {
        "AIRFLOW_VAR_VIDEO_PIPELINE_NIGHTLY_APPROVAL": "NIGHTLY_APPROVAL",
        "AIRFLOW_VAR_VIDEO_PIPELINE_MAX_BUDGET_CREDITS": "MAX_BUDGET_CREDITS",
        "AIRFLOW_VAR_VIDEO_PIPELINE_REQUIRE_BUDGET": "REQUIRE_BUDGET",
    }
    for name in ALL_AIRFLOW:
        for variable, setting in policy.items():
            assert references(raw["services"][name]["environment"][variable]) == [(setting, ":?")], (
                name,
                variable,
            )
    environment = compose["services"]["airflow-scheduler"]["environment"]
    assert environment["AIRFLOW_VAR_VIDEO_PIPELINE_NIGHTLY_APPROVAL"] == "both"
    assert environment["AIRFLOW_VAR_VIDEO_PIPELINE_MAX_BUDGET_CREDITS"].isdigit()
    assert environment["AIRFLOW_VAR_VIDEO_PIPELINE_REQUIRE_BUDGET"] == "true"


# --- auth ---------------------------------------------------------------------------------------------------


def test_auth_manager_is_fab(raw: dict[str, Any], compose: dict[str, Any]) -> None:
    for name in ALL_AIRFLOW:
        environment = compose["services"][name]["environment"]
        assert environment["AIRFLOW__CORE__AUTH_MANAGER"] == FAB_AUTH_MANAGER
        assert not [key for key in environment if "SIMPLE_AUTH_MANAGER" in key]
    assert "SimpleAuthManager" not in yaml.safe_dump(raw)
    # the admin user comes from .env through the environment, not from a literal in the file
    init = compose["services"]["airflow-init"]
    script = init["command"][-1]
    assert re.search(r'airflow users create --role Admin --username "\$_AIRFLOW_WWW_USER_USERNAME"', script)
    assert '--password "$_AIRFLOW_WWW_USER_PASSWORD"' in script
    assert script.index("airflow db migrate") < script.index("airflow users create")
    assert "_AIRFLOW_WWW_USER_PASSWORD" not in compose["services"]["airflow-apiserver"]["environment"]


def test_the_fab_auth_manager_is_installed_and_pinned() -> None:
    from airflow.api_fastapi.auth.managers.base_auth_manager import BaseAuthManager

    module_name, class_name = FAB_AUTH_MANAGER.rsplit(".", 1)
    assert issubclass(getattr(importlib.import_module(module_name), class_name), BaseAuthManager)
    assert re.search(r"^apache-airflow-providers-fab==[\d.]+$", (REPO / "requirements.in").read_text(), re.M)
