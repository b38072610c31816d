//! Four named voices: every note of a piece is given to Soprano, Alto,
//! Tenor or Bass (a fifth voice and more, if the music has them, are named
//! as such), once, here, for every writer and for the page.
//!
//! Notes are taken in the order they start. A held note keeps its voice. At
//! each onset a new note above everything it sounds with (what is held,
//! what starts with it, what starts while it sounds; for a note alone, the
//! chord it leads into) is the soprano's and one below everything the
//! bass's, when those voices are free: the outer voices are the outer
//! notes, even a melody's note that begins alone. The
//! other new notes, highest first, go to the free voices, highest first, in
//! the one order-keeping way that moves the voices least (the sum of each
//! voice's leap from its last pitch); a voice that has not sung yet starts
//! from the middle of its range. Where more notes start than voices are
//! free, a new voice is added (the bass stays the lowest note).

use std::cmp::Ordering;

use crate::note_sequence::NoteSequence;
use crate::step_grid::StepNote;

/// The four voices' names, from the top.
pub const NAMES: [&str; 4] = ["Soprano", "Alto", "Tenor", "Bass"];
/// Where a voice that has not sung yet is taken to be (middle of its range).
const STARTING_PITCHES: [i32; 4] = [70, 64, 57, 50];

/// The name of voice `v` (0 = Soprano).
pub fn name(v: usize) -> String {
    NAMES.get(v).map_or_else(|| format!("Voice {}", v + 1), |n| n.to_string())
}

/// Each note's voice (0 = Soprano, 1 = Alto, ...), in the notes' order.
pub fn assign(notes: &[StepNote]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..notes.len()).collect();
    // At one onset highest first; in a unison the longer note first, so a
    // line held on through it keeps its outer voice.
    order.sort_by(|&a, &b| notes[a].start.cmp(&notes[b].start).then(notes[b].pitch.cmp(&notes[a].pitch)).then(notes[b].end.cmp(&notes[a].end)));
    let mut voice_of = vec![0; notes.len()];
    // Per voice: the step its current note ends, and its last pitch.
    let mut busy_until: Vec<i64> = vec![i64::MIN; NAMES.len()];
    let mut last: Vec<i32> = STARTING_PITCHES.to_vec();
    let mut k = 0;
    while k < order.len() {
        let onset = notes[order[k]].start;
        let starting: Vec<usize> = order[k..].iter().copied().take_while(|&i| notes[i].start == onset).collect();
        k += starting.len();
        let mut free: Vec<usize> = (0..last.len()).filter(|&v| busy_until[v] <= onset).collect();
        while free.len() < starting.len() {
            // More notes than free voices: a new voice.
            last.push(notes[*starting.last().expect("a note")].pitch);
            busy_until.push(i64::MIN);
            free.push(last.len() - 1);
        }
        let held: Vec<i32> = (0..last.len()).filter(|&v| busy_until[v] > onset).map(|v| last[v]).collect();
        // (note, voice) chosen at this onset.
        let mut placed: Vec<(usize, usize)> = Vec::with_capacity(starting.len());
        let mut place = |note: usize, v: usize, free: &mut Vec<usize>| {
            placed.push((note, v));
            free.retain(|&f| f != v);
        };
        let outer = |i: usize| {
            let later = order[k..].iter().map(|&j| &notes[j]);
            let with: Vec<i32> = starting.iter().filter(|&&j| j != i).map(|&j| notes[j].pitch)
                .chain(held.iter().copied())
                .chain(later.clone().take_while(|n| n.start < notes[i].end).map(|n| n.pitch))
                .collect();
            let next: Vec<i32> = later.skip_while(|n| n.start < notes[i].end).take_while(|n| n.start == notes[i].end).map(|n| n.pitch).collect();
            outer_side(notes[i].pitch, &with, &next)
        };
        let mut rest: &[usize] = &starting;
        // The outer notes to the outer voices.
        if free.contains(&0) && outer(starting[0]) == Some(Ordering::Greater) {
            place(starting[0], 0, &mut free);
            rest = &rest[1..];
        }
        let bass = NAMES.len() - 1;
        if let Some(&bottom) = rest.last() {
            if free.contains(&bass) && outer(bottom) == Some(Ordering::Less) {
                place(bottom, bass, &mut free);
                rest = &rest[..rest.len() - 1];
            }
        }
        let pitches: Vec<i32> = rest.iter().map(|&i| notes[i].pitch).collect();
        let chosen = least_motion(&pitches, &free.iter().map(|&v| last[v]).collect::<Vec<_>>());
        let slots: Vec<usize> = chosen.iter().map(|&slot| free[slot]).collect();
        for (&note, v) in rest.iter().zip(slots) {
            place(note, v, &mut free);
        }
        for (note, v) in placed {
            voice_of[note] = v;
            busy_until[v] = notes[note].end;
            last[v] = notes[note].pitch;
        }
    }
    voice_of
}

/// Whether a note of pitch `p` is above (Greater) or below (Less)
/// everything it sounds with (`with`: the other new notes, those held,
/// those starting while it sounds), or, sounding alone, the chord it leads
/// into (`next`: what starts as it ends); `None` when neither.
fn outer_side(p: i32, with: &[i32], next: &[i32]) -> Option<Ordering> {
    let sides = [Ordering::Greater, Ordering::Less];
    if !with.is_empty() {
        sides.into_iter().find(|&o| with.iter().all(|&q| p.cmp(&q) == o))
    } else if next.len() >= 2 {
        sides.into_iter().find(|&o| next.iter().all(|&q| p.cmp(&q) != o.reverse()))
    } else {
        None
    }
}

