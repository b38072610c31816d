//! A primer of any kind as notes on the step grid and as the event stream
//! the model reads. Every primer is checked here, once, whoever sent it
//! (a flag, a MIDI file, the page's piano roll), with one message per fault.

use super::request::{GenerateError, Primer, bad};
use crate::encoding::{self, Event, STEPS_PER_QUARTER};
use crate::limits;
use crate::step_grid::{self, StepNote};

/// A primer on the step grid.
#[derive(Clone, Debug, PartialEq)]
pub struct PrimerNotes {
    pub notes: Vec<StepNote>,
    /// Its length in steps (the original's: up to the last note's end, for
    /// pitches a quarter note).
    pub steps: usize,
    /// The tempo it sets (a file's), if any.
    pub qpm: Option<f64>,
}

/// A primer as the model reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct PrimerEvents {
    /// START then exactly [`PrimerEvents::steps`] steps, no END.
    pub events: Vec<Event>,
    pub steps: usize,
    pub qpm: Option<f64>,
}

/// The primer's notes on the step grid, checked: pitches in 0..=127, notes
/// with a length, and no longer than an output may be.
pub fn primer_notes(primer: &Primer) -> Result<PrimerNotes, GenerateError> {
    let primer_notes = match primer {
        Primer::None => PrimerNotes { notes: Vec::new(), steps: 0, qpm: None },
        Primer::Pitches(pitches) => {
            if pitches.is_empty() {
                return Err(bad("primer_pitches is empty: give at least one pitch, e.g. \"[67, 64, 60]\""));
            }
            limits::check("the number of primer pitches", pitches.len(), limits::MAX_PITCHES_PER_STEP)?;
            let steps = STEPS_PER_QUARTER as usize;
            let notes = pitches.iter().map(|&p| Ok(StepNote::new(checked_pitch(p, "primer_pitches")?, 0, steps as i64))).collect::<Result<_, GenerateError>>()?;
            PrimerNotes { notes, steps, qpm: None }
        }
        Primer::Melody(values) => melody_notes(values)?,
        Primer::Sequence(seq) => {
            let qpm = seq.tempos.first().map(|t| t.qpm).filter(|q| *q > 0.0 && q.is_finite());
            limits::check("notes in the primer", seq.notes.len(), limits::MAX_NOTES)?;
            let quantized = crate::pipeline::quantize(seq, STEPS_PER_QUARTER)
                .map_err(|d| bad(format!("the primer file cannot be used as a primer: {d}")))?;
            let notes = quantized
                .notes
                .iter()
                .filter(|n| !n.is_drum)
                .map(|n| Ok(StepNote::new(checked_pitch(n.pitch, "the primer file")?, n.quantized_start_step, n.quantized_end_step)))
                .collect::<Result<Vec<_>, GenerateError>>()?;
            PrimerNotes { steps: checked_length(&notes, 0)?, notes, qpm }
        }
        Primer::Steps { notes, steps } => {
            limits::check("notes in the primer", notes.len(), limits::MAX_NOTES)?;
            if let Some((i, n, fault)) = notes.iter().enumerate().find_map(|(i, n)| n.fault().map(|f| (i, n, f))) {
                return Err(bad(format!("primer note {} (pitch {}, steps {} to {}): {fault}", i + 1, n.pitch, n.start, n.end)));
            }
            PrimerNotes { steps: checked_length(notes, *steps)?, notes: notes.clone(), qpm: None }
        }
        Primer::Events(events) => {
            let PrimerEvents { events, steps, .. } = events_primer(events)?;
            PrimerNotes { notes: encoding::decode_steps(&events).0, steps, qpm: None }
        }
    };
    Ok(primer_notes)
}

