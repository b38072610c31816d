// The primer being edited: step-grid notes, the typing cursor, the octave and
// note length for typing, and an undo history. The roll, the computer
// keyboard, MIDI input, presets and dropped files all edit it through here, so
// every edit can be undone and saved the same way.

/** Computer keys of one octave and a note, as on a piano: white keys on the home row. */
export const PIANO_KEYS = ['a', 'w', 's', 'e', 'd', 'f', 't', 'g', 'y', 'h', 'u', 'j', 'k'];
const UNDO_LIMIT = 200;

/**
 * The README's two examples, as the command line's primers (`--primer_pitches`,
 * `--primer_melody`); the library turns them into notes (wasm `primerNotes`).
 */
export const PRESETS = {
  chord: { label: 'C-major chord', primer: { Pitches: [60, 64, 67] } },
  twinkle: {
    label: 'Twinkle melody',
    primer: {
      Melody: [
        60, -2, -2, -2, 60, -2, -2, -2, 67, -2, -2, -2, 67, -2, -2, -2, 69, -2, -2, -2, 69, -2, -2, -2, 67, -2, -2, -2,
        -2, -2, -2, -2,
      ],
    },
  },
};

export class Primer {
  constructor({ notes = [], cursor = 0, octave = 4, noteLength = 4 } = {}, onChange = () => {}) {
    this.notes = sanitize(notes);
    this.cursor = Number.isInteger(cursor) && cursor >= 0 ? cursor : 0;
    this.octave = Number.isInteger(octave) ? clamp(octave, 1, 7) : 4;
    this.noteLength = [1, 2, 4, 8].includes(noteLength) ? noteLength : 4;
    this.onChange = onChange;
    this.history = [];
  }

  /** Saves the state before an edit, for undo. */
  checkpoint() {
    this.history.push({ notes: structuredClone(this.notes), cursor: this.cursor });
    if (this.history.length > UNDO_LIMIT) this.history.shift();
  }

  undo() {
    const last = this.history.pop();
    if (!last) return false;
    this.notes = last.notes;
    this.cursor = last.cursor;
    this.onChange();
    return true;
  }

  /** Replaces every note (a preset, a dropped file); undoable. */
  replace(notes) {
    this.checkpoint();
    this.notes = sanitize(notes);
    this.cursor = this.notes.reduce((m, n) => Math.max(m, n.end), 0);
    this.onChange();
  }

  clear() {
    this.replace([]);
    this.cursor = 0;
    this.onChange();
  }

  /** Adds a note at the cursor; `advance` false keeps the cursor (chords). */
  addAtCursor(pitch, advance = true) {
    if (pitch < 0 || pitch > 127) return;
    this.checkpoint();
    this.notes.push({ pitch, start: this.cursor, end: this.cursor + this.noteLength });
    if (advance) this.cursor += this.noteLength;
    this.onChange();
  }

  rest() {
    this.checkpoint();
    this.cursor += this.noteLength;
    this.onChange();
  }

  shiftOctave(by) {
    this.octave = clamp(this.octave + by, 1, 7);
    this.onChange();
  }

  /** The pitch of piano key `index` (0..12) in the current octave. */
  keyPitch(index) {
    return 12 * (this.octave + 1) + index;
  }

  /**
   * Handles a computer-keyboard key; returns true when it was one of ours.
   * Piano row → a note at the cursor, space → a rest, z / x → octave down / up.
   */
  handleKey(key) {
    const k = key.toLowerCase();
    const index = PIANO_KEYS.indexOf(k);
    if (index >= 0) this.addAtCursor(this.keyPitch(index));
    else if (k === ' ') this.rest();
    else if (k === 'z') this.shiftOctave(-1);
    else if (k === 'x') this.shiftOctave(1);
    else if (k === 'backspace') this.undo();
    else return false;
    return true;
  }

  toJSON() {
    return { notes: this.notes, cursor: this.cursor, octave: this.octave, noteLength: this.noteLength };
  }
}

function clamp(x, lo, hi) {
  return Math.min(hi, Math.max(lo, x));
}

/** Only well-formed notes, sorted, so stored or dropped data cannot break the page. */
function sanitize(notes) {
  if (!Array.isArray(notes)) return [];
  return notes
    .filter(
      (n) =>
        n && Number.isInteger(n.pitch) && n.pitch >= 0 && n.pitch <= 127 &&
        Number.isInteger(n.start) && Number.isInteger(n.end) && n.start >= 0 && n.end > n.start,
    )
    .map(({ pitch, start, end }) => ({ pitch, start, end }))
    .sort((a, b) => a.start - b.start || b.pitch - a.pitch);
}
