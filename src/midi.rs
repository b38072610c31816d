//! MIDI files in and out, read as the original's reader (pretty_midi +
//! note_seq) reads them and written as its writer writes them.
//!
//! Why so literal: the original turns ticks into seconds (and back) with a
//! particular sequence of f64 operations, and everything downstream
//! (quantization, the event encoding, the golden files) sees those exact
//! float values. A mathematically equal formula computed in another order
//! can land one ulp away and move a note across a quantization boundary, so
//! every formula below is the original's, operation for operation.
//!
//! The file is parsed with `midly` inside a small chunk reader that follows
//! mido (the parser under pretty_midi): the header must come first, exactly
//! the declared number of `MTrk` chunks must follow, and a chunk cut short by
//! the end of the file is an error (midly alone would silently accept it).

use std::collections::{BTreeMap, HashMap};

use midly::{EventIter, MetaMessage, MidiMessage, TrackEventKind};

use crate::error::{Error, Result};
use crate::note_sequence::{DEFAULT_QPM, Note, NoteSequence, STANDARD_PPQ, Tempo, TimeSignature};

/// note_seq raises pretty_midi's limit on the largest tick to this value
/// (pretty_midi's own default is 1e7) so that files with absurd tick rates
/// still load; a file beyond it is taken as corrupt.
const MAX_TICK: f64 = 1e10;

/// The MIDI drum channel: pretty_midi marks its instruments as drums and
/// never gives it to a pitched instrument when writing.
const DRUM_CHANNEL: u8 = 9;

// ---------------------------------------------------------------------------
// Ticks and seconds
// ---------------------------------------------------------------------------

/// pretty_midi's tick-to-seconds table (`__tick_to_time`) and its tempo list
/// (`_tick_scales`), without allocating the table.
///
/// pretty_midi fills an array indexed by tick, one tempo segment after
/// another, each entry `last_end_time + tick_scale * k`, and converts seconds
/// back to ticks with a binary search over that array. Here each segment is
/// kept as a run and evaluated on demand with the same two f64 operations, so
/// every value is bit-identical to the array's, and the binary search probes
/// the same indices. Later runs overwrite earlier ones, as the array
/// assignments do, which keeps even an out-of-order tempo list faithful.
#[derive(Debug)]
struct TickMap {
    /// `(tick, seconds per tick)` in list order, as `_tick_scales`.
    scales: Vec<(u64, f64)>,
    /// The segments painted into the table, in painting order.
    runs: Vec<Run>,
    /// The length of the table pretty_midi would allocate.
    len: u64,
    /// Whether the tempo ticks never decrease (always so when reading): then
    /// the runs are ordered and a lookup can bisect them.
    ordered: bool,
}

/// Table entries `start..end` hold `base + scale * (tick - start)`.
#[derive(Clone, Copy, Debug)]
struct Run {
    start: u64,
    end: u64,
    base: f64,
    scale: f64,
}

impl Run {
    fn covers(&self, tick: u64) -> bool {
        (self.start..self.end).contains(&tick)
    }

    /// numpy's `last_end_time + tick_scale * np.arange(...)[k]`.
    fn time_at(&self, tick: u64) -> f64 {
        self.base + self.scale * (tick - self.start) as f64
    }
}

impl TickMap {
    /// pretty_midi's `_update_tick_to_time(max_tick)` over `scales`.
    fn new(scales: Vec<(u64, f64)>, max_tick: u64) -> Self {
        let top = scales
            .iter()
            .map(|&(tick, _)| tick)
            .fold(max_tick, u64::max);
        let ordered = scales.windows(2).all(|w| w[0].0 <= w[1].0);
        let mut map = TickMap {
            scales,
            runs: Vec::new(),
            len: top.saturating_add(1),
            ordered,
        };
        let mut last_end_time = 0.0;
        for i in 1..map.scales.len() {
            let ((start, scale), (end, _)) = (map.scales[i - 1], map.scales[i]);
            if end >= start {
                map.runs.push(Run {
                    start,
                    end: end.saturating_add(1),
                    base: last_end_time,
                    scale,
                });
            }
            last_end_time = map.painted(end);
        }
        let (start, scale) = *map.scales.last().expect("pretty_midi always has a tempo");
        map.runs.push(Run {
            start,
            end: map.len,
            base: last_end_time,
            scale,
        });
        map
    }

    /// Appends a tempo and rebuilds the table, as note_seq's writer does
    /// (`_tick_scales.append(...)` then `_update_tick_to_time(0)`).
    fn push(&mut self, tick: u64, scale: f64) {
        let mut scales = std::mem::take(&mut self.scales);
        scales.push((tick, scale));
        *self = TickMap::new(scales, 0);
    }

