// The piano roll: draws step-grid notes ({pitch, start, end}, in sixteenth
// notes) on a canvas and, when editable, edits them with the mouse: click an
// empty cell to add a note, drag right to lengthen it, click a note to delete it.
// A note with a `voice` (0 Soprano … 3 Bass) is drawn in its voice's colour,
// faded when that voice is muted; a read-only roll reports the step clicked
// (`onStep`) and can mark one.
//
// It owns only drawing and pointer gestures; what the notes mean (undo,
// saving, generation) is the caller's, told through `onChange`.

const KEY_GUTTER = 26; // px of piano keys on the left
const BLACK = new Set([1, 3, 6, 8, 10]);
const NOTE_NAMES = ['C', 'C♯', 'D', 'E♭', 'E', 'F', 'F♯', 'G', 'A♭', 'A', 'B♭', 'B'];
/** CSS variables of the voices' colours, Soprano first; a fifth voice and more share the last. */
const VOICE_COLORS = ['--voice-s', '--voice-a', '--voice-t', '--voice-b', '--voice-x'];
const VOICE_FALLBACKS = ['#c0392b', '#d68910', '#1e8449', '#2763b8', '#7f7f7f'];

/** The name of a MIDI pitch, e.g. 60 → "C4". */
export function pitchName(pitch) {
  return `${NOTE_NAMES[pitch % 12]}${Math.floor(pitch / 12) - 1}`;
}

export class PianoRoll {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {object} opts cell/row: px per step and per pitch; minSteps: the
   *   shortest grid; pitchRange: the pitches always shown; editable;
   *   onChange(notes, kind): called before ('before') and after ('after') an edit;
   *   onNote(pitch): a note was added by a click.
   */
  constructor(canvas, opts = {}) {
    this.canvas = canvas;
    this.cell = opts.cell ?? 12;
    this.row = opts.row ?? 7;
    this.minSteps = opts.minSteps ?? 32;
    this.pitchRange = opts.pitchRange ?? [48, 84];
    this.editable = opts.editable ?? false;
    this.onChange = opts.onChange ?? (() => {});
    this.onNote = opts.onNote ?? (() => {}); // a note was added (to hear it)
    this.onStep = opts.onStep ?? null; // a read-only roll was clicked at a step
    this.notes = [];
    this.muted = new Set(); // voices drawn faded
    this.mark = null; // a step marked by the caller
    this.cursor = null; // step of the typing cursor (editable rolls)
    this.playhead = null; // step being played
    this.totalSteps = null; // a fixed length (results), else from the notes
    this.layout = { lo: 0, hi: 0, steps: 0 };
    if (this.editable) this.#listen();
    else if (this.onStep) this.#listenForSteps();
    this.draw();
  }

  /** The notes to draw; `voices[i]`, when given, is note i's voice. */
  setNotes(notes, totalSteps = null, voices = null) {
    this.notes = notes.map((n, i) => {
      const voice = voices?.[i] ?? n.voice;
      return voice === undefined ? { pitch: n.pitch, start: n.start, end: n.end } : { pitch: n.pitch, start: n.start, end: n.end, voice };
    });
    if (totalSteps !== null) this.totalSteps = totalSteps;
    this.draw();
  }

  setMuted(voices) {
    this.muted = new Set(voices);
    this.draw();
  }

  setMark(step) {
    this.mark = step;
    this.draw();
  }

  setCursor(step) {
    this.cursor = step;
    this.draw();
  }

  setPlayhead(step) {
    this.playhead = step;
    this.draw();
  }

  /** The viewport coordinates of a cell's centre (for tests and tooling). */
  pointFor(pitch, step) {
    const r = this.canvas.getBoundingClientRect();
    const { hi } = this.layout;
    return {
      x: r.left + KEY_GUTTER + (step + 0.5) * this.cell,
      y: r.top + (hi - pitch + 0.5) * this.row,
    };
  }

