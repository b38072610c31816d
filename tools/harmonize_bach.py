"""Issue 14's harmonization check, rerunnable: for some chorales, Bach's own
first 16 beats and their soprano alone (music21 cuts them), the soprano
harmonized by `polyphony harmonize`, then the judge's row for Bach's and for
ours, and the share of steps where the melody is the top voice.

    ~/.cache/polyphony/venv/bin/python tools/harmonize_bach.py [--seeds 3] [--bundle_file B] CHORALE...
"""
import argparse, glob, os, subprocess, tempfile

import mido
from music21 import converter, stream

POLYPHONY = os.environ.get('POLYPHONY', os.path.expanduser('~/.cache/polyphony/target/release/polyphony'))
BEATS = 16


def cut(src, out_dir):
    """Bach's first BEATS quarters (every part) and its soprano, as MIDI files."""
    score = converter.parse(src)
    name = os.path.basename(src).rsplit('.', 1)[0]
    full = stream.Score()
    parts = []
    for part in score.parts:
        cut_part = stream.Part()
        for n in part.flatten().notes.getElementsByOffset(0, BEATS, includeEndBoundary=False):
            copy = n.__deepcopy__()  # a copy has no offset of its own: the original's
            copy.quarterLength = min(n.quarterLength, BEATS - n.offset)
            cut_part.insert(n.offset, copy)
        full.insert(0, cut_part)
        parts.append(cut_part)
    bach, soprano = f'{out_dir}/{name}-bach.mid', f'{out_dir}/{name}-soprano.mid'
    full.write('midi', fp=bach)
    alone = stream.Score()
    alone.insert(0, parts[0])
    alone.write('midi', fp=soprano)
    return name, bach, soprano


def step_notes(path):
    """(pitch, start step, end step) of every note of a MIDI file."""
    midi = mido.MidiFile(path)
    step = midi.ticks_per_beat // 4
    notes = []
    for track in midi.tracks:
        t, on = 0, {}
        for msg in track:
            t += msg.time
            if msg.type == 'note_on' and msg.velocity > 0:
                on[msg.note] = t
            elif msg.type in ('note_off', 'note_on') and msg.note in on:
                notes.append((msg.note, on.pop(msg.note) // step, t // step))
    return notes


def on_top(melody, harmony):
    """Steps where the melody sounds, and those where it is the top voice."""
    melody, harmony = step_notes(melody), step_notes(harmony)
    steps = ok = 0
    for s in range(max(e for _, _, e in melody)):
        sounding = [p for p, a, b in melody if a <= s < b]
        if sounding:
            steps += 1
            ok += max((p for p, a, b in harmony if a <= s < b), default=None) == sounding[0]
    return steps, ok


def judge_all(files):
    out = subprocess.run([POLYPHONY, 'judge', *files], check=True, capture_output=True, text=True).stdout
    return [l for l in out.splitlines() if l.startswith(('all', 'voice ranges'))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--seeds', type=int, default=3)
    ap.add_argument('--bundle_file')
    ap.add_argument('chorales', nargs='+')
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bach, ours, steps, ok = [], [], 0, 0
        for chorale in args.chorales:
            name, b, soprano = cut(chorale, tmp)
            bach.append(b)
            out = f'{tmp}/out-{name}'
            cmd = [POLYPHONY, 'harmonize', '--primer_midi', soprano, '--num_outputs', str(args.seeds),
                   '--seed', '1', '--output_dir', out]
            if args.bundle_file:
                cmd += ['--bundle_file', args.bundle_file]
            subprocess.run(cmd, check=True, capture_output=True)
            for f in sorted(glob.glob(f'{out}/*.mid')):
                ours.append(f)
                s, k = on_top(soprano, f)
                steps, ok = steps + s, ok + k
        print('Bach, first 16 beats:', *judge_all(bach), sep='\n  ')
        print('harmonized soprano:', *judge_all(ours), sep='\n  ')
        print(f'melody on top in {ok} of {steps} steps ({100 * ok / steps:.1f}%)')


if __name__ == '__main__':
    main()
