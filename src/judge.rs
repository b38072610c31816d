//! The part-writing judge: how a piece fares by the rules a student of
//! harmony is taught, measured the same way for Bach's chorales and for
//! what the model writes.
//!
//! Definitions (a piece quantized to sixteenth-note steps):
//! - A step's **voices** are the distinct pitches sounding in it (the event
//!   encoding cannot tell two voices in unison apart, so neither does this).
//!   **Four-voice steps**: the share of sounding steps with exactly four.
//! - Where exactly four pitches sound, they are Soprano, Alto, Tenor and Bass
//!   from the top. A **change** is a pair of consecutive four-voice steps
//!   whose pitches differ; the rates below are per 100 changes.
//! - **Parallel fifths / octaves**: in a change, two voices a perfect fifth
//!   (7 semitones, or a compound of it) / an octave (12, 24, ...) apart that
//!   both move, in the same direction, to the same interval again.
//! - **Hidden fifths / octaves**: soprano and bass move in the same direction
//!   into a perfect fifth / octave that they did not already form, with a
//!   leap (more than 2 semitones) in the soprano.
//! - **Voice crossings** (against the previous step): in a change, a voice
//!   moves above the previous pitch of the voice above it, or below the
//!   previous pitch of the voice below it (voices overlap).
//! - **Wide spacing**: the share of four-voice steps with more than an octave
//!   between soprano and alto or between alto and tenor.
//! - **Voice ranges**: each voice's lowest and highest pitch over the
//!   four-voice steps, and the share of four-voice steps with a voice
//!   outside the usual ranges ([`RANGES`]: soprano C4–G5, alto G3–D5, tenor
//!   C3–G4, bass E2–C4).
//! - **In the key's scale**: the share of notes whose pitch class belongs to
//!   the scale of the piece's key, found by the Krumhansl–Kessler profiles
//!   over duration-weighted pitch classes ([`crate::key`]); in minor the
//!   scale holds both sixths and sevenths.
//! - **Mean note**: notes' mean length in steps; **soprano leap**: the mean
//!   size in semitones of the soprano's moves in changes.
//!
//! Steps are swept segment by segment (a segment: steps with the same
//! pitches), so the work grows with the notes, not with their lengths.

use std::collections::BTreeMap;

use crate::key::Key;
use crate::note_sequence::NoteSequence;

/// The usual ranges of soprano, alto, tenor and bass (MIDI pitches).
pub const RANGES: [(i32, i32); 4] = [(60, 79), (55, 74), (48, 67), (40, 60)];

/// Counts of one piece, or of several added together; the rates and
/// shares are derived from them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Judgement {
    /// Steps from 0 to the last note's end.
    pub steps: usize,
    /// Steps with at least one note sounding.
    pub sounding_steps: usize,
    /// Sum over steps of the voices sounding.
    pub voices: usize,
    pub four_voice_steps: usize,
    pub changes: usize,
    pub parallel_fifths: usize,
    pub parallel_octaves: usize,
    pub hidden_fifths: usize,
    pub hidden_octaves: usize,
    pub crossings: usize,
    pub wide_spacing_steps: usize,
    pub out_of_range_steps: usize,
    /// Lowest and highest pitch of S, A, T, B over the four-voice steps.
    pub voice_ranges: [Option<(i32, i32)>; 4],
    /// Lowest and highest pitch of any note.
    pub range: Option<(i32, i32)>,
    pub notes: usize,
    pub note_steps: usize,
    pub notes_in_scale: usize,
    pub soprano_moves: usize,
    pub soprano_semitones: usize,
    /// The piece's key (one piece only; `None` in a total).
    pub key: Option<Key>,
}

