//! What a model with `context_inputs` reads beside the previous event: the
//! state of the music that the one-hot input leaves it to remember. The
//! original model sees only the last event, so it must keep in its memory
//! which pitches sound, and it often continues a pitch that does not (the
//! decoder then drops it); given the state, it need not.
//!
//! [`CONTEXT_WIDTH`] binary features, after each event of a stream:
//! - `0..128`: the pitches of the last complete step (what may be continued);
//! - `128..256`: the pitches already written in the current step (within a
//!   step they descend, so this also says where the step stands);
//! - `256..260`: the current step's place in its beat (step mod 4).
//!
//! The same features are computed for training (from a dataset's streams)
//! and for generation (from each row's stream as it grows), here, once.

use crate::encoding::{Event, STEPS_PER_QUARTER};

const PITCHES: usize = 128;
const LAST_STEP: usize = 0;
const CURRENT_STEP: usize = PITCHES;
const BEAT_PHASE: usize = 2 * PITCHES;

/// Features beside the 259-wide one-hot input.
pub const CONTEXT_WIDTH: usize = BEAT_PHASE + STEPS_PER_QUARTER as usize;

/// A stream's context, event by event.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Context {
    last_step: Vec<u8>,
    current: Vec<u8>,
    steps: usize,
}

impl Context {
    /// Takes the stream's next event.
    pub fn push(&mut self, e: Event) {
        match e {
            Event::NewNote(p) | Event::ContinuedNote(p) => {
                if !self.current.contains(&p) {
                    self.current.push(p);
                }
            }
            Event::StepEnd => {
                self.last_step = std::mem::take(&mut self.current);
                self.steps += 1;
            }
            Event::Start | Event::End => {}
        }
    }

    /// The indices of the features that are on, ascending.
    pub fn features(&self) -> Vec<u16> {
        let mut on: Vec<u16> = self.last_step.iter().map(|&p| (LAST_STEP + p as usize) as u16).collect();
        on.extend(self.current.iter().map(|&p| (CURRENT_STEP + p as usize) as u16));
        on.push((BEAT_PHASE + self.steps % STEPS_PER_QUARTER as usize) as u16);
        on.sort_unstable();
        on
    }
}

/// The features after each event of a stream: entry `t` is what the model
/// reads with input `events[t]`.
pub fn features_of(events: impl IntoIterator<Item = Event>) -> Vec<Vec<u16>> {
    let mut context = Context::default();
    events
        .into_iter()
        .map(|e| {
            context.push(e);
            context.features()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_follows_the_stream() {
        use Event::*;
        let stream = [Start, NewNote(67), NewNote(60), StepEnd, ContinuedNote(67), NewNote(64), StepEnd, StepEnd];
        let f = features_of(stream);
        assert_eq!(f[0], vec![256], "START: nothing sounds, step 0 of its beat");
        assert_eq!(f[2], vec![128 + 60, 128 + 67, 256]);
        assert_eq!(f[3], vec![60, 67, 257], "STEP_END: the step is complete, the next is the beat's second");
        assert_eq!(f[5], vec![60, 67, 128 + 64, 128 + 67, 257]);
        assert_eq!(f[6], vec![64, 67, 258]);
        assert_eq!(f[7], vec![259], "an empty step leaves nothing to continue");
        assert!(f.iter().flatten().all(|&i| (i as usize) < CONTEXT_WIDTH));
    }
}
