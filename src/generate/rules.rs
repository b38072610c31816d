//! The decoding rules: what a row of the batch may sample next, given what
//! it has written so far. Every constraint on sampling lives here, so the
//! host sampler and the device sampler obey the same rules.
//!
//! A rule gives each of the 259 classes a log-weight added to the
//! temperature-scaled logits: 0 leaves a class as the model has it,
//! −∞ forbids it (its probability goes to the rest), a negative number
//! makes it that much less likely. The rules, each an option of the request:
//! - **grammar** (`mask_ignored_events`): only events that decoding keeps
//!   (STEP_END, any NEW_NOTE, a CONTINUED_NOTE of a pitch that sounds and is
//!   not yet continued in this step; never START or END mid-stream);
//! - **descending** (with the grammar): within a step pitches descend, as in
//!   every training example; in harmonize mode the melody, written first,
//!   is thus always on top;
//! - **at most N voices** (`max_voices`, with the grammar): a step with N
//!   pitches may only end;
//! - **a kept bass** (harmonizing a bass line): the line's note is written
//!   last in each step, and nothing may go below it;
//! - **a kept line's pitch is its own**: in a step where a kept (injected)
//!   line sounds a pitch, no other voice strikes or holds that pitch, and no
//!   other voice holds on a pitch the line has just left. Two voices on one
//!   pitch are one pitch in the stream, so decoding could not tell which
//!   note is the line's: it would cut the kept note short or draw it longer;
//! - **a key** (`key` with `key_prior` < 1): a NEW_NOTE outside the key's
//!   scale is that many times less likely (chromatic notes stay possible);
//! - **strict four-part writing** (`part_writing`): when the last step had
//!   four voices, a candidate pitch for the k-th voice from the top is
//!   forbidden where it would make parallel fifths or octaves with a voice
//!   above it, leave its voice's range ([`crate::judge::RANGES`]) or open
//!   more than an octave between soprano and alto or alto and tenor. Ending
//!   the step stays allowed, so a row is never left without a choice.

use super::request::GenerateOptions;
use crate::encoding::{Event, NUM_CLASSES};
use crate::judge::RANGES;
use crate::key::Key;

/// The rules a request asks for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rules {
    /// Sample only events that decoding keeps.
    pub only_kept_events: bool,
    /// Pitches descend within a step (with `only_kept_events`).
    pub descending: bool,
    /// A step with this many pitches may only end (with `only_kept_events`).
    pub max_voices: Option<usize>,
    /// The key's scale and how much less likely a NEW_NOTE outside it is
    /// (a log-weight, 0 for none).
    pub key: Option<(Key, f32)>,
    pub part_writing: bool,
}

impl Rules {
    /// The rules of `options`, with `key` the key it writes in (chosen or found).
    pub fn of(options: &GenerateOptions, key: Option<Key>) -> Rules {
        let grammar = options.mask_ignored_events;
        let prior = (options.key_prior < 1.0).then(|| options.key_prior.max(f64::MIN_POSITIVE).ln() as f32);
        Rules {
            only_kept_events: grammar,
            descending: grammar && options.descending,
            max_voices: options.max_voices.filter(|_| grammar),
            key: key.zip(prior),
            part_writing: options.part_writing,
        }
    }

    /// The rules of the style, the key aside: the grammar, descending
    /// pitches, four voices and strict four-part writing. Training's
    /// `rules_penalty` teaches the model to keep them
    /// ([`forbidden_next`]), so that it writes by them alone.
    pub const STYLE: Rules = Rules { only_kept_events: true, descending: true, max_voices: Some(4), key: None, part_writing: true };

    /// Whether any rule changes sampling (else every class keeps its logit).
    pub fn restrict(&self) -> bool {
        self.only_kept_events || self.key.is_some() || self.part_writing
    }
}