    /// What the table holds at `tick` so far (zero where nothing was painted,
    /// as `np.zeros`).
    fn painted(&self, tick: u64) -> f64 {
        self.runs
            .iter()
            .rev()
            .find(|run| run.covers(tick))
            .map_or(0.0, |run| run.time_at(tick))
    }

    /// `__tick_to_time[tick]`: seconds at an absolute tick.
    fn time_at(&self, tick: u64) -> f64 {
        if self.ordered {
            // The last run starting at or before `tick` is the one painted last there.
            let i = self.runs.partition_point(|run| run.start <= tick);
            self.runs[..i].last().map_or(0.0, |run| run.time_at(tick))
        } else {
            self.painted(tick)
        }
    }

    /// pretty_midi's `time_to_tick`: the nearest table entry, or beyond the
    /// table an extrapolation with the last tempo rounded half to even
    /// (Python's `round`).
    fn time_to_tick(&self, time: f64) -> u64 {
        let tick = self.search_left(time);
        if tick == self.len {
            let last = self.len - 1;
            let (_, final_scale) = *self.scales.last().expect("pretty_midi always has a tempo");
            let ticks = last as f64 + (time - self.time_at(last)) / final_scale;
            // Saturating: a time too large or not a number gives no meaningful
            // tick (the original raises there).
            return ticks.round_ties_even() as u64;
        }
        if tick > 0 && (time - self.time_at(tick - 1)).abs() < (time - self.time_at(tick)).abs() {
            tick - 1
        } else {
            tick
        }
    }

    /// `np.searchsorted(table, time, side="left")`, probing exactly as
    /// numpy's binary search does (NaN sorts last, as in numpy).
    fn search_left(&self, time: f64) -> u64 {
        let (mut low, mut high) = (0, self.len);
        while low < high {
            let mid = low + (high - low) / 2;
            if self.time_at(mid) < time || time.is_nan() {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        low
    }
}

// ---------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------

/// Parses a Standard MIDI File (format 0, 1 or 2) into a note sequence, as
/// note_seq's `midi_to_note_sequence` does through pretty_midi.
///
/// Tempo and time signatures come from the first track only; notes from all
/// tracks, one instrument per (program, channel, track) in order of first
/// note. Anything pretty_midi or mido refuses is an [`Error::Midi`] saying
/// why; no input makes this panic.
pub fn read_midi(bytes: &[u8]) -> Result<NoteSequence> {
    let file = parse_file(bytes)?;
    let largest = file
        .tracks
        .iter()
        .filter_map(|track| track.last())
        .map(|&(tick, _)| tick)
        .max()
        .unwrap_or(0);
    if largest as f64 + 1.0 > MAX_TICK {
        return Err(midi_error(format!(
            "largest tick {largest}; the file is probably corrupt"
        )));
    }
    let scales = tick_scales(&file.tracks[0], file.resolution)?;
    // pretty_midi sizes its table as max_tick + 1 with max_tick = largest + 1.
    let map = TickMap::new(scales, largest + 1);
    let time_signatures = time_signatures(&file.tracks[0], &map)?;
    let notes = notes(&file.tracks, &map);
    Ok(NoteSequence {
        total_time: total_time(&notes),
        tempos: tempos(&map, file.resolution),
        time_signatures,
        notes,
        ticks_per_quarter: file.resolution,
        ..NoteSequence::default()
    })
}

/// A parsed file: ticks per quarter and each track's events at absolute ticks.
struct MidiFile<'a> {
    resolution: u16,
    tracks: Vec<Vec<(u64, TrackEventKind<'a>)>>,
}

fn midi_error(message: impl Into<String>) -> Error {
    Error::Midi(message.into())
}

/// Frames the file as mido does and decodes each track with midly.
fn parse_file(bytes: &[u8]) -> Result<MidiFile<'_>> {
    if bytes.is_empty() {
        return Err(midi_error("the file is empty"));
    }
    if !bytes.starts_with(b"MThd") {
        return Err(midi_error(
            "no 'MThd' header: this is not a Standard MIDI File",
        ));
    }
    let mut rest = bytes;
    let header = match split_chunk(&mut rest) {
        Some((_, _, data)) if data.len() >= 6 => data,
        _ => return Err(midi_error("the 'MThd' header is truncated")),
    };
    // mido unpacks the header as signed 16-bit numbers (">hhh").
    let track_count = i16::from_be_bytes([header[2], header[3]]);
    let division = i16::from_be_bytes([header[4], header[5]]);
    let resolution = match u16::try_from(division) {
        Err(_) => {
            return Err(midi_error(
                "SMPTE (timecode) time division is not supported",
            ));
        }
        Ok(0) => return Err(midi_error("0 ticks per quarter note")),
        Ok(resolution) => resolution,
    };
    if track_count <= 0 {
        return Err(midi_error("the file declares no tracks"));
    }
    let tracks = (1..=track_count)
        .map(|number| read_track(&mut rest, number, track_count))
        .collect::<Result<_>>()?;
    Ok(MidiFile { resolution, tracks })
}

/// Splits the next chunk off `rest`: its id, declared length and as much of
/// its data as the file holds. `None` when not even a chunk header is left.
fn split_chunk<'a>(rest: &mut &'a [u8]) -> Option<(&'a [u8], usize, &'a [u8])> {
    if rest.len() < 8 {
        return None;
    }
    let (head, tail) = rest.split_at(8);
    let declared = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
    let (data, after) = tail.split_at(declared.min(tail.len()));
    *rest = after;
    Some((&head[..4], declared, data))
}

