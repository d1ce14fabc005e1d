"""The review page's HTML: hostile text stays text, takes and their pick, the controls, phone layout markup,
the not-a-gate page and the Content-Security-Policy."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from html.parser import HTMLParser

from video_pipeline.contact_sheets import sheet_pages
from video_pipeline.models import Decision, JobSettings, VideoSegment
from video_pipeline.review_page import (
    PAGE_SIZE,
    Answer,
    Assets,
    ReviewView,
    content_security_policy,
    origin_of,
    render_not_a_gate,
    render_review_page,
    render_segments,
    takes_of,
)

HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>\"' & </textarea>"
ASSETS = Assets(
    "/vp/static/review.js", "/vp/static/review.css", "/api/v2/dags/d/dagRuns/r/taskInstances/t/-1/hitlDetails"
)


def segment(index: int, **fields: object) -> VideoSegment:
    base: dict[str, object] = {
        "index": index,
        "prompt": f"scene {index}",
        "duration_s": 4,
        "seed": index,
        "image_key": f"jobs/j/images/{index:03d}.png",
        "clip_key": f"jobs/j/clips/{index:03d}.mp4",
    }
    base.update(fields)
    return VideoSegment.model_validate(base)


def view(segments: list[VideoSegment], **fields: object) -> ReviewView:
    args: dict[str, object] = {
        "job": JobSettings.model_validate({"job_id": "j", "title": "A fox"}),
        "stage": "clips",
        "run_id": "manual__1",
        "segments": segments,
        "url_for": lambda key: f"/vp/files/{key}",
        "assets": ASSETS,
    }
    args.update(fields)
    return ReviewView(**args)  # type: ignore[arg-type]


class Parsed(HTMLParser):
    """Every tag with its attributes, and the text outside tags."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def test_hostile_text_is_shown_as_text_and_never_becomes_markup() -> None:
    job = JobSettings.model_validate({"job_id": "j", "title": HOSTILE[:200]})
    seg = segment(1, prompt=HOSTILE, motion_prompt=HOSTILE, narration=HOSTILE)
    redo = Decision(stage="clips", decision="redo", segments=[1], prompts={1: HOSTILE}, by=HOSTILE, via="ui")
    html = render_review_page(
        view([seg], job=job, decisions=[redo], notice=HOSTILE, answer=Answer("Approve", HOSTILE, None))
    )
    page = Parsed(html)
    assert [attrs.get("src") for attrs in page.all("script")] == ["/vp/static/review.js"]  # only ours
    assert page.all("img") == [] and "onerror" not in html.replace("onerror=alert", "")  # no img from text
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert not any("on" + event in html for event in ("click=", "load=", "error=x"))
    assert HOSTILE in "".join(page.text)  # reads exactly as typed
    assert "style=" not in html and "<style" not in html  # nothing inline: the CSP forbids it


def test_a_prompt_in_the_edit_box_cannot_close_it() -> None:
    page = Parsed(render_review_page(view([segment(2, motion_prompt=HOSTILE)])))
    (edit,) = [a for n, a in page.tags if n == "textarea" and a.get("id") == "prompt-2"]
    assert edit["data-original"] == HOSTILE  # the attribute holds the whole text, unescaped by the parser
    assert [n for n, a in page.tags if n == "textarea"].count("textarea") == 2  # the edit box and the note


def test_the_first_three_segments_are_on_top_and_every_clip_loads_lazily() -> None:
    html = render_review_page(view([segment(i) for i in range(1, 13)]))
    first = html.index('class="first"')
    assert [int(m) for m in re.findall(r'id="segment-(\d+)"', html[first : html.index('class="rest"')])] == [
        1,
        2,
        3,
    ]
    videos = Parsed(html).all("video")
    assert len(videos) == 12
    assert all(v["preload"] == "none" and "controls" in v for v in videos)
    assert videos[0]["src"] == "/vp/files/jobs/j/clips/001.mp4"
    assert videos[0]["poster"] == "/vp/files/jobs/j/images/001.png"  # the image the clip was made from


def test_the_images_gate_shows_images_full_size_with_a_link() -> None:
    page = Parsed(render_review_page(view([segment(1)], stage="images")))
    assert page.all("video") == []
    (image,) = page.all("img")
    assert image["src"] == "/vp/files/jobs/j/images/001.png"
    assert page.all("a")[0]["href"] == image["src"]


def test_takes_side_by_side_with_one_pick_per_segment_defaulting_to_the_segment_s_pick() -> None:
    takes = [f"jobs/j/clips/004-t{n}.mp4" for n in (1, 2, 3)]
    page = Parsed(render_review_page(view([segment(4, clip_takes=takes, clip_pick=2), segment(5)])))
    radios = [a for a in page.all("input") if a.get("type") == "radio"]
    assert [(r["name"], r["value"], "checked" in r) for r in radios] == [
        ("pick-4", "1", False),
        ("pick-4", "2", True),
        ("pick-4", "3", False),
    ]
    assert [v["src"] for v in page.all("video")][:3] == [f"/vp/files/{k}" for k in takes]
    assert takes_of(segment(5), "clips") == (["jobs/j/clips/005.mp4"], 1)  # one take: no choice offered
    assert takes_of(segment(6, image_takes=["a", "b"]), "images") == (["a", "b"], 1)