/// The primer as a polyphonic event stream of exactly its steps: START then
/// the steps (no END), its number of steps, and the qpm it sets (a file's).
pub fn primer_events(primer: &Primer) -> Result<PrimerEvents, GenerateError> {
    if let Primer::Events(events) = primer {
        return events_primer(events);
    }
    let PrimerNotes { notes, steps, qpm } = primer_notes(primer)?;
    let seq = step_grid::to_sequence(&notes, crate::note_sequence::DEFAULT_QPM, encoding::DECODE_VELOCITY, steps);
    let mut events = encoding::encode(&seq);
    encoding::set_length(&mut events, steps);
    events.pop(); // END
    Ok(PrimerEvents { events, steps, qpm })
}

/// The top line of notes: at each step the highest note sounding, as notes
/// (a note stays one note while it stays on top), what harmonizing takes as
/// its melody from a piece in several voices.
pub fn top_line(notes: &[StepNote]) -> Vec<StepNote> {
    line(notes, |a, b| a.cmp(&b))
}

/// The bottom line (the bass), as [`top_line`] the top.
pub fn bottom_line(notes: &[StepNote]) -> Vec<StepNote> {
    line(notes, |a, b| b.cmp(&a))
}

/// At each step the note sounding that is greatest by `order` of pitch.
fn line(notes: &[StepNote], order: impl Fn(i32, i32) -> std::cmp::Ordering) -> Vec<StepNote> {
    let steps = step_grid::length(notes);
    let mut line: Vec<StepNote> = Vec::new();
    let mut current: Option<usize> = None;
    for step in 0..steps {
        let top = (0..notes.len())
            .filter(|&i| notes[i].start <= step && step < notes[i].end)
            .max_by(|&a, &b| order(notes[a].pitch, notes[b].pitch).then(notes[b].start.cmp(&notes[a].start)));
        match (top, current) {
            (Some(i), Some(c)) if i == c => line.last_mut().expect("a note").end = step + 1,
            (Some(i), _) => line.push(StepNote::new(notes[i].pitch, step, step + 1)),
            (None, _) => {}
        }
        current = top;
    }
    line
}

fn checked_pitch(p: i32, what: &str) -> Result<i32, GenerateError> {
    if (0..=127).contains(&p) { Ok(p) } else { Err(bad(format!("{what}: pitch {p} is outside the MIDI range 0-127"))) }
}

/// The primer's length: its last note's end, at least `steps`, within an
/// output's limit (checked before anything is allocated per step).
fn checked_length(notes: &[StepNote], steps: usize) -> Result<usize, GenerateError> {
    let length = (step_grid::length(notes) as u128).max(steps as u128);
    limits::check("the primer's length in steps", length, limits::MAX_OUTPUT_STEPS)?;
    Ok(length as usize)
}

/// `primer_melody`: a value a step, -2 holds, -1 ends the sounding note,
/// 0..=127 starts one; the primer ends with its last note.
fn melody_notes(values: &[i32]) -> Result<PrimerNotes, GenerateError> {
    if values.is_empty() {
        return Err(bad("primer_melody is empty: give melody values, e.g. \"[60, -2, 60, -2]\""));
    }
    limits::check("the primer melody's length in steps", values.len(), limits::MAX_OUTPUT_STEPS)?;
    let mut notes = Vec::new();
    let mut current: Option<(i32, usize)> = None;
    let mut close = |current: &mut Option<(i32, usize)>, step: usize| {
        if let Some((p, s)) = current.take() {
            notes.push(StepNote::new(p, s as i64, step as i64));
        }
    };
    for (step, &v) in values.iter().enumerate() {
        match v {
            -2 => {}
            -1 => close(&mut current, step),
            v if v < -2 => {
                return Err(bad(format!("primer_melody: {v} is not a melody value (-2 = hold, -1 = note off, 0-127 = note on)")));
            }
            v => {
                let p = checked_pitch(v, "primer_melody")?;
                close(&mut current, step);
                current = Some((p, step));
            }
        }
    }
    close(&mut current, values.len());
    Ok(PrimerNotes { steps: step_grid::length(&notes) as usize, notes, qpm: None })
}