  #computeLayout() {
    let [lo, hi] = this.pitchRange;
    let last = 0;
    for (const n of this.notes) {
      lo = Math.min(lo, n.pitch - 2);
      hi = Math.max(hi, n.pitch + 2);
      last = Math.max(last, n.end);
    }
    lo = Math.max(0, lo);
    hi = Math.min(127, hi);
    let steps = this.totalSteps ?? Math.max(this.minSteps, last + (this.editable ? 16 : 0), (this.cursor ?? 0) + 16);
    steps = Math.max(steps, last);
    if (this.editable) steps = Math.ceil(steps / 16) * 16;
    this.layout = { lo, hi, steps };
  }

  draw() {
    this.#computeLayout();
    const { lo, hi, steps } = this.layout;
    const width = KEY_GUTTER + steps * this.cell;
    const height = (hi - lo + 1) * this.row;
    const dpr = window.devicePixelRatio || 1;
    const c = this.canvas;
    if (c.width !== Math.round(width * dpr) || c.height !== Math.round(height * dpr)) {
      c.width = Math.round(width * dpr);
      c.height = Math.round(height * dpr);
      c.style.width = `${width}px`;
      c.style.height = `${height}px`;
    }
    c.dataset.steps = String(steps);
    c.dataset.notes = String(this.notes.length);
    c.dataset.voices = String(new Set(this.notes.map((n) => n.voice).filter((v) => v !== undefined)).size);
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    const css = getComputedStyle(c);
    const color = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
    const bg = color('--roll-bg', '#fff');
    const dark = color('--roll-dark', '#eee');
    const line = color('--roll-line', '#ddd');
    const bar = color('--roll-bar', '#aaa');
    const noteColor = color('--roll-note', '#8a5a1f');
    const text = color('--roll-text', '#666');

    g.fillStyle = bg;
    g.fillRect(0, 0, width, height);
    for (let p = lo; p <= hi; p++) {
      const y = (hi - p) * this.row;
      if (BLACK.has(p % 12)) {
        g.fillStyle = dark;
        g.fillRect(0, y, width, this.row);
      }
      if (p % 12 === 0) {
        g.fillStyle = bar;
        g.fillRect(0, y + this.row - 1, width, 1);
        if (this.row >= 6) {
          g.fillStyle = text;
          g.font = `${Math.min(10, this.row + 2)}px system-ui, sans-serif`;
          g.textBaseline = 'bottom';
          g.fillText(pitchName(p), 2, y + this.row);
        }
      }
    }
    for (let s = 0; s <= steps; s++) {
      if (this.cell < 4 && s % 4 !== 0) continue;
      g.fillStyle = s % 16 === 0 ? bar : line;
      g.fillRect(KEY_GUTTER + s * this.cell, 0, s % 4 === 0 ? 1 : 0.5, height);
    }
    const voiceColors = VOICE_COLORS.map((name, i) => color(name, VOICE_FALLBACKS[i]));
    for (const n of this.notes) {
      if (n.pitch < lo || n.pitch > hi) continue;
      const x = KEY_GUTTER + n.start * this.cell + 0.5;
      const y = (hi - n.pitch) * this.row + 0.5;
      g.fillStyle = n.voice === undefined ? noteColor : voiceColors[Math.min(n.voice, voiceColors.length - 1)];
      g.globalAlpha = this.muted.has(n.voice) ? 0.2 : 1;
      g.fillRect(x, y, Math.max(1, (n.end - n.start) * this.cell - 1), Math.max(1, this.row - 1));
    }
    g.globalAlpha = 1;
    for (const [step, style] of [
      [this.cursor, color('--roll-cursor', '#2a6fdb')],
      [this.playhead, color('--roll-playhead', '#d33')],
      [this.mark, color('--roll-mark', '#6a3fb5')],
    ]) {
      if (step === null) continue;
      g.fillStyle = style;
      g.fillRect(KEY_GUTTER + step * this.cell - 1, 0, 2, height);
    }
  }

  #cellAt(event) {
    const r = this.canvas.getBoundingClientRect();
    const step = Math.floor((event.clientX - r.left - KEY_GUTTER) / this.cell);
    const pitch = this.layout.hi - Math.floor((event.clientY - r.top) / this.row);
    return { step, pitch };
  }

  #noteAt({ step, pitch }) {
    return this.notes.findIndex((n) => n.pitch === pitch && n.start <= step && step < n.end);
  }

  /** The step of a click on a read-only roll, for the caller. */
  #listenForSteps() {
    this.canvas.style.cursor = 'pointer';
    this.canvas.addEventListener('click', (event) => {
      const { step } = this.#cellAt(event);
      if (step >= 0 && step < this.layout.steps) this.onStep(step);
    });
  }

  // One gesture: pointerdown on a note deletes it (on release, if the pointer
  // stayed put); on empty space it adds a one-step note that the drag lengthens.
  #listen() {
    let gesture = null;
    this.canvas.addEventListener('pointerdown', (event) => {
      if (event.button !== 0) return;
      const at = this.#cellAt(event);
      if (at.step < 0 || at.pitch < this.layout.lo || at.pitch > this.layout.hi) return;
      this.canvas.setPointerCapture?.(event.pointerId);
      // Focus for typing, without the jump a scroll-into-view would make mid-gesture.
      this.canvas.focus({ preventScroll: true });
      const hit = this.#noteAt(at);
      this.onChange(this.notes, 'before');
      if (hit >= 0) {
        gesture = { kind: 'delete', index: hit, at };
      } else {
        const note = { pitch: at.pitch, start: at.step, end: at.step + 1 };
        this.notes.push(note);
        gesture = { kind: 'add', note };
        this.draw();
        this.onNote(note.pitch);
      }
      event.preventDefault();
    });
    this.canvas.addEventListener('pointermove', (event) => {
      if (gesture?.kind !== 'add') return;
      const { step } = this.#cellAt(event);
      const end = Math.max(gesture.note.start + 1, step + 1);
      if (end !== gesture.note.end) {
        gesture.note.end = end;
        this.draw();
      }
    });
    const finish = (event) => {
      if (!gesture) return;
      if (gesture.kind === 'delete') {
        const at = this.#cellAt(event);
        if (at.step === gesture.at.step && at.pitch === gesture.at.pitch) this.notes.splice(gesture.index, 1);
      }
      gesture = null;
      this.draw();
      this.onChange(this.notes, 'after');
    };
    this.canvas.addEventListener('pointerup', finish);
    this.canvas.addEventListener('pointercancel', finish);
  }
}
