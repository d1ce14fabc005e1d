"""The nightly inbox: job specs dropped under ``inbox/`` move through ``processing/`` to ``done/`` or ``failed/``.

Intake first *moves* each ``inbox/<name>.json`` to ``processing/<name>.<UTC time>-<random>.json`` (an atomic
rename locally, without reading it), then reads and validates what is in ``processing/``: so the bytes
validated are exactly the bytes that will run, however the inbox file changes meanwhile, and a spec replaced
after the move simply waits in the inbox for the next night. Every per-file problem (not a regular file,
unreadable, too big, nested too deep, not UTF-8 JSON, an invalid spec, a duplicate of a spec already in
this batch) moves that file to ``inbox/rejected/`` with ``<name>.error.txt`` beside it, and the batch goes on.

Nothing is lost or overwritten: every move refuses an existing destination (``Storage.move``) and falls back
to a fresh, time-stamped name. A symbolic link or a fifo dropped into the inbox is moved aside as it is and
never opened. Each spec's run id is derived from its content, so triggering the same spec twice is
detectable (Airflow refuses a second run with the same id).
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import ValidationError

from video_pipeline.costs import stage_estimates
from video_pipeline.layout import content_hash
from video_pipeline.models import JobSpec, describe_validation_error
from video_pipeline.policy import Policy, check_policy
from video_pipeline.segmentation import segments_for
from video_pipeline.storage import LocalStorage, NotARegularFile, ObjectNotFound, Storage

INBOX = "inbox/"
REJECTED = "inbox/rejected/"
PROCESSING = "processing/"
DONE = "done/"
FAILED = "failed/"
Outcome = Literal["done", "failed"]
#: Larger than any valid spec (500 segments with the longest prompts and narration: about 1.5 MiB).
MAX_SPEC_BYTES = 2 * 1024 * 1024
#: A spec nests about 4 deep; json.loads recurses per level and would raise RecursionError near 1000.
MAX_JSON_DEPTH = 32
_MOVE_ATTEMPTS = 5


class SpecError(ValueError):
    """One inbox file cannot run; the message says why (it goes into ``<name>.error.txt``)."""


@dataclass(frozen=True)
class AcceptedSpec:
    name: str  # its file name under processing/, e.g. fox.20261201T020000Z-3fa9c1.json
    run_id: str
    conf: dict[str, object]


@dataclass(frozen=True)
class RejectedSpec:
    name: str  # its file name under inbox/rejected/
    error: str


def _names(storage: Storage, folder: str) -> list[str]:
    """``*.json`` entries directly under ``folder``: objects, plus (local storage) links, fifos and the like,
    which are moved aside unread."""
    keys = list(storage.list(folder))
    if isinstance(storage, LocalStorage):
        keys += storage.list_non_regular(folder)
    names = (key[len(folder) :] for key in keys)
    return sorted(name for name in names if name.endswith(".json") and "/" not in name)


def pending_specs(storage: Storage) -> list[str]:
    """File names directly under ``inbox/`` (not in its subfolders)."""
    return _names(storage, INBOX)


def run_id_for(spec: dict[str, object]) -> str:
    return f"nightly__{spec.get('job_id')}__{content_hash(dict(spec))[:12]}"


_STRUCTURE = re.compile(r'[\[\]{}"]')
_STRING_REST = re.compile(r'(?:[^"\\]++|\\.)*+"', re.DOTALL)  # a string's body after its opening quote


def json_depth(text: str, limit: int = MAX_JSON_DEPTH) -> int:
    """How deeply arrays and objects nest in ``text`` (strings skipped), in one pass and without parsing;
    stops counting once past ``limit``. Text that is not JSON gets some number; the parser then refuses it."""
    depth = deepest = 0
    pos = 0
    while found := _STRUCTURE.search(text, pos):
        char = found[0]
        pos = found.end()
        if char == '"':
            rest = _STRING_REST.match(text, pos)
            if rest is None:
                break  # an unterminated string: not JSON
            pos = rest.end()
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > limit:
                break
        else:
            depth -= 1
    return deepest


def validate_spec(raw: bytes, policy: Policy | None = None) -> dict[str, object]:
    """Parse and fully validate a spec (including segmentation and, given one, the deployment's ``policy``
    for nightly runs), bounded in size and depth before parsing; raise :class:`SpecError` (a ValueError)
    naming the problem. Checking the policy here keeps a spec that ``validate_job`` would refuse in
    ``rejected/`` with its reason instead of triggering a run that fails."""
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(f"too big: more than {MAX_SPEC_BYTES} bytes (a job spec is far smaller)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(f"not valid JSON: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if json_depth(text) > MAX_JSON_DEPTH:
        raise SpecError(f"not a job spec: JSON nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, over-long integers
        raise SpecError(f"not valid JSON: {str(exc)[:300]}") from None
    if not isinstance(data, dict):
        raise SpecError(f"not a job spec: a JSON object is expected, not {type(data).__name__}")
    try:
        job = JobSpec.model_validate(data)
        segments = segments_for(job)
        if policy is not None:
            estimate = sum(stage_estimates(job, segments).values())
            check_policy(job, estimate_credits=estimate, nightly=True, policy=policy)
    except ValidationError as exc:
        raise SpecError(describe_validation_error(exc)) from None
    except ValueError as exc:
        raise SpecError(str(exc)) from None
    except Exception as exc:  # a validator that crashes on this input: this spec cannot run, the batch can
        raise SpecError(f"invalid spec ({type(exc).__name__}: {str(exc)[:300]})") from None
    return dict(data)


def read_spec(storage: Storage, key: str) -> bytes:
    """The file's bytes, if it is a regular file of at most :data:`MAX_SPEC_BYTES` (never reads more)."""
    try:
        size = storage.size(key)
        if size > MAX_SPEC_BYTES:
            raise SpecError(f"too big: {size} bytes, at most {MAX_SPEC_BYTES}")
        with storage.open_read(key) as stream:
            raw = stream.read(MAX_SPEC_BYTES + 1)
    except NotARegularFile as exc:
        raise SpecError(f"not a regular file ({exc.kind}): moved aside without reading it") from None
    except OSError as exc:
        if not isinstance(storage, LocalStorage):
            raise  # a network error reading S3 says nothing about the file: the batch is retried
        raise SpecError(f"unreadable: {exc.strerror or exc}") from None
    if len(raw) > MAX_SPEC_BYTES:  # it grew after the size check
        raise SpecError(f"too big: more than {MAX_SPEC_BYTES} bytes")
    return raw


