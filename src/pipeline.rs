//! The original's dataset pipeline, stage by stage: split at time changes,
//! quantize, transpose, extract polyphonic sequences.
//!
//! Each stage copies the original (note_seq 0.0.5 `sequences_lib`, Magenta's
//! `note_sequence_pipelines` and `polyphony_lib`) down to its float arithmetic
//! and its quirks, because the golden event files and the corpus statistics
//! depend on them. Every discard has a reason, counted in [`Stats`].

use std::collections::BTreeMap;
use std::fmt;

use crate::encoding::{self, Event, STEPS_PER_QUARTER};
use crate::note_sequence::{DEFAULT_QPM, NoteSequence, Tempo, TimeSignature};

/// Sequences shorter than this many steps are discarded.
pub const MIN_STEPS: usize = 80;
/// Sequences longer than this many steps are discarded (not split).
pub const MAX_STEPS: usize = 512;
/// The training transpositions, in semitones.
pub const TRANSPOSITIONS: std::ops::RangeInclusive<i32> = -4..=4;

/// Why a (sub)sequence produced no output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Discard {
    /// The quantizer met a time-signature change (cannot happen after splitting).
    MultipleTimeSignatures,
    /// The quantizer met a tempo change (cannot happen after splitting).
    MultipleTempos,
    /// A zero numerator or a denominator that is not a power of two.
    BadTimeSignature,
    /// A note at a negative time.
    NegativeTime,
    /// A transposition would move a note outside 0..127.
    RangeExceeded,
    /// Notes of more than one MIDI program.
    MoreThanOneProgram,
    TooShort,
    TooLong,
}

impl Discard {
    /// The original's statistic name, for tables that compare with it.
    pub fn stat_name(self) -> &'static str {
        match self {
            Discard::MultipleTimeSignatures => "sequences_discarded_because_multiple_time_signatures",
            Discard::MultipleTempos => "sequences_discarded_because_multiple_tempos",
            Discard::BadTimeSignature => "sequences_discarded_because_bad_time_signature",
            Discard::NegativeTime => "sequences_discarded_because_negative_time",
            Discard::RangeExceeded => "skipped_due_to_range_exceeded",
            Discard::MoreThanOneProgram => "polyphonic_tracks_discarded_more_than_1_program",
            Discard::TooShort => "polyphonic_tracks_discarded_too_short",
            Discard::TooLong => "polyphonic_tracks_discarded_too_long",
        }
    }
}

impl fmt::Display for Discard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Discard::MultipleTimeSignatures => "more than one time signature".to_string(),
            Discard::MultipleTempos => "more than one tempo".to_string(),
            Discard::BadTimeSignature => "bad time signature".to_string(),
            Discard::NegativeTime => "note at a negative time".to_string(),
            Discard::RangeExceeded => "transposition leaves the MIDI pitch range".to_string(),
            Discard::MoreThanOneProgram => "more than one MIDI program".to_string(),
            Discard::TooShort => format!("too short (< {MIN_STEPS} steps)"),
            Discard::TooLong => format!("too long (> {MAX_STEPS} steps)"),
        };
        f.write_str(&text)
    }
}

/// Counts of outputs and of every discard reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub inputs: usize,
    pub subsequences: usize,
    pub transpositions_generated: usize,
    pub outputs: usize,
    pub discarded: BTreeMap<Discard, usize>,
}

impl Stats {
    pub fn add(&mut self, other: &Stats) {
        self.inputs += other.inputs;
        self.subsequences += other.subsequences;
        self.transpositions_generated += other.transpositions_generated;
        self.outputs += other.outputs;
        for (reason, n) in &other.discarded {
            *self.discarded.entry(*reason).or_default() += n;
        }
    }

    fn discard(&mut self, reason: Discard) {
        *self.discarded.entry(reason).or_default() += 1;
    }
}

/// What became of one sub-sequence (after the time-change split) for one
/// transposition.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Kept(Vec<Event>),
    /// Discarded; `steps` is the quantized length when quantization got that far.
    Discarded { reason: Discard, steps: Option<i64> },
}

