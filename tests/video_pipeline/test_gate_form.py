"""The gate form's body: user text (prompts, motion prompts, narration, title, note, job id) renders as inert
text — no link, image, heading, HTML or extra table row/cell, whatever it holds.

The Airflow UI renders the body with react-markdown + remark-gfm (``skipHtml``). Here it is rendered with
markdown-it-py's CommonMark + GFM preset (tables, strikethrough, linkify with fuzzy links, raw HTML on: stricter
than the UI), and GFM's autolink literals are checked with the two patterns remark-gfm applies to the text
after escapes are resolved (copied from the UI bundle, ``mdast-util-gfm-autolink-literal``).
"""

from __future__ import annotations

import html
import random
from collections import Counter
from html.parser import HTMLParser
from typing import Any

import regex
from markdown_it import MarkdownIt

from video_pipeline.contact_sheets import ContactSheet, sheet_pages
from video_pipeline.gate_form import (
    WORD_JOINER,
    GatePreview,
    PreviewItem,
    gate_body,
    gate_subject,
    plain_text,
    takes_line,
)
from video_pipeline.models import JobSpec, VideoSegment

PREVIEWS = "https://previews.test/"
#: remark-gfm's autolink literal patterns (JS: ``\w`` is ASCII; ``/gi`` and ``/gu``).
REMARK_URL = regex.compile(r"(https?://|www(?=\.))([-.\w]+)([^ \t\r\n]*)", regex.IGNORECASE | regex.ASCII)
REMARK_EMAIL = regex.compile(r"(?<=^|\s|\p{P}|\p{S})([-.\w+]+)@([-\w]+(?:\.[-\w]+)+)", regex.V0)

HOSTILE = [
    "\r",
    "\n",
    "\r\n",
    "\u2028",
    "\u2029",
    "\x0b",
    "\x0c",
    "\x85",
    "\x00",
    "\t",
    "\u202e",
    "|",
    "\\|",
    "\\",
    "![](https://evil.test/pixel.png)",
    "![x][r]\n\n[r]: https://evil.test/p.png",
    "[click here](https://evil.test/login)",
    "<https://evil.test/auto>",
    "<me@evil.test>",
    "# Approved by legal",
    "\n## Approved by legal\n",
    "Approved\n===",
    "Approved\n---",
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "<!-- c -->",
    "www.evil.test",
    "WWW.evil.test/x?y=1",
    "wwww.evil.test",
    "evil.com",
    "https://evil.test/a_b",
    "HTTP://evil.test",
    "ftp://evil.test",
    "me@evil.test",
    "mailto:me@evil.test",
    "xmpp:me@evil.test",
    "`code`",
    "``",
    "**bold**",
    "__bold__",
    "_em_",
    "*em*",
    "~~gone~~",
    "> quote",
    "- item",
    "+ item",
    "1. item",
    "1) item",
    "---",
    "***",
    "    indented code",
    "```\nfence\n```",
    "&lt;b&gt;",
    "&#60;img&#62;",
    "&copy;",
    "[^1]\n\n[^1]: note",
    "[ ] task",
    "[x]: https://evil.test",
    "  ",
    ":",
    "a  b",
]
BENIGN = "a lighthouse in fog"
MARKDOWN = MarkdownIt("gfm-like")  # CommonMark + tables + strikethrough + linkify (fuzzy links); raw HTML on


def hostile_text(rng: random.Random) -> str:
    parts = [rng.choice(HOSTILE) if rng.random() < 0.6 else rng.choice(["fox", "a quiet harbour", " ", "x"])]
    for _ in range(rng.randint(0, 8)):
        parts.append(rng.choice(HOSTILE) if rng.random() < 0.7 else chr(rng.randint(0x20, 0x7E)))
    text = "".join(parts)
    return text if plain_text(text) else text + "fox"  # a prompt has some text (the spec strips it)


