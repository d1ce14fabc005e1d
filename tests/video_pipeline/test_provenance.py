"""A run's lineage in plain values: the spec, audio track and models in; every stored output out, named in
its storage namespace as OpenLineage names objects; credits and this run's decisions in the facet."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from video_pipeline.models import Decision, FinalVideo, JobSpec, Manifest, RunRecord, SpendEvent, VideoSegment
from video_pipeline.provenance import DatasetRef, run_provenance, storage_dataset

RUN = "manual__2026-11-30"
JOB = JobSpec.model_validate(
    {
        "job_id": "fox",
        "title": "Fox",
        "segments": [{"prompt": "A fox"}, {"prompt": "A hare"}],
        "budget_credits": 500,
        "finishing": {"audio_key": "assets/music.mp3"},
    }
)
AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def segment(index: int, clip_provider: str) -> VideoSegment:
    return VideoSegment(
        index=index,
        prompt="p",
        duration_s=5,
        seed=index,
        image_key=f"jobs/fox/images/{index:03d}.png",
        clip_key=f"jobs/fox/clips/{index:03d}.mp4",
        image_provider="storyboard",
        image_model="card",
        clip_provider=clip_provider,
        clip_model="gen4_turbo" if clip_provider == "runway" else "ken-burns",
    )


def manifest() -> Manifest:
    spend = [
        SpendEvent(seq=1, event="reserved", credits=25.0, total=25.0, run_id=RUN, stage="clips", index=1),
        SpendEvent(seq=2, event="reserved", credits=10.0, total=35.0, run_id="older", stage="clips", index=2),
    ]
    decisions = [
        Decision(stage="images", decision="redo", segments=[2], via="ui", by="ana", at=AT, run_id=RUN),
        Decision(
            stage="images", decision="approve", via="variable", by="variable", at=AT, round=2, run_id=RUN
        ),
        Decision(stage="images", decision="reject", via="ui", by="bo", at=AT, run_id="older"),
    ]
    final = FinalVideo(
        key="jobs/fox/final.mp4",
        duration_s=10.0,
        width=1280,
        height=720,
        codec="h264",
        size_bytes=1,
        poster_key="jobs/fox/final-poster.jpg",
        subtitles_key="jobs/fox/final.srt",
    )
    return Manifest(
        job=JOB,
        run_id=RUN,
        segments=[segment(1, "runway"), segment(2, "storyboard")],
        decisions=decisions,
        runs=[RunRecord(run_id="older", credits_spent=10.0), RunRecord(run_id=RUN, credits_spent=25.0)],
        spend=spend,
        credits_spent=35.0,
        credits_estimate=60.0,
        final=final,
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://bucket/pipeline", ("s3://bucket", "pipeline/jobs/a/final.mp4")),
        ("s3://bucket", ("s3://bucket", "jobs/a/final.mp4")),
        ("file:///srv/video%20data", ("file", "/srv/video data/jobs/a/final.mp4")),
    ],
)
def test_storage_objects_are_named_as_openlineage_names_them(url: str, expected: tuple[str, str]) -> None:
    ref = storage_dataset(url, "jobs/a/final.mp4")
    assert (ref.namespace, ref.name) == expected


def test_an_unknown_storage_has_no_dataset_name() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        storage_dataset("ftp://host/x", "k")


def test_inputs_are_the_spec_the_audio_track_and_each_model_once() -> None:
    inputs = run_provenance("s3://bucket/pipeline", manifest(), RUN).inputs
    spec, *rest = inputs
    assert (spec.namespace, spec.name) == ("video-pipeline", "jobs/fox/spec")
    assert spec.version and len(spec.version) == 16
    assert [(r.namespace, r.name) for r in rest] == [
        ("s3://bucket", "pipeline/assets/music.mp3"),
        ("video-provider://storyboard", "card"),
        ("video-provider://runway", "gen4_turbo"),
        ("video-provider://storyboard", "ken-burns"),
    ]


def test_the_spec_version_follows_its_content() -> None:
    changed = manifest()
    changed.job = JOB.model_copy(update={"title": "Another fox"})
    first = run_provenance("s3://b", manifest(), RUN).inputs[0]
    second = run_provenance("s3://b", changed, RUN).inputs[0]
    assert first.name == second.name and first.version != second.version


def test_outputs_are_every_stored_object_in_the_storage_namespace() -> None:
    outputs = run_provenance("file:///data", manifest(), RUN).outputs
    assert [o.name for o in outputs] == [
        "/data/jobs/fox/images/001.png",
        "/data/jobs/fox/clips/001.mp4",
        "/data/jobs/fox/images/002.png",
        "/data/jobs/fox/clips/002.mp4",
        "/data/jobs/fox/final.mp4",
        "/data/jobs/fox/final-poster.jpg",
        "/data/jobs/fox/final.srt",
        "/data/jobs/fox/manifest.json",
    ]
    assert {o.namespace for o in outputs} == {"file"}
    assert outputs[4] == DatasetRef("file", "/data/jobs/fox/final.mp4", description="final video")


def test_the_facet_has_this_runs_credits_and_decisions_only() -> None:
    facet = run_provenance("s3://b", manifest(), RUN).facet
    assert facet["credits"] == {
        "estimate": 60.0,
        "spent": 25.0,
        "spentByStage": {"narration": 0.0, "images": 0.0, "clips": 25.0},
        "spentByJob": 35.0,
        "lostByJob": 0.0,
        "budget": 500.0,
    }
    assert [(d["decision"], d["by"], d["via"], d["round"]) for d in facet["decisions"]] == [
        ("redo", "ana", "ui", 1),
        ("approve", "variable", "variable", 2),
    ]
    assert facet["decisions"][0]["segments"] == [2] and facet["decisions"][0]["at"] == AT.isoformat()
    assert (facet["jobId"], facet["segments"]) == ("fox", 2)
