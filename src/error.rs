//! One error type for everything the library reads, so that the command line
//! and the browser report a bad file the same way: what is wrong and where.

use std::fmt;

/// What went wrong while reading or converting music.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not a valid MIDI file: {0}")]
    Midi(String),
    #[error("not a valid MusicXML file: {0}")]
    MusicXml(String),
    #[error("{0}")]
    Events(String),
    #[error("pitch {pitch} is outside the MIDI range 0-127{}", at.as_ref().map(|a| format!(" ({a})")).unwrap_or_default())]
    PitchOutOfRange { pitch: i32, at: Option<String> },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// An error tied to the file it came from, for one-line reports.
#[derive(Debug)]
pub struct FileError {
    pub path: String,
    pub error: Error,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.error)
    }
}

impl std::error::Error for FileError {}