class Rendered(HTMLParser):
    """Tag counts, every link/image address, and the text of each table cell, paragraph and strong."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: Counter[str] = Counter()
        self.addresses: list[str] = []
        self.cells: list[list[str]] = []
        self.paragraphs: list[str] = []
        self.strong: list[str] = []
        self._open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        self.addresses += [value or "" for name, value in attrs if name in ("href", "src")]
        if tag == "tr":
            self.cells.append([])
        elif tag in ("td", "th"):
            self.cells[-1].append("")
        elif tag == "p":
            self.paragraphs.append("")
        elif tag == "strong":
            self.strong.append("")
        self._open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        self._open.pop()

    def handle_data(self, data: str) -> None:
        for tag in self._open:
            if tag in ("td", "th"):
                self.cells[-1][-1] += data
            elif tag == "p":
                self.paragraphs[-1] += data
            elif tag == "strong":
                self.strong[-1] += data


def readable(text: str) -> str:
    """What a reviewer reads: the text on one line, without the invisible word joiners."""
    return " ".join(html.unescape(text).replace(WORD_JOINER, "").split())


def job_with(title: str, prompts: list[str]) -> JobSpec:
    return JobSpec.model_validate(
        {
            "job_id": "review-body",
            "title": title,
            "segments": [{"prompt": p.strip() or "x", "duration_s": 2} for p in prompts],
        }
    )


def render(
    title: str, prompts: list[str], motions: list[str], narrations: list[str], note: str
) -> tuple[str, Rendered, list[Any]]:
    job = job_with(title, prompts)
    segments = [
        VideoSegment(index=i, prompt=p, motion_prompt=m, narration=n, duration_s=2, seed=i)
        for i, (p, m, n) in enumerate(zip(prompts, motions, narrations, strict=True), start=1)
    ]
    preview = GatePreview(
        [ContactSheet(1, "jobs/review-body/preview/sheet.jpg", tuple(s.index for s in segments))],
        [
            PreviewItem(s.index, f"jobs/review-body/p/{s.index}.jpg", f"jobs/review-body/c/{s.index}.mp4")
            for s in segments
        ],
    )
    body = gate_body(
        job,
        "clips",
        segments,
        preview,
        lambda key: PREVIEWS + key,
        variable_key="video_approval__review-body__clips",
        credits_spent=3,
        next_stage_estimate=0,
        changed=[1],
        note=note,
    )
    tokens = MARKDOWN.parse(body)
    parsed = Rendered()
    parsed.feed(MARKDOWN.renderer.render(tokens, MARKDOWN.options, {}))
    return body, parsed, tokens


def check_inert(title: str, prompts: list[str], motions: list[str], narrations: list[str], note: str) -> None:
    count = len(prompts)
    _, baseline, _ = render(BENIGN, [BENIGN] * count, [BENIGN] * count, [BENIGN] * count, BENIGN)
    assert (
        baseline.tags["table"] == 1 and baseline.tags["tr"] == count + 1 and baseline.tags["img"] == count + 1
    )
    _, rendered, tokens = render(title, prompts, motions, narrations, note)
    case = (title, prompts, motions, narrations, note)

    # The same elements as with harmless text: no link, image, heading, list, quote, code, emphasis, rule or
    # HTML more, no row or cell more (tags counted over the whole body).
    assert rendered.tags == baseline.tags, case
    assert all(address.startswith(PREVIEWS) for address in rendered.addresses), case
    html_tokens = [
        t for block in tokens for t in [block, *(block.children or [])] if t.type.startswith("html")
    ]
    assert not html_tokens, case

    # ...and the text still reads as written, on one line.
    rows = rendered.cells[1:]
    for row, *texts in zip(rows, prompts, motions, narrations, strict=True):
        assert len(row) == 5, case
        assert [readable(cell) for cell in row[2:]] == [readable(plain_text(t)) for t in texts], case
    assert readable(rendered.strong[0]) == readable(plain_text(title)), case
    assert readable(plain_text(note)) in [readable(p.split("note: ", 1)[-1]) for p in rendered.paragraphs]

    # GFM autolink literals, as remark-gfm finds them in the text after escapes are resolved.
    for text in [*(cell for row in rows for cell in row[2:]), *rendered.paragraphs]:
        unescaped = html.unescape(text)
        assert not REMARK_URL.search(unescaped) and not REMARK_EMAIL.search(unescaped), (text, case)

    subject = gate_subject(job_with(title, prompts), "clips", 2)
    assert subject == " ".join(subject.split()) and plain_text(title) in subject


def test_every_hostile_fragment_in_every_field() -> None:
    fragments = [f"{fragment}fox" for fragment in HOSTILE]
    check_inert(
        " ".join(HOSTILE)[:150] + "fox",
        fragments,
        fragments[::-1],
        fragments[1:] + fragments[:1],
        "".join(HOSTILE),
    )


def test_fuzzed_user_text_renders_as_the_same_text_and_nothing_else() -> None:
    rng = random.Random(9)
    for _ in range(40):
        prompts, motions, narrations = ([hostile_text(rng) for _ in range(3)] for _ in range(3))
        check_inert(hostile_text(rng), prompts, motions, narrations, hostile_text(rng))


def test_a_prompt_cannot_break_out_of_its_row() -> None:
    """The two holes the audit found: ``\\r`` ended the table row, ``![](…)`` loaded an outside image."""
    prompt = "dawn\r| 9 | ![](https://evil.test/pixel.png) | [Approved by legal](https://evil.test) |"
    _, rendered, _ = render(BENIGN, [prompt, BENIGN], [BENIGN] * 2, [BENIGN] * 2, BENIGN)
    assert rendered.tags["tr"] == 3 and all(len(row) == 5 for row in rendered.cells)
    assert "evil.test" not in " ".join(rendered.addresses)
    assert (
        readable(rendered.cells[1][2])
        == "dawn | 9 | ![](https://evil.test/pixel.png) | [Approved by legal](https://evil.test) |"
    )


def test_a_stage_with_takes_says_so_and_links_each_take_the_picked_one_in_bold() -> None:
    job = JobSpec.model_validate(
        {
            "job_id": "form-k",
            "title": "t",
            "segments": [{"prompt": "a fox"}],
            "images": {"provider": "storyboard", "takes": 3},
        }
    )
    keys = [f"jobs/form-k/images/001{suffix}.png" for suffix in ("", ".t2", ".t3")]
    segment = VideoSegment(
        index=1, prompt="a fox", duration_s=5, seed=1, image_key=keys[1], image_takes=keys, image_pick=2
    )
    preview = GatePreview(
        [ContactSheet(1, "jobs/form-k/preview/sheet.jpg", (1,))], [PreviewItem(1, keys[1], keys[1])]
    )

    def body(stage: Any) -> str:
        return gate_body(
            job,
            stage,
            [segment],
            preview,
            lambda key: PREVIEWS + key,
            variable_key="video_approval__form-k__images",
            credits_spent=0,
            next_stage_estimate=0,
            changed=[],
        )

    images = body("images")
    assert "**3 takes per segment**" in images and '"picks": {"3": 2}' in images
    assert (takes_line(job, "images") or "?") in images
    cell = f"[1]({PREVIEWS}{keys[0]}) · **[2]({PREVIEWS}{keys[1]})** · [3]({PREVIEWS}{keys[2]})"
    assert f"| {cell} |" in images
    assert "| # | preview | prompt | takes |" in images
    # one take at the clips gate: no word of takes, no column
    assert takes_line(job, "clips") is None
    assert "take" not in body("clips")


def big_gate_body(count: int) -> str:
    """The images gate's body for ``count`` narrated, spoken (and cut) segments after a redo of all of them."""
    job = JobSpec.model_validate(
        {"job_id": "big", "title": "Big", "segments": [{"prompt": "p", "narration": "n", "duration_s": 2}]}
    )
    segments = [
        VideoSegment(
            index=i,
            prompt=f"Scene {i}: a lantern over dark water",
            narration=f"Line {i} of the narration.",
            duration_s=2,
            seed=i,
            narration_s=2.5,
            narration_key=f"jobs/big/narration/{i:03d}.wav",
            image_key=f"jobs/big/images/{i:03d}.png",
        )
        for i in range(1, count + 1)
    ]
    preview = build_preview_of(job, segments)
    return gate_body(
        job,
        "images",
        segments,
        preview,
        lambda key: PREVIEWS + key,
        variable_key="video_approval__big__images",
        credits_spent=0,
        next_stage_estimate=0,
        changed=list(range(1, count + 1)),
        review_url="https://airflow.test/review",
    )


def build_preview_of(job: JobSpec, segments: list[VideoSegment]) -> GatePreview:
    items = [PreviewItem(s.index, str(s.image_key), str(s.image_key)) for s in segments[:5]]
    return GatePreview(sheet_pages(job, "images", segments), items)


def test_the_body_stays_small_at_1000_segments() -> None:
    small, large = big_gate_body(100), big_gate_body(1000)
    # The first 5 in the table, 20 numbers per list, one sheet shown and the others linked: what grows with N
    # is one link per 100 segments (and wider numbers).
    assert len(large) < len(small) + 1500 and len(large) < 9000, (len(small), len(large))
    assert large.count("![") == 6  # 5 previews + the first contact sheet
    assert "The other 995 are on the contact sheets below and on the review page." in large
    assert "#1–#100" in large and f"[#901–#1000]({PREVIEWS}jobs/big/preview/images-sheet-010-" in large
    assert "#20 2.5 s and 980 more (see the review page)" in large  # spoken lengths
    assert "#20 and 980 more (see the review page)" in large  # redone and cut
    assert "#21 " not in large
    rendered = Rendered()
    rendered.feed(MARKDOWN.render(large))
    assert rendered.tags["tr"] == 6 and rendered.tags["img"] == 6