/// Reads track `number` (1-based) of `count` from `rest`.
fn read_track<'a>(
    rest: &mut &'a [u8],
    number: i16,
    count: i16,
) -> Result<Vec<(u64, TrackEventKind<'a>)>> {
    let Some((id, declared, data)) = split_chunk(rest) else {
        return Err(midi_error(format!(
            "track {number} of {count} is missing: the file ends early"
        )));
    };
    if id != b"MTrk" {
        return Err(midi_error(format!(
            "track {number} of {count} should be an 'MTrk' chunk, found {:?}",
            String::from_utf8_lossy(id)
        )));
    }
    if data.len() < declared {
        return Err(midi_error(format!(
            "track {number} of {count} is truncated: it declares {declared} bytes, the file holds {}",
            data.len()
        )));
    }
    let events = track_events(data)
        .map_err(|why| midi_error(format!("track {number} of {count}: {why}")))?;
    if events.is_empty() {
        // pretty_midi takes the largest tick of every track and fails on an empty one.
        return Err(midi_error(format!(
            "track {number} of {count} has no events"
        )));
    }
    Ok(events)
}

/// A track's events at absolute ticks.
///
/// Two points follow mido rather than midly: a meta event keeps the running
/// status (mido only lets channel messages change it), and a malformed event
/// is an error (midly, without its `strict` feature, silently ends the track
/// there; it is detected here by bytes left unread when iteration stops).
fn track_events(data: &[u8]) -> std::result::Result<Vec<(u64, TrackEventKind<'_>)>, String> {
    let mut iter = EventIter::new(data);
    let mut events = Vec::new();
    let mut tick = 0u64;
    while !iter.unread().is_empty() {
        let offset = data.len() - iter.unread().len();
        let running_status = iter.running_status();
        let event = match iter.next() {
            Some(Ok(event)) => event,
            Some(Err(error)) => return Err(format!("malformed event at byte {offset}: {error}")),
            None => return Err(format!("malformed event at byte {offset}")),
        };
        tick += u64::from(event.delta.as_int());
        if let TrackEventKind::Meta(meta) = event.kind {
            check_meta(&meta).map_err(|why| format!("{why} at byte {offset}"))?;
            *iter.running_status_mut() = running_status;
        }
        events.push((tick, event.kind));
    }
    Ok(events)
}

/// Meta events mido cannot decode make it refuse the whole file.
fn check_meta(meta: &MetaMessage) -> std::result::Result<(), String> {
    match *meta {
        MetaMessage::KeySignature(sharps, _) if !(-7..=7).contains(&sharps) => {
            Err(format!("invalid key signature ({sharps} sharps)"))
        }
        _ => Ok(()),
    }
}

/// pretty_midi's `_load_tempo_changes`: seconds per tick from the first
/// track's tempo events, 120 bpm until the first one; a tempo at tick 0
/// replaces the default and repeats of the current tempo are dropped.
fn tick_scales(track: &[(u64, TrackEventKind)], resolution: u16) -> Result<Vec<(u64, f64)>> {
    let resolution = f64::from(resolution);
    let mut scales = vec![(0, 60.0 / (120.0 * resolution))];
    for &(tick, kind) in track {
        let TrackEventKind::Meta(MetaMessage::Tempo(tempo)) = kind else {
            continue;
        };
        if tempo.as_int() == 0 {
            return Err(midi_error(format!(
                "a tempo of 0 microseconds per quarter note at tick {tick}"
            )));
        }
        let scale = 60.0 / ((6e7 / f64::from(tempo.as_int())) * resolution);
        if tick == 0 {
            scales = vec![(0, scale)];
        } else if scale != scales[scales.len() - 1].1 {
            scales.push((tick, scale));
        }
    }
    Ok(scales)
}

/// pretty_midi's `get_tempo_changes`: each tempo's time and its quarter notes
/// per minute computed back from the seconds per tick (hence values such as
/// 72.00002880001152 for a file written at 72).
fn tempos(map: &TickMap, resolution: u16) -> Vec<Tempo> {
    map.scales
        .iter()
        .map(|&(tick, scale)| Tempo {
            time: map.time_at(tick),
            qpm: 60.0 / (scale * f64::from(resolution)),
        })
        .collect()
}

