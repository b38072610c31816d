// Playback: step-grid notes to sound, either through a WebMIDI output the
// person picked or through a small built-in WebAudio synth.
//
// Events are scheduled a little ahead (LOOKAHEAD_S) from a timer, so tempo
// changes take effect quickly and Stop never leaves much queued. Stop
// silences everything at once: the synth's output is cut, and a MIDI output
// gets all-notes-off (CC 123) on every channel, now and again just after the
// last message that may already be queued.

const LOOKAHEAD_S = 0.15;
const TICK_MS = 40;
const VELOCITY = 100;
const PREVIEW_S = 0.25;

export class Player {
  constructor() {
    this.output = null; // a WebMIDI MIDIOutput, or null for the synth
    this.audio = null; // AudioContext, made on the first Play (a user gesture)
    this.session = null;
    this.qpm = 120;
  }

  setOutput(output) {
    this.stop();
    this.output = output;
  }

  get playing() {
    return this.session !== null;
  }

  /**
   * Plays notes from step 0; `onStep(step)` follows the playhead and
   * `onEnd()` is called when it finishes or is stopped. A note with a
   * `voice` sounds on that MIDI channel, and not at all while
   * `isMuted(voice)` says so (asked as it is due, so muting takes effect
   * while playing).
   */
  play(notes, { onStep = () => {}, onEnd = () => {}, isMuted = () => false } = {}) {
    this.stop();
    const events = [];
    notes.forEach((n, id) => {
      const channel = Math.min(n.voice ?? 0, 15);
      events.push({ step: n.start, on: true, pitch: n.pitch, end: n.end, id, voice: n.voice, channel });
      events.push({ step: n.end, on: false, pitch: n.pitch, id, channel });
    });
    // Note-offs first within a step, so repeated notes re-strike.
    events.sort((a, b) => a.step - b.step || a.on - b.on);
    const lastStep = notes.reduce((m, n) => Math.max(m, n.end), 0);
    const sink = this.output ? new MidiSink(this.output) : new SynthSink(this.#audioContext());
    const session = { sink, events, next: 0, lastStep, onStep, onEnd, isMuted, sounding: new Set(), timer: 0 };
    // Time is kept in steps, so a tempo change bends the rest of the piece.
    session.originTime = sink.now() + 0.05;
    session.originStep = 0;
    session.qpm = this.qpm;
    this.session = session;
    this.#tick(session);
  }

  setTempo(qpm) {
    const s = this.session;
    if (s) {
      // Re-anchor so the step now sounding stays where it is.
      const now = s.sink.now();
      s.originStep = this.#stepAt(s, now);
      s.originTime = now;
      s.qpm = qpm;
    }
    this.qpm = qpm;
  }

  /** Sounds one short note now (hearing what is typed), unless a piece is playing. */
  preview(pitch) {
    if (this.session) return;
    const sink = this.output ? new MidiSink(this.output) : new SynthSink(this.#audioContext());
    const now = sink.now();
    sink.noteOn(pitch, now, now + PREVIEW_S);
    sink.noteOff(pitch, now + PREVIEW_S);
    sink.finish();
  }

  /**
   * Sounds notes as they are asked for, for live playing (the synth or the
   * MIDI output): {noteOn(pitch, channel), noteOff(pitch, channel),
   * click(accent), silence()}. Stops any playback first.
   */
  liveSink() {
    this.stop();
    const sink = this.output ? new MidiSink(this.output) : new SynthSink(this.#audioContext());
    // Held until released: a note-on's planned end is far away.
    const HELD_S = 600;
    return {
      noteOn: (pitch, channel) => sink.noteOn(pitch, sink.now(), sink.now() + HELD_S, channel),
      noteOff: (pitch, channel) => sink.noteOff(pitch, sink.now(), channel),
      click: (accent) => sink.click(sink.now(), accent),
      silence: () => sink.silence(),
    };
  }

  stop() {
    const s = this.session;
    if (!s) return;
    this.session = null;
    clearTimeout(s.timer);
    s.sink.silence();
    s.onEnd();
  }

  #audioContext() {
    if (!this.audio) this.audio = new AudioContext();
    if (this.audio.state === 'suspended') this.audio.resume();
    return this.audio;
  }

  #stepAt(s, time) {
    return s.originStep + ((time - s.originTime) * s.qpm * 4) / 60;
  }

  #timeOf(s, step) {
    return s.originTime + ((step - s.originStep) * 60) / (s.qpm * 4);
  }

