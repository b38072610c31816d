//! Notes on the step grid: `{pitch, start, end}` counted in sixteenth-note
//! steps. It is what the page draws and edits and what a primer typed or
//! clicked is made of; the seconds-based [`NoteSequence`] is what files are
//! read into and written from. This module converts between the two, and
//! [`crate::encoding::decode_steps`] turns an event stream into step notes
//! directly (no round trip through seconds).

use serde::{Deserialize, Serialize};

use crate::note_sequence::{NoteSequence, Tempo, TimeSignature};

/// One note on the step grid: it sounds from step `start` up to, not
/// including, step `end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepNote {
    pub pitch: i32,
    pub start: i64,
    pub end: i64,
}

impl StepNote {
    pub fn new(pitch: i32, start: i64, end: i64) -> StepNote {
        StepNote { pitch, start, end }
    }

    /// What is wrong with this note as music, if anything: a pitch outside
    /// 0..=127, a negative start, or no length.
    pub fn fault(&self) -> Option<String> {
        if !(0..=127).contains(&self.pitch) {
            Some(format!("pitch {} is outside the MIDI range 0-127", self.pitch))
        } else if self.start < 0 {
            Some(format!("it starts at step {}, before the first step", self.start))
        } else if self.end <= self.start {
            Some(format!("it ends at step {}, not after its start at step {}", self.end, self.start))
        } else {
            None
        }
    }
}

/// The notes as a quantized sequence at `qpm` quarter notes a minute, in
/// 4/4, every note velocity `velocity`; its length is the last note's end
/// (at least `min_steps`).
pub fn to_sequence(notes: &[StepNote], qpm: f64, velocity: u8, min_steps: usize) -> NoteSequence {
    let steps_per_quarter = crate::encoding::STEPS_PER_QUARTER;
    let seconds_per_step = 60.0 / qpm / f64::from(steps_per_quarter);
    let notes: Vec<crate::Note> = notes
        .iter()
        .map(|n| {
            let mut note = crate::Note::new(n.pitch, velocity, n.start as f64 * seconds_per_step, n.end as f64 * seconds_per_step);
            note.quantized_start_step = n.start;
            note.quantized_end_step = n.end;
            note
        })
        .collect();
    let total_steps = notes.iter().map(|n| n.quantized_end_step).max().unwrap_or(0).max(min_steps as i64);
    NoteSequence {
        total_time: total_steps as f64 * seconds_per_step,
        notes,
        tempos: vec![Tempo { time: 0.0, qpm }],
        time_signatures: vec![TimeSignature { time: 0.0, numerator: 4, denominator: 4 }],
        steps_per_quarter: Some(steps_per_quarter),
        total_quantized_steps: total_steps,
        ..NoteSequence::default()
    }
}

/// The step notes of a quantized sequence, drums and pitches outside
/// 0..=127 left out (the model knows only pitched MIDI notes).
pub fn from_sequence(quantized: &NoteSequence) -> Vec<StepNote> {
    quantized
        .notes
        .iter()
        .filter(|n| !n.is_drum && (0..=127).contains(&n.pitch))
        .map(|n| StepNote::new(n.pitch, n.quantized_start_step, n.quantized_end_step))
        .collect()
}

/// Whether the notes make one line, a melody: never two at once.
pub fn is_single_line(notes: &[StepNote]) -> bool {
    let mut sorted: Vec<&StepNote> = notes.iter().collect();
    sorted.sort_by_key(|n| n.start);
    sorted.windows(2).all(|w| w[0].end <= w[1].start)
}

/// The last step any note sounds in, plus one (0 without notes).
pub fn length(notes: &[StepNote]) -> i64 {
    notes.iter().map(|n| n.end).max().unwrap_or(0).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::STEPS_PER_QUARTER;

    #[test]
    fn step_notes_survive_a_sequence_and_back() {
        let notes = vec![StepNote::new(60, 0, 4), StepNote::new(64, 2, 3), StepNote::new(67, 8, 16)];
        let seq = to_sequence(&notes, 90.0, 100, 0);
        assert_eq!(seq.total_quantized_steps, 16);
        assert_eq!(seq.steps_per_quarter, Some(STEPS_PER_QUARTER));
        // 90 qpm: a sixteenth lasts 60 / 90 / 4 s.
        assert!((seq.notes[2].start_time - 8.0 * 60.0 / 90.0 / 4.0).abs() < 1e-12);
        assert_eq!(from_sequence(&seq), notes);
        // Re-quantizing the seconds gives the same steps.
        let requantized = crate::pipeline::quantize(&seq, STEPS_PER_QUARTER).unwrap();
        assert_eq!(from_sequence(&requantized), notes);
        assert_eq!(to_sequence(&notes, 120.0, 100, 40).total_quantized_steps, 40);
        assert_eq!(length(&notes), 16);
        assert!(!is_single_line(&notes) && is_single_line(&notes[1..]) && is_single_line(&[]));
    }

    #[test]
    fn faults_are_named() {
        assert_eq!(StepNote::new(60, 0, 1).fault(), None);
        assert!(StepNote::new(128, 0, 1).fault().unwrap().contains("pitch 128"));
        assert!(StepNote::new(60, -1, 1).fault().unwrap().contains("before the first step"));
        assert!(StepNote::new(60, 3, 3).fault().unwrap().contains("not after its start"));
    }
}
