"""An independent reading of what polyphony writes: music21 parses each
MusicXML score of a generate run, mido reads the MIDI file written beside it,
and both must hold the same notes in the same four named voices.

Usage: check_outputs.py POLYPHONY_BINARY WORK_DIR
"""
import pathlib
import subprocess
import sys

import mido
import music21

binary, work = sys.argv[1], pathlib.Path(sys.argv[2])
work.mkdir(parents=True, exist_ok=True)
subprocess.run([binary, "generate", "--output_dir", str(work), "--primer_pitches", "[67,64,60]",
                "--seed", "1", "--output_format", "both"], check=True, stdout=subprocess.DEVNULL)

VOICES = ["Soprano", "Alto", "Tenor", "Bass"]


def score_notes(path):
    score = music21.converter.parse(str(path)).stripTies()
    names = [p.partName for p in score.parts]
    notes = set()
    for index, part in enumerate(score.parts):
        for n in part.flatten().notes:
            start = round(float(n.offset) * 4)
            notes.add((index, n.pitch.midi, start, start + round(float(n.quarterLength) * 4)))
    return names, notes


def midi_notes(path):
    midi = mido.MidiFile(str(path))
    names, notes = [], set()
    for track in midi.tracks[1:]:
        name = next((m.name for m in track if m.type == "track_name"), None)
        if name is None:
            continue
        index, tick, sounding = len(names), 0, {}
        names.append(name)
        for m in track:
            tick += m.time
            step = round(tick * 4 / midi.ticks_per_beat)
            if m.type == "note_on" and m.velocity > 0:
                sounding[m.note] = step
            elif m.type in ("note_off", "note_on") and m.note in sounding:
                notes.add((index, m.note, sounding.pop(m.note), step))
    return names, notes


scores = sorted(work.glob("*.musicxml"))
assert len(scores) == 10, f"{len(scores)} scores"
for score in scores:
    names, from_score = score_notes(score)
    assert names[:4] == VOICES, f"{score.name}: parts {names}"
    midi_names, from_midi = midi_notes(score.with_suffix(".mid"))
    assert midi_names[:4] == VOICES, f"{score.name}: MIDI tracks {midi_names}"
    assert from_score == from_midi, f"{score.name}: {sorted(from_score ^ from_midi)[:10]}"
    print(f"ok {score.name}: {len(names)} parts, {len(from_score)} notes, as in the MIDI file")
print(f"music21 {music21.__version__} read {len(scores)} scores: four parts each, the notes of their MIDI files")
