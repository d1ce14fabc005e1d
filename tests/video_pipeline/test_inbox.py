from __future__ import annotations

import json
import os
import random
import re
import stat
import time
from collections import Counter
from pathlib import Path
from typing import IO

import boto3
import pytest
from moto import mock_aws

from video_pipeline import inbox
from video_pipeline.policy import Policy
from video_pipeline.storage import LocalStorage, open_storage

STAMPED = re.compile(r"(?P<stem>.*)\.\d{8}T\d{6}Z-[0-9a-f]{6}\.json")
SECRET = b"RUNWAY_API_KEY=key_never_copied_0xdeadbeef"


def spec(job_id: str, **extra: object) -> bytes:
    return json.dumps({"job_id": job_id, "title": job_id, "segments": [{"prompt": "p"}], **extra}).encode()


def original(name: str) -> str:
    """The name a file had in the inbox: ``a.20261201T020000Z-3fa9c1.json`` → ``a.json``."""
    match = STAMPED.fullmatch(name)
    assert match, name
    return f"{match['stem']}.json"


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    store = LocalStorage(tmp_path)
    store.put_bytes("inbox/a.json", spec("job-a"))
    store.put_bytes("inbox/b.json", spec("job-b", ratio="1280:720"))
    store.put_bytes("inbox/c.json", spec("job-c", seed=3))
    store.put_bytes("inbox/bad-json.json", b"{not json")
    store.put_bytes("inbox/bad-field.json", spec("../escape"))
    store.put_bytes("inbox/notes.txt", b"ignored: not a .json")
    return store


def test_intake_moves_valid_and_invalid_specs(storage: LocalStorage) -> None:
    accepted, rejected = inbox.intake(storage)
    assert [original(a.name) for a in accepted] == ["a.json", "b.json", "c.json"]
    assert sorted(original(r.name) for r in rejected) == ["bad-field.json", "bad-json.json"]
    assert sorted(storage.list("processing/")) == sorted(f"processing/{a.name}" for a in accepted)
    assert storage.get_bytes(f"processing/{accepted[0].name}") == spec("job-a")  # byte for byte
    errors = {
        original(r.name): storage.get_bytes(f"inbox/rejected/{r.name}.error.txt").decode() for r in rejected
    }
    assert "job_id" in errors["bad-field.json"]
    assert "JSON" in errors["bad-json.json"]
    bad_json = next(r for r in rejected if original(r.name) == "bad-json.json")
    assert storage.get_bytes(f"inbox/rejected/{bad_json.name}") == b"{not json"  # kept, byte for byte
    assert inbox.pending_specs(storage) == []
    assert storage.exists("inbox/notes.txt")


def test_second_intake_finds_nothing_new(storage: LocalStorage) -> None:
    first, _ = inbox.intake(storage)
    again, rejected = inbox.intake(storage)  # the specs still in processing/ are offered again, unchanged
    assert again == first and rejected == []


def test_run_id_is_stable_per_content() -> None:
    a = json.loads(spec("job-a"))
    assert inbox.run_id_for(a) == inbox.run_id_for(dict(a))
    assert inbox.run_id_for(a) != inbox.run_id_for({**a, "seed": 9})
    assert inbox.run_id_for(a).startswith("nightly__job-a__")


def test_settle(storage: LocalStorage) -> None:
    accepted, _ = inbox.intake(storage)
    a, b = accepted[0].name, accepted[1].name
    assert inbox.settle(storage, a, "done") == f"done/{a}"
    assert inbox.settle(storage, b, "failed") == f"failed/{b}"
    assert inbox.settle(storage, a, "done") == f"done/{a}"  # a retried settle: already there
    assert storage.get_bytes(f"done/{a}") == spec("job-a") and storage.exists(f"failed/{b}")
    assert not storage.exists(f"processing/{a}")


