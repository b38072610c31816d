//! The one in-memory music type every reader fills and every writer reads.
//!
//! It mirrors the fields of Magenta's `NoteSequence` protocol buffer that the
//! Polyphony RNN uses: times are in seconds (f64, as the original's doubles,
//! because golden parity depends on the exact float arithmetic), quantized
//! steps are filled in by [`crate::pipeline::quantize`].

use serde::{Deserialize, Serialize};

/// Quarter notes per minute when a file says nothing.
pub const DEFAULT_QPM: f64 = 120.0;
/// MIDI ticks per quarter note used when writing (the original's value).
pub const STANDARD_PPQ: u16 = 220;

/// One sounding note.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Note {
    /// MIDI pitch. Kept as i32 so that an out-of-range pitch read from a file
    /// can be reported instead of silently wrapped.
    pub pitch: i32,
    pub velocity: u8,
    pub start_time: f64,
    pub end_time: f64,
    /// MIDI program as the source gives it (MusicXML's 1-based value is kept
    /// as written, like the original).
    pub program: u8,
    /// MIDI channel (MusicXML) or instrument index (MIDI), as the original.
    pub instrument: u32,
    /// Index of the MusicXML part (0 for MIDI).
    pub part: u32,
    pub voice: u32,
    pub is_drum: bool,
    /// MusicXML: the note starts a tie. The default reader ignores ties (as the
    /// original); the flag is kept for a better mode.
    pub tie_start: bool,
    /// MusicXML: the note continues a tie.
    pub tie_stop: bool,
    /// MusicXML: a `<grace>` note (read as zero length, as the original).
    pub is_grace: bool,
    /// Filled in by quantization.
    pub quantized_start_step: i64,
    pub quantized_end_step: i64,
}

impl Note {
    /// A plain note with defaults for everything but pitch, velocity and time.
    pub fn new(pitch: i32, velocity: u8, start_time: f64, end_time: f64) -> Self {
        Note {
            pitch,
            velocity,
            start_time,
            end_time,
            program: 0,
            instrument: 0,
            part: 0,
            voice: 0,
            is_drum: false,
            tie_start: false,
            tie_stop: false,
            is_grace: false,
            quantized_start_step: 0,
            quantized_end_step: 0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tempo {
    pub time: f64,
    pub qpm: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimeSignature {
    pub time: f64,
    pub numerator: i32,
    pub denominator: i32,
}

/// A piece of music: notes plus the tempo and metre maps.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NoteSequence {
    pub notes: Vec<Note>,
    pub tempos: Vec<Tempo>,
    pub time_signatures: Vec<TimeSignature>,
    pub total_time: f64,
    /// Ticks per quarter of the source MIDI file (0 when not from MIDI).
    pub ticks_per_quarter: u16,
    /// Set once quantized: steps per quarter note.
    pub steps_per_quarter: Option<u32>,
    /// Set once quantized: the length in steps.
    pub total_quantized_steps: i64,
    /// Names of the parts (voices), by instrument number, where known: a
    /// MIDI file names its tracks after them.
    #[serde(default)]
    pub part_names: Vec<String>,
}

impl NoteSequence {
    /// Joins every note that continues a tie into the note it continues
    /// (same part and pitch, starting where that one ends), so a tied
    /// note sounds once, as written.
    pub fn join_ties(&mut self) {
        let mut order: Vec<usize> = (0..self.notes.len()).collect();
        order.sort_by(|&a, &b| self.notes[a].start_time.total_cmp(&self.notes[b].start_time));
        // (part, pitch) -> the note whose tie is open.
        let mut open: std::collections::HashMap<(u32, i32), usize> = std::collections::HashMap::new();
        let mut joined = vec![false; self.notes.len()];
        for i in order {
            let key = (self.notes[i].part, self.notes[i].pitch);
            let into = open.get(&key).copied().filter(|&k| {
                self.notes[i].tie_stop && (self.notes[k].end_time - self.notes[i].start_time).abs() < 1e-6
            });
            match into {
                Some(k) => {
                    self.notes[k].end_time = self.notes[i].end_time;
                    self.notes[k].tie_start = self.notes[i].tie_start;
                    joined[i] = true;
                    if !self.notes[i].tie_start {
                        open.remove(&key);
                    }
                }
                None if self.notes[i].tie_start => {
                    open.insert(key, i);
                }
                None => {}
            }
        }
        let mut index = 0;
        self.notes.retain(|_| {
            index += 1;
            !joined[index - 1]
        });
    }

    /// The tempo in force at time zero, or the default.
    pub fn initial_qpm(&self) -> f64 {
        self.tempos
            .iter()
            .find(|t| t.time == 0.0)
            .map_or(DEFAULT_QPM, |t| t.qpm)
    }
}