  #tick(s) {
    if (this.session !== s) return;
    const horizon = s.sink.now() + LOOKAHEAD_S;
    while (s.next < s.events.length && this.#timeOf(s, s.events[s.next].step) <= horizon) {
      const e = s.events[s.next++];
      const at = Math.max(this.#timeOf(s, e.step), s.sink.now());
      if (e.on && !s.isMuted(e.voice)) {
        s.sounding.add(e.id);
        s.sink.noteOn(e.pitch, at, this.#timeOf(s, e.end), e.channel);
      } else if (!e.on && s.sounding.delete(e.id)) {
        s.sink.noteOff(e.pitch, at, e.channel);
      }
    }
    const step = this.#stepAt(s, s.sink.now());
    s.onStep(Math.max(0, Math.min(step, s.lastStep)));
    if (s.next >= s.events.length && step >= s.lastStep) {
      this.session = null;
      s.sink.finish();
      s.onEnd();
      return;
    }
    s.timer = setTimeout(() => this.#tick(s), TICK_MS);
  }
}

/** Sends to a WebMIDI output (a voice a channel); times in seconds of performance.now(). */
class MidiSink {
  constructor(output) {
    this.output = output;
  }
  now() {
    return performance.now() / 1000;
  }
  noteOn(pitch, at, _until, channel = 0) {
    this.output.send([0x90 | channel, pitch, VELOCITY], at * 1000);
  }
  noteOff(pitch, at, channel = 0) {
    this.output.send([0x80 | channel, pitch, 0], at * 1000);
  }
  /** A metronome click: General MIDI's woodblocks on the drum channel. */
  click(at, accent) {
    const note = accent ? 76 : 77;
    this.output.send([0x99, note, accent ? 110 : 80], at * 1000);
    this.output.send([0x89, note, 0], at * 1000 + 50);
  }
  finish() {}
  silence() {
    const allOff = (at) => {
      for (let ch = 0; ch < 16; ch++) this.output.send([0xb0 | ch, 123, 0], at);
    };
    this.output.clear?.();
    allOff(undefined);
    // Anything queued before Stop plays within the lookahead: silence after it too.
    allOff(performance.now() + LOOKAHEAD_S * 1000 + 20);
  }
}

/** A soft organ-like synth: two detuned oscillators per note through one master gain. */
class SynthSink {
  constructor(ctx) {
    this.ctx = ctx;
    this.master = ctx.createGain();
    this.master.gain.value = 0.18;
    this.master.connect(ctx.destination);
    this.voices = new Map(); // pitch -> [{osc, gain}]
  }
  now() {
    return this.ctx.currentTime;
  }
  noteOn(pitch, at, until) {
    const freq = 440 * 2 ** ((pitch - 69) / 12);
    const gain = this.ctx.createGain();
    gain.gain.setValueAtTime(0, at);
    gain.gain.linearRampToValueAtTime(0.5, at + 0.02);
    gain.gain.setTargetAtTime(0.35, at + 0.02, 0.2);
    gain.connect(this.master);
    const oscs = [
      ['triangle', 0],
      ['sine', 4],
    ].map(([type, detune]) => {
      const osc = this.ctx.createOscillator();
      osc.type = type;
      osc.frequency.value = freq;
      osc.detune.value = detune;
      osc.connect(gain);
      osc.start(at);
      osc.stop(until + 0.2);
      return osc;
    });
    const voice = { oscs, gain };
    if (!this.voices.has(pitch)) this.voices.set(pitch, []);
    this.voices.get(pitch).push(voice);
  }
  noteOff(pitch, at) {
    const voice = this.voices.get(pitch)?.shift();
    if (!voice) return;
    voice.gain.gain.cancelScheduledValues(at);
    voice.gain.gain.setTargetAtTime(0, at, 0.03);
    for (const osc of voice.oscs) osc.stop(at + 0.3);
  }
  /** A metronome click: a short high blip, higher on the bar's first beat. */
  click(at, accent) {
    const osc = this.ctx.createOscillator();
    const gain = this.ctx.createGain();
    osc.frequency.value = accent ? 1760 : 1320;
    gain.gain.setValueAtTime(0.4, at);
    gain.gain.exponentialRampToValueAtTime(0.001, at + 0.05);
    osc.connect(gain);
    gain.connect(this.master);
    osc.start(at);
    osc.stop(at + 0.06);
  }
  finish(afterS = 0) {
    setTimeout(() => this.master.disconnect(), (afterS + 0.5) * 1000);
  }
  silence() {
    const t = this.ctx.currentTime;
    this.master.gain.cancelScheduledValues(t);
    this.master.gain.setValueAtTime(this.master.gain.value, t);
    this.master.gain.linearRampToValueAtTime(0, t + 0.02);
    setTimeout(() => this.master.disconnect(), 60);
  }
}