def test_a_later_file_with_the_same_name_overwrites_nothing(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    for night in range(3):
        storage.put_bytes("inbox/fox.json", spec("fox", seed=night))
        storage.put_bytes("inbox/broken.json", b"{" * (night + 1))
        accepted, rejected = inbox.intake(storage)
        assert len(accepted) == 1 and len(rejected) == 1
        inbox.settle(storage, accepted[0].name, "done" if night % 2 == 0 else "failed")
    kept = [storage.get_bytes(k) for k in [*storage.list("done/"), *storage.list("failed/")]]
    assert sorted(kept) == sorted(spec("fox", seed=n) for n in range(3))
    rejected_specs = [k for k in storage.list("inbox/rejected/") if not k.endswith(".error.txt")]
    assert sorted(storage.get_bytes(k) for k in rejected_specs) == [b"{", b"{{", b"{{{"]
    assert all(storage.exists(f"{k}.error.txt") for k in rejected_specs)


def test_a_settled_name_that_is_taken_gets_a_fresh_one(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put_bytes("inbox/fox.json", spec("fox"))
    (accepted,), _ = inbox.intake(storage)
    storage.put_bytes(f"done/{accepted.name}", b"someone else's")
    target = inbox.settle(storage, accepted.name, "done")
    assert target != f"done/{accepted.name}" and storage.get_bytes(target) == spec("fox")
    assert storage.get_bytes(f"done/{accepted.name}") == b"someone else's"


def test_s3_inbox_moves_without_overwriting(aws_env: None) -> None:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="bucket")
        storage = open_storage("s3://bucket/media", s3_client=client)
        for night in range(2):
            storage.put_bytes("inbox/fox.json", spec("fox", seed=night))
            storage.put_bytes("inbox/bad.json", b"[" * 10_000)
            (accepted,), (rejected,) = inbox.intake(storage)
            assert "nested" in rejected.error
            inbox.settle(storage, accepted.name, "done")
        assert sorted(storage.get_bytes(k) for k in storage.list("done/")) == [
            spec("fox", seed=n) for n in range(2)
        ]
        assert len(list(storage.list("inbox/rejected/"))) == 4  # two specs, two error files
        assert list(storage.list("processing/")) == [] and inbox.pending_specs(storage) == []


class ReplacedBeforeTheMove(LocalStorage):
    """A writer replaces the inbox file after intake listed it (after any read a validator could have
    made), just before it is moved."""

    replacement = spec("job-a", title="replaced", budget_credits=-1)  # invalid: budget below 0

    def move(self, src_key: str, dst_key: str) -> bool:
        if src_key.startswith(inbox.INBOX) and not src_key.startswith(inbox.REJECTED):
            self.put_bytes(src_key, self.replacement)
        return super().move(src_key, dst_key)


class ReplacedAfterTheMove(LocalStorage):
    """A writer drops a new file under the same name just after the old one was moved out of the inbox."""

    replacement = b'{"job_id": "evil"'

    def move(self, src_key: str, dst_key: str) -> bool:
        moved = super().move(src_key, dst_key)
        if src_key == "inbox/a.json":
            self.put_bytes(src_key, self.replacement)
        return moved


def test_a_spec_replaced_before_the_move_is_validated_as_replaced(tmp_path: Path) -> None:
    storage = ReplacedBeforeTheMove(tmp_path)
    storage.put_bytes("inbox/a.json", spec("job-a"))
    accepted, (rejected,) = inbox.intake(storage)
    assert accepted == []
    assert "budget_credits" in rejected.error
    assert storage.get_bytes(f"inbox/rejected/{rejected.name}") == storage.replacement
    assert list(storage.list("processing/")) == []


def test_a_spec_replaced_after_the_move_waits_for_the_next_intake(tmp_path: Path) -> None:
    storage = ReplacedAfterTheMove(tmp_path)
    storage.put_bytes("inbox/a.json", spec("job-a"))
    (accepted,), rejected = inbox.intake(storage)
    assert rejected == [] and accepted.conf["job_id"] == "job-a"
    assert storage.get_bytes(f"processing/{accepted.name}") == spec("job-a")
    assert storage.get_bytes("inbox/a.json") == storage.replacement  # not lost: next night's
    again, (late,) = inbox.intake(storage)
    assert again == [accepted] and storage.get_bytes(f"inbox/rejected/{late.name}") == storage.replacement


def test_links_and_fifos_in_the_inbox_are_moved_aside_unread(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "root")
    secret = tmp_path / "secrets.env"
    secret.write_bytes(SECRET)
    (storage.root / "inbox").mkdir()
    os.symlink(secret, storage.root / "inbox" / "link.json")
    os.symlink(tmp_path, storage.root / "inbox" / "folder.json")
    os.symlink(tmp_path / "missing", storage.root / "inbox" / "dangling.json")
    os.mkfifo(storage.root / "inbox" / "pipe.json")
    os.symlink(secret, storage.root / "inbox" / "not-a-spec.txt")
    accepted, rejected = inbox.intake(storage)
    assert accepted == []
    reasons = {original(r.name): r.error for r in rejected}
    assert set(reasons) == {"link.json", "folder.json", "dangling.json", "pipe.json"}
    for name in ("link.json", "folder.json", "dangling.json"):
        assert "symbolic link" in reasons[name] and "without reading" in reasons[name]
    assert "fifo" in reasons["pipe.json"]
    for r in rejected:
        moved = storage.root / "inbox" / "rejected" / r.name
        assert stat.S_ISLNK(moved.lstat().st_mode) or stat.S_ISFIFO(moved.lstat().st_mode)
    assert (storage.root / "inbox" / "not-a-spec.txt").is_symlink()  # not a spec: left alone
    everything = [p.read_bytes() for p in storage.root.rglob("*") if p.is_file() and not p.is_symlink()]
    assert not any(SECRET in data for data in everything)


class Unreadable(LocalStorage):
    def open_file(self, key: str) -> IO[bytes]:
        if key.endswith(".json") and "locked" in key:
            raise PermissionError(13, "Permission denied", key)
        return super().open_file(key)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b" " * inbox.MAX_SPEC_BYTES + spec("big"), "too big"),
        (b"[" * 100_000 + b"]" * 100_000, "nested more than"),
        (
            json.dumps(
                {"job_id": "x", "title": "t", "segments": [{"prompt": "p", "x": [[[[[[[[]]]]]]]] * 5}]}
            )
            .encode()
            .replace(b"[]", b"[" * 40 + b"]" * 40),
            "nested more than",
        ),
        (b'{"job_id": "x", "seed": ' + b"9" * 5000 + b"}", "not valid JSON"),
        (b'{"job_id": "caf\xe9"}', "UTF-8"),
        (b"[1, 2, 3]", "JSON object"),
        (b'"just a string"', "JSON object"),
        (b"", "not valid JSON"),
        (spec("job-x", segments=[]), "segments"),
    ],
)
def test_every_bad_file_is_rejected_with_its_reason(tmp_path: Path, content: bytes, reason: str) -> None:
    storage = LocalStorage(tmp_path)
    storage.put_bytes("inbox/bad.json", content)
    storage.put_bytes("inbox/good.json", spec("good"))
    started = time.monotonic()
    accepted, (rejected,) = inbox.intake(storage)
    assert time.monotonic() - started < 2
    assert [original(a.name) for a in accepted] == ["good.json"]
    assert reason in rejected.error
    assert storage.get_bytes(f"inbox/rejected/{rejected.name}") == content
    assert reason in storage.get_bytes(f"inbox/rejected/{rejected.name}.error.txt").decode()


