"""Numbered objects claimed in order, found without listing them.

The spend ledger's entries and a stage's completion tickets are numbered 1, 2, 3, … and each number is created
exclusively (``Storage.create_exclusive``) by a writer that saw the number before it taken. So the taken
numbers are always a prefix 1…n: a writer tries n + 1 only after seeing n, numbers are never given back, and
a writer that loses a number to another tries the next one. Finding n then needs no listing (which reads every
key: O(n) per call): gallop from a guess to a free number and back to a taken one, then bisect — O(log n)
``exists()`` calls (HEADs on S3), O(log d) when the guess is d away.
"""

from __future__ import annotations

from collections.abc import Callable

from video_pipeline.storage import Storage


def last_taken(storage: Storage, key_for: Callable[[int], str], guess: int = 1) -> int:
    """The highest taken number of the sequence whose number ``n`` lives at ``key_for(n)`` (0: none taken).

    :param guess: where to start looking (any positive number; the closer to the answer, the fewer calls).
    """

    def taken(n: int) -> bool:
        return storage.exists(key_for(n))

    guess = max(1, guess)
    step = 1
    if taken(guess):
        low, high = guess, guess + step  # low taken; find a free high
        while taken(high):
            low, step = high, step * 2
            high = low + step
    else:
        low, high = guess - step, guess  # high free; find a taken low (0 counts as taken)
        while low > 0 and not taken(low):
            high, step = low, step * 2
            low = max(0, high - step)
    while high - low > 1:  # low taken (or 0), high free
        middle = (low + high) // 2
        if taken(middle):
            low = middle
        else:
            high = middle
    return low