/// Runs split → quantize → transpose → extract on one piece for the given
/// transpositions, keeping (sub-)sequences of up to `max_steps` steps (the
/// original: [`MAX_STEPS`]). Returns the outcome of every (sub-sequence,
/// transposition) pair in that order, and the statistics.
pub fn extract_sequences(seq: &NoteSequence, transpositions: &[i32], max_steps: usize) -> (Vec<Outcome>, Stats) {
    let mut stats = Stats { inputs: 1, ..Stats::default() };
    let mut outcomes = Vec::new();
    for sub in split_on_time_changes(seq) {
        stats.subsequences += 1;
        let quantized = match quantize(&sub, STEPS_PER_QUARTER) {
            Ok(q) => q,
            Err(reason) => {
                stats.discard(reason);
                outcomes.push(Outcome::Discarded { reason, steps: None });
                continue;
            }
        };
        let mut generated = 0;
        for &amount in transpositions {
            let outcome = match transpose(&quantized, amount) {
                Some(t) => {
                    generated += 1;
                    extract_polyphonic(&t, max_steps)
                }
                None => Err(Discard::RangeExceeded),
            };
            outcomes.push(match outcome {
                Ok(events) => {
                    stats.outputs += 1;
                    Outcome::Kept(events)
                }
                Err(reason) => {
                    stats.discard(reason);
                    let steps = Some(quantized.total_quantized_steps);
                    Outcome::Discarded { reason, steps }
                }
            });
        }
        stats.transpositions_generated += generated;
    }
    (outcomes, stats)
}

/// Splits a sequence at every real change of time signature or tempo; each
/// piece starts at time zero and carries the time signature and tempo in
/// force (`split_note_sequence_on_time_changes`).
pub fn split_on_time_changes(seq: &NoteSequence) -> Vec<NoteSequence> {
    enum Change {
        Signature(TimeSignature),
        Tempo(Tempo),
    }
    let time_of = |c: &Change| match c {
        Change::Signature(t) => t.time,
        Change::Tempo(t) => t.time,
    };
    let mut changes: Vec<Change> = seq
        .time_signatures
        .iter()
        .map(|t| Change::Signature(*t))
        .chain(seq.tempos.iter().map(|t| Change::Tempo(*t)))
        .collect();
    changes.sort_by(|a, b| time_of(a).total_cmp(&time_of(b)));
    changes.retain(|c| time_of(c) < seq.total_time);

    let (mut numerator, mut denominator, mut qpm) = (4, 4, DEFAULT_QPM);
    let mut split_times = vec![0.0];
    for change in &changes {
        match change {
            Change::Signature(t) => {
                if (t.numerator, t.denominator) == (numerator, denominator) {
                    continue;
                }
                (numerator, denominator) = (t.numerator, t.denominator);
            }
            Change::Tempo(t) => {
                if t.qpm == qpm {
                    continue;
                }
                qpm = t.qpm;
            }
        }
        let time = time_of(change);
        if time > *split_times.last().expect("never empty") {
            split_times.push(time);
        }
    }
    if seq.total_time > *split_times.last().expect("never empty") {
        split_times.push(seq.total_time);
    }
    if split_times.len() < 2 {
        return Vec::new();
    }
    extract_subsequences(seq, &split_times)
}

/// Cuts `seq` into the pieces between consecutive `split_times`
/// (`_extract_subsequences`): notes go to the piece they start in, clipped at
/// its end; time signatures and tempos go to the piece they fall in, and the
/// one in force at a piece's start is copied to its time zero.
fn extract_subsequences(seq: &NoteSequence, split_times: &[f64]) -> Vec<NoteSequence> {
    let pieces = split_times.len() - 1;
    let mut subs: Vec<NoteSequence> = (0..pieces)
        .map(|_| NoteSequence { ticks_per_quarter: seq.ticks_per_quarter, ..NoteSequence::default() })
        .collect();

    let mut notes = seq.notes.clone();
    notes.sort_by(|a, b| a.start_time.total_cmp(&b.start_time));
    let mut index: isize = -1;
    for note in notes {
        if note.start_time < split_times[0] {
            continue;
        }
        while index < pieces as isize && note.start_time >= split_times[(index + 1) as usize] {
            index += 1;
        }
        if index == pieces as isize {
            break;
        }
        let i = index as usize;
        let mut note = note;
        note.start_time -= split_times[i];
        note.end_time = note.end_time.min(split_times[i + 1]) - split_times[i];
        if note.end_time > subs[i].total_time {
            subs[i].total_time = note.end_time;
        }
        subs[i].notes.push(note);
    }

    let signatures = distribute_state_events(&seq.time_signatures, split_times, |t| t.time, |t, time| {
        TimeSignature { time, ..*t }
    });
    let tempos = distribute_state_events(&seq.tempos, split_times, |t| t.time, |t, time| Tempo { time, ..*t });
    for ((sub, s), t) in subs.iter_mut().zip(signatures).zip(tempos) {
        sub.time_signatures = s;
        sub.tempos = t;
    }
    subs
}

