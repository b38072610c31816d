//! Keys: finding a piece's key by the Krumhansl–Kessler profiles, naming
//! and parsing keys, their scales, signatures and transpositions.
//!
//! Key finding (Krumhansl 1990, profiles of Krumhansl & Kessler 1982): the
//! twelve pitch classes are weighted by how long they sound, and the key is
//! the one of the 24 whose profile, rotated to its tonic, correlates best
//! (Pearson) with that histogram.

use std::fmt;

use crate::step_grid::StepNote;

/// Krumhansl–Kessler probe-tone ratings of the 12 degrees, tonic first.
const MAJOR_PROFILE: [f64; 12] = [6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88];
const MINOR_PROFILE: [f64; 12] = [6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17];

/// Semitones above the tonic that belong to the scale: major, and minor
/// with both its sixths and sevenths (natural, harmonic and melodic minor
/// together, as a chorale in minor uses them).
const MAJOR_SCALE: [u8; 7] = [0, 2, 4, 5, 7, 9, 11];
const MINOR_SCALE: [u8; 9] = [0, 2, 3, 5, 7, 8, 9, 10, 11];

const NAMES: [&str; 12] = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Mode {
    Major,
    Minor,
}

/// A key: a tonic pitch class (0 = C) and a mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Key {
    pub tonic: u8,
    pub mode: Mode,
}

impl Key {
    pub fn new(tonic: u8, mode: Mode) -> Key {
        Key { tonic: tonic % 12, mode }
    }

    /// The key of notes given as (pitch, duration) pairs, or `None` when
    /// nothing sounds.
    pub fn find(notes: impl IntoIterator<Item = (i32, f64)>) -> Option<Key> {
        let mut histogram = [0.0f64; 12];
        for (pitch, duration) in notes {
            if duration > 0.0 && duration.is_finite() {
                histogram[pitch.rem_euclid(12) as usize] += duration;
            }
        }
        if histogram.iter().all(|&h| h == 0.0) {
            return None;
        }
        let mut best: Option<(f64, Key)> = None;
        for mode in [Mode::Major, Mode::Minor] {
            let profile = if mode == Mode::Major { &MAJOR_PROFILE } else { &MINOR_PROFILE };
            for tonic in 0..12u8 {
                let rotated: Vec<f64> = (0..12).map(|pc| profile[(pc + 12 - tonic as usize) % 12]).collect();
                let r = pearson(&histogram, &rotated);
                if best.is_none_or(|(b, _)| r > b) {
                    best = Some((r, Key::new(tonic, mode)));
                }
            }
        }
        best.map(|(_, key)| key)
    }

    /// The key of step-grid notes, weighted by their lengths in steps.
    pub fn of_steps(notes: &[StepNote]) -> Option<Key> {
        Key::find(notes.iter().map(|n| (n.pitch, (n.end - n.start) as f64)))
    }

    /// Whether a pitch belongs to this key's scale.
    pub fn in_scale(&self, pitch: i32) -> bool {
        let degree = (pitch - i32::from(self.tonic)).rem_euclid(12) as u8;
        match self.mode {
            Mode::Major => MAJOR_SCALE.contains(&degree),
            Mode::Minor => MINOR_SCALE.contains(&degree),
        }
    }

    /// Sharps (positive) or flats (negative) of the key signature, as
    /// MusicXML's `<fifths>` writes them (-6..=6; F# major and Gb major both
    /// have 6, written as F# major).
    pub fn fifths(&self) -> i32 {
        // The relative major's tonic, then its place on the circle of fifths.
        let major = match self.mode {
            Mode::Major => self.tonic,
            Mode::Minor => (self.tonic + 3) % 12,
        };
        let fifths = (i32::from(major) * 7).rem_euclid(12);
        if fifths > 6 { fifths - 12 } else { fifths }
    }

    /// Semitones that move this key to C major (or A minor), in -6..=5: the
    /// nearer way.
    pub fn to_c(&self) -> i32 {
        let home = match self.mode {
            Mode::Major => 0,
            Mode::Minor => 9,
        };
        let up = (home - i32::from(self.tonic)).rem_euclid(12);
        if up > 5 { up - 12 } else { up }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = if self.mode == Mode::Major { "major" } else { "minor" };
        write!(f, "{} {mode}", NAMES[self.tonic as usize])
    }
}