/// One row's stream as the rules read it, event by event, as decoding reads
/// it: the pitches sounding at the end of the last step that this step has
/// not continued yet (a multiset: two voices on one pitch may both go on),
/// the last complete step's pitches, and this step's so far.
#[derive(Clone, Debug, Default)]
pub struct RowState {
    to_continue: Vec<u8>,
    /// The last complete step's pitches, highest first.
    last_step: Vec<u8>,
    /// This step's pitches in the order written.
    current: Vec<u8>,
    events_in_step: usize,
    /// The pitch the step's bass will have, when a bass line is kept (it
    /// is written last): nothing may go below it, and it takes a voice.
    floor: Option<u8>,
    /// The kept line's events in this step (see [`RowState::keep_line`]).
    kept: Vec<Event>,
    /// The kept line's pitches in the last step.
    kept_last: Vec<u8>,
}

impl RowState {
    /// Takes the stream's next event; false (and no change but the count)
    /// for a CONTINUED_NOTE that continues nothing, which decoding ignores.
    pub fn accept(&mut self, e: Event) -> bool {
        if e == Event::StepEnd {
            let mut step = std::mem::take(&mut self.current);
            self.to_continue = step.clone();
            step.sort_unstable_by(|a, b| b.cmp(a));
            step.dedup();
            self.last_step = step;
            self.events_in_step = 0;
            self.floor = None;
            self.kept_last = std::mem::take(&mut self.kept).into_iter().filter_map(Event::pitch).collect();
            return true;
        }
        self.events_in_step += 1;
        match e {
            Event::NewNote(p) => self.current.push(p),
            Event::ContinuedNote(p) => match self.to_continue.iter().position(|&q| q == p) {
                Some(i) => {
                    self.to_continue.swap_remove(i);
                    self.current.push(p);
                }
                None => return false,
            },
            Event::StepEnd | Event::Start | Event::End => {}
        }
        true
    }

    /// The kept line's events for this step (given before the step is
    /// written): its pitches are no other voice's (see the module
    /// documentation), and a kept bass, which is written last, is the
    /// step's floor.
    pub fn keep_line(&mut self, events: &[Event], bass: bool) {
        self.kept = events.to_vec();
        if bass {
            self.floor = events.iter().filter_map(|e| e.pitch()).min();
        }
    }

    /// Events read since the last STEP_END (ignored ones too).
    pub fn events_in_step(&self) -> usize {
        self.events_in_step
    }

    /// The log-weight `rules` give each class next, into `bias` (259 wide).
    pub fn bias(&self, rules: &Rules, bias: &mut [f32]) {
        bias.fill(0.0);
        if rules.only_kept_events {
            self.grammar(rules, bias);
        }
        if let Some((key, weight)) = rules.key {
            for p in 0..=127u8 {
                if !key.in_scale(i32::from(p)) {
                    bias[Event::NewNote(p).class()] += weight;
                }
            }
        }
        if rules.part_writing {
            self.part_writing(bias);
        }
    }

    fn grammar(&self, rules: &Rules, bias: &mut [f32]) {
        bias.fill(f32::NEG_INFINITY);
        bias[Event::StepEnd.class()] = 0.0;
        // A kept bass, still to come, takes a voice.
        let voices = self.distinct_current() + usize::from(self.floor.is_some());
        if rules.max_voices.is_some_and(|n| voices >= n) {
            return;
        }
        // Descending: at most the last pitch written (equal: two voices in
        // unison); never below a kept bass.
        let ceiling = if rules.descending { self.current.last().copied().unwrap_or(127) } else { 127 };
        let floor = self.floor.unwrap_or(0);
        if floor > ceiling {
            return;
        }
        bias[Event::NewNote(floor).class()..=Event::NewNote(ceiling).class()].fill(0.0);
        for &p in self.to_continue.iter().filter(|&&p| (floor..=ceiling).contains(&p)) {
            bias[Event::ContinuedNote(p).class()] = 0.0;
        }
        // The line's own events are forced, never sampled: this binds the others.
        for p in self.kept.iter().filter_map(|e| e.pitch()) {
            bias[Event::NewNote(p).class()] = f32::NEG_INFINITY;
            bias[Event::ContinuedNote(p).class()] = f32::NEG_INFINITY;
        }
        for &p in &self.kept_last {
            bias[Event::ContinuedNote(p).class()] = f32::NEG_INFINITY;
        }
    }