/// The original's placement of "state" events (time signatures, tempos) into
/// pieces, kept literally: its boundary handling differs from the notes'.
fn distribute_state_events<T: Copy>(
    events: &[T],
    split_times: &[f64],
    time_of: impl Fn(&T) -> f64,
    at: impl Fn(&T, f64) -> T,
) -> Vec<Vec<T>> {
    let last = split_times.len() as isize - 1;
    let mut containers: Vec<Vec<T>> = vec![Vec::new(); split_times.len() - 1];
    let mut sorted = events.to_vec();
    sorted.sort_by(|a, b| time_of(a).total_cmp(&time_of(b)));
    let mut previous: Option<T> = None;
    let mut index: isize = -1;
    for event in sorted {
        let time = time_of(&event);
        if time <= split_times[0] {
            previous = Some(event);
            continue;
        }
        while index < last && time > split_times[(index + 1) as usize] {
            index += 1;
            if index == last {
                break;
            }
            if let Some(p) = &previous {
                containers[index as usize].push(at(p, 0.0));
            }
        }
        if index == last {
            break;
        }
        let i = index as usize;
        if time < split_times[i + 1] {
            containers[i].push(at(&event, time - split_times[i]));
        }
        previous = Some(event);
    }
    while index < last - 1 {
        index += 1;
        if let Some(p) = &previous {
            containers[index as usize].push(at(p, 0.0));
        }
    }
    containers
}

/// The original's rounding: a time snaps to the nearest step, halves up
/// (`int(x + 0.5)`, truncating toward zero as Python's `int`).
fn quantize_to_step(seconds: f64, steps_per_second: f64) -> i64 {
    (seconds * steps_per_second + 0.5) as i64
}

/// Quantizes a sequence with one time signature and one tempo to
/// `steps_per_quarter` (`quantize_note_sequence`). A note that would have
/// zero length gets one step.
pub fn quantize(seq: &NoteSequence, steps_per_quarter: u32) -> Result<NoteSequence, Discard> {
    let mut q = seq.clone();
    q.steps_per_quarter = Some(steps_per_quarter);

    // The original compares against the first time signature as stored, not
    // the earliest: kept as is.
    if let Some(first) = q.time_signatures.first().copied() {
        let mut sorted = q.time_signatures.clone();
        sorted.sort_by(|a, b| a.time.total_cmp(&b.time));
        if sorted[0].time != 0.0 && (sorted[0].numerator, sorted[0].denominator) != (4, 4) {
            return Err(Discard::MultipleTimeSignatures);
        }
        if sorted[1..].iter().any(|t| (t.numerator, t.denominator) != (first.numerator, first.denominator)) {
            return Err(Discard::MultipleTimeSignatures);
        }
        q.time_signatures = vec![TimeSignature { time: 0.0, ..first }];
    } else {
        q.time_signatures = vec![TimeSignature { time: 0.0, numerator: 4, denominator: 4 }];
    }
    let signature = q.time_signatures[0];
    let power_of_two = signature.denominator > 0 && signature.denominator & (signature.denominator - 1) == 0;
    if !power_of_two || signature.numerator == 0 {
        return Err(Discard::BadTimeSignature);
    }

    if let Some(first) = q.tempos.first().copied() {
        let mut sorted = q.tempos.clone();
        sorted.sort_by(|a, b| a.time.total_cmp(&b.time));
        if sorted[0].time != 0.0 && sorted[0].qpm != DEFAULT_QPM {
            return Err(Discard::MultipleTempos);
        }
        if sorted[1..].iter().any(|t| t.qpm != first.qpm) {
            return Err(Discard::MultipleTempos);
        }
        q.tempos = vec![Tempo { time: 0.0, ..first }];
    } else {
        q.tempos = vec![Tempo { time: 0.0, qpm: DEFAULT_QPM }];
    }

    let steps_per_second = steps_per_quarter as f64 * q.tempos[0].qpm / 60.0;
    q.total_quantized_steps = quantize_to_step(q.total_time, steps_per_second);
    for note in &mut q.notes {
        note.quantized_start_step = quantize_to_step(note.start_time, steps_per_second);
        note.quantized_end_step = quantize_to_step(note.end_time, steps_per_second);
        if note.quantized_end_step == note.quantized_start_step {
            note.quantized_end_step += 1;
        }
        if note.quantized_start_step < 0 || note.quantized_end_step < 0 {
            return Err(Discard::NegativeTime);
        }
        q.total_quantized_steps = q.total_quantized_steps.max(note.quantized_end_step);
    }
    Ok(q)
}