/// The first track's time signatures, refused where pretty_midi's
/// `TimeSignature` or note_seq's int32 denominator would refuse them.
fn time_signatures(track: &[(u64, TrackEventKind)], map: &TickMap) -> Result<Vec<TimeSignature>> {
    let mut signatures = Vec::new();
    for &(tick, kind) in track {
        let TrackEventKind::Meta(MetaMessage::TimeSignature(numerator, power, _, _)) = kind else {
            continue;
        };
        if numerator == 0 {
            return Err(midi_error(format!(
                "a time signature with numerator 0 at tick {tick}"
            )));
        }
        if power >= 31 {
            return Err(midi_error(format!(
                "invalid time signature denominator 2^{power} at tick {tick}"
            )));
        }
        signatures.push(TimeSignature {
            time: map.time_at(tick),
            numerator: i32::from(numerator),
            denominator: 1 << power,
        });
    }
    Ok(signatures)
}

/// pretty_midi's `_load_instruments` flattened as note_seq does: the notes of
/// each instrument in order of instrument creation, each instrument's notes
/// in the order they were closed.
fn notes(tracks: &[Vec<(u64, TrackEventKind)>], map: &TickMap) -> Vec<Note> {
    let mut instruments = Instruments::default();
    for (track_index, track) in tracks.iter().enumerate() {
        let mut reader = TrackNotes {
            track_index,
            programs: [0; 16],
            open: HashMap::new(),
        };
        for &(tick, kind) in track {
            if let TrackEventKind::Midi { channel, message } = kind {
                reader.event(tick, channel.as_int(), message, map, &mut instruments);
            }
        }
    }
    instruments.notes.into_iter().flatten().collect()
}

/// Instruments keyed by (program, channel, track), numbered in creation order.
#[derive(Default)]
struct Instruments {
    index: HashMap<(u8, u8, usize), usize>,
    notes: Vec<Vec<Note>>,
}

impl Instruments {
    fn add(&mut self, key: (u8, u8, usize), mut note: Note) {
        let next = self.notes.len();
        let index = *self.index.entry(key).or_insert(next);
        if index == next {
            self.notes.push(Vec::new());
        }
        note.instrument = index as u32;
        self.notes[index].push(note);
    }
}

/// The state pretty_midi keeps while reading one track.
struct TrackNotes {
    track_index: usize,
    /// The current program of each channel (0 until a program change).
    programs: [u8; 16],
    /// Sounding notes per (channel, pitch): (start tick, velocity).
    open: HashMap<(u8, u8), Vec<(u64, u8)>>,
}

impl TrackNotes {
    fn event(
        &mut self,
        tick: u64,
        channel: u8,
        message: MidiMessage,
        map: &TickMap,
        instruments: &mut Instruments,
    ) {
        match message {
            MidiMessage::ProgramChange { program } => {
                self.programs[usize::from(channel)] = program.as_int()
            }
            MidiMessage::NoteOn { key, vel } if vel > 0 => {
                self.open
                    .entry((channel, key.as_int()))
                    .or_default()
                    .push((tick, vel.as_int()));
            }
            MidiMessage::NoteOn { key, .. } | MidiMessage::NoteOff { key, .. } => {
                self.close(tick, channel, key.as_int(), map, instruments);
            }
            _ => {}
        }
    }

    /// A note-off ends every open note of its key that started on an earlier
    /// tick. Notes started on this very tick survive only when something was
    /// closed; otherwise pretty_midi drops the key with them (`del
    /// last_note_on[key]`), a quirk kept for parity.
    fn close(
        &mut self,
        tick: u64,
        channel: u8,
        pitch: u8,
        map: &TickMap,
        instruments: &mut Instruments,
    ) {
        let Some(open) = self.open.remove(&(channel, pitch)) else {
            return;
        };
        let (keep, close): (Vec<_>, Vec<_>) =
            open.into_iter().partition(|&(start, _)| start == tick);
        let program = self.programs[usize::from(channel)];
        for &(start, velocity) in &close {
            let mut note = Note::new(
                i32::from(pitch),
                velocity,
                map.time_at(start),
                map.time_at(tick),
            );
            note.program = program;
            note.is_drum = channel == DRUM_CHANNEL;
            instruments.add((program, channel, self.track_index), note);
        }
        if !close.is_empty() && !keep.is_empty() {
            self.open.insert((channel, pitch), keep);
        }
    }
}

/// note_seq's total time: the latest note end, 0 without notes.
fn total_time(notes: &[Note]) -> f64 {
    notes.iter().fold(0.0, |total, note| {
        if total == 0.0 || note.end_time > total {
            note.end_time
        } else {
            total
        }
    })
}

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

