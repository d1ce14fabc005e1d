"""From approved clips to the finished video. One step per module; a module uses only modules listed below it,
so a value goes down the list as an argument and comes back as a return value, never through a callback. Every
step raises :class:`AssemblyError` (defined here) naming the segment to blame.

``assemble``      storage in and out: downloads the clips, calls ``finish``, adds poster and animated preview
``thumbnails``    contact sheets, poster frames and animated previews
``finish``        local clips → the finished MP4: plans the join, writes it with captions, voice and audio, checks it
``write``         writing the joined or finished MP4 (index first) through ffmpeg or the table join
``check``         the written file against the plan; naming the clip to blame when a join comes up short
``captions``      cues (timed to the spoken words, or to the segments), the SRT file and burned-in caption images
``voice_track``   each segment's spoken narration placed on the video's timeline, as one WAV
``plan``          what the join is: probes the clips, normalises or crossfades what cannot be copied
``transitions``   crossfade windows: the only re-encoded parts of clips joined with transitions
``normalise``     re-encodes one clip to the target
``target``        the stream parameters every piece of the join has, and the encoder options that make them
``table_join``    the MP4 sample-table join: the clips' indexes joined, their media bytes copied
``audio_track``   the job's audio track: which files may be read, and the mix (voice over ducked music)
``probe``         what a media file holds (PyAV), and the stream signature clips are compared by
``ffmpeg``        running the bundled ffmpeg
"""

from __future__ import annotations


class AssemblyError(RuntimeError):
    """The clips cannot become the planned video; the message says which segment, or what differs."""
