//! The decoding rules: what a row of the batch may sample next, given what
//! it has written so far. Every constraint on sampling lives here, so the
//! host sampler and the device sampler obey the same rules.
//!
//! Today one rule, `mask_ignored_events`: only events that decoding keeps
//! (STEP_END, any NEW_NOTE, a CONTINUED_NOTE of a pitch that sounds and is
//! not yet continued in this step; not START or END, which decoding ignores
//! mid-stream).

use super::request::GenerateOptions;
use crate::encoding::Event;

/// The rules a request asks for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rules {
    /// Sample only events that decoding keeps.
    pub only_kept_events: bool,
}

impl Rules {
    pub fn of(options: &GenerateOptions) -> Rules {
        Rules { only_kept_events: options.mask_ignored_events }
    }

    /// Whether any rule restricts sampling (else every class is allowed).
    pub fn restrict(&self) -> bool {
        self.only_kept_events
    }
}

/// One row's stream as the rules read it, event by event, as decoding reads
/// it: the pitches sounding at the end of the last step that this step has
/// not continued yet (a multiset: two voices on one pitch may both go on),
/// and the events of this step so far.
#[derive(Clone, Debug, Default)]
pub struct RowState {
    previous: Vec<u8>,
    current: Vec<u8>,
    events_in_step: usize,
}

impl RowState {
    /// Takes the stream's next event; false (and no change) for a
    /// CONTINUED_NOTE that continues nothing, which decoding ignores.
    pub fn accept(&mut self, e: Event) -> bool {
        if e == Event::StepEnd {
            self.previous = std::mem::take(&mut self.current);
            self.events_in_step = 0;
            return true;
        }
        self.events_in_step += 1;
        match e {
            Event::NewNote(p) => self.current.push(p),
            Event::ContinuedNote(p) => match self.previous.iter().position(|&q| q == p) {
                Some(i) => {
                    self.previous.swap_remove(i);
                    self.current.push(p);
                }
                None => return false,
            },
            Event::StepEnd | Event::Start | Event::End => {}
        }
        true
    }

    /// Events read since the last STEP_END (ignored ones too).
    pub fn events_in_step(&self) -> usize {
        self.events_in_step
    }

    /// Marks in `allowed` (259 wide) the classes `rules` allow next.
    pub fn allowed(&self, rules: &Rules, allowed: &mut [bool]) {
        if !rules.only_kept_events {
            allowed.fill(true);
            return;
        }
        allowed.fill(false);
        allowed[Event::StepEnd.class()] = true;
        allowed[Event::NewNote(0).class()..=Event::NewNote(127).class()].fill(true);
        for &p in &self.previous {
            allowed[Event::ContinuedNote(p).class()] = true;
        }
    }
}

/// Drops CONTINUED_NOTE events that continue nothing (decoding ignores
/// them), so that a stream reads back from its MIDI file unchanged.
pub fn drop_orphan_continuations(events: &[Event]) -> Vec<Event> {
    let mut state = RowState::default();
    events.iter().copied().filter(|&e| state.accept(e)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::NUM_CLASSES;

    #[test]
    fn only_what_decoding_keeps_is_allowed() {
        let mut state = RowState::default();
        for e in [Event::Start, Event::NewNote(60), Event::NewNote(64), Event::StepEnd, Event::ContinuedNote(64)] {
            assert!(state.accept(e));
        }
        assert!(!state.accept(Event::ContinuedNote(61)), "61 does not sound");
        let mut allowed = vec![false; NUM_CLASSES];
        state.allowed(&Rules { only_kept_events: true }, &mut allowed);
        assert!(allowed[Event::ContinuedNote(60).class()] && !allowed[Event::ContinuedNote(64).class()]);
        assert!(allowed[Event::StepEnd.class()] && allowed[Event::NewNote(0).class()] && allowed[Event::NewNote(127).class()]);
        assert!(!allowed[Event::Start.class()] && !allowed[Event::End.class()]);
        assert_eq!(state.events_in_step(), 2);
        state.allowed(&Rules { only_kept_events: false }, &mut allowed);
        assert!(allowed.iter().all(|a| *a));
    }
}