def test_an_unreadable_file_is_rejected(tmp_path: Path) -> None:
    storage = Unreadable(tmp_path)
    storage.put_bytes("inbox/locked.json", spec("locked"))
    storage.put_bytes("inbox/open.json", spec("open"))
    accepted, (rejected,) = inbox.intake(storage)
    assert [a.conf["job_id"] for a in accepted] == ["open"]
    assert "unreadable: Permission denied" in rejected.error


def test_a_byte_order_mark_is_fine() -> None:
    assert inbox.validate_spec(b"\xef\xbb\xbf" + spec("bom"))["job_id"] == "bom"


def test_an_invalid_leftover_in_processing_is_rejected_not_raised(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put_bytes("processing/old.json", b"[" * 50_000)  # left there by an older version
    storage.put_bytes("processing/kept.json", spec("kept"))
    accepted, (rejected,) = inbox.intake(storage)
    assert [a.name for a in accepted] == ["kept.json"]
    assert rejected.name == "old.json" and "nested" in rejected.error


def test_a_duplicate_in_one_batch_is_rejected_as_such(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put_bytes("inbox/one.json", spec("same"))
    storage.put_bytes("inbox/two.json", spec("same"))
    (accepted,), (rejected,) = inbox.intake(storage)
    assert original(accepted.name) == "one.json" and original(rejected.name) == "two.json"
    assert accepted.name in rejected.error and accepted.run_id in rejected.error


@pytest.mark.timeout(30)  # a quadratic scan of the megabyte inputs below would take hours, not seconds
def test_json_depth_skips_strings() -> None:
    assert inbox.json_depth('{"a": [1, {"b": "[[[[{{{{"}]}') == 3
    assert inbox.json_depth(r'{"a": "\"[[[[\\", "b": [[]]}') == 3
    assert inbox.json_depth('{"a": "never closed [[[[[[') == 1
    assert inbox.json_depth("[" * 10_000, limit=32) == 33  # stops counting past the limit
    assert inbox.json_depth('"' + '\\"' * 1_000_000) == 0  # one unterminated string: one pass, not quadratic
    assert inbox.json_depth("[]," * 700_000) == 1


# -- a batch of hostile files: every file ends up in exactly one place, nothing is lost ----------------


def random_batch(rng: random.Random, root: Path, outside: Path, night: int) -> dict[str, tuple[str, bytes]]:
    """Drop files of every kind into the inbox; returns name → (kind, content or link target)."""
    dropped: dict[str, tuple[str, bytes]] = {}
    valid = [spec(f"job-{night}-{n}", seed=rng.randrange(1000)) for n in range(3)]
    for n in range(rng.randrange(12, 20)):
        name = rng.choice([f"night{night}-{n}", f"same-{n % 4}", f"ü-{n}", "x" * 200]) + ".json"
        if name in dropped:
            continue
        kind = rng.choice(
            ["valid", "duplicate", "random", "deep", "huge", "invalid", "link", "fifo", "number"]
        )
        path = root / "inbox" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "link":
            target = rng.choice([outside / "secret.env", outside, outside / "missing", root / "jobs"])
            os.symlink(target, path)
            dropped[name] = (kind, str(target).encode())
            continue
        if kind == "fifo":
            os.mkfifo(path)
            dropped[name] = (kind, b"")
            continue
        content = {
            "valid": lambda: rng.choice(valid),
            "duplicate": lambda: valid[0],
            "random": lambda: rng.randbytes(rng.randrange(0, 3000)),
            "deep": lambda: b'{"job_id": "d", "x": ' + b"[" * rng.randrange(30, 200_000) + b"]}",
            "huge": lambda: spec("huge", title="t" * (inbox.MAX_SPEC_BYTES + rng.randrange(1, 1000))),
            "invalid": lambda: spec(
                rng.choice(["UPPER", "", "a" * 64, "ok"]), seed=rng.choice([-1, 1.5, "7", None])
            ),
            "number": lambda: b"[" + b"1" * rng.randrange(4000, 6000) + b"]",
        }[kind]()
        path.write_bytes(content)
        dropped[name] = (kind, content)
    return dropped


def snapshot(root: Path, folders: tuple[str, ...]) -> Counter[tuple[str, bytes]]:
    """Every spec entry in these folders as (kind, content or link target), error files aside."""
    found: Counter[tuple[str, bytes]] = Counter()
    for folder in folders:
        base = root / folder
        if not base.is_dir():
            continue
        for entry in base.iterdir():
            if entry.name.endswith(".error.txt") or (entry.is_dir() and not entry.is_symlink()):
                continue
            mode = entry.lstat().st_mode
            if stat.S_ISLNK(mode):
                found["link", os.readlink(entry).encode()] += 1
            elif stat.S_ISFIFO(mode):
                found["fifo", b""] += 1
            else:
                found["file", entry.read_bytes()] += 1
    return found


@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", range(1, 6))
def test_random_hostile_batches_lose_nothing(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.env").write_bytes(SECRET)
    storage = LocalStorage(root)
    expected: Counter[tuple[str, bytes]] = Counter()
    for night in range(5):
        dropped = random_batch(rng, root, outside, night)
        for kind, content in dropped.values():
            expected["link" if kind == "link" else "fifo" if kind == "fifo" else "file", content] += 1
        accepted, rejected = inbox.intake(storage)  # never raises

        assert inbox.pending_specs(storage) == []
        processing = (
            {name for name in os.listdir(root / "processing")} if (root / "processing").exists() else set()
        )
        assert {a.name for a in accepted} == processing
        assert len({a.run_id for a in accepted}) == len(accepted)
        for a in accepted:
            assert inbox.validate_spec(storage.get_bytes(f"processing/{a.name}")) == a.conf
        for r in rejected:
            assert (root / "inbox/rejected" / f"{r.name}.error.txt").read_text().strip() == r.error.strip()
        # every dropped file is in exactly one place, byte for byte (links as links, fifos as fifos)
        assert snapshot(root, ("processing", "inbox/rejected", "done", "failed")) == expected
        for a in accepted:  # settle some, keep others in processing for the next night
            if rng.random() < 0.7:
                inbox.settle(storage, a.name, rng.choice(["done", "failed"]))
        assert snapshot(root, ("processing", "inbox/rejected", "done", "failed")) == expected

    regular = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    assert not any(SECRET in p.read_bytes() for p in regular)


def test_specs_outside_the_deployment_policy_are_rejected_at_intake(tmp_path: Path) -> None:
    """A nightly spec that validate_job would refuse (gates skipped, a paid job without a budget, a budget over
    the cap) waits in rejected/ with the rule named instead of triggering a run that fails."""
    store = LocalStorage(tmp_path)
    store.put_bytes("inbox/ungated.json", spec("ungated", approval="none"))
    store.put_bytes("inbox/unbudgeted.json", spec("unbudgeted", provider="runway"))
    store.put_bytes("inbox/over-cap.json", spec("over-cap", provider="runway", budget_credits=900))
    store.put_bytes("inbox/fine.json", spec("fine", provider="runway", budget_credits=100))
    policy = Policy(nightly_approval="both", max_budget_credits=500, require_budget=True)
    accepted, rejected = inbox.intake(store, policy=policy)
    assert [original(a.name) for a in accepted] == ["fine.json"]
    reasons = {original(r.name): r.error for r in rejected}
    assert "video_pipeline_nightly_approval" in reasons["ungated.json"]
    assert "video_pipeline_require_budget" in reasons["unbudgeted.json"]
    assert "video_pipeline_max_budget_credits" in reasons["over-cap.json"]
    # Without a policy (the domain default for callers that apply none) the same specs are only validated.
    store.put_bytes("inbox/ungated-again.json", spec("ungated-again", approval="none"))
    accepted, _ = inbox.intake(store)
    assert [original(a.name) for a in accepted] == ["fine.json", "ungated-again.json"]


def test_an_intake_on_arrival_takes_only_what_it_moved(tmp_path: Path) -> None:
    """A leftover of an earlier batch in processing/ is the nightly batch's; the arrival's own specs run."""
    store = LocalStorage(tmp_path)
    store.put_bytes("processing/left.20261201T020000Z-abcdef.json", spec("job-left"))
    store.put_bytes("inbox/new.json", spec("job-new"))
    accepted, rejected = inbox.intake(store, only_moved=True)
    assert [original(a.name) for a in accepted] == ["new.json"] and rejected == []
    assert store.exists("processing/left.20261201T020000Z-abcdef.json")
    accepted, _ = inbox.intake(store)  # the nightly batch takes everything in processing/
    assert sorted(str(a.conf["job_id"]) for a in accepted) == ["job-left", "job-new"]


def test_the_same_spec_dropped_twice_is_one_run(tmp_path: Path) -> None:
    """Two arrivals, one batch each: both specs get the same run id, so Airflow runs it once."""
    store = LocalStorage(tmp_path)
    store.put_bytes("inbox/a.json", spec("job-twice"))
    (first,), _ = inbox.intake(store, only_moved=True)
    store.put_bytes("inbox/a.json", spec("job-twice"))
    (second,), _ = inbox.intake(store, only_moved=True)
    assert first.run_id == second.run_id and first.name != second.name


def test_a_file_another_batch_rejected_first_is_skipped(tmp_path: Path) -> None:
    """Two batches at once (nightly and arrival) may both find one bad file: the second finds it gone."""
    store = LocalStorage(tmp_path)
    store.put_bytes("processing/bad.20261201T020000Z-abcdef.json", b"{not json")

    class RejectedMeanwhile(LocalStorage):
        def move(self, src_key: str, dst_key: str) -> bool:
            if dst_key.startswith(inbox.REJECTED):  # the other batch moved it a moment before this one
                LocalStorage.move(self, src_key, f"elsewhere/{src_key}")
            return super().move(src_key, dst_key)

    accepted, rejected = inbox.intake(RejectedMeanwhile(tmp_path))
    assert accepted == [] and rejected == []
    assert store.exists("elsewhere/processing/bad.20261201T020000Z-abcdef.json")
