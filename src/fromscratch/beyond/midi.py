"""Standard MIDI Files, written and read with nothing but bytes: enough for piano rolls.

A MIDI file is a sequence of chunks, each a 4-letter type, a 4-byte big-endian length and data:

    "MThd" len=6   format (0: one track, 1: tracks played together), number of tracks,
                   division (ticks per quarter note)
    "MTrk" len=n   events, each a delta time (ticks since the previous event, as a
                   variable-length quantity) followed by the event:
                     0x9c pitch velocity    note on, channel c (velocity 0 also means note off)
                     0x8c pitch velocity    note off
                     0xFF type len data     meta event: 0x51 tempo (µs per quarter, 3 bytes),
                                            0x2F end of track (required, last)
                     0xF0 / 0xF7 len data   system exclusive (skipped by the reader)

A variable-length quantity (VLQ) writes a number 7 bits per byte, most significant first; every
byte but the last has its top bit set: 0 -> 00, 127 -> 7F, 128 -> 81 00, 480 -> 83 60.
"Running status": an event may leave out its status byte when it repeats the previous one's; the
reader understands it, the writer always writes the status byte.
"""

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from fromscratch.errors import UserError

TICKS_PER_QUARTER = 480
LOWEST_PITCH = 21  # A0, the lowest key of a piano; a piano roll has 88 keys, 21..108


@dataclass(frozen=True)
class Note:
    pitch: int  # MIDI note number, 60 = middle C
    start: int  # in ticks
    end: int  # in ticks, > start
    velocity: int = 80
    channel: int = 0


@dataclass
class MidiFile:
    ticks_per_quarter: int
    notes: list[Note]
    tempo: int = 500_000  # microseconds per quarter note (500,000 = 120 beats per minute)
    format: int = 0


# ---------------------------------------------------------------------------------------------
# Variable-length quantities
# ---------------------------------------------------------------------------------------------
def encode_vlq(value: int) -> bytes:
    """`value` (0 ≤ value < 2²⁸) in 7-bit groups, most significant first, top bit = "more"."""
    if not 0 <= value < 1 << 28:
        raise ValueError(f"a MIDI variable-length quantity holds 0..2^28-1, not {value}")
    groups = [value & 0x7F]  # the last byte: top bit 0
    value >>= 7
    while value:
        groups.append(0x80 | (value & 0x7F))  # earlier bytes: top bit 1
        value >>= 7
    return bytes(reversed(groups))


def decode_vlq(data: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it) of the VLQ starting at data[pos]."""
    value = 0
    for _ in range(4):
        if pos >= len(data):
            raise UserError("the MIDI file ends inside a delta time: it is cut short")
        byte = data[pos]
        pos += 1
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, pos
    raise UserError("the MIDI file has a delta time longer than 4 bytes: it is damaged")


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------
def _chunk(kind: bytes, data: bytes) -> bytes:
    return kind + struct.pack(">I", len(data)) + data


def _track(events: list[tuple[int, int, bytes]]) -> bytes:
    """A track chunk from (tick, order, event bytes); sorted by tick, then order."""
    data, now = bytearray(), 0
    for tick, _, event in sorted(events, key=lambda e: (e[0], e[1])):
        data += encode_vlq(tick - now) + event
        now = tick
    data += encode_vlq(0) + b"\xff\x2f\x00"  # end of track
    return _chunk(b"MTrk", bytes(data))


def midi_bytes(midi: MidiFile) -> bytes:
    """The bytes of a format-0 (one track) or format-1 (tempo track + notes track) file."""
    if midi.format not in (0, 1):
        raise UserError(f"MIDI format must be 0 or 1, not {midi.format}")
    tempo = (0, 0, b"\xff\x51\x03" + midi.tempo.to_bytes(3, "big"))
    notes = []
    for n in midi.notes:
        if not (0 <= n.pitch < 128 and 0 < n.velocity < 128 and 0 <= n.channel < 16
                and 0 <= n.start < n.end):
            raise UserError(f"cannot write {n}: pitch 0-127, velocity 1-127, channel 0-15, "
                            "start < end")
        # at one tick, note offs (order 1) come before note ons (order 2): a repeated note is
        # released and struck again rather than struck twice
        notes.append((n.start, 2, bytes([0x90 | n.channel, n.pitch, n.velocity])))
        notes.append((n.end, 1, bytes([0x80 | n.channel, n.pitch, 0])))
    tracks = [_track([tempo, *notes])] if midi.format == 0 else [_track([tempo]), _track(notes)]
    header = struct.pack(">HHH", midi.format, len(tracks), midi.ticks_per_quarter)
    return _chunk(b"MThd", header) + b"".join(tracks)


def write_midi(path: str | os.PathLike, midi: MidiFile) -> None:
    Path(path).write_bytes(midi_bytes(midi))


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------
def _read_track(data: bytes, ticks_per_quarter: int) -> tuple[list[Note], int | None]:
    """Notes and tempo (if any) of one track chunk's data."""
    notes, sounding, tempo = [], {}, None  # sounding: (channel, pitch) -> (start, velocity)
    pos, now, status = 0, 0, None
    while pos < len(data):
        delta, pos = decode_vlq(data, pos)
        now += delta
        if pos >= len(data):
            raise UserError("the MIDI file ends after a delta time: it is cut short")
        if data[pos] >= 0x80:  # a status byte; otherwise running status repeats the last one
            status, pos = data[pos], pos + 1
        elif status is None or status >= 0xF0:
            raise UserError("the MIDI file has data bytes with no status byte: it is damaged")
        if status == 0xFF:  # meta event
            kind = data[pos]
            length, pos = decode_vlq(data, pos + 1)
            if kind == 0x51 and length == 3:
                tempo = int.from_bytes(data[pos : pos + 3], "big")
            pos += length
            if kind == 0x2F:
                break
            status = None
            continue
        if status in (0xF0, 0xF7):  # system exclusive: skip
            length, pos = decode_vlq(data, pos)
            pos += length
            status = None
            continue
        kind, channel = status & 0xF0, status & 0x0F
        size = 1 if kind in (0xC0, 0xD0) else 2  # program change, channel pressure: 1 byte
        if pos + size > len(data):
            raise UserError("the MIDI file ends inside an event: it is cut short")
        args = data[pos : pos + size]
        pos += size
        if kind == 0x90 and args[1] > 0:
            sounding[(channel, args[0])] = (now, args[1])
        elif kind == 0x80 or kind == 0x90:  # note off, or note on with velocity 0
            if (channel, args[0]) in sounding:
                start, velocity = sounding.pop((channel, args[0]))
                if now > start:
                    notes.append(Note(args[0], start, now, velocity, channel))
    return notes, tempo