/// The order-keeping matching of `pitches` (highest first) to `voices`
/// (their last pitches, highest voice first, at least as many) that moves
/// them least: for each pitch, the index of its voice.
fn least_motion(pitches: &[i32], voices: &[i32]) -> Vec<usize> {
    let (n, m) = (pitches.len(), voices.len());
    // cost[i][j]: least motion placing the first i pitches among the first j voices.
    let mut cost = vec![vec![i64::MAX; m + 1]; n + 1];
    cost[0] = vec![0; m + 1];
    for i in 1..=n {
        for j in i..=m {
            let skip = cost[i][j - 1];
            let take = cost[i - 1][j - 1].saturating_add(i64::from((pitches[i - 1] - voices[j - 1]).abs()));
            cost[i][j] = skip.min(take);
        }
    }
    let mut chosen = vec![0; n];
    let (mut i, mut j) = (n, m);
    while i > 0 {
        if cost[i][j] == cost[i][j - 1] && j > i {
            j -= 1;
        } else {
            chosen[i - 1] = j - 1;
            i -= 1;
            j -= 1;
        }
    }
    chosen
}

/// The piece with each note in its voice: the voice is the note's part and
/// instrument (so a MIDI file gets a named track and a channel per voice),
/// and the parts are named.
pub fn voiced(seq: &NoteSequence) -> NoteSequence {
    let steps = crate::step_grid::from_sequence(seq);
    let kept: Vec<&crate::Note> = seq.notes.iter().filter(|n| !n.is_drum && (0..=127).contains(&n.pitch)).collect();
    let voices = assign(&steps);
    let mut out = NoteSequence { notes: Vec::with_capacity(kept.len()), ..seq.clone() };
    for (note, &v) in kept.into_iter().zip(&voices) {
        out.notes.push(crate::Note { part: v as u32, instrument: v as u32, voice: 1, ..note.clone() });
    }
    let count = voices.iter().max().map_or(0, |m| m + 1).max(NAMES.len());
    out.part_names = (0..count).map(name).collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(pitch: i32, start: i64, end: i64) -> StepNote {
        StepNote::new(pitch, start, end)
    }

    #[test]
    fn a_chorale_texture_falls_into_its_four_voices() {
        // A C major chord, then the alto moves while the others hold, then a new chord.
        let notes = [n(72, 0, 8), n(67, 0, 4), n(64, 0, 8), n(48, 0, 8), n(65, 4, 8), n(74, 8, 12), n(67, 8, 12), n(59, 8, 12), n(43, 8, 12)];
        assert_eq!(assign(&notes), [0, 1, 2, 3, 1, 0, 1, 2, 3]);
    }

    #[test]
    fn fewer_voices_go_where_they_move_least_and_a_fifth_is_added() {
        // Two notes after a four-voice chord: the soprano and the bass, by where they lie.
        let notes = [n(72, 0, 4), n(67, 0, 4), n(64, 0, 4), n(48, 0, 4), n(71, 4, 8), n(50, 4, 8)];
        assert_eq!(assign(&notes)[4..], [0, 3]);
        // A tenor line alone is the tenor.
        assert_eq!(assign(&[n(55, 0, 4), n(57, 4, 8)]), [2, 2]);
        // A low melody on top of a chord is still the soprano.
        assert_eq!(assign(&[n(60, 0, 4), n(55, 0, 4), n(48, 0, 4)]), [0, 2, 3]);
        // Five at once: a fifth voice, the bass still the lowest.
        assert_eq!(assign(&[n(76, 0, 4), n(72, 0, 4), n(67, 0, 4), n(60, 0, 4), n(48, 0, 4)]), [0, 1, 2, 4, 3]);
        assert_eq!(name(4), "Voice 5");
    }

    #[test]
    fn a_note_that_begins_alone_takes_the_outer_voice_of_what_follows() {
        // A melody's C4 sounds alone, then a chord comes in below it: the soprano's.
        assert_eq!(assign(&[n(60, 0, 4), n(55, 1, 4), n(48, 1, 4)]), [0, 2, 3]);
        // A bass note alone with the upper voices coming in above it.
        assert_eq!(assign(&[n(57, 0, 4), n(64, 2, 4), n(72, 2, 4)]), [3, 1, 0]);
        // Alone, leading into a chord: its top (repeated) or its bottom.
        assert_eq!(assign(&[n(60, 0, 4), n(60, 4, 8), n(53, 4, 8), n(48, 4, 8)])[0], 0);
        assert_eq!(assign(&[n(48, 0, 4), n(72, 4, 8), n(48, 4, 8)])[0], 3);
        // Alone before and after, or inside the next chord: where it moves least.
        assert_eq!(assign(&[n(63, 0, 4), n(72, 4, 8), n(48, 4, 8)])[0], 1);
        assert_eq!(assign(&[n(63, 0, 4), n(65, 4, 8)])[0], 1);
    }

    #[test]
    fn a_voiced_sequence_names_its_parts() {
        let seq = crate::step_grid::to_sequence(&[n(72, 0, 4), n(48, 0, 4)], 120.0, 100, 0);
        let voiced = voiced(&seq);
        assert_eq!(voiced.part_names, ["Soprano", "Alto", "Tenor", "Bass"]);
        assert_eq!(voiced.notes.iter().map(|n| n.instrument).collect::<Vec<_>>(), [0, 3]);
    }
}
