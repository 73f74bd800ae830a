"""MIDI files: VLQs by the standard's own examples, write -> read round trips, and mido (an
independent reader) agreeing with what we write; damaged files give one-line errors."""

import pytest
import torch

from fromscratch.beyond.midi import (
    MidiFile,
    Note,
    decode_vlq,
    encode_vlq,
    midi_bytes,
    midi_to_roll,
    parse_midi,
    read_midi,
    roll_to_midi,
    write_midi,
)
from fromscratch.errors import UserError

# The examples table of the Standard MIDI File specification (1.0), section "Variable Length".
SPEC_VLQ = [
    (0x00, "00"), (0x40, "40"), (0x7F, "7F"), (0x80, "81 00"), (0x2000, "C0 00"),
    (0x3FFF, "FF 7F"), (0x4000, "81 80 00"), (0x100000, "C0 80 00"), (0x1FFFFF, "FF FF 7F"),
    (0x200000, "81 80 80 00"), (0x8000000, "C0 80 80 00"), (0xFFFFFFF, "FF FF FF 7F"),
]


@pytest.mark.parametrize("value,hex_bytes", SPEC_VLQ)
def test_vlq_matches_the_specifications_examples(value, hex_bytes):
    encoded = bytes.fromhex(hex_bytes)
    assert encode_vlq(value) == encoded
    assert decode_vlq(b"\x99" + encoded + b"\x42", 1) == (value, 1 + len(encoded))


def test_vlq_out_of_range():
    with pytest.raises(ValueError):
        encode_vlq(1 << 28)
    with pytest.raises(UserError, match="longer than 4 bytes"):
        decode_vlq(b"\x81\x81\x81\x81\x01", 0)


NOTES = [Note(60, 0, 480), Note(64, 0, 960, 100), Note(67, 480, 960, 90, 1),
         Note(60, 480, 1440), Note(21, 1440, 1441, 1), Note(108, 2000, 2400, 127, 15)]


@pytest.mark.parametrize("midi_format", [0, 1])
def test_write_then_read_round_trips(tmp_path, midi_format):
    midi = MidiFile(480, sorted(NOTES, key=lambda n: (n.start, n.pitch, n.channel)), 600_000,
                    midi_format)
    write_midi(tmp_path / "a.mid", midi)
    assert read_midi(tmp_path / "a.mid") == midi


def test_the_bytes_of_a_one_note_file():
    data = midi_bytes(MidiFile(96, [Note(60, 0, 96, 64)], 500_000, 0))
    assert data.hex(" ") == (
        "4d 54 68 64 00 00 00 06 00 00 00 01 00 60 "  # MThd, 6, format 0, 1 track, 96 ticks
        "4d 54 72 6b 00 00 00 13 "  # MTrk, 19 bytes
        "00 ff 51 03 07 a1 20 "  # tempo 500,000 µs per quarter
        "00 90 3c 40 "  # note on C4 velocity 64
        "60 80 3c 00 "  # 96 ticks later, note off
        "00 ff 2f 00"  # end of track
    )


@pytest.mark.parametrize("midi_format", [0, 1])
def test_mido_reads_what_we_write(tmp_path, midi_format):
    mido = pytest.importorskip("mido")
    write_midi(tmp_path / "a.mid", MidiFile(480, NOTES, 600_000, midi_format))
    theirs = mido.MidiFile(tmp_path / "a.mid")
    assert theirs.type == midi_format and theirs.ticks_per_beat == 480
    assert len(theirs.tracks) == (1 if midi_format == 0 else 2)
    notes, sounding, tempo = [], {}, None
    for track in theirs.tracks:
        now = 0
        for msg in track:
            now += msg.time
            if msg.type == "set_tempo":
                tempo = msg.tempo
            elif msg.type == "note_on" and msg.velocity > 0:
                sounding[(msg.channel, msg.note)] = (now, msg.velocity)
            elif msg.type in ("note_off", "note_on"):
                start, velocity = sounding.pop((msg.channel, msg.note))
                notes.append(Note(msg.note, start, now, velocity, msg.channel))
    assert tempo == 600_000
    assert sorted(notes, key=repr) == sorted(NOTES, key=repr)


def test_we_read_what_mido_writes_with_running_status(tmp_path):
    mido = pytest.importorskip("mido")
    track = mido.MidiTrack([
        mido.MetaMessage("set_tempo", tempo=400_000, time=0),
        mido.Message("program_change", program=5, time=0),
        mido.Message("note_on", note=62, velocity=70, time=10),
        mido.Message("note_on", note=66, velocity=70, time=0),
        mido.Message("note_on", note=62, velocity=0, time=50),  # velocity 0 = note off
        mido.Message("note_off", note=66, velocity=0, time=30),
    ])
    mido.MidiFile(type=0, ticks_per_beat=120, tracks=[track]).save(tmp_path / "m.mid")
    data = (tmp_path / "m.mid").read_bytes()
    assert data.count(b"\x90") == 1  # mido wrote the later note ons with running status
    midi = read_midi(tmp_path / "m.mid")
    assert midi.ticks_per_quarter == 120 and midi.tempo == 400_000
    assert midi.notes == [Note(62, 10, 60, 70), Note(66, 10, 90, 70)]


def test_piano_roll_round_trip_merges_held_notes():
    roll = torch.zeros(6, 88)
    roll[0:3, 39] = 1  # middle C (60) held for three steps
    roll[1, 43] = roll[3, 43] = 1  # E4 struck twice
    roll[5, 0] = roll[5, 87] = 1  # the lowest and highest keys
    midi = roll_to_midi(roll, steps_per_quarter=2)
    assert [(n.pitch, n.start, n.end) for n in midi.notes] == [
        (60, 0, 720), (64, 240, 480), (64, 720, 960), (21, 1200, 1440), (108, 1200, 1440)]
    assert torch.equal(midi_to_roll(parse_midi(midi_bytes(midi)), steps_per_quarter=2), roll)


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "not a Standard MIDI File"),
        (b"RIFF0000WAVEfmt ", "not a Standard MIDI File"),
        (midi_bytes(MidiFile(480, NOTES))[:-5], "cut short"),
        (midi_bytes(MidiFile(480, NOTES))[:20], "cut short"),
        (midi_bytes(MidiFile(480, NOTES, format=1))[:40], "cut short"),
    ],
)
def test_damaged_files_give_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.mid"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message) as err:
        read_midi(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_writing_an_impossible_note_is_refused():
    with pytest.raises(UserError, match="pitch 0-127"):
        midi_bytes(MidiFile(480, [Note(128, 0, 10)]))
    with pytest.raises(UserError, match="start < end"):
        midi_bytes(MidiFile(480, [Note(60, 10, 10)]))