impl std::str::FromStr for Key {
    type Err = String;

    /// `C`, `c#`, `Bb`, `F# minor`, `a minor`, `Am`, `D major`.
    fn from_str(text: &str) -> Result<Key, String> {
        let bad = || format!("{text:?} is not a key (e.g. \"C\", \"G major\", \"F# minor\", \"Bbm\")");
        let t = text.trim();
        let mut chars = t.chars();
        let letter = chars.next().ok_or_else(bad)?.to_ascii_uppercase();
        let natural = match letter {
            'C' => 0,
            'D' => 2,
            'E' => 4,
            'F' => 5,
            'G' => 7,
            'A' => 9,
            'B' => 11,
            _ => return Err(bad()),
        };
        let rest = chars.as_str();
        let (accidental, rest) = match rest.chars().next() {
            Some('#') => (1, &rest[1..]),
            Some('b') => (-1, &rest[1..]),
            _ => (0, rest),
        };
        let mode = match rest.trim().to_ascii_lowercase().as_str() {
            "" | "major" | "maj" => Mode::Major,
            "m" | "minor" | "min" => Mode::Minor,
            _ => return Err(bad()),
        };
        Ok(Key::new((natural + accidental + 12) as u8 % 12, mode))
    }
}

fn pearson(a: &[f64; 12], b: &[f64]) -> f64 {
    let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
    let (ma, mb) = (mean(a), mean(b));
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let var = |x: &[f64], m: f64| x.iter().map(|v| (v - m).powi(2)).sum::<f64>();
    cov / (var(a, ma) * var(b, mb)).sqrt().max(f64::MIN_POSITIVE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notes(pitches: &[i32]) -> Vec<(i32, f64)> {
        pitches.iter().map(|&p| (p, 1.0)).collect()
    }

    #[test]
    fn scales_and_triads_find_their_keys() {
        // C major scale with a weight on the tonic triad.
        let c = notes(&[60, 62, 64, 65, 67, 69, 71, 72, 60, 64, 67, 60]);
        assert_eq!(Key::find(c), Some(Key::new(0, Mode::Major)));
        // A harmonic minor with its tonic triad.
        let a = notes(&[57, 59, 60, 62, 64, 65, 68, 69, 57, 60, 64, 57, 64]);
        assert_eq!(Key::find(a), Some(Key::new(9, Mode::Minor)));
        // The same transposed up a tone: B minor.
        let b = notes(&[59, 61, 62, 64, 66, 67, 70, 71, 59, 62, 66, 59, 66]);
        assert_eq!(Key::find(b).unwrap().to_string(), "B minor");
        assert_eq!(Key::find(Vec::new()), None);
    }

    #[test]
    fn signatures_transpositions_and_names() {
        let key = |s: &str| s.parse::<Key>().unwrap();
        assert_eq!((key("G").fifths(), key("F").fifths(), key("E minor").fifths(), key("c minor").fifths()), (1, -1, 1, -3));
        assert_eq!((key("Bb").fifths(), key("F# minor").fifths(), key("Am").fifths()), (-2, 3, 0));
        assert_eq!((key("G").to_c(), key("F").to_c(), key("E minor").to_c(), key("A minor").to_c()), (5, -5, 5, 0));
        assert_eq!(key("Bbm"), Key::new(10, Mode::Minor));
        assert_eq!(key("bb minor"), Key::new(10, Mode::Minor));
        assert_eq!(key("B"), Key::new(11, Mode::Major));
        assert_eq!(key("c#"), Key::new(1, Mode::Major));
        assert!("H major".parse::<Key>().is_err() && "C dorian".parse::<Key>().is_err());
        assert!(key("C").in_scale(64) && !key("C").in_scale(66) && key("A minor").in_scale(68) && !key("A minor").in_scale(63));
        assert_eq!(key("Eb major").to_string(), "Eb major");
    }
}
