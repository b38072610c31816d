// The results: one card per output, drawn with its four voices in four
// colours. Each card plays (a playhead follows; each voice can be muted or
// soloed), downloads as MIDI or MusicXML, shows its score, and is written
// again in part: from a clicked step on ("Rewrite from here"), or around
// its soprano or bass ("Keep soprano", "Keep bass"), as often as wanted,
// with undo. What is written again, and how, is the caller's (`rewrite`).

import { PianoRoll } from './roll.js';
import { showScore } from './score.js';

const VOICE_LABELS = ['S', 'A', 'T', 'B'];
const VOICE_NAMES = ['soprano', 'alto', 'tenor', 'bass'];

/** A new element with the given properties (className, textContent, ...). */
export function element(tag, props = {}, children = []) {
  const el = Object.assign(document.createElement(tag), props);
  el.append(...children);
  return el;
}

export class Results {
  /**
   * @param {HTMLElement} list the <ol> the cards go in
   * @param {object} hooks player; files.{midi, musicxml, score}(notes, qpm, title) → bytes;
   *   rewrite(card, kind) → Promise of a new output or null (kind: 'from-here',
   *   'keep-soprano', 'keep-bass'); name() → the model's name, for file names;
   *   onError(message).
   */
  constructor(list, hooks) {
    this.list = list;
    this.hooks = hooks;
    this.cards = [];
  }

  clear() {
    this.hooks.player.stop();
    this.cards = [];
    this.list.replaceChildren();
  }

