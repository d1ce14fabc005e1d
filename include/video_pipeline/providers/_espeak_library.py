"""A small ctypes binding of the espeak-ng C library that the ``espeakng-loader`` wheel ships (with its voice
data): synthesis into memory with word events. No kept Python wrapper both synthesizes and reports word timings
(docs/notes/offline-voice.md), so this is the part of the C API the offline voice needs, and nothing else.

What the library requires (each seen failing otherwise; docs/notes/offline-voice.md):

* ``espeak_Initialize`` gets the folder that *contains* ``espeak-ng-data``, and the option "don't exit": with a
  bad path the library otherwise calls ``exit(1)`` and takes the worker with it. It returns the sample rate
  (22050), 0 on failure.
* ``espeak_SetVoiceByName`` answers success for a name it does not know (and speaks another voice), so names
  are checked against ``espeak_ListVoices`` first; a language code goes through ``espeak_SetVoiceByProperties``,
  which does fail properly.
* The library has global state and is not thread-safe: one synthesis at a time per process (:data:`_LOCK`).
  The callback object is kept referenced for as long as the library may call it.
"""

from __future__ import annotations

import array
import ctypes
import functools
import threading
from dataclasses import dataclass
from pathlib import Path

AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_DONT_EXIT = 0x8000
CHARS_UTF8 = 1
POS_CHARACTER = 1
EVENT_LIST_TERMINATED = 0
EVENT_WORD = 1
PARAMETER_RATE = 1
EE_OK = 0
#: espeak-ng's normal pace in words per minute, and the range it takes.
NORMAL_RATE_WPM = 175
MIN_RATE_WPM = 80
MAX_RATE_WPM = 450

_LOCK = threading.Lock()


class _Event(ctypes.Structure):
    """``espeak_EVENT``: only ``type``, ``text_position`` (1-based, in characters) and ``audio_position`` (ms
    from the start of the call) are read."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


class _Voice(ctypes.Structure):
    """``espeak_VOICE``."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # (priority byte, name) pairs: not one C string
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


class EngineError(RuntimeError):
    """The library could not be loaded, initialised, or asked to speak."""


@dataclass(frozen=True)
class Rendered:
    """Mono 16-bit samples at ``sample_rate``, and ``(character offset from 0, seconds)`` per spoken word."""

    samples: array.array[int]
    sample_rate: int
    word_events: list[tuple[int, float]]


@dataclass(frozen=True)
class VoiceInfo:
    """A voice of the library: its file name (what ``espeak_SetVoiceByName`` takes) and its languages."""

    identifier: str
    name: str
    languages: tuple[str, ...]


class _Library:
    def __init__(self) -> None:
        import espeakng_loader

        try:
            self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        except OSError as exc:
            raise EngineError(f"cannot load espeak-ng's library: {exc}") from None
        data = Path(espeakng_loader.get_data_path())
        lib = self.lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_Callback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(_Voice)]
        lib.espeak_SetVoiceByProperties.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_Voice)]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        rate = lib.espeak_Initialize(
            AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data.parent).encode(), INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise EngineError(f"espeak-ng did not initialise with its data at {data}")
        self.sample_rate = int(rate)
        self._samples: array.array[int] = array.array("h")
        self._events: list[tuple[int, int]] = []
        self._callback = _Callback(self._collect)  # referenced for the library's lifetime
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav: ctypes.Array[ctypes.c_short], count: int, events: ctypes.Array[_Event]) -> int:
        if count > 0:
            self._samples.extend(wav[:count])
        n = 0
        while events[n].type != EVENT_LIST_TERMINATED:
            if events[n].type == EVENT_WORD:
                self._events.append((events[n].text_position - 1, events[n].audio_position))
            n += 1
        return 0

    def voices(self) -> list[VoiceInfo]:
        found = []
        listed = self.lib.espeak_ListVoices(None)
        n = 0
        while listed[n]:
            voice = listed[n].contents
            found.append(
                VoiceInfo(
                    identifier=(voice.identifier or b"").decode(),
                    name=(voice.name or b"").decode(),
                    languages=_languages(voice.languages),
                )
            )
            n += 1
        return found

    def render(self, text: str, *, voice: str | None, language: str, rate_wpm: int) -> Rendered:
        if voice is not None:
            status = self.lib.espeak_SetVoiceByName(voice.encode())
        else:
            wanted = ctypes.create_string_buffer(language.encode())
            spec = _Voice(languages=ctypes.cast(wanted, ctypes.c_void_p))
            status = self.lib.espeak_SetVoiceByProperties(ctypes.byref(spec))
        if status != EE_OK:
            raise EngineError(f"espeak-ng has no voice {voice or language!r}")
        self.lib.espeak_SetParameter(PARAMETER_RATE, rate_wpm, 0)
        self._samples = array.array("h")
        self._events = []
        encoded = text.encode()
        status = self.lib.espeak_Synth(encoded, len(encoded) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
        if status != EE_OK:
            raise EngineError(f"espeak-ng could not speak the text (error {status})")
        events = [(offset, ms / 1000) for offset, ms in self._events]
        return Rendered(self._samples, self.sample_rate, events)


def _languages(address: int | None) -> tuple[str, ...]:
    """``espeak_VOICE.languages``: (priority byte, NUL-terminated name) pairs, ended by a 0 priority."""
    if not address:
        return ()
    found = []
    at = address
    while True:
        priority = ctypes.c_ubyte.from_address(at).value
        if priority == 0:
            break
        name = ctypes.string_at(at + 1)
        found.append(name.decode())
        at += 2 + len(name)
    return tuple(found)


@functools.cache
def _library() -> _Library:
    return _Library()


def voices() -> list[VoiceInfo]:
    with _LOCK:
        return _library().voices()


def render(text: str, *, voice: str | None, language: str, rate_wpm: int) -> Rendered:
    """Speak ``text`` with a voice file (``voice``) or the best voice for ``language``, at ``rate_wpm``."""
    with _LOCK:
        return _library().render(text, voice=voice, language=language, rate_wpm=rate_wpm)