    fn distinct_current(&self) -> usize {
        let mut seen: Vec<u8> = self.current.clone();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    }

    /// Forbids the pitches that would break four-part writing as the k-th
    /// voice from the top (k = the distinct pitches written so far).
    fn part_writing(&self, bias: &mut [f32]) {
        let k = self.distinct_current();
        if k >= 4 {
            return;
        }
        let mut above: Vec<u8> = self.current.clone();
        above.sort_unstable_by(|a, b| b.cmp(a));
        above.dedup();
        for p in 0..=127u8 {
            if self.breaks_part_writing(p, k, &above) {
                bias[Event::NewNote(p).class()] = f32::NEG_INFINITY;
                bias[Event::ContinuedNote(p).class()] = f32::NEG_INFINITY;
            }
        }
    }

    fn breaks_part_writing(&self, p: u8, k: usize, above: &[u8]) -> bool {
        let p = i32::from(p);
        if above.iter().any(|&q| i32::from(q) == p) {
            return false;
        }
        let (lo, hi) = RANGES[k];
        if p < lo || p > hi {
            return true;
        }
        if (k == 1 || k == 2) && i32::from(above[k - 1]) - p > 12 {
            return true;
        }
        let [s, a, t, b] = match self.last_step[..] {
            [s, a, t, b] => [s, a, t, b].map(i32::from),
            _ => return false,
        };
        let before = [s, a, t, b];
        let moved = p - before[k];
        (0..k).any(|j| {
            let now_upper = i32::from(above[j]);
            let (was, now) = (before[j] - before[k], now_upper - p);
            let upper_moved = now_upper - before[j];
            was == now && moved != 0 && upper_moved.signum() == moved.signum() && matches!(now % 12, 0 | 7)
        })
    }
}

/// Drops CONTINUED_NOTE events that continue nothing (decoding ignores
/// them), so that a stream reads back from its MIDI file unchanged.
pub fn drop_orphan_continuations(events: &[Event]) -> Vec<Event> {
    let mut state = RowState::default();
    events.iter().copied().filter(|&e| state.accept(e)).collect()
}

/// A set of classes (259 bits).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ClassSet([u64; NUM_CLASSES.div_ceil(64)]);

impl ClassSet {
    pub fn insert(&mut self, class: usize) {
        self.0[class / 64] |= 1 << (class % 64);
    }

    pub fn remove(&mut self, class: usize) {
        self.0[class / 64] &= !(1 << (class % 64));
    }

    pub fn contains(&self, class: usize) -> bool {
        self.0[class / 64] >> (class % 64) & 1 == 1
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }

    /// The classes in the set, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &bits)| {
            let rest = |&b: &u64| Some(b & b.wrapping_sub(1)).filter(|&b| b != 0);
            std::iter::successors(Some(bits).filter(|&b| b != 0), rest).map(move |b| w * 64 + b.trailing_zeros() as usize)
        })
    }
}

/// For each event of `events` but the last, the classes `rules` forbid as
/// the next event, less the one that does come next: Bach breaks a rule
/// now and then, and the data's own choice is never held against it.
pub fn forbidden_next(events: &[Event], rules: &Rules) -> Vec<ClassSet> {
    let mut state = RowState::default();
    let mut bias = vec![0.0; NUM_CLASSES];
    events
        .windows(2)
        .map(|pair| {
            state.accept(pair[0]);
            state.bias(rules, &mut bias);
            let mut set = ClassSet::default();
            allowed(&bias).enumerate().filter(|(_, ok)| !ok).for_each(|(c, _)| set.insert(c));
            set.remove(pair[1].class());
            set
        })
        .collect()
}

