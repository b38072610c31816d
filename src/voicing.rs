//! How many voices sound at each sixteenth-note step, and how long notes
//! last: a simple measure of how chorale-like a piece is (a Bach chorale has
//! four voices most of the time, and notes of about a quarter), used for the
//! model card's samples and for Bach's own chorales alike.
//!
//! A voice is a distinct sounding pitch: the event encoding cannot tell two
//! voices in unison apart, so neither does this count.

use std::collections::BTreeMap;

use crate::note_sequence::NoteSequence;

/// Voice counts of one piece, or of several added together.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Voicing {
    /// Steps from 0 to the last note's end.
    pub steps: usize,
    /// Steps with at least one note sounding.
    pub sounding_steps: usize,
    /// Sum over steps of the voices sounding.
    pub voices: usize,
    /// Steps with exactly four voices.
    pub four_voice_steps: usize,
    /// Lowest and highest pitch, if any note sounds.
    pub range: Option<(i32, i32)>,
    /// Notes, and their lengths in steps added up.
    pub notes: usize,
    pub note_steps: usize,
}

impl Voicing {
    /// Counts a quantized sequence's voices step by step (drums left out).
    /// Sweeps the notes' starts and ends, so the work grows with the notes,
    /// not with their lengths.
    pub fn of(seq: &NoteSequence) -> Voicing {
        let notes: Vec<_> = seq.notes.iter().filter(|n| !n.is_drum && n.quantized_end_step > n.quantized_start_step).collect();
        let steps = notes.iter().map(|n| n.quantized_end_step).max().unwrap_or(0).max(0) as usize;
        // (step, +1 start / -1 end, pitch), ends before starts at one step.
        let mut changes: Vec<(i64, i32, i32)> = Vec::with_capacity(2 * notes.len());
        for n in &notes {
            changes.push((n.quantized_start_step.max(0), 1, n.pitch));
            changes.push((n.quantized_end_step, -1, n.pitch));
        }
        changes.sort_unstable();
        let mut sounding: BTreeMap<i32, usize> = BTreeMap::new();
        let (mut sounding_steps, mut voices, mut four_voice_steps) = (0usize, 0usize, 0usize);
        for (i, &(step, change, pitch)) in changes.iter().enumerate() {
            if change > 0 {
                *sounding.entry(pitch).or_default() += 1;
            } else if let Some(count) = sounding.get_mut(&pitch) {
                *count -= 1;
                if *count == 0 {
                    sounding.remove(&pitch);
                }
            }
            let until = changes.get(i + 1).map_or(step, |c| c.0);
            let span = (until - step) as usize;
            let distinct = sounding.len();
            sounding_steps += if distinct > 0 { span } else { 0 };
            voices += distinct * span;
            four_voice_steps += if distinct == 4 { span } else { 0 };
        }
        let range = notes.iter().map(|n| n.pitch).min().zip(notes.iter().map(|n| n.pitch).max());
        Voicing {
            steps,
            sounding_steps,
            voices,
            four_voice_steps,
            range,
            notes: notes.len(),
            note_steps: notes.iter().map(|n| (n.quantized_end_step - n.quantized_start_step.max(0)) as usize).sum(),
        }
    }

    /// The voicing of a whole piece read from a file: split at tempo and
    /// time-signature changes and quantized, as the pipeline does.
    pub fn of_piece(seq: &NoteSequence) -> crate::Result<Voicing> {
        let mut v = Voicing::default();
        for part in crate::pipeline::split_on_time_changes(seq) {
            let quantized = crate::pipeline::quantize(&part, crate::encoding::STEPS_PER_QUARTER)
                .map_err(|d| crate::Error::Invalid(format!("cannot quantize: {d}")))?;
            v.add(&Voicing::of(&quantized));
        }
        Ok(v)
    }

    /// This and `other` together (ranges joined).
    pub fn add(&mut self, other: &Voicing) {
        self.steps += other.steps;
        self.sounding_steps += other.sounding_steps;
        self.voices += other.voices;
        self.four_voice_steps += other.four_voice_steps;
        self.notes += other.notes;
        self.note_steps += other.note_steps;
        self.range = match (self.range, other.range) {
            (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
            (r, None) | (None, r) => r,
        };
    }

    /// Mean voices over the sounding steps.
    pub fn mean_voices(&self) -> f64 {
        ratio(self.voices, self.sounding_steps)
    }

    /// Mean length of a note in steps (sixteenths).
    pub fn mean_note_steps(&self) -> f64 {
        ratio(self.note_steps, self.notes)
    }

    /// Share of the sounding steps with exactly four voices.
    pub fn four_voice_share(&self) -> f64 {
        ratio(self.four_voice_steps, self.sounding_steps)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note_sequence::Note;

    fn note(pitch: i32, start: i64, end: i64) -> Note {
        let mut n = Note::new(pitch, 100, start as f64, end as f64);
        n.quantized_start_step = start;
        n.quantized_end_step = end;
        n
    }

    #[test]
    fn counts_distinct_pitches_per_step() {
        // Steps 0-1: four voices; 2: three (one in unison counts once); 3: silent; 4: one.
        let seq = NoteSequence {
            notes: vec![
                note(60, 0, 3),
                note(64, 0, 3),
                note(67, 0, 2),
                note(72, 0, 2),
                note(60, 2, 3),
                note(48, 4, 5),
            ],
            ..NoteSequence::default()
        };
        let v = Voicing::of(&seq);
        let want = Voicing { steps: 5, sounding_steps: 4, voices: 4 + 4 + 2 + 1, four_voice_steps: 2, range: Some((48, 72)), notes: 6, note_steps: 3 + 3 + 2 + 2 + 1 + 1 };
        assert_eq!(v, want);
        assert!((v.mean_note_steps() - 2.0).abs() < 1e-12);
        assert!((v.mean_voices() - 11.0 / 4.0).abs() < 1e-12);
        assert!((v.four_voice_share() - 0.5).abs() < 1e-12);
        let mut both = v.clone();
        both.add(&Voicing::default());
        assert_eq!(both, v);
        both.add(&v);
        assert_eq!((both.steps, both.four_voice_steps, both.range), (10, 4, Some((48, 72))));
    }

    /// One note ten million steps long costs no more than a short one.
    #[test]
    fn a_very_long_note_is_counted_without_a_step_by_step_walk() {
        let seq = NoteSequence { notes: vec![note(60, 0, 10_000_000), note(64, 5, 9_000_000)], ..NoteSequence::default() };
        let v = Voicing::of(&seq);
        assert_eq!((v.steps, v.sounding_steps, v.voices), (10_000_000, 10_000_000, 10_000_000 + 8_999_995));
    }
}
