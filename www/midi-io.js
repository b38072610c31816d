// WebMIDI: the list of outputs for playback and note-ons from inputs for the
// primer. Where the browser has no WebMIDI (or the person declines), the page
// works without it: the synth plays and only the computer keyboard types.

/** The MIDIAccess object, or null when WebMIDI is unavailable or refused. */
export async function requestMidi() {
  if (!navigator.requestMIDIAccess) return null;
  try {
    return await navigator.requestMIDIAccess({ sysex: false });
  } catch {
    return null;
  }
}

/**
 * Fills `select` with the built-in synth plus the access's outputs and keeps
 * it current; calls `onPick(output or null)` when the choice changes.
 */
export function bindOutputs(access, select, onPick) {
  const fill = () => {
    const chosen = select.value;
    select.replaceChildren(new Option('Built-in synth (WebAudio)', ''));
    for (const output of access?.outputs.values() ?? []) select.add(new Option(output.name || output.id, output.id));
    select.value = [...select.options].some((o) => o.value === chosen) ? chosen : '';
    if (select.value !== chosen) onPick(null);
  };
  fill();
  select.addEventListener('change', () => onPick(select.value ? access.outputs.get(select.value) ?? null : null));
  if (access) access.addEventListener?.('statechange', fill);
}

/**
 * Calls `onNote(pitch, time)` for every note-on from any input (now or
 * later connected) and `onNoteOff(pitch)` for every note-off; `time` is the
 * message's (performance.now()'s clock). Returns the number of inputs seen
 * at the start.
 */
export function bindInputs(access, onNote, onNoteOff = () => {}) {
  if (!access) return 0;
  const listen = (input) => {
    input.onmidimessage = ({ data, timeStamp }) => {
      const [status, pitch, velocity] = data;
      const kind = status & 0xf0;
      if (kind === 0x90 && velocity > 0) onNote(pitch, timeStamp || performance.now());
      else if (kind === 0x80 || kind === 0x90) onNoteOff(pitch);
    };
  };
  for (const input of access.inputs.values()) listen(input);
  access.addEventListener?.('statechange', (e) => {
    if (e.port?.type === 'input' && e.port.state === 'connected') listen(e.port);
  });
  return access.inputs.size;
}
