// Live harmonization: a melody played on a MIDI keyboard (or the computer
// keyboard) against a metronome is harmonized a sixteenth at a time, as it
// is played. The model (the library's LiveHarmony, on the CPU) writes the
// other voices of a step the moment the melody's note starts it, so they
// sound with it; a step the melody holds or rests through is written at
// its middle. The take is a melody on the step grid and the model's voices
// around it, which becomes a result like any other.

/** Steps per beat (sixteenths) and beats of count-in before step 0. */
const STEPS_PER_BEAT = 4;
const COUNT_IN_BEATS = 4;
/** How often the clock looks for steps and clicks that are due. */
const TICK_MS = 4;

/**
 * One take. `model` is the CPU package's Model, `options` generation options
 * (qpm sets the metronome), `sink` sounds notes now
 * ({noteOn(pitch, channel), noteOff(pitch, channel), click(accent)}).
 * `onStep(step)` follows the clock.
 */
export class LiveTake {
  constructor(model, options, sink, { onStep = () => {} } = {}) {
    this.live = model.live({ ...options, harmonize: true });
    this.options = options;
    this.sink = sink;
    this.onStep = onStep;
    this.stepMs = 60000 / (options.qpm * STEPS_PER_BEAT);
    // Step 0 starts after the count-in: the first beat clicks at once.
    this.origin = performance.now() + COUNT_IN_BEATS * STEPS_PER_BEAT * this.stepMs;
    this.nextClick = -COUNT_IN_BEATS * STEPS_PER_BEAT;
    this.written = 0;
    this.held = null; // the melody's pitch while its key is down
    this.melody = []; // the melody as step notes
    this.harmony = new Map(); // pitch -> channel, the other voices sounding
    /** Milliseconds from each melody note-on until its step's harmony was sent. */
    this.latencies = [];
    this.timer = setInterval(() => this.#tick(performance.now()), TICK_MS);
  }

  /** The step a note starting at `t` belongs to: the nearest step boundary. */
  stepAt(t) {
    return Math.round((t - this.origin) / this.stepMs);
  }

  /**
   * The melody's note `pitch` starts at `t` (the event's time): its step is
   * written at once (a note late for a step already written starts the next).
   */
  noteOn(pitch, t = performance.now()) {
    if (!this.live) return;
    const step = Math.max(this.stepAt(t), this.written);
    this.#writeUpTo(step, t);
    if (this.held !== null) this.sink.noteOff(this.held, 0);
    this.held = pitch;
    this.sink.noteOn(pitch, 0);
    this.#write(pitch, true);
    this.latencies.push(performance.now() - t);
  }

  /** The melody's key `pitch` is released: it rests from the next step on. */
  noteOff(pitch) {
    if (this.held !== pitch) return;
    this.held = null;
    this.sink.noteOff(pitch, 0);
  }

  /** Ends the take: silence, then the take as an output (notes, voices, MIDI). */
  stop() {
    clearInterval(this.timer);
    if (!this.live) return null;
    if (this.held !== null) this.sink.noteOff(this.held, 0);
    for (const [pitch, channel] of this.harmony) this.sink.noteOff(pitch, channel);
    this.harmony.clear();
    const output = this.melody.length > 0 ? this.live.finish() : null;
    this.live.free();
    this.live = null;
    return output;
  }

  /** The take's request, for the result card (rewrite from here, keep a voice). */
  request() {
    const steps = this.melody.reduce((end, n) => Math.max(end, n.end), 0);
    return { options: { ...this.options, harmonize: true, num_steps: steps }, primer: this.melody, primerSteps: steps };
  }

  /** Median and worst latency so far, in ms (null before the first note). */
  latency() {
    if (this.latencies.length === 0) return null;
    const sorted = [...this.latencies].sort((a, b) => a - b);
    return { median: sorted[Math.floor(sorted.length / 2)], worst: sorted[sorted.length - 1], notes: sorted.length };
  }

  #tick(now) {
    if (!this.live) return;
    // Clicks on the beats, the bar's first accented.
    while (this.origin + this.nextClick * this.stepMs <= now) {
      this.sink.click(this.nextClick % (STEPS_PER_BEAT * 4) === 0);
      this.nextClick += STEPS_PER_BEAT;
    }
    // A step the melody holds or rests through is written at its middle.
    this.#writeUpTo(Math.floor((now - this.origin) / this.stepMs + 0.5), now);
    this.onStep(Math.max(0, (now - this.origin) / this.stepMs));
  }

  /** Writes every step before `step` not written yet, as held or rest. */
  #writeUpTo(step) {
    while (this.written < step && this.live) this.#write(this.held, false);
  }

  /** Writes the next step with the melody on `pitch` (null: a rest), and sounds the harmony. */
  #write(pitch, struck) {
    const step = this.written;
    const harmony = this.live.step(pitch ?? -1, struck);
    this.written += 1;
    this.#extendMelody(pitch, struck, step);
    const goesOn = new Set(harmony.sounding.filter((p) => !harmony.struck.includes(p)));
    for (const [p, channel] of this.harmony) {
      if (!goesOn.has(p)) {
        this.sink.noteOff(p, channel);
        this.harmony.delete(p);
      }
    }
    // Alto, tenor, bass on channels 1-3 by their order in the step.
    for (const p of harmony.struck) {
      const channel = 1 + Math.min(2, harmony.sounding.indexOf(p));
      this.sink.noteOn(p, channel);
      this.harmony.set(p, channel);
    }
  }

  #extendMelody(pitch, struck, step) {
    const last = this.melody[this.melody.length - 1];
    if (pitch === null) return;
    if (!struck && last && last.pitch === pitch && last.end === step) last.end = step + 1;
    else this.melody.push({ pitch, start: step, end: step + 1 });
  }
}