/// Writes a note sequence as a format-1 Standard MIDI File, byte for byte as
/// note_seq's `note_sequence_to_pretty_midi` followed by pretty_midi's
/// `write` (through mido, which uses running status).
///
/// The first track holds the tempos and time signatures (4/4 added when none
/// starts at 0); then one track per (instrument, program, is_drum), the one
/// for instrument 0 always present. Where the original would raise instead
/// of writing, this writes what can be written: it leaves out tempos whose
/// qpm is not finite and positive or whose time is not finite, and time
/// signatures whose numerator is outside 1..=255, whose denominator is not
/// positive or whose time is negative; it clamps pitches, velocities and
/// programs into 0..=127.
pub fn write_midi(seq: &NoteSequence) -> Vec<u8> {
    let resolution = if seq.ticks_per_quarter == 0 {
        STANDARD_PPQ
    } else {
        seq.ticks_per_quarter
    };
    let map = writer_tick_map(&seq.tempos, resolution);
    let mut tracks = vec![timing_track(&seq.time_signatures, &map, resolution)];
    tracks.extend(
        instruments(&seq.notes, &seq.part_names)
            .iter()
            .enumerate()
            .map(|(n, inst)| instrument_track(n, inst, &map)),
    );
    encode_file(resolution, &tracks)
}

/// The tempo list as note_seq builds it: the first tempo at time 0 (or 120
/// qpm) is the initial tempo; every other tempo that differs from it is
/// appended at the tick the table so far gives its time.
fn writer_tick_map(tempos: &[Tempo], resolution: u16) -> TickMap {
    let resolution = f64::from(resolution);
    let tempos: Vec<&Tempo> = tempos
        .iter()
        .filter(|t| t.qpm.is_finite() && t.qpm > 0.0 && t.time.is_finite())
        .collect();
    let initial = tempos.iter().find(|t| t.time == 0.0).copied();
    let initial_qpm = initial.map_or(DEFAULT_QPM, |t| t.qpm);
    let mut map = TickMap::new(vec![(0, 60.0 / (initial_qpm * resolution))], 0);
    for tempo in tempos {
        if Some(tempo) == initial {
            continue;
        }
        let scale = 60.0 / (resolution * tempo.qpm);
        let tick = map.time_to_tick(tempo.time);
        map.push(tick, scale);
    }
    map
}

/// One track event as pretty_midi creates it.
#[derive(Clone, Copy, Debug)]
enum Message<'a> {
    Tempo(u32),
    /// Numerator and the denominator's power of two.
    TimeSignature(u8, u8),
    TrackName(&'a str),
    ProgramChange {
        channel: u8,
        program: u8,
    },
    NoteOn {
        channel: u8,
        pitch: u8,
        velocity: u8,
    },
    EndOfTrack,
}

impl Message<'_> {
    /// pretty_midi's `event_compare` order among events of the same tick.
    /// (Track names have no rank there; they stay first, see
    /// [`instrument_track`].)
    fn rank(self) -> u32 {
        match self {
            Message::Tempo(_) => 1 << 16,
            Message::TimeSignature(..) => 2 << 16,
            Message::ProgramChange { .. } => 6 << 16,
            Message::NoteOn {
                pitch, velocity, ..
            } => (10 << 16) + (u32::from(pitch) << 8) + u32::from(velocity),
            // Never sorted: see `instrument_track` and `with_end`.
            Message::TrackName(_) | Message::EndOfTrack => 11 << 16,
        }
    }

    /// mido's encoding. Meta events cancel running status; a channel message
    /// repeating the running status omits its status byte.
    fn encode(self, out: &mut Vec<u8>, running_status: &mut Option<u8>) {
        let (status, data): (u8, &[u8]) = match self {
            Message::Tempo(tempo) => {
                return meta(out, running_status, 0x51, &tempo.to_be_bytes()[1..]);
            }
            Message::TimeSignature(numerator, power) => {
                // mido's defaults: 24 MIDI clocks per click, 8 32nds per quarter.
                return meta(out, running_status, 0x58, &[numerator, power, 24, 8]);
            }
            Message::TrackName(name) => return meta(out, running_status, 0x03, name.as_bytes()),
            Message::EndOfTrack => return meta(out, running_status, 0x2F, &[]),
            Message::ProgramChange { channel, program } => (0xC0 | channel, &[program]),
            Message::NoteOn {
                channel,
                pitch,
                velocity,
            } => (0x90 | channel, &[pitch, velocity]),
        };
        if *running_status != Some(status) {
            out.push(status);
        }
        out.extend_from_slice(data);
        *running_status = Some(status);
    }
}

fn meta(out: &mut Vec<u8>, running_status: &mut Option<u8>, kind: u8, data: &[u8]) {
    out.extend_from_slice(&[0xFF, kind]);
    write_varlen(out, data.len() as u64);
    out.extend_from_slice(data);
    *running_status = None;
}