  /** Empty cards for a generation of `count` outputs of `steps` steps. */
  start(count, steps, qpm, seed) {
    this.clear();
    for (let i = 0; i < count; i++) this.cards.push(this.#card(i, steps, qpm, seed));
    return this.cards;
  }

  /** Notes drawn while a card's output is being written. */
  draw(card, notes) {
    card.roll.setNotes(notes, card.steps);
  }

  /** A finished output for the card, and the request that made it. */
  fill(card, output, request) {
    Object.assign(card, { notes: output.notes, voices: output.voices, steps: output.steps, midi: output.midi, request });
    card.seed = request?.options?.seed ?? card.seed;
    card.roll.setNotes(card.notes, card.steps, card.voices);
    card.info.textContent = `${output.steps / 16} bars, ${output.notes.length} notes, log-likelihood ${output.log_likelihood.toFixed(1)}`;
    card.li.dataset.ready = 'true';
    for (const b of card.li.querySelectorAll('button, select')) b.disabled = false;
    card.undo.disabled = card.history.length === 0;
    this.#markStep(card, card.mark);
    card.download.hidden = card.downloadXml.hidden = false;
    const base = `${this.hooks.name().replace(/[^\w.-]+/g, '-')}-seed${card.seed}-${String(card.index + 1).padStart(2, '0')}`;
    card.download.download = `${base}.mid`;
    card.downloadXml.download = `${base}.musicxml`;
    card.title = base;
    this.prepareDownloads(card);
    if (!card.scoreBox.hidden) this.#renderScore(card);
  }

  /** Points the download links at the files, written at the tempo now chosen. */
  prepareDownloads(card) {
    const qpm = this.hooks.player.qpm;
    const midi = qpm === card.qpm && card.midi ? card.midi : this.hooks.files.midi(card.notes, qpm, card.title);
    setLink(card.download, midi, 'audio/midi');
    setLink(card.downloadXml, this.hooks.files.musicxml(card.notes, qpm, card.title), 'application/vnd.recordare.musicxml+xml');
  }

  stopAll() {
    this.hooks.player.stop();
  }

  #card(index, steps, qpm, seed) {
    const card = { index, steps, qpm, seed, notes: [], voices: [], midi: null, request: null, history: [], muted: new Set(), solo: null, mark: null, playing: false };
    card.play = element('button', { type: 'button', className: 'play', textContent: 'Play', disabled: true });
    card.info = element('span', { className: 'muted info' });
    card.download = element('a', { className: 'download', textContent: 'MIDI', hidden: true });
    card.downloadXml = element('a', { className: 'download-xml', textContent: 'MusicXML', hidden: true });
    const voiceButtons = VOICE_LABELS.map((label, v) =>
      element('button', { type: 'button', className: `voice v${v}`, textContent: label, title: `Mute or unmute the ${VOICE_NAMES[v]}`, disabled: true }),
    );
    voiceButtons.forEach((b, v) => {
      b.dataset.voice = String(v);
      b.setAttribute('aria-pressed', 'true');
      b.addEventListener('click', () => this.#toggleMute(card, v, voiceButtons));
    });
    card.soloSelect = element('select', { className: 'solo', title: 'Hear one voice alone', disabled: true }, [
      element('option', { value: '', textContent: 'all voices' }),
      ...VOICE_NAMES.map((name, v) => element('option', { value: String(v), textContent: `${name} alone` })),
    ]);
    card.soloSelect.addEventListener('change', () => {
      card.solo = card.soloSelect.value === '' ? null : Number(card.soloSelect.value);
      this.#showMuting(card);
    });
    const scoreToggle = element('button', { type: 'button', className: 'score-toggle', textContent: 'Score', disabled: true });
    card.rewrite = element('button', { type: 'button', className: 'rewrite', textContent: 'Rewrite from here', disabled: true, title: 'Click a step in the roll first' });
    const keepSoprano = element('button', { type: 'button', className: 'keep-soprano', textContent: 'Keep soprano', disabled: true });
    const keepBass = element('button', { type: 'button', className: 'keep-bass', textContent: 'Keep bass', disabled: true });
    card.undo = element('button', { type: 'button', className: 'undo', textContent: 'Undo', disabled: true });
    card.scoreBox = element('div', { className: 'score', hidden: true });
    const canvas = element('canvas');
    card.li = element('li', { className: 'result' }, [
      element('div', { className: 'result-head' }, [
        element('span', { className: 'title', textContent: `Output ${index + 1}` }),
        card.info,
        card.play,
        element('span', { className: 'voices' }, voiceButtons),
        card.soloSelect,
        card.download,
        card.downloadXml,
        scoreToggle,
      ]),
      element('div', { className: 'roll-scroll' }, [canvas]),
      element('div', { className: 'result-tools' }, [card.rewrite, keepSoprano, keepBass, card.undo]),
      card.scoreBox,
    ]);
    this.list.append(card.li);
    // As wide as the page allows: the whole piece at a glance.
    const width = Math.max(300, this.list.clientWidth - 24);
    const cell = Math.max(2, Math.min(12, Math.floor((width - 26) / steps)));
    card.roll = new PianoRoll(canvas, { cell, row: 3, pitchRange: [40, 80], minSteps: steps, onStep: (step) => this.#markStep(card, step) });
    card.roll.totalSteps = steps;
    card.play.addEventListener('click', () => this.#togglePlay(card));
    card.download.addEventListener('click', () => this.prepareDownloads(card));
    card.downloadXml.addEventListener('click', () => this.prepareDownloads(card));
    scoreToggle.addEventListener('click', () => this.#toggleScore(card, scoreToggle));
    card.rewrite.addEventListener('click', () => this.#rewrite(card, 'from-here'));
    keepSoprano.addEventListener('click', () => this.#rewrite(card, 'keep-soprano'));
    keepBass.addEventListener('click', () => this.#rewrite(card, 'keep-bass'));
    card.undo.addEventListener('click', () => this.#undo(card));
    return card;
  }

  #markStep(card, step) {
    card.mark = step;
    card.roll.setMark(step);
    const ready = card.li.dataset.ready === 'true';
    card.rewrite.disabled = !ready || step === null || step === undefined || step <= 0;
    card.rewrite.textContent = step > 0 ? `Rewrite from bar ${Math.floor(step / 16) + 1}, step ${(step % 16) + 1}` : 'Rewrite from here';
  }

  #toggleMute(card, voice, buttons) {
    if (card.muted.has(voice)) card.muted.delete(voice);
    else card.muted.add(voice);
    buttons[voice].setAttribute('aria-pressed', String(!card.muted.has(voice)));
    this.#showMuting(card);
  }

  /** Whether `voice` is silent now (muted, or another voice soloed). */
  #isMuted(card, voice) {
    return card.solo !== null ? voice !== card.solo : card.muted.has(voice);
  }

  #showMuting(card) {
    card.roll.setMuted([0, 1, 2, 3, 4, 5, 6, 7].filter((v) => this.#isMuted(card, v)));
  }

  #togglePlay(card) {
    const wasPlaying = card.playing;
    this.hooks.player.stop();
    if (wasPlaying) return;
    card.playing = true;
    card.play.textContent = 'Stop';
    const notes = card.notes.map((n, i) => ({ ...n, voice: card.voices[i] }));
    this.hooks.player.play(notes, {
      isMuted: (voice) => this.#isMuted(card, voice),
      onStep: (step) => card.roll.setPlayhead(step),
      onEnd: () => {
        card.playing = false;
        card.play.textContent = 'Play';
        card.roll.setPlayhead(null);
      },
    });
  }

  async #toggleScore(card, button) {
    card.scoreBox.hidden = !card.scoreBox.hidden;
    button.setAttribute('aria-pressed', String(!card.scoreBox.hidden));
    if (!card.scoreBox.hidden) await this.#renderScore(card);
  }

  async #renderScore(card) {
    card.scoreBox.dataset.state = 'loading';
    card.scoreBox.textContent = 'Drawing the score…';
    try {
      const xml = new TextDecoder().decode(this.hooks.files.score(card.notes, card.qpm, card.title));
      await showScore(card.scoreBox, xml);
      card.scoreBox.dataset.state = 'ready';
    } catch (err) {
      card.scoreBox.dataset.state = 'error';
      card.scoreBox.textContent = `The score cannot be shown: ${err instanceof Error ? err.message : err}`;
    }
  }

  async #rewrite(card, kind) {
    this.hooks.player.stop();
    const before = { notes: card.notes, voices: card.voices, steps: card.steps, midi: card.midi, request: card.request, seed: card.seed };
    for (const b of card.li.querySelectorAll('.result-tools button')) b.disabled = true;
    card.li.dataset.ready = 'false';
    const output = await this.hooks.rewrite(card, kind);
    if (!output) {
      card.li.dataset.ready = 'true';
      this.#markStep(card, card.mark);
      for (const b of card.li.querySelectorAll('.keep-soprano, .keep-bass')) b.disabled = false;
      card.undo.disabled = card.history.length === 0;
      return;
    }
    card.history.push(before);
    this.fill(card, output.output, output.request);
  }

  #undo(card) {
    const last = card.history.pop();
    if (!last) return;
    this.hooks.player.stop();
    card.seed = last.seed;
    this.fill(card, { ...last, log_likelihood: 0 }, last.request);
    card.info.textContent = `${last.steps / 16} bars, ${last.notes.length} notes (as before)`;
  }
}

function setLink(link, bytes, type) {
  if (link.href) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(new Blob([bytes], { type }));
}