impl Judgement {
    /// Judges a quantized sequence (drums left out).
    pub fn of(seq: &NoteSequence) -> Judgement {
        let notes: Vec<_> = seq.notes.iter().filter(|n| !n.is_drum && n.quantized_end_step > n.quantized_start_step).collect();
        let key = Key::find(notes.iter().map(|n| (n.pitch, (n.quantized_end_step - n.quantized_start_step) as f64)));
        let mut j = Judgement {
            steps: notes.iter().map(|n| n.quantized_end_step).max().unwrap_or(0).max(0) as usize,
            range: notes.iter().map(|n| n.pitch).min().zip(notes.iter().map(|n| n.pitch).max()),
            notes: notes.len(),
            note_steps: notes.iter().map(|n| (n.quantized_end_step - n.quantized_start_step.max(0)) as usize).sum(),
            notes_in_scale: key.map_or(0, |k| notes.iter().filter(|n| k.in_scale(n.pitch)).count()),
            key,
            ..Judgement::default()
        };
        // (step, +1 start / -1 end, pitch), ends before starts at one step.
        let mut changes: Vec<(i64, i32, i32)> = Vec::with_capacity(2 * notes.len());
        for n in &notes {
            changes.push((n.quantized_start_step.max(0), 1, n.pitch));
            changes.push((n.quantized_end_step, -1, n.pitch));
        }
        changes.sort_unstable();
        let mut sounding: BTreeMap<i32, usize> = BTreeMap::new();
        let mut previous: Option<[i32; 4]> = None;
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
            if until == step {
                continue; // more changes at this step
            }
            let span = (until - step) as usize;
            let voices = four_voices(&sounding);
            j.segment(sounding.len(), voices, span);
            match (previous, voices) {
                (Some(before), Some(after)) if before != after => j.change(before, after),
                _ => {}
            }
            previous = voices;
        }
        j
    }

    /// The judgement of a whole piece read from a file: split at tempo and
    /// time-signature changes and quantized, as the pipeline does.
    pub fn of_piece(seq: &NoteSequence) -> crate::Result<Judgement> {
        let mut total = Judgement::default();
        let parts = crate::pipeline::split_on_time_changes(seq);
        for part in &parts {
            let quantized = crate::pipeline::quantize(part, crate::encoding::STEPS_PER_QUARTER)
                .map_err(|d| crate::Error::Invalid(format!("cannot quantize: {d}")))?;
            total.add(&Judgement::of(&quantized));
        }
        // The key is the whole piece's, not its parts'.
        let notes = seq.notes.iter().filter(|n| !n.is_drum);
        total.key = Key::find(notes.clone().map(|n| (n.pitch, n.end_time - n.start_time)));
        total.notes_in_scale = total.key.map_or(0, |k| notes.filter(|n| k.in_scale(n.pitch)).count());
        Ok(total)
    }

    /// Counts `span` steps with `count` distinct pitches (`voices` when four).
    fn segment(&mut self, count: usize, voices: Option<[i32; 4]>, span: usize) {
        if count == 0 {
            return;
        }
        self.sounding_steps += span;
        self.voices += count * span;
        let Some(v) = voices else { return };
        self.four_voice_steps += span;
        if v[0] - v[1] > 12 || v[1] - v[2] > 12 {
            self.wide_spacing_steps += span;
        }
        if v.iter().zip(RANGES).any(|(&p, (lo, hi))| p < lo || p > hi) {
            self.out_of_range_steps += span;
        }
        for (range, &p) in self.voice_ranges.iter_mut().zip(&v) {
            *range = Some(range.map_or((p, p), |(lo, hi)| (lo.min(p), hi.max(p))));
        }
    }

    /// Judges the motion from one four-voice step to the next.
    fn change(&mut self, before: [i32; 4], after: [i32; 4]) {
        self.changes += 1;
        let moved = |v: usize| after[v] - before[v];
        for upper in 0..4 {
            for lower in upper + 1..4 {
                let (was, now) = (before[upper] - before[lower], after[upper] - after[lower]);
                let same_direction = moved(upper) != 0 && moved(upper).signum() == moved(lower).signum();
                if same_direction && was == now {
                    match now % 12 {
                        7 => self.parallel_fifths += 1,
                        0 => self.parallel_octaves += 1,
                        _ => {}
                    }
                }
            }
        }
        let (was, now) = (before[0] - before[3], after[0] - after[3]);
        let similar = moved(0) != 0 && moved(0).signum() == moved(3).signum();
        if similar && moved(0).abs() > 2 && was % 12 != now % 12 {
            match now % 12 {
                7 => self.hidden_fifths += 1,
                0 => self.hidden_octaves += 1,
                _ => {}
            }
        }
        for v in 0..4 {
            let above = v > 0 && after[v] > before[v - 1];
            let below = v < 3 && after[v] < before[v + 1];
            self.crossings += usize::from(above || below);
        }
        if moved(0) != 0 {
            self.soprano_moves += 1;
            self.soprano_semitones += moved(0).unsigned_abs() as usize;
        }
    }

    /// This and `other` together (ranges joined, the key dropped).
    pub fn add(&mut self, other: &Judgement) {
        let join = |a: Option<(i32, i32)>, b: Option<(i32, i32)>| match (a, b) {
            (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
            (r, None) | (None, r) => r,
        };
        let sums = [
            (&mut self.steps, other.steps),
            (&mut self.sounding_steps, other.sounding_steps),
            (&mut self.voices, other.voices),
            (&mut self.four_voice_steps, other.four_voice_steps),
            (&mut self.changes, other.changes),
            (&mut self.parallel_fifths, other.parallel_fifths),
            (&mut self.parallel_octaves, other.parallel_octaves),
            (&mut self.hidden_fifths, other.hidden_fifths),
            (&mut self.hidden_octaves, other.hidden_octaves),
            (&mut self.crossings, other.crossings),
            (&mut self.wide_spacing_steps, other.wide_spacing_steps),
            (&mut self.out_of_range_steps, other.out_of_range_steps),
            (&mut self.notes, other.notes),
            (&mut self.note_steps, other.note_steps),
            (&mut self.notes_in_scale, other.notes_in_scale),
            (&mut self.soprano_moves, other.soprano_moves),
            (&mut self.soprano_semitones, other.soprano_semitones),
        ];
        for (mine, theirs) in sums {
            *mine += theirs;
        }
        for (mine, theirs) in self.voice_ranges.iter_mut().zip(other.voice_ranges) {
            *mine = join(*mine, theirs);
        }
        self.range = join(self.range, other.range);
        self.key = None;
    }

    /// Mean distinct pitches over the sounding steps.
    pub fn mean_voices(&self) -> f64 {
        ratio(self.voices, self.sounding_steps)
    }

    /// Share of the sounding steps with exactly four voices.
    pub fn four_voice_share(&self) -> f64 {
        ratio(self.four_voice_steps, self.sounding_steps)
    }

    /// Per 100 changes.
    pub fn per_100_changes(&self, count: usize) -> f64 {
        100.0 * ratio(count, self.changes)
    }

    /// Share of the four-voice steps.
    pub fn of_four_voice_steps(&self, count: usize) -> f64 {
        ratio(count, self.four_voice_steps)
    }

    /// Share of the notes in the key's scale.
    pub fn in_scale_share(&self) -> f64 {
        ratio(self.notes_in_scale, self.notes)
    }

    /// Mean length of a note in steps (sixteenths).
    pub fn mean_note_steps(&self) -> f64 {
        ratio(self.note_steps, self.notes)
    }

    /// Mean size of the soprano's moves, in semitones.
    pub fn soprano_mean_leap(&self) -> f64 {
        ratio(self.soprano_semitones, self.soprano_moves)
    }
}