/// The classes `bias` allows at all.
pub fn allowed(bias: &[f32]) -> impl Iterator<Item = bool> + '_ {
    bias.iter().map(|b| *b > f32::NEG_INFINITY)
}

const _: () = assert!(NUM_CLASSES == 259);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Mode;

    fn grammar() -> Rules {
        Rules { only_kept_events: true, descending: false, max_voices: None, key: None, part_writing: false }
    }

    fn state(events: &[Event]) -> RowState {
        let mut state = RowState::default();
        events.iter().for_each(|&e| {
            state.accept(e);
        });
        state
    }

    fn allows(rules: &Rules, state: &RowState, e: Event) -> bool {
        let mut bias = vec![0.0; NUM_CLASSES];
        state.bias(rules, &mut bias);
        bias[e.class()] > f32::NEG_INFINITY
    }

    #[test]
    fn only_what_decoding_keeps_is_allowed() {
        use Event::*;
        let mut state = state(&[Start, NewNote(60), NewNote(64), StepEnd, ContinuedNote(64)]);
        assert!(!state.accept(ContinuedNote(61)), "61 does not sound");
        let r = grammar();
        assert!(allows(&r, &state, ContinuedNote(60)) && !allows(&r, &state, ContinuedNote(64)));
        assert!(allows(&r, &state, StepEnd) && allows(&r, &state, NewNote(0)) && allows(&r, &state, NewNote(127)));
        assert!(!allows(&r, &state, Start) && !allows(&r, &state, End));
        assert_eq!(state.events_in_step(), 2);
        let mut bias = vec![1.0; NUM_CLASSES];
        state.bias(&Rules { only_kept_events: false, ..r }, &mut bias);
        assert!(bias.iter().all(|b| *b == 0.0));
    }

    #[test]
    fn pitches_descend_and_voices_are_counted() {
        use Event::*;
        let r = Rules { descending: true, max_voices: Some(3), ..grammar() };
        let s = state(&[Start, NewNote(72), NewNote(67), StepEnd, NewNote(69)]);
        assert!(allows(&r, &s, NewNote(69)) && allows(&r, &s, NewNote(60)) && !allows(&r, &s, NewNote(70)));
        assert!(!allows(&r, &s, ContinuedNote(72)), "72 would sound above 69");
        assert!(allows(&r, &s, ContinuedNote(67)));
        let full = state(&[Start, NewNote(72), NewNote(67), NewNote(60)]);
        assert!(!allows(&r, &full, NewNote(55)) && allows(&r, &full, StepEnd), "three voices: only the end");
    }

    #[test]
    fn a_kept_lines_pitch_is_no_other_voices() {
        use Event::*;
        let r = grammar();
        // The melody's 64 goes on into this step: another voice may not
        // start a new 64, which would cut it.
        let mut s = state(&[Start, NewNote(64), NewNote(60), StepEnd]);
        s.keep_line(&[ContinuedNote(64)], false);
        s.accept(ContinuedNote(64));
        assert!(!allows(&r, &s, NewNote(64)) && allows(&r, &s, NewNote(62)));
        // The melody strikes 60 again: the other 60 may not be held into it,
        // nor doubled.
        let mut s = state(&[Start, NewNote(64), NewNote(60), StepEnd]);
        s.keep_line(&[NewNote(60)], false);
        s.accept(NewNote(60));
        assert!(!allows(&r, &s, ContinuedNote(60)) && !allows(&r, &s, NewNote(60)) && allows(&r, &s, ContinuedNote(64)));
        // The melody leaves 64 for 67: nobody holds the 64 on.
        let mut s = state(&[Start, NewNote(64), NewNote(60), StepEnd]);
        s.keep_line(&[NewNote(64)], false);
        s.accept(NewNote(64));
        s.accept(StepEnd);
        s.keep_line(&[NewNote(67)], false);
        s.accept(NewNote(67));
        assert!(!allows(&r, &s, ContinuedNote(64)) && allows(&r, &s, NewNote(64)));
        // A kept bass continuing 48: nothing below it, and no new 48 above it.
        let mut s = state(&[Start, NewNote(60), NewNote(48), StepEnd]);
        s.keep_line(&[ContinuedNote(48)], true);
        assert!(!allows(&r, &s, NewNote(48)) && !allows(&r, &s, NewNote(47)) && allows(&r, &s, NewNote(55)));
        s.accept(StepEnd);
        assert!(allows(&r, &s, NewNote(48)), "the next step is free again");
    }

    #[test]
    fn a_key_makes_notes_outside_its_scale_less_likely() {
        let r = Rules { key: Some((Key::new(0, Mode::Major), 0.1f32.ln())), ..grammar() };
        let mut bias = vec![0.0; NUM_CLASSES];
        RowState::default().bias(&r, &mut bias);
        assert_eq!(bias[Event::NewNote(64).class()], 0.0);
        assert!((bias[Event::NewNote(66).class()] - 0.1f32.ln()).abs() < 1e-6, "F# in C major");
    }

    #[test]
    fn part_writing_forbids_parallels_ranges_and_wide_spacing() {
        use Event::*;
        let r = Rules { part_writing: true, ..grammar() };
        // Last step C major: S G4 (67), A E4 (64), T C4 (60), B C3 (48).
        let prefix = [Start, NewNote(67), NewNote(64), NewNote(60), NewNote(48), StepEnd];
        // Soprano up to A4: a tenor D4 would move up a fifth below it, parallel.
        let s = state(&[&prefix[..], &[NewNote(69), NewNote(65)]].concat());
        assert!(!allows(&r, &s, NewNote(62)), "S-T parallel fifths (G-C to A-D)");
        assert!(allows(&r, &s, NewNote(60)), "the tenor holds C: oblique motion");
        assert!(!allows(&r, &s, NewNote(45)), "below the tenor's range");
        // The alto more than an octave below the soprano.
        let s = state(&[&prefix[..], &[NewNote(79)]].concat());
        assert!(!allows(&r, &s, NewNote(64)) && allows(&r, &s, NewNote(67)));
        // Without a four-voice step before, only ranges and spacing count.
        let s = state(&[Start, NewNote(69), NewNote(65)]);
        assert!(allows(&r, &s, NewNote(62)));
        assert!(allows(&r, &s, StepEnd), "ending the step is always possible");
    }

    #[test]
    fn the_next_events_forbidden_are_those_of_the_rules_but_the_one_written() {
        use Event::*;
        // C major (G4 E4 C4 C3), then the soprano to A4 and the alto to F4.
        let events = [Start, NewNote(67), NewNote(64), NewNote(60), NewNote(48), StepEnd, NewNote(69), NewNote(65), NewNote(62)];
        let forbidden = forbidden_next(&events, &Rules::STYLE);
        assert_eq!(forbidden.len(), events.len() - 1);
        let before_tenor = &forbidden[7];
        assert!(!before_tenor.contains(NewNote(62).class()), "the tenor's D4 is written: not held against it");
        assert!(before_tenor.contains(NewNote(62 - 15).class()), "a tenor B2: out of range, too far below the alto");
        assert!(before_tenor.contains(NewNote(66).class()) && before_tenor.contains(ContinuedNote(67).class()), "above the alto");
        assert!(!before_tenor.contains(NewNote(60).class()) && !before_tenor.contains(StepEnd.class()));
        let before_alto = &forbidden[6];
        assert!(before_alto.contains(NewNote(56).class()), "an octave and more below the soprano");
        assert!(!before_alto.contains(NewNote(62).class()) && !before_alto.contains(NewNote(65).class()));
        assert!(forbidden[0].contains(End.class()) && forbidden[0].contains(ContinuedNote(60).class()) && !forbidden[0].contains(NewNote(67).class()));
        let mut set = ClassSet::default();
        set.insert(258);
        set.insert(3);
        assert_eq!(set.iter().collect::<Vec<_>>(), [3, 258]);
        set.remove(258);
        assert!(!set.contains(258) && !set.is_empty());
    }
}