/// Raw events as a primer: START added if missing, trailing ENDs dropped, a
/// partial last step closed.
fn events_primer(events: &[Event]) -> Result<PrimerEvents, GenerateError> {
    if let Some(p) = events.iter().find_map(|e| match *e {
        Event::NewNote(p) | Event::ContinuedNote(p) if p > 127 => Some(p),
        _ => None,
    }) {
        return Err(bad(format!("primer events: pitch {p} is outside the MIDI range 0-127")));
    }
    let mut events: Vec<Event> = events.to_vec();
    if events.first() != Some(&Event::Start) {
        events.insert(0, Event::Start);
    }
    while events.last() == Some(&Event::End) {
        events.pop();
    }
    // A partial last step counts as a step.
    if events.last().is_some_and(|e| *e != Event::StepEnd && *e != Event::Start) {
        events.push(Event::StepEnd);
    }
    let steps = encoding::num_steps(&events);
    limits::check("the primer's length in steps", steps, limits::MAX_OUTPUT_STEPS)?;
    Ok(PrimerEvents { events, steps, qpm: None })
}

/// The events of each step of a stream that starts with START: `steps[k]`
/// holds step k's events without its STEP_END.
pub(crate) fn step_events(events: &[Event]) -> Vec<Vec<Event>> {
    let mut steps = vec![Vec::new()];
    for &e in events.iter().skip_while(|e| **e == Event::Start) {
        match e {
            Event::StepEnd => steps.push(Vec::new()),
            Event::Start | Event::End => {}
            e => steps.last_mut().expect("one").push(e),
        }
    }
    steps.pop(); // the unfinished step after the last STEP_END
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pages_primer_is_checked_here_with_one_message_per_fault() {
        let steps = |notes: Vec<StepNote>, steps| primer_events(&Primer::Steps { notes, steps });
        let ok = steps(vec![StepNote::new(60, 0, 4), StepNote::new(64, 0, 4)], 8).unwrap();
        assert_eq!(ok.steps, 8);
        assert_eq!(encoding::num_steps(&ok.events), 8);
        for (note, needle) in [
            (StepNote::new(128, 0, 4), "primer note 2 (pitch 128, steps 0 to 4): pitch 128 is outside"),
            (StepNote::new(60, -2, 4), "before the first step"),
            (StepNote::new(60, 4, 4), "not after its start"),
            (StepNote::new(60, 0, 1 << 40), "the primer's length in steps is 1099511627776, more than the limit"),
        ] {
            let err = steps(vec![StepNote::new(60, 0, 4), note], 0).unwrap_err().to_string();
            assert!(err.contains(needle), "{err:?} should say {needle:?}");
        }
        assert!(steps(Vec::new(), 1 << 20).unwrap_err().to_string().contains("limit"));
    }

    #[test]
    fn the_top_line_of_a_chorale_is_its_melody() {
        // A held soprano over moving lower voices, then a rest on top while the bass goes on.
        let notes = [StepNote::new(72, 0, 8), StepNote::new(64, 0, 4), StepNote::new(65, 4, 8), StepNote::new(48, 0, 12), StepNote::new(74, 12, 16)];
        assert_eq!(top_line(&notes), vec![StepNote::new(72, 0, 8), StepNote::new(48, 8, 12), StepNote::new(74, 12, 16)]);
        assert_eq!(bottom_line(&notes), vec![StepNote::new(48, 0, 12), StepNote::new(74, 12, 16)]);
    }

    #[test]
    fn a_melody_becomes_notes_as_the_original_reads_it() {
        let PrimerNotes { notes, steps, .. } = melody_notes(&[60, -2, -1, 62, 64, -2, -1, -2]).unwrap();
        assert_eq!(notes, vec![StepNote::new(60, 0, 2), StepNote::new(62, 3, 4), StepNote::new(64, 4, 6)]);
        assert_eq!(steps, 6, "the primer ends with its last note");
    }
}