/// mido's variable-length quantity (no 4-byte limit, as mido).
fn write_varlen(out: &mut Vec<u8>, mut value: u64) {
    let mut groups = vec![(value & 0x7F) as u8];
    value >>= 7;
    while value > 0 {
        groups.push((value & 0x7F) as u8 | 0x80);
        value >>= 7;
    }
    out.extend(groups.iter().rev());
}

/// A track's events at absolute ticks.
type Track<'a> = Vec<(u64, Message<'a>)>;

/// Sorts by tick then by pretty_midi's rank (stable, as Python's sort).
fn sorted(mut events: Track<'_>) -> Track<'_> {
    events.sort_by_key(|&(tick, message)| (tick, message.rank()));
    events
}

/// Ends a sorted track one tick after its last event, as pretty_midi does.
fn with_end(mut events: Track<'_>) -> Track<'_> {
    let end = events.last().map_or(0, |&(tick, _)| tick.saturating_add(1));
    events.push((end, Message::EndOfTrack));
    events
}

/// Track 0: a default 4/4 unless a time signature starts at 0, every tempo,
/// every time signature.
fn timing_track(signatures: &[TimeSignature], map: &TickMap, resolution: u16) -> Track<'static> {
    let signatures: Vec<&TimeSignature> = signatures
        .iter()
        .filter(|ts| (1..=255).contains(&ts.numerator) && ts.denominator > 0 && ts.time >= 0.0)
        .collect();
    let mut events = Vec::new();
    if signatures.iter().all(|ts| ts.time > 0.0) {
        events.push((0, Message::TimeSignature(4, 2)));
    }
    let resolution = f64::from(resolution);
    for &(tick, scale) in &map.scales {
        let tempo = (6e7 / (60.0 / (scale * resolution))) as u32;
        events.push((tick, Message::Tempo(tempo.min(0xFF_FFFF))));
    }
    for ts in signatures {
        // mido writes int(log2(denominator)); ilog2 is that, exactly.
        let power = ts.denominator.ilog2() as u8;
        events.push((
            map.time_to_tick(ts.time),
            Message::TimeSignature(ts.numerator as u8, power),
        ));
    }
    with_end(sorted(events))
}

/// One pretty_midi instrument as note_seq fills it.
struct Instrument<'a> {
    program: u8,
    is_drum: bool,
    name: Option<&'a str>,
    notes: Vec<&'a Note>,
}

/// note_seq's grouping: notes by (instrument, program, is_drum) in sorted
/// order. Instrument 0 always exists (note_seq creates it up front for the
/// time signatures) and every group of instrument 0 replaces its notes, so
/// only the last such group is written, as in the original. Other groups get
/// their own instrument named after the General MIDI program (or "Drums"),
/// unless the sequence names its parts (voices), whose names are used.
fn instruments<'a>(notes: &'a [Note], part_names: &'a [String]) -> Vec<Instrument<'a>> {
    let named = |id: u32| part_names.get(id as usize).map(String::as_str);
    let mut groups: BTreeMap<(u32, u8, bool), Vec<&Note>> = BTreeMap::new();
    for note in notes {
        groups
            .entry((note.instrument, note.program, note.is_drum))
            .or_default()
            .push(note);
    }
    let mut instruments = vec![Instrument {
        program: 0,
        is_drum: false,
        name: None,
        notes: Vec::new(),
    }];
    for ((id, program, is_drum), notes) in groups {
        let program = program.min(127);
        if id == 0 {
            instruments[0] = Instrument {
                program,
                is_drum,
                name: named(0),
                notes,
            };
        } else {
            let name = named(id).unwrap_or(if is_drum {
                "Drums"
            } else {
                GM_PROGRAM_NAMES[usize::from(program)]
            });
            instruments.push(Instrument {
                program,
                is_drum,
                name: Some(name),
                notes,
            });
        }
    }
    instruments
}

/// The track of the `n`th instrument: its name, its program at tick 0, then a
/// note-on and a velocity-0 note-on per note.
///
/// pretty_midi sorts the name in with the rest, but its comparison ranks
/// the name equal to everything at tick 0 and the program change below every
/// note, so Python's stable sort leaves both in front; only the notes need
/// sorting. Its later swap of a note-on followed by a same-pitch note-off is
/// never triggered (the rank already puts velocity 0 first), so it is not
/// repeated here.
fn instrument_track<'a>(n: usize, instrument: &Instrument<'a>, map: &TickMap) -> Track<'a> {
    // Channels in turn, skipping the drum channel unless it is a drum track.
    let channel = if instrument.is_drum {
        DRUM_CHANNEL
    } else {
        let channel = (n % 15) as u8;
        if channel >= DRUM_CHANNEL {
            channel + 1
        } else {
            channel
        }
    };
    let mut notes = Vec::with_capacity(2 * instrument.notes.len());
    for note in &instrument.notes {
        let pitch = note.pitch.clamp(0, 127) as u8;
        let velocity = note.velocity.min(127);
        notes.push((
            map.time_to_tick(note.start_time),
            Message::NoteOn {
                channel,
                pitch,
                velocity,
            },
        ));
        notes.push((
            map.time_to_tick(note.end_time),
            Message::NoteOn {
                channel,
                pitch,
                velocity: 0,
            },
        ));
    }
    let mut events: Track = instrument
        .name
        .map(|name| (0, Message::TrackName(name)))
        .into_iter()
        .collect();
    events.push((
        0,
        Message::ProgramChange {
            channel,
            program: instrument.program,
        },
    ));
    events.extend(sorted(notes));
    with_end(events)
}