def stamped(name: str, now: datetime) -> str:
    """``fox.json`` → ``fox.20261201T020000Z-3fa9c1.json``: a name nobody has used yet, still a ``.json``."""
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    stem = stem.encode()[:180].decode("utf-8", "ignore")
    return f"{stem}.{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}{dot}{ext}"


def move_unique(storage: Storage, src: str, folder: str, name: str, now: datetime, *, fresh: bool) -> str:
    """Move ``src`` into ``folder`` as ``name`` (or, if ``fresh`` or that is taken, a stamped variant), never
    replacing anything; returns the new name."""
    for attempt in range(_MOVE_ATTEMPTS):
        target = stamped(name, now) if fresh or attempt else name
        if storage.move(src, folder + target):
            return target
    raise RuntimeError(f"could not find a free name for {src} in {folder} after {_MOVE_ATTEMPTS} tries")


def _reject(storage: Storage, name: str, reason: str, now: datetime) -> RejectedSpec:
    target = move_unique(storage, PROCESSING + name, REJECTED, name, now, fresh=False)
    error = f"{reason}\n".encode()
    if not storage.create_exclusive(f"{REJECTED}{target}.error.txt", error):  # an operator's leftover
        storage.create_exclusive(f"{REJECTED}{target}.{secrets.token_hex(3)}.error.txt", error)
    return RejectedSpec(target, reason)


def intake(
    storage: Storage, now: datetime | None = None, policy: Policy | None = None, *, only_moved: bool = False
) -> tuple[list[AcceptedSpec], list[RejectedSpec]]:
    """Move every pending inbox spec to ``processing/``, then validate everything there (new specs and any
    left by an earlier night): valid ones are returned to run, the rest move to ``inbox/rejected/``.

    ``only_moved`` validates only the specs this call moved (an intake woken by a spec's arrival, which may run
    beside another intake): what an earlier batch left in ``processing/`` stays for the nightly batch.

    Per-file problems never raise; a storage failure does (the batch is retried as a whole, nothing moved
    twice: what is already in ``processing/`` is simply examined again). Batches may run at once: a file
    another batch took first is skipped, and a spec both trigger is one run (its run id is its content)."""
    now = now or datetime.now(UTC)
    moved = []
    for name in pending_specs(storage):
        try:
            moved.append(move_unique(storage, INBOX + name, PROCESSING, name, now, fresh=True))
        except ObjectNotFound:
            continue  # gone since the listing (taken by someone else): nothing to do
    accepted: list[AcceptedSpec] = []
    rejected: list[RejectedSpec] = []
    runs: dict[str, str] = {}
    for name in sorted(moved) if only_moved else _names(storage, PROCESSING):
        try:
            conf = validate_spec(read_spec(storage, PROCESSING + name), policy)
            run_id = run_id_for(conf)
            if run_id in runs:
                raise SpecError(f"the same spec as {runs[run_id]} in this batch (run {run_id})")
        except ObjectNotFound:
            continue  # gone since the listing
        except SpecError as exc:
            with contextlib.suppress(ObjectNotFound):  # another batch settled it meanwhile
                rejected.append(_reject(storage, name, str(exc), now))
            continue
        runs[run_id] = name
        accepted.append(AcceptedSpec(name, run_id, conf))
    return accepted, rejected


def settle(storage: Storage, name: str, outcome: Outcome, now: datetime | None = None) -> str:
    """Move a processed spec to ``done/`` or ``failed/`` (a fresh name if its own is taken); returns its key."""
    folder = DONE if outcome == "done" else FAILED
    if not storage.exists(PROCESSING + name):  # settled before (a retry): it kept its name unless taken
        return folder + name
    return folder + move_unique(
        storage, PROCESSING + name, folder, name, now or datetime.now(UTC), fresh=False
    )