def parse_midi(data: bytes) -> MidiFile:
    """Notes of every track of a Standard MIDI File's bytes, sorted by (start, pitch)."""
    if data[:4] != b"MThd" or len(data) < 14:
        raise UserError("not a Standard MIDI File (it does not start with 'MThd')")
    header_length = struct.unpack(">I", data[4:8])[0]
    midi_format, n_tracks, division = struct.unpack(">HHH", data[8:14])
    if division & 0x8000:
        raise UserError("this MIDI file counts time in SMPTE frames; only ticks per quarter note "
                        "are supported")
    pos, notes, tempo = 8 + header_length, [], None
    for _ in range(n_tracks):
        if data[pos : pos + 4] != b"MTrk" or pos + 8 > len(data):
            raise UserError("the MIDI file is missing a track chunk: it is cut short or damaged")
        length = struct.unpack(">I", data[pos + 4 : pos + 8])[0]
        if pos + 8 + length > len(data):
            raise UserError("the MIDI file's last track is cut short")
        track_notes, track_tempo = _read_track(data[pos + 8 : pos + 8 + length], division)
        notes += track_notes
        tempo = tempo if track_tempo is None else track_tempo
        pos += 8 + length
    notes.sort(key=lambda n: (n.start, n.pitch, n.channel))
    return MidiFile(division, notes, 500_000 if tempo is None else tempo, midi_format)


def read_midi(path: str | os.PathLike) -> MidiFile:
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        return parse_midi(data)
    except UserError as err:
        raise UserError(f"{path}: {err}") from None
    except (IndexError, struct.error):
        raise UserError(f"{path}: the MIDI file is cut short or damaged") from None


# ---------------------------------------------------------------------------------------------
# Piano rolls
# ---------------------------------------------------------------------------------------------
def roll_to_midi(roll: torch.Tensor, steps_per_quarter: int = 1, bpm: float = 80.0,
                 midi_format: int = 1) -> MidiFile:
    """A piano roll (T, 88), 1 where key k sounds at step t, as notes (key k = pitch 21 + k).

    A key held over consecutive steps becomes one long note. Each step lasts
    1 / steps_per_quarter of a quarter note (1 for JSB's quarter-note version, 4 for 16ths).
    """
    if roll.dim() != 2 or roll.shape[1] != 88:
        raise UserError(f"a piano roll is (time steps, 88 keys), got {tuple(roll.shape)}")
    ticks = TICKS_PER_QUARTER // steps_per_quarter
    on = torch.cat([torch.zeros(1, 88), roll.float().cpu(), torch.zeros(1, 88)]) > 0
    starts = (on[1:] & ~on[:-1]).nonzero().tolist()  # (step, key) where a key goes down
    ends = (~on[1:] & on[:-1]).nonzero().tolist()  # (step, key) where it comes up
    ends_by_key: dict[int, list[int]] = {}
    for step, key in ends:
        ends_by_key.setdefault(key, []).append(step)
    notes = []
    for step, key in sorted(starts, key=lambda s: (s[1], s[0])):
        end = ends_by_key[key].pop(0)  # the first release after this press
        notes.append(Note(LOWEST_PITCH + key, step * ticks, end * ticks))
    notes.sort(key=lambda n: (n.start, n.pitch))
    return MidiFile(TICKS_PER_QUARTER, notes, round(60_000_000 / bpm), midi_format)


def midi_to_roll(midi: MidiFile, steps_per_quarter: int = 1) -> torch.Tensor:
    """The piano roll (T, 88) of `midi`'s notes; pitches outside the piano's 21..108 are dropped."""
    ticks = midi.ticks_per_quarter / steps_per_quarter
    n_steps = max((round(n.end / ticks) for n in midi.notes), default=0)
    roll = torch.zeros(n_steps, 88)
    for n in midi.notes:
        if LOWEST_PITCH <= n.pitch < LOWEST_PITCH + 88:
            roll[round(n.start / ticks) : round(n.end / ticks), n.pitch - LOWEST_PITCH] = 1
    return roll