/// The header and the tracks with delta times, as mido's `MidiFile.save`
/// writes them (format 1).
fn encode_file(resolution: u16, tracks: &[Track<'_>]) -> Vec<u8> {
    let mut out = b"MThd\0\0\0\x06\0\x01".to_vec();
    out.extend_from_slice(
        &u16::try_from(tracks.len())
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(&resolution.to_be_bytes());
    for track in tracks {
        let mut data = Vec::new();
        let (mut previous, mut running_status) = (0, None);
        for &(tick, message) in track {
            write_varlen(&mut data, tick - previous);
            previous = tick;
            message.encode(&mut data, &mut running_status);
        }
        out.extend_from_slice(b"MTrk");
        out.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(&data);
    }
    out
}

/// pretty_midi's `INSTRUMENT_MAP`: the General MIDI program names it gives
/// instruments other than 0 (they end up as track names in the file).
const GM_PROGRAM_NAMES: [&str; 128] = [
    "Acoustic Grand Piano",
    "Bright Acoustic Piano",
    "Electric Grand Piano",
    "Honky-tonk Piano",
    "Electric Piano 1",
    "Electric Piano 2",
    "Harpsichord",
    "Clavinet",
    "Celesta",
    "Glockenspiel",
    "Music Box",
    "Vibraphone",
    "Marimba",
    "Xylophone",
    "Tubular Bells",
    "Dulcimer",
    "Drawbar Organ",
    "Percussive Organ",
    "Rock Organ",
    "Church Organ",
    "Reed Organ",
    "Accordion",
    "Harmonica",
    "Tango Accordion",
    "Acoustic Guitar (nylon)",
    "Acoustic Guitar (steel)",
    "Electric Guitar (jazz)",
    "Electric Guitar (clean)",
    "Electric Guitar (muted)",
    "Overdriven Guitar",
    "Distortion Guitar",
    "Guitar Harmonics",
    "Acoustic Bass",
    "Electric Bass (finger)",
    "Electric Bass (pick)",
    "Fretless Bass",
    "Slap Bass 1",
    "Slap Bass 2",
    "Synth Bass 1",
    "Synth Bass 2",
    "Violin",
    "Viola",
    "Cello",
    "Contrabass",
    "Tremolo Strings",
    "Pizzicato Strings",
    "Orchestral Harp",
    "Timpani",
    "String Ensemble 1",
    "String Ensemble 2",
    "Synth Strings 1",
    "Synth Strings 2",
    "Choir Aahs",
    "Voice Oohs",
    "Synth Choir",
    "Orchestra Hit",
    "Trumpet",
    "Trombone",
    "Tuba",
    "Muted Trumpet",
    "French Horn",
    "Brass Section",
    "Synth Brass 1",
    "Synth Brass 2",
    "Soprano Sax",
    "Alto Sax",
    "Tenor Sax",
    "Baritone Sax",
    "Oboe",
    "English Horn",
    "Bassoon",
    "Clarinet",
    "Piccolo",
    "Flute",
    "Recorder",
    "Pan Flute",
    "Blown bottle",
    "Shakuhachi",
    "Whistle",
    "Ocarina",
    "Lead 1 (square)",
    "Lead 2 (sawtooth)",
    "Lead 3 (calliope)",
    "Lead 4 chiff",
    "Lead 5 (charang)",
    "Lead 6 (voice)",
    "Lead 7 (fifths)",
    "Lead 8 (bass + lead)",
    "Pad 1 (new age)",
    "Pad 2 (warm)",
    "Pad 3 (polysynth)",
    "Pad 4 (choir)",
    "Pad 5 (bowed)",
    "Pad 6 (metallic)",
    "Pad 7 (halo)",
    "Pad 8 (sweep)",
    "FX 1 (rain)",
    "FX 2 (soundtrack)",
    "FX 3 (crystal)",
    "FX 4 (atmosphere)",
    "FX 5 (brightness)",
    "FX 6 (goblins)",
    "FX 7 (echoes)",
    "FX 8 (sci-fi)",
    "Sitar",
    "Banjo",
    "Shamisen",
    "Koto",
    "Kalimba",
    "Bagpipe",
    "Fiddle",
    "Shanai",
    "Tinkle Bell",
    "Agogo",
    "Steel Drums",
    "Woodblock",
    "Taiko Drum",
    "Melodic Tom",
    "Synth Drum",
    "Reverse Cymbal",
    "Guitar Fret Noise",
    "Breath Noise",
    "Seashore",
    "Bird Tweet",
    "Telephone Ring",
    "Helicopter",
    "Applause",
    "Gunshot",
];

#[cfg(test)]
mod tests {
    use super::*;

    /// pretty_midi's `_update_tick_to_time`, transcribed literally with a
    /// real table, to check the run representation against.
    fn table(scales: &[(u64, f64)], max_tick: u64) -> Vec<f64> {
        let top = scales.iter().map(|s| s.0).fold(max_tick, u64::max) as usize;
        let mut table = vec![0.0; top + 1];
        let mut last_end_time = 0.0;
        for pair in scales.windows(2) {
            let ((start, scale), (end, _)) = (pair[0], pair[1]);
            for k in 0..(end + 1).saturating_sub(start) {
                table[(start + k) as usize] = last_end_time + scale * k as f64;
            }
            last_end_time = table[end as usize];
        }
        let (start, scale) = scales[scales.len() - 1];
        for (k, entry) in table[start as usize..].iter_mut().enumerate() {
            *entry = last_end_time + scale * k as f64;
        }
        table
    }

    /// pretty_midi's `time_to_tick` over a literal table.
    fn table_time_to_tick(table: &[f64], final_scale: f64, time: f64) -> u64 {
        let (mut low, mut high) = (0, table.len());
        while low < high {
            let mid = low + (high - low) / 2;
            if table[mid] < time {
                low = mid + 1
            } else {
                high = mid
            }
        }
        if low == table.len() {
            let last = table.len() - 1;
            return (last as f64 + (time - table[last]) / final_scale).round_ties_even() as u64;
        }
        if low > 0 && (time - table[low - 1]).abs() < (time - table[low]).abs() {
            low as u64 - 1
        } else {
            low as u64
        }
    }

    #[test]
    fn tick_map_equals_pretty_midis_table_even_for_unordered_tempos() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = |modulo: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % modulo
        };
        for _ in 0..500 {
            let count = 1 + next(5) as usize;
            let mut scales = vec![(0, 60.0 / ((40 + next(200)) as f64 * 220.0))];
            for _ in 1..count {
                scales.push((next(300), 60.0 / ((40 + next(200)) as f64 * 220.0)));
            }
            let max_tick = next(400);
            let map = TickMap::new(scales.clone(), max_tick);
            let table = table(&scales, max_tick);
            assert_eq!(map.len as usize, table.len());
            for (tick, &time) in table.iter().enumerate() {
                assert_eq!(
                    map.time_at(tick as u64).to_bits(),
                    time.to_bits(),
                    "{scales:?} tick {tick}"
                );
            }
            for _ in 0..20 {
                let time = next(10_000) as f64 / 1000.0;
                let expected = table_time_to_tick(&table, scales[count - 1].1, time);
                assert_eq!(map.time_to_tick(time), expected, "{scales:?} time {time}");
            }
        }
    }
}