def test_redo_controls_and_buttons_while_the_gate_waits_only() -> None:
    waiting = Parsed(render_review_page(view([segment(1), segment(2)])))
    boxes = [a for a in waiting.all("input") if a.get("type") == "checkbox"]
    assert [b["value"] for b in boxes] == ["1", "2"]
    assert {b.get("id") for b in waiting.all("button")} == {"approve", "redo", "reject"}
    (main,) = waiting.all("main")
    assert main["data-waiting"] == "true" and main["data-hitl"] == ASSETS.hitl_url

    answered = render_review_page(
        view([segment(1)], answer=Answer("Approve", "ana", datetime(2026, 11, 30, 12, 0, tzinfo=UTC)))
    )
    assert "Already answered by ana at 2026-11-30 12:00 UTC: Approve." in answered
    assert "<button" not in answered and 'data-waiting="false"' in answered
    closed = render_review_page(view([segment(1)], waiting=False))
    assert "<button" not in closed and "not waiting" in closed


def test_costs_and_redo_history_are_shown() -> None:
    redo = Decision(stage="clips", decision="redo", segments=[1], prompts={1: "slow pan"}, by="ana", via="ui")
    html = render_review_page(
        view([segment(1, credits=12.5)], decisions=[redo], stage_credits=40, job_credits=55, next_estimate=0)
    )
    text = "".join(Parsed(html).text)
    assert "Clips so far: 40 credits (the job: 55)" in text
    assert "the next stage (assembly) has no provider cost" in text
    assert "Round 1, ana via ui: “slow pan”" in text and "Redone 1×" in text
    assert "12.5" in text
    images = render_review_page(view([segment(1)], stage="images", next_stage="clips", next_estimate=60))
    assert "estimate for the next stage (clips): <strong>60</strong>" in images


def test_phone_layout_markup() -> None:
    html = render_review_page(view([segment(1)]))
    (meta,) = [a for a in Parsed(html).all("meta") if a.get("name") == "viewport"]
    assert meta["content"] == "width=device-width, initial-scale=1"
    assert Parsed(html).all("link")[0]["href"] == "/vp/static/review.css"


def test_a_task_that_is_not_a_gate_gets_a_short_page() -> None:
    html = render_not_a_gate("validate_job is a PythonOperator, not an approval gate. <b>x</b>", ASSETS)
    assert "<h1>Not a review gate</h1>" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<button" not in html


def test_content_security_policy_allows_only_our_assets_and_the_media_origins() -> None:
    policy = content_security_policy({"https://bucket.s3.example.com"})
    assert "script-src 'self';" in policy and "style-src 'self';" in policy
    assert "'unsafe-inline'" not in policy and "default-src 'none'" in policy
    assert "media-src 'self' https://bucket.s3.example.com;" in policy
    assert "connect-src 'self'" in policy and "frame-ancestors 'self'" in policy
    assert origin_of("https://h.example:9000/b/k?X-Amz=1") == "https://h.example:9000"
    assert origin_of("/video-previews/files/x") is None and origin_of("javascript:alert(1)") is None


def test_a_long_gate_renders_its_first_page_and_the_rest_in_pages_of_50() -> None:
    segments = [segment(i) for i in range(1, 121)]
    sheets = sheet_pages(JobSettings.model_validate({"job_id": "j", "title": "A fox"}), "clips", segments)
    shown = view(segments, sheets=sheets, assets=replace(ASSETS, segments_url="/vp/review/d/r/t/-1/segments"))
    page = render_review_page(shown)
    assert page.count('<article class="segment"') == PAGE_SIZE == 50
    assert 'id="segment-50"' in page and 'id="segment-51"' not in page
    assert "<h2>Segments 4–120</h2>" in page
    assert (
        '<div class="more" id="more" data-url="/vp/review/d/r/t/-1/segments" data-next="50">'
        '<button type="button" id="load-more">Show segments 51–100 (of 120)</button></div>'
    ) in page
    assert page.count('preload="none"') == 50
    links = re.findall(r'<li><a href="([^"]+)"[^>]*>([^<]+)</a></li>', page)
    assert [label for _, label in links] == ["#1–#100", "#101–#120"]
    assert all(href == f"/vp/files/{s.key}" for (href, _), s in zip(links, sheets, strict=True))

    second = render_segments(shown, 50)
    assert second.startswith('<div id="chunk" data-next="100" data-label="Show segments 101–120 (of 120)">')
    assert re.findall(r'id="segment-(\d+)"', second) == [str(i) for i in range(51, 101)]
    assert 'id="redo-51"' in second  # the same controls as the page's own cards
    last = render_segments(shown, 100)
    assert last.startswith('<div id="chunk" data-next="" data-label="">')
    assert re.findall(r'id="segment-(\d+)"', last) == [str(i) for i in range(101, 121)]

    # What the page weighs does not grow with the number of segments past the first page.
    thousand = [segment(i) for i in range(1, 1001)]
    big = render_review_page(view(thousand, assets=shown.assets))
    small = render_review_page(view(thousand[:50], assets=shown.assets))
    assert len(big) < len(small) + 400, (len(small), len(big))


def test_hostile_text_in_fetched_segments_stays_text() -> None:
    segments = [segment(i, prompt=HOSTILE) for i in range(1, 61)]
    chunk = render_segments(view(segments), 50)
    parsed = Parsed(chunk)
    assert not [t for t, _ in parsed.tags if t in ("script", "img")]
    assert HOSTILE in "".join(parsed.text)
