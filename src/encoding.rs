//! The polyphonic event encoding: the contract between data, model, browser
//! and bundles.
//!
//! A quantized piece becomes one stream of events, a step (a sixteenth note)
//! at a time: every sounding pitch says whether it starts (`NEW_NOTE`) or
//! goes on (`CONTINUED_NOTE`), then `STEP_END` closes the step. The stream is
//! wrapped in `START` ... `END`. 259 classes in all:
//!
//! | event | class |
//! |---|---|
//! | START | 0 |
//! | END | 1 |
//! | STEP_END | 2 |
//! | NEW_NOTE(p) | 3 + p |
//! | CONTINUED_NOTE(p) | 131 + p |

use std::fmt;

use crate::error::{Error, Result};
use crate::note_sequence::{DEFAULT_QPM, Note, NoteSequence, Tempo};
use crate::step_grid::StepNote;

/// Steps per quarter note: a step is a sixteenth note.
pub const STEPS_PER_QUARTER: u32 = 4;
/// Number of event classes (the model's input and output width).
pub const NUM_CLASSES: usize = 259;
/// Velocity, program and tempo of decoded notes, as the original.
pub const DECODE_VELOCITY: u8 = 100;

/// One event of a polyphonic sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    Start,
    End,
    StepEnd,
    NewNote(u8),
    ContinuedNote(u8),
}

impl Event {
    /// The class index the model sees.
    pub fn class(self) -> usize {
        match self {
            Event::Start => 0,
            Event::End => 1,
            Event::StepEnd => 2,
            Event::NewNote(p) => 3 + p as usize,
            Event::ContinuedNote(p) => 131 + p as usize,
        }
    }

    /// The event of a class index, or `None` outside 0..259.
    pub fn from_class(class: usize) -> Option<Event> {
        Some(match class {
            0 => Event::Start,
            1 => Event::End,
            2 => Event::StepEnd,
            3..=130 => Event::NewNote((class - 3) as u8),
            131..=258 => Event::ContinuedNote((class - 131) as u8),
            _ => return None,
        })
    }

    /// The pitch of a NEW_NOTE or CONTINUED_NOTE.
    pub fn pitch(self) -> Option<u8> {
        match self {
            Event::NewNote(p) | Event::ContinuedNote(p) => Some(p),
            _ => None,
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Start => write!(f, "START"),
            Event::End => write!(f, "END"),
            Event::StepEnd => write!(f, "STEP_END"),
            Event::NewNote(p) => write!(f, "NEW_NOTE {p}"),
            Event::ContinuedNote(p) => write!(f, "CONTINUED_NOTE {p}"),
        }
    }
}

impl std::str::FromStr for Event {
    type Err = String;

    /// Parses the text form (`NEW_NOTE 60`) or a bare class index (`63`).
    fn from_str(s: &str) -> std::result::Result<Event, String> {
        let mut words = s.split_whitespace();
        let (Some(name), arg, None) = (words.next(), words.next(), words.next()) else {
            return Err(format!("expected one event, got {s:?}"));
        };
        let pitch = |arg: Option<&str>| -> std::result::Result<u8, String> {
            let text = arg.ok_or_else(|| format!("{name} needs a pitch"))?;
            text.parse::<u8>()
                .ok()
                .filter(|p| *p <= 127)
                .ok_or_else(|| format!("pitch {text:?} is not in 0-127"))
        };
        let no_arg = |e: Event| match arg {
            None => Ok(e),
            Some(a) => Err(format!("{name} takes no argument, got {a:?}")),
        };
        match name {
            "START" => no_arg(Event::Start),
            "END" => no_arg(Event::End),
            "STEP_END" => no_arg(Event::StepEnd),
            "NEW_NOTE" => Ok(Event::NewNote(pitch(arg)?)),
            "CONTINUED_NOTE" => Ok(Event::ContinuedNote(pitch(arg)?)),
            _ => match (name.parse::<usize>().ok().and_then(Event::from_class), arg) {
                (Some(e), None) => Ok(e),
                _ => Err(format!("unknown event {s:?}")),
            },
        }
    }
}

/// Encodes a quantized sequence from step 0 to its last step.
///
/// Within a step the events are sorted by pitch, highest first; the sort is
/// stable, so for one pitch CONTINUED_NOTE (listed first) precedes NEW_NOTE,
/// exactly as the original's `sorted(..., reverse=True)`.
/// Pitches must already be checked to lie in 0..=127.
pub fn encode(seq: &NoteSequence) -> Vec<Event> {
    let total_steps = seq.total_quantized_steps.max(0) as usize;
    let mut starts: Vec<Vec<u8>> = vec![Vec::new(); total_steps + 1];
    let mut ends: Vec<Vec<u8>> = vec![Vec::new(); total_steps + 1];
    for note in &seq.notes {
        let pitch = note.pitch as u8;
        let at = |step: i64| (step.max(0) as usize).min(total_steps);
        starts[at(note.quantized_start_step)].push(pitch);
        ends[at(note.quantized_end_step)].push(pitch);
    }
    let mut events = vec![Event::Start];
    // A list, not a set: one pitch may sound twice (two voices in unison).
    let mut active: Vec<u8> = Vec::new();
    for step in 0..total_steps {
        for pitch in &ends[step] {
            if let Some(i) = active.iter().position(|p| p == pitch) {
                active.remove(i);
            }
        }
        let mut step_events: Vec<Event> = active.iter().map(|&p| Event::ContinuedNote(p)).collect();
        for &pitch in &starts[step] {
            active.push(pitch);
            step_events.push(Event::NewNote(pitch));
        }
        step_events.sort_by_key(|e| std::cmp::Reverse(e.pitch()));
        events.extend(step_events);
        events.push(Event::StepEnd);
    }
    events.push(Event::End);
    events
}