/// A playable MIDI file of a piece, as every command and the page write
/// one: [`write_midi`] after [`separate_unisons`], so that the file reads
/// back to the same events.
pub fn write_playable(seq: &NoteSequence) -> Vec<u8> {
    let mut seq = seq.clone();
    separate_unisons(&mut seq);
    write_midi(&seq)
}

/// Moves each note that overlaps a sounding note of the same pitch to another
/// instrument (so another track and channel when written).
///
/// On one MIDI channel two overlapping notes of one pitch cannot be told
/// apart: the first note-off ends both, so two voices in unison come back
/// shortened (the original's output loses them this way). Spreading them
/// over channels makes our own MIDI files read back to the same events.
/// Notes that do not collide stay on their instrument, so ordinary output is
/// written exactly as the original writes it.
fn separate_unisons(seq: &mut NoteSequence) {
    let mut order: Vec<usize> = (0..seq.notes.len()).collect();
    order.sort_by(|&a, &b| seq.notes[a].start_time.total_cmp(&seq.notes[b].start_time));
    // (instrument, pitch, start, end) of the notes placed so far.
    let mut placed: Vec<(u32, i32, f64, f64)> = Vec::with_capacity(order.len());
    for i in order {
        let note = &mut seq.notes[i];
        let collides = |instrument: u32| {
            placed.iter().any(|&(k, pitch, start, end)| {
                k == instrument && pitch == note.pitch && start < note.end_time && note.start_time < end
            })
        };
        let mut instrument = note.instrument;
        while collides(instrument) {
            instrument += 1;
        }
        note.instrument = instrument;
        placed.push((instrument, note.pitch, note.start_time, note.end_time));
    }
}
