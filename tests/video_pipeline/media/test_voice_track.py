"""The voice in the finished video: narrations placed at their segments, silence between them, music ducked
under them, captions on the heard words, clips trimmed or held to their narration — measured from the file."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from tests.video_pipeline.media.media_files import make_clip
from video_pipeline.media.finish import Finished, Segment, finish
from video_pipeline.media.plan import Span
from video_pipeline.media.voice_track import Spoken, place, write_voice_track
from video_pipeline.models import FinalVideo, Finishing
from video_pipeline.providers.espeak import PROVIDER
from video_pipeline.providers.port import Speech, SpeechRequest
from video_pipeline_dev.speech_checks import check_av_sync, check_voice, silences, silent_within, srt_cues

SIZE = (320, 180)


def speak(text: str, folder: Path) -> Speech:
    folder.mkdir(parents=True, exist_ok=True)
    request = SpeechRequest(text=text, model="espeak-ng", voice="default", language="en-us", speed=1.0)
    return PROVIDER.synthesize(request, folder, None)


def spoken(index: int, speech: Speech, lead: float = 0.25) -> Spoken:
    return Spoken(index, speech.path, speech.speech_start_s, speech.speech_end_s, lead)


def test_each_narration_starts_after_its_lead_and_stops_at_its_segment_or_the_next(tmp_path: Path) -> None:
    speech = speak("One two three four five six seven.", tmp_path / "a")
    spans = [Span(1, 0.0, 1.0), Span(2, 1.0, 6.0), Span(3, 6.0, 9.0)]
    placed = place(spans, {1: spoken(1, speech), 2: spoken(2, speech)})
    assert [p.spoken.index for p in placed] == [1, 2]
    first, second = placed
    assert first.at_s == 0.25 and first.cut and first.end_s == pytest.approx(1.0)
    assert second.at_s == 1.25 and not second.cut
    assert second.end_s == pytest.approx(1.25 + speech.spoken_s, abs=1e-3)


def test_the_voice_track_is_exactly_as_long_as_the_video_and_silent_between(tmp_path: Path) -> None:
    speech = speak("Mist lifts from the pines.", tmp_path / "a")
    spans = [Span(1, 0.0, 3.0), Span(2, 3.0, 6.0)]
    placed = place(spans, {1: spoken(1, speech), 2: spoken(2, speech)})
    track = write_voice_track(placed, 6.0, tmp_path / "voice.wav")
    with wave.open(str(track)) as wav:
        assert wav.getnframes() == 6 * 48000 and wav.getnchannels() == 1
    silent = silences(track)
    for piece in placed:
        assert silent_within(silent, piece.at_s, piece.end_s) < 0.5 * (piece.end_s - piece.at_s)
    assert silent_within(silent, 0.0, 0.2) == pytest.approx(0.2, abs=0.01)
    assert silent_within(silent, placed[0].end_s + 0.05, 3.2) == pytest.approx(
        3.2 - placed[0].end_s - 0.05, abs=0.02
    )


def clips(tmp_path: Path, count: int, seconds: float) -> list[Path]:
    return [
        make_clip(tmp_path / f"clip{n}.mp4", size=SIZE, seconds=seconds, hue=40 * n) for n in range(count)
    ]


def finished_video(
    tmp_path: Path, texts: list[str], *, music: Path | None = None, transition_s: float = 0.0
) -> tuple[Path, Finished, list[Segment], FinalVideo]:
    parts = []
    for n, (text, clip) in enumerate(zip(texts, clips(tmp_path, len(texts), 4), strict=True), start=1):
        speech = speak(text, tmp_path / f"voice{n}")
        fitted = round(max(2.0, 0.25 + speech.spoken_s + 0.5), 3)
        parts.append(
            Segment(
                n,
                clip,
                narration=text,
                planned_s=fitted,
                spoken=spoken(n, speech),
                words=tuple(speech.words),
                fitted=True,
            )
        )
    options = Finishing(transition_s=transition_s)
    dest = tmp_path / "final.mp4"
    done = finish(parts, dest, options=options, resolution=SIZE, workdir=tmp_path / "work", audio_track=music)
    final = FinalVideo(
        key="final.mp4",
        duration_s=done.probe.duration_s,
        width=done.probe.width,
        height=done.probe.height,
        codec=done.probe.codec,
        size_bytes=done.probe.size_bytes,
        narration={p.spoken.index: (p.at_s, p.end_s) for p in done.voice},
    )
    return dest, done, parts, final


def test_a_finished_video_speaks_in_its_windows_with_captions_on_the_words(tmp_path: Path) -> None:
    texts = ["Dawn comes slowly to the meadow.", "One leap.", "Breakfast, and home."]
    dest, done, parts, final = finished_video(tmp_path, texts)
    assert done.streams == {"video": 1, "audio": 1, "subtitle": 1}
    assert check_voice(dest, final) == []
    assert check_av_sync(dest) <= 1 / 24
    for span, part in zip(done.plan.spans, parts, strict=True):
        assert abs((span.end_s - span.start_s) - (part.planned_s or 0)) <= 1 / 24  # trimmed to its narration
    assert all("trimmed to its narration" in " ".join(r) for r in done.plan.reencoded.values())
    assert done.srt is not None
    cues = srt_cues(done.srt.read_text())
    assert " ".join(c.text for c in cues) == " ".join(texts)
    windows = list(final.narration.values())
    assert all(any(a - 0.002 <= c.start_s and c.end_s <= b + 0.002 for a, b in windows) for c in cues)


def test_a_clip_shorter_than_its_narration_holds_its_last_frame(tmp_path: Path) -> None:
    speech = speak(
        "This sentence goes on for rather longer than the short clip beneath it lasts.", tmp_path / "v"
    )
    clip = make_clip(tmp_path / "short.mp4", size=SIZE, seconds=2)
    fitted = round(0.25 + speech.spoken_s + 0.5, 3)
    part = Segment(
        1,
        clip,
        narration="x",
        planned_s=fitted,
        spoken=spoken(1, speech),
        words=tuple(speech.words),
        fitted=True,
    )
    done = finish(
        [part], tmp_path / "final.mp4", options=Finishing(), resolution=SIZE, workdir=tmp_path / "w"
    )
    assert abs(done.probe.video_duration_s - fitted) <= 1 / 24
    assert "held" in done.plan.reencoded[1][0]


def test_music_ducks_under_the_voice_and_fills_the_pads(tmp_path: Path) -> None:
    music = tmp_path / "music.wav"
    from video_pipeline.media.ffmpeg import run_ffmpeg

    run_ffmpeg(["-f", "lavfi", "-i", "sine=f=220:d=20", "-ac", "2", str(music)])
    dest, done, _, _final = finished_video(tmp_path, ["Dawn comes slowly.", "The fox wakes."], music=music)
    assert done.streams["audio"] == 1
    silent = silences(dest)
    assert silent_within(silent, 0.0, done.probe.duration_s) < 0.1  # the music plays through the pads
    assert check_av_sync(dest) <= 1 / 24


def test_burned_captions_follow_the_spoken_words(tmp_path: Path) -> None:
    """Burned in, a spoken narration's captions change with its words: the frame shows the first words while
    they are heard and the last ones later, nothing before the speech starts."""
    from PIL import Image, ImageChops

    from video_pipeline.media.thumbnails import poster_from_clip

    text = (
        "The lighthouse has stood on the cliff for two hundred years. Every night its beam sweeps the water."
    )
    speech = speak(text, tmp_path / "v")
    clip = make_clip(tmp_path / "c.mp4", size=SIZE, seconds=10, source="color")
    fitted = round(0.25 + speech.spoken_s + 0.5, 3)
    part = Segment(
        1,
        clip,
        narration=text,
        planned_s=fitted,
        spoken=spoken(1, speech),
        words=tuple(speech.words),
        fitted=True,
    )
    done = finish(
        [part],
        tmp_path / "final.mp4",
        options=Finishing(subtitles="burned"),
        resolution=SIZE,
        workdir=tmp_path / "w",
    )
    assert done.srt is None and "burned captions" in done.plan.reencoded[1]
    frames = {
        at: Image.open(poster_from_clip(tmp_path / "final.mp4", tmp_path / f"f{at}.jpg", at_s=at)).convert(
            "L"
        )
        for at in (0.1, 1.0, fitted - 1.0)
    }
    before, early, late = frames[0.1], frames[1.0], frames[fitted - 1.0]
    assert ImageChops.difference(before, early).getbbox() is not None  # a caption appeared with the speech
    assert ImageChops.difference(early, late).getbbox() is not None  # and changed with the words