/// Moves every non-drum note by `amount` semitones; `None` when a note would
/// leave 0..=127 (checked for amount 0 too, as the original).
pub fn transpose(seq: &NoteSequence, amount: i32) -> Option<NoteSequence> {
    let mut t = seq.clone();
    for note in t.notes.iter_mut().filter(|n| !n.is_drum) {
        note.pitch += amount;
        if !(0..=127).contains(&note.pitch) {
            return None;
        }
    }
    Some(t)
}

/// Encodes a quantized sequence if it passes the extractor's checks: one
/// program, and between [`MIN_STEPS`] and `max_steps` steps (the original's
/// `extract_polyphonic_sequences`, with [`MAX_STEPS`]).
pub fn extract_polyphonic(seq: &NoteSequence, max_steps: usize) -> Result<Vec<Event>, Discard> {
    let mut programs = seq.notes.iter().map(|n| n.program);
    if let Some(first) = programs.next() {
        if programs.any(|p| p != first) {
            return Err(Discard::MoreThanOneProgram);
        }
    }
    let steps = seq.total_quantized_steps.max(0) as usize;
    if steps < MIN_STEPS {
        return Err(Discard::TooShort);
    }
    if steps > max_steps {
        return Err(Discard::TooLong);
    }
    Ok(encoding::encode(seq))
}

/// The text `polyphony events` prints for one piece: its kept sequences
/// (transposed by `transpose`) separated by `---`, or one `# no sequence:`
/// line giving each sub-sequence's fate. A pitch that ends up outside 0..127
/// is an error here (the dataset pipeline counts it as a discard instead).
pub fn events_report(seq: &NoteSequence, transpose: i32, index: bool) -> crate::Result<String> {
    if let Some(note) = seq.notes.iter().find(|n| !(0..=127).contains(&(n.pitch + transpose))) {
        let at = format!("note at {:.3} s{}", note.start_time, transposed_by(transpose));
        return Err(crate::Error::PitchOutOfRange { pitch: note.pitch + transpose, at: Some(at) });
    }
    let (outcomes, _) = extract_sequences(seq, &[transpose], MAX_STEPS);
    let kept: Vec<Vec<Event>> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Kept(events) => Some(events.clone()),
            Outcome::Discarded { .. } => None,
        })
        .collect();
    if !kept.is_empty() {
        return Ok(encoding::to_text(&kept, index));
    }
    let reasons: Vec<String> = outcomes
        .iter()
        .enumerate()
        .map(|(i, o)| match o {
            Outcome::Discarded { reason, steps: Some(steps) } => format!("sub{i} ({steps} steps): {reason}"),
            Outcome::Discarded { reason, steps: None } => format!("sub{i}: {reason}"),
            Outcome::Kept(_) => unreachable!("no sequence was kept"),
        })
        .collect();
    let reasons = if reasons.is_empty() { "the piece has no notes".to_string() } else { reasons.join("; ") };
    Ok(format!("# no sequence: {reasons}\n"))
}

fn transposed_by(amount: i32) -> String {
    if amount == 0 { String::new() } else { format!(" transposed by {amount:+}") }
}
