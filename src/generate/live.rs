//! Live harmonization: a melody played a step (a sixteenth) at a time, on
//! a MIDI keyboard against a metronome, harmonized as it comes. Each step
//! the melody's event is given to a one-row [`Session`] (as a kept line,
//! with every rule of a harmonization) and the model writes the other
//! voices of that step at once, on the CPU: a handful of model steps, well
//! under a millisecond, so the harmony sounds with the melody's note.

use super::backend::{Engine, Net};
use super::request::{GenerateError, GenerateOptions, Output};
use super::session::Session;
use super::Backend;
use crate::encoding::Event;
use crate::step_grid::StepNote;

/// The other voices of one step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Harmony {
    /// Every pitch they sound in the step, highest first.
    pub sounding: Vec<u8>,
    /// Those struck in it (the rest go on from the step before).
    pub struck: Vec<u8>,
}

/// A live harmonization in progress.
pub struct Live {
    session: Session,
    net: Net,
    /// The melody's pitch in the last step (a held note goes on from it).
    line: Option<u8>,
    /// Steps up to the end of the melody's last note.
    line_end: usize,
}

impl Live {
    /// Starts one for `options` (harmonizing; a request that leaves
    /// `max_voices` open gets the bundle's voices) on the CPU.
    pub fn new(engine: &Engine, options: &GenerateOptions) -> Result<Live, GenerateError> {
        let options = GenerateOptions { max_voices: options.max_voices.or(engine.bundle().metadata.voices), ..options.clone() };
        let session = Session::live(&options, &engine.bundle().metadata.hparams)?;
        let net = engine.net(Backend::Cpu, session.batch())?;
        Ok(Live { session, net, line: None, line_end: 0 })
    }

    /// Writes the next step: the melody sounds `pitch` (struck anew when
    /// `struck`, else held on if it sounded in the step before) or rests
    /// (`None`); the model's other voices for the step come back.
    pub fn step(&mut self, pitch: Option<u8>, struck: bool) -> Result<Harmony, GenerateError> {
        let event = pitch.map(|p| if !struck && self.line == Some(p) { Event::ContinuedNote(p) } else { Event::NewNote(p) });
        self.session.push_line_step(event.as_slice())?;
        while !self.session.is_done() {
            if self.net.start_step(&mut self.session)?.is_some() {
                return Err(GenerateError::Backend("live harmonization runs on the CPU".into()));
            }
        }
        self.line = pitch;
        if pitch.is_some() {
            self.line_end = self.session.row_steps(0);
        }
        let (sounding, struck) = self.session.last_step(0);
        let others = |pitches: Vec<u8>| pitches.into_iter().filter(|&p| Some(p) != pitch).collect();
        Ok(Harmony { sounding: others(sounding), struck: others(struck) })
    }

    /// The steps written so far.
    pub fn steps(&self) -> usize {
        self.session.row_steps(0)
    }

    /// Every voice's notes so far.
    pub fn notes(&self) -> Vec<StepNote> {
        self.session.row_notes(0)
    }

    /// The take as an output, like a generation's: up to the end of the
    /// melody's last note (what was written after it, waiting for Stop, is
    /// left out).
    pub fn finish(mut self) -> Output {
        self.session.end_outputs_at(self.line_end);
        self.session.finish().remove(0)
    }
}