/// S, A, T, B from the top, where exactly four distinct pitches sound.
fn four_voices(sounding: &BTreeMap<i32, usize>) -> Option<[i32; 4]> {
    if sounding.len() != 4 {
        return None;
    }
    let mut v = [0; 4];
    for (slot, &pitch) in v.iter_mut().zip(sounding.keys().rev()) {
        *slot = pitch;
    }
    Some(v)
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note_sequence::Note;

    /// Chords a quarter note each (4 steps), given as S A T B.
    fn chords(chords: &[[i32; 4]]) -> NoteSequence {
        let mut seq = NoteSequence::default();
        for (k, chord) in chords.iter().enumerate() {
            for &pitch in chord {
                let mut n = Note::new(pitch, 100, k as f64 * 0.5, (k + 1) as f64 * 0.5);
                n.quantized_start_step = 4 * k as i64;
                n.quantized_end_step = 4 * (k + 1) as i64;
                seq.notes.push(n);
            }
        }
        seq
    }

    #[test]
    fn a_parallel_fifth_is_found_and_contrary_motion_is_not() {
        // C major (G4 E4 C4 C3) to D minor (A4 F4 D4 D3), every voice up:
        // soprano-tenor a fifth, soprano-bass a twelfth (a compound fifth)
        // and tenor-bass an octave, each moved in parallel.
        let j = Judgement::of(&chords(&[[67, 64, 60, 48], [69, 65, 62, 50]]));
        assert_eq!(j.changes, 1);
        assert_eq!((j.parallel_fifths, j.parallel_octaves), (2, 1));
        // C major to G major, bass down a fourth, upper voices by contrary or oblique motion.
        let good = Judgement::of(&chords(&[[72, 67, 64, 48], [71, 67, 62, 43]]));
        assert_eq!((good.changes, good.parallel_fifths, good.parallel_octaves), (1, 0, 0));
        // A fifth held by both voices (no motion) is no parallel.
        let held = Judgement::of(&chords(&[[79, 72, 64, 48], [79, 71, 62, 48]]));
        assert_eq!(held.parallel_fifths + held.parallel_octaves, 0);
    }

    #[test]
    fn hidden_octaves_crossings_spacing_ranges_and_key() {
        // Soprano leaps up a fourth to C5 while the bass steps up to C3: a
        // hidden octave (C-C) into which both move up.
        let j = Judgement::of(&chords(&[[67, 64, 55, 47], [72, 64, 55, 48]]));
        assert_eq!((j.hidden_octaves, j.hidden_fifths), (1, 0));
        // The alto jumps above where the soprano was: a crossing (overlap).
        let crossing = Judgement::of(&chords(&[[67, 64, 55, 48], [72, 69, 57, 48]]));
        assert_eq!(crossing.crossings, 1);
        // Soprano more than an octave above the alto for one chord of two.
        let wide = Judgement::of(&chords(&[[79, 64, 55, 48], [72, 64, 55, 48]]));
        assert_eq!(wide.of_four_voice_steps(wide.wide_spacing_steps), 0.5);
        assert_eq!(wide.voice_ranges[0], Some((72, 79)));
        assert_eq!(wide.four_voice_share(), 1.0);
        assert_eq!(wide.key.unwrap().to_string(), "C major");
        assert_eq!(wide.in_scale_share(), 1.0);
        assert_eq!((wide.soprano_moves, wide.soprano_mean_leap()), (1, 7.0));
        // A bass below E2 is out of range.
        assert_eq!(Judgement::of(&chords(&[[72, 64, 55, 36]])).out_of_range_steps, 4);
    }

    #[test]
    fn counts_distinct_pitches_per_step_and_scales_with_notes() {
        let mut seq = chords(&[[72, 67, 64, 60]]);
        seq.notes.truncate(2);
        let j = Judgement::of(&seq);
        assert_eq!((j.steps, j.sounding_steps, j.voices, j.four_voice_steps), (4, 4, 8, 0));
        let long = NoteSequence {
            notes: vec![Note { quantized_end_step: 10_000_000, ..Note::new(60, 100, 0.0, 1.0) }],
            ..NoteSequence::default()
        };
        assert_eq!(Judgement::of(&long).sounding_steps, 10_000_000);
        let mut both = j.clone();
        both.add(&j);
        assert_eq!((both.voices, both.key), (16, None));
    }
}