/// Number of complete steps (STEP_END events) in a sequence.
pub fn num_steps(events: &[Event]) -> usize {
    events.iter().filter(|e| **e == Event::StepEnd).count()
}

/// Pads with empty steps or cuts to exactly `steps` steps, then ends with END
/// (the original's `set_length`).
pub fn set_length(events: &mut Vec<Event>, steps: usize) {
    while events.last() == Some(&Event::End) {
        events.pop();
    }
    events.push(Event::StepEnd);
    let have = num_steps(events);
    if have < steps {
        events.extend(std::iter::repeat_n(Event::StepEnd, steps - have));
    } else if have > steps {
        // Keep everything up to and including the `steps`-th STEP_END.
        let cut = events
            .iter()
            .enumerate()
            .filter(|(_, e)| **e == Event::StepEnd)
            .nth(steps.wrapping_sub(1))
            .map_or(1, |(i, _)| i + 1);
        events.truncate(cut.max(1));
        if steps == 0 {
            events.truncate(1);
        }
    }
    events.push(Event::End);
}

/// Decodes events into notes on the step grid, as the original's
/// `to_sequence` reads a stream: NEW_NOTE starts a note at the current
/// step, CONTINUED_NOTE keeps a sounding note of its pitch going, STEP_END
/// advances one step and ends every sounding note that was not continued;
/// START not first and END not last are ignored. Lenient where the original
/// raised: a CONTINUED_NOTE with nothing sounding is ignored, and notes
/// still sounding when a stream is cut short (no final END) close at its
/// last step. Notes come in the order they end. Returns the notes and the
/// steps read (each STEP_END and the final END count one).
pub fn decode_steps(events: &[Event]) -> (Vec<StepNote>, usize) {
    let mut notes = Vec::new();
    // (pitch, start step) of sounding notes, in the order they started.
    let mut sounding: Vec<(u8, usize)> = Vec::new();
    // Pitches that end at the next STEP_END unless continued in this step.
    let mut to_end: Vec<u8> = Vec::new();
    let mut step = 0usize;
    let last = events.len().saturating_sub(1);
    let note = |pitch: u8, start: usize, end: usize| StepNote::new(i32::from(pitch), start as i64, end as i64);
    for (i, event) in events.iter().enumerate() {
        match *event {
            Event::Start => {}
            Event::End if i < last => {}
            Event::NewNote(p) => sounding.push((p, step)),
            Event::ContinuedNote(p) => {
                if let Some(k) = to_end.iter().position(|&q| q == p) {
                    to_end.remove(k);
                }
            }
            Event::StepEnd | Event::End => {
                sounding.retain(|&(p, start)| match to_end.iter().position(|&q| q == p) {
                    Some(k) => {
                        to_end.remove(k);
                        notes.push(note(p, start, step));
                        false
                    }
                    None => true,
                });
                step += 1;
                to_end = sounding.iter().map(|&(p, _)| p).collect();
            }
        }
    }
    // A stream cut short (no final END): close what still sounds.
    notes.extend(sounding.into_iter().map(|(p, start)| note(p, start, step.max(start + 1))));
    (notes, step)
}

/// Decodes events into notes at `qpm`, `steps_per_quarter` steps a quarter,
/// velocity 100, program 0 (the original's `to_sequence`; the rules are
/// [`decode_steps`]'s).
pub fn decode(events: &[Event], steps_per_quarter: u32, qpm: f64) -> NoteSequence {
    let seconds_per_step = 60.0 / qpm / steps_per_quarter as f64;
    let (steps, read) = decode_steps(events);
    let notes = steps
        .iter()
        .map(|n| Note::new(n.pitch, DECODE_VELOCITY, n.start as f64 * seconds_per_step, n.end as f64 * seconds_per_step))
        .collect();
    NoteSequence {
        notes,
        tempos: vec![Tempo { time: 0.0, qpm }],
        total_time: seconds_per_step * read.saturating_sub(1) as f64,
        ticks_per_quarter: crate::note_sequence::STANDARD_PPQ,
        ..NoteSequence::default()
    }
}

/// Default decoding: 4 steps a quarter at 120 quarters a minute.
pub fn decode_default(events: &[Event]) -> NoteSequence {
    decode(events, STEPS_PER_QUARTER, DEFAULT_QPM)
}

/// Writes sequences in the text form: one event a line (or its class index),
/// `---` between sequences.
pub fn to_text(sequences: &[Vec<Event>], index: bool) -> String {
    let mut out = String::new();
    for (i, events) in sequences.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        for e in events {
            if index {
                out.push_str(&e.class().to_string());
            } else {
                out.push_str(&e.to_string());
            }
            out.push('\n');
        }
    }
    out
}

/// Parses the text form back: events or class indices, one a line, `---`
/// between sequences, `#` lines and blank lines ignored. Errors name the line.
pub fn from_text(text: &str) -> Result<Vec<Vec<Event>>> {
    let mut sequences = vec![Vec::new()];
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == "---" {
            sequences.push(Vec::new());
            continue;
        }
        let event = line
            .parse::<Event>()
            .map_err(|e| Error::Events(format!("line {}: {e}", n + 1)))?;
        sequences.last_mut().expect("never empty").push(event);
    }
    sequences.retain(|s| !s.is_empty());
    Ok(sequences)
}
