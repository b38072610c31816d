//! Training data: many encoded sequences in one file, and the command that
//! makes them from a music corpus (`create-dataset`).
//!
//! # The `.polyds` file format (version 1)
//!
//! The original stored its examples as TFRecord files of one-hot tensors; we
//! store the class indices themselves (0..=258, see [`crate::encoding`]), two
//! bytes an event, in a file the browser can read without TensorFlow.
//! Integers are little-endian.
//!
//! | bytes | content |
//! |---|---|
//! | 6 | magic `POLYDS` |
//! | 4 | format version, u32 (1) |
//! | 4 | header length H, u32 |
//! | H | header, UTF-8 JSON (below) |
//! | per sequence | source index u32 (into the header's `sources`), transposition i32 (semitones), length L u32, then L class indices u16 |
//! | 8 | FNV-1a 64-bit hash of every byte before it |
//!
//! The header is an object: `encoding` (`"polyphony-259"`),
//! `steps_per_quarter` (4), `split` (`"eval"` or `"training"`), `sequences`
//! (their number), `events` (total class indices), `settings` (string to
//! string: how the file was made, e.g. the partition and seed) and `sources`
//! (every piece of the split, also those that gave no sequence). Readers
//! ignore fields they do not know, so informative fields may be added
//! without a new version; any other change bumps the version, and older
//! readers then refuse the file clearly instead of misreading it.
//!
//! Reading never trusts the bytes: a foreign, newer, truncated or damaged file
//! gives a [`DatasetError`] saying which, never a panic or a huge allocation.

use std::collections::BTreeMap;
use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::encoding::{NUM_CLASSES, STEPS_PER_QUARTER};
use crate::error::{Error, Result};

/// The first bytes of every dataset file.
pub const MAGIC: &[u8; 6] = b"POLYDS";
/// The format version this build writes, and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;
/// The event encoding the class indices belong to.
pub const ENCODING: &str = "polyphony-259";
/// The training set's file name in the output directory (the original wrote
/// `training_poly_tracks.tfrecord`).
pub const TRAINING_FILE: &str = "training_poly_tracks.polyds";
/// The eval set's file name in the output directory.
pub const EVAL_FILE: &str = "eval_poly_tracks.polyds";
/// The setting (in [`Dataset::settings`]) that says how pieces were transposed ...
pub const TRANSPOSITIONS_SETTING: &str = "transpositions";
/// ... when each was moved to C major or A minor.
pub const KEY_NORMALIZED: &str = "to C major / A minor";

/// One training example: an encoded sequence and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    /// The piece, as named in [`Dataset::sources`].
    pub source: String,
    /// Semitones the piece was transposed by.
    pub transposition: i32,
    /// Class indices, `START` ... `END`.
    pub events: Vec<u16>,
}

/// The contents of one dataset file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dataset {
    /// `eval` or `training`.
    pub split: String,
    /// How the file was made (partition, seed, ...), so that a dataset can be
    /// traced back to the command that made it.
    pub settings: BTreeMap<String, String>,
    /// Every piece of this split, also those that gave no sequence.
    pub sources: Vec<String>,
    pub sequences: Vec<Example>,
}

/// Why bytes are not a dataset this build can read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DatasetError {
    #[error("not a polyphony dataset file (it does not start with \"POLYDS\")")]
    NotADataset,
    #[error(
        "dataset format version {found} is newer than this polyphony reads (up to {FORMAT_VERSION}): use a newer polyphony"
    )]
    NewerVersion { found: u32 },
    #[error("truncated dataset file: it ends inside {0}")]
    Truncated(String),
    #[error("damaged dataset file: {0}")]
    Damaged(String),
}

impl From<DatasetError> for Error {
    fn from(e: DatasetError) -> Self {
        Error::Invalid(e.to_string())
    }
}

/// Writes a dataset file (see the module documentation for the layout).
pub fn write_dataset(mut writer: impl Write, dataset: &Dataset) -> Result<()> {
    writer.write_all(&encode_dataset(dataset)?)?;
    Ok(())
}

/// The bytes of a dataset file. Fails on content the format cannot hold: an
/// example whose source is not listed, a class index above 258, more than
/// 2^32 - 1 sequences or events in one sequence.
pub fn encode_dataset(dataset: &Dataset) -> Result<Vec<u8>> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    let header = header_json(dataset)?;
    put_u32(&mut bytes, header.len(), "the header")?;
    bytes.extend_from_slice(header.as_bytes());
    let index: std::collections::HashMap<&str, usize> =
        dataset.sources.iter().enumerate().map(|(i, s)| (s.as_str(), i)).collect();
    for example in &dataset.sequences {
        let source = *index
            .get(example.source.as_str())
            .ok_or_else(|| Error::Invalid(format!("example source {:?} is not among the sources", example.source)))?;
        put_u32(&mut bytes, source, "a source index")?;
        bytes.extend_from_slice(&example.transposition.to_le_bytes());
        put_u32(&mut bytes, example.events.len(), "a sequence length")?;
        for &class in &example.events {
            if class as usize >= NUM_CLASSES {
                return Err(Error::Invalid(format!("class index {class} in {} is above 258", example.source)));
            }
            bytes.extend_from_slice(&class.to_le_bytes());
        }
    }
    let checksum = fnv1a(&bytes);
    bytes.extend_from_slice(&checksum.to_le_bytes());
    Ok(bytes)
}

/// Reads a dataset file's bytes.
pub fn read_dataset(bytes: &[u8]) -> std::result::Result<Dataset, DatasetError> {
    let mut r = Reader { bytes, pos: 0 };
    if r.take(MAGIC.len(), "").ok() != Some(MAGIC.as_slice()) {
        return Err(DatasetError::NotADataset);
    }
    match r.u32("the format version")? {
        0 => return Err(DatasetError::Damaged("format version 0 does not exist".into())),
        found if found > FORMAT_VERSION => return Err(DatasetError::NewerVersion { found }),
        _ => {}
    }
    let header_len = r.u32("the header length")? as usize;
    let header = parse_header(r.take(header_len, "the header")?)?;
    let mut sequences = Vec::new();
    for i in 0..header.sequences {
        sequences.push(read_example(&mut r, &header.sources, i)?);
    }
    let body_end = r.pos;
    let stored = u64::from_le_bytes(r.take(8, "the checksum")?.try_into().expect("8 bytes"));
    if r.pos != bytes.len() {
        return Err(DatasetError::Damaged(format!("{} unexpected bytes after the checksum", bytes.len() - r.pos)));
    }
    if stored != fnv1a(&bytes[..body_end]) {
        return Err(DatasetError::Damaged("checksum mismatch (the contents were altered)".into()));
    }
    let events: u64 = sequences.iter().map(|e: &Example| e.events.len() as u64).sum();
    if events != header.events {
        return Err(DatasetError::Damaged(format!(
            "the header counts {} events, the file holds {events}",
            header.events
        )));
    }
    Ok(Dataset { split: header.split, settings: header.settings, sources: header.sources, sequences })
}

/// Piece names listed one per line (as in `--eval_pieces`); blank lines and
/// lines starting with `#` are skipped, surrounding spaces trimmed.
pub fn parse_piece_list(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect()
}

fn put_u32(bytes: &mut Vec<u8>, value: usize, what: &str) -> Result<()> {
    let value = u32::try_from(value).map_err(|_| Error::Invalid(format!("{what} does not fit the format: {value}")))?;
    bytes.extend_from_slice(&value.to_le_bytes());
    Ok(())
}

/// The JSON header. Unknown fields are ignored when reading.
#[derive(Serialize, Deserialize)]
struct Header {
    encoding: String,
    steps_per_quarter: u32,
    split: String,
    sequences: u32,
    /// Total class indices over all sequences, for a reader's convenience.
    events: u64,
    settings: BTreeMap<String, String>,
    sources: Vec<String>,
}

fn header_json(dataset: &Dataset) -> Result<String> {
    let header = Header {
        encoding: ENCODING.into(),
        steps_per_quarter: STEPS_PER_QUARTER,
        split: dataset.split.clone(),
        sequences: u32::try_from(dataset.sequences.len())
            .map_err(|_| Error::Invalid(format!("{} sequences do not fit the format", dataset.sequences.len())))?,
        events: dataset.sequences.iter().map(|e| e.events.len() as u64).sum(),
        settings: dataset.settings.clone(),
        sources: dataset.sources.clone(),
    };
    serde_json::to_string_pretty(&header).map_err(|e| Error::Invalid(format!("dataset header: {e}")))
}

fn parse_header(bytes: &[u8]) -> std::result::Result<Header, DatasetError> {
    let header: Header =
        serde_json::from_slice(bytes).map_err(|e| DatasetError::Damaged(format!("the header is not valid: {e}")))?;
    if header.encoding != ENCODING || header.steps_per_quarter != STEPS_PER_QUARTER {
        return Err(DatasetError::Damaged(format!(
            "the header says encoding {:?} at {} steps per quarter; expected {ENCODING} at {STEPS_PER_QUARTER}",
            header.encoding, header.steps_per_quarter
        )));
    }
    Ok(header)
}

fn read_example(r: &mut Reader, sources: &[String], i: u32) -> std::result::Result<Example, DatasetError> {
    let what = format!("sequence {i}");
    let source_index = r.u32(&what)? as usize;
    let source = sources
        .get(source_index)
        .ok_or_else(|| DatasetError::Damaged(format!("{what} names source {source_index} of {}", sources.len())))?;
    let transposition = i32::from_le_bytes(r.take(4, &what)?.try_into().expect("4 bytes"));
    let len = r.u32(&what)? as usize;
    let raw = r.take(len.saturating_mul(2), &what)?;
    let events: Vec<u16> = raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    if let Some((j, class)) = events.iter().enumerate().find(|(_, c)| **c as usize >= NUM_CLASSES) {
        return Err(DatasetError::Damaged(format!("{what}, event {j}: class index {class} is above 258")));
    }
    Ok(Example { source: source.clone(), transposition, events })
}

/// A cursor that turns running out of bytes into [`DatasetError::Truncated`].
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> std::result::Result<&'a [u8], DatasetError> {
        let left = self.bytes.len() - self.pos;
        if n > left {
            return Err(DatasetError::Truncated(format!("{what} ({} bytes missing)", n - left)));
        }
        self.pos += n;
        Ok(&self.bytes[self.pos - n..self.pos])
    }

    fn u32(&mut self, what: &str) -> std::result::Result<u32, DatasetError> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().expect("4 bytes")))
    }
}

/// FNV-1a, 64 bits: a checksum simple enough to restate in any language.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

#[cfg(not(target_arch = "wasm32"))]
pub use create::{CreateDatasetReport, CreateOptions, DEFAULT_EVAL_RATIO, DEFAULT_SEED, create_dataset};

/// Making the dataset files from a corpus: native only (files, threads).
#[cfg(not(target_arch = "wasm32"))]
mod create {
    use std::collections::{BTreeMap, BTreeSet, HashMap};
    use std::fmt;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    use rayon::prelude::*;

    use super::{Dataset, EVAL_FILE, Example, KEY_NORMALIZED, TRAINING_FILE, TRANSPOSITIONS_SETTING, fnv1a, write_dataset};
    use crate::error::{Error, FileError, Result};
    use crate::music_file::Reading;
    use crate::pipeline::{self, Discard, Outcome, Stats};
    use crate::rng::Rng;

    /// The original's eval share.
    pub const DEFAULT_EVAL_RATIO: f64 = 0.1;

    /// The seed used when none is given, so that reruns give the same split.
    pub const DEFAULT_SEED: u64 = 0;

    /// How `create-dataset` splits and where it writes.
    #[derive(Clone, Debug)]
    pub struct CreateOptions {
        pub output_dir: PathBuf,
        /// Share of pieces (drawn at random) that go to the eval set, 0..=1.
        pub eval_ratio: f64,
        pub seed: u64,
        /// Piece names (file names, or paths relative to an input directory)
        /// that make the eval set; when given, no random draw is made.
        pub eval_pieces: Option<Vec<String>>,
        /// Keep pieces that share an encoded sequence (the same chorale under
        /// two names, possibly in another key) on one side, so eval never
        /// tests on a training piece. `false` draws every piece on its own,
        /// as the original did.
        pub keep_duplicates_together: bool,
        /// Also keep pieces that share a tune (the same melody on top, in
        /// any key, harmonized again) on one side, so eval measures music
        /// the model has never heard the tune of.
        pub tunes_together: bool,
        /// How scores are read: as the original (default), or in full.
        pub reading: Reading,
        /// Transpose every piece once, to C major or A minor by its key
        /// ([`crate::key`]), instead of by each of -4..=4 semitones.
        pub key_normalized: bool,
    }

    impl CreateOptions {
        /// The defaults: 10 % eval, seed 0, duplicates kept together.
        pub fn new(output_dir: impl Into<PathBuf>) -> Self {
            CreateOptions {
                output_dir: output_dir.into(),
                eval_ratio: DEFAULT_EVAL_RATIO,
                seed: DEFAULT_SEED,
                eval_pieces: None,
                keep_duplicates_together: true,
                tunes_together: false,
                reading: Reading::Original,
                key_normalized: false,
            }
        }

        fn settings(&self) -> BTreeMap<String, String> {
            let partition = match &self.eval_pieces {
                Some(list) => format!("eval_pieces ({} listed)", list.len()),
                None => format!("random (eval_ratio {}, seed {})", self.eval_ratio, self.seed),
            };
            let duplicates = match (self.keep_duplicates_together, self.tunes_together) {
                (_, true) => "together, and pieces sharing a tune too",
                (true, false) => "together",
                (false, false) => "independent",
            };
            [
                ("created_by", format!("polyphony {}", crate::VERSION)),
                ("partition", partition),
                ("duplicates", duplicates.to_string()),
                ("reading", format!("{:?}", self.reading).to_lowercase()),
                (
                    TRANSPOSITIONS_SETTING,
                    if self.key_normalized {
                        KEY_NORMALIZED.to_string()
                    } else {
                        format!("{}..={}", pipeline::TRANSPOSITIONS.start(), pipeline::TRANSPOSITIONS.end())
                    },
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
        }
    }

    /// What `create_dataset` did: per-split statistics, the files it could
    /// not read, and how duplicates fell. Its `Display` is the printed report.
    #[derive(Debug)]
    pub struct CreateDatasetReport {
        pub options: CreateOptions,
        pub eval: Stats,
        pub training: Stats,
        /// Files that could not be read; they were skipped.
        pub failures: Vec<FileError>,
        /// Groups of two or more pieces that share an encoded sequence.
        pub duplicate_groups: usize,
        pub pieces_in_duplicate_groups: usize,
        /// Duplicate groups with pieces on both sides (0 unless duplicates
        /// are drawn independently or an eval list splits them).
        pub groups_straddling_split: usize,
        /// Names in `eval_pieces` that matched no input.
        pub missing_eval_pieces: Vec<String>,
        /// Pieces that gave at least one sequence.
        pub pieces_used: usize,
        /// The dataset files written: training, then eval.
        pub written: Vec<PathBuf>,
    }

    /// A music file to read, and its name in the datasets.
    struct Input {
        path: PathBuf,
        name: String,
    }

    /// One input file's results.
    struct Piece {
        name: String,
        examples: Vec<(i32, Vec<u16>)>,
        stats: Stats,
        /// Its tune, if it has a melody long enough to tell ([`tune_of`]).
        tune: Option<Vec<i32>>,
    }

    /// Reads every music file under `inputs` (directories recursively),
    /// runs the original's pipeline with transpositions -4..=4 on each, in
    /// parallel, splits whole pieces into eval and training and writes
    /// [`TRAINING_FILE`] and [`EVAL_FILE`] into `options.output_dir`.
    /// `progress(done, total)` is called after each file, `done` counting
    /// up from 1 to `total`.
    /// A file that cannot be read is skipped and listed in the report; a
    /// missing input or an unwritable output is an error.
    pub fn create_dataset(
        inputs: &[PathBuf],
        options: &CreateOptions,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<CreateDatasetReport> {
        if !(0.0..=1.0).contains(&options.eval_ratio) {
            return Err(Error::Invalid(format!("eval_ratio must be between 0 and 1, got {}", options.eval_ratio)));
        }
        let (files, mut failures) = collect_files(inputs)?;
        let done = Mutex::new(0);
        let results: Vec<std::result::Result<Piece, FileError>> = files
            .par_iter()
            .map(|input| {
                let piece = read_piece(input, options);
                let mut done = done.lock().expect("progress lock");
                *done += 1;
                progress(*done, files.len());
                piece
            })
            .collect();
        let mut pieces = Vec::new();
        for result in results {
            match result {
                Ok(piece) => pieces.push(piece),
                Err(failure) => failures.push(failure),
            }
        }
        let groups = duplicate_groups(&pieces, options.tunes_together);
        let (in_eval, missing_eval_pieces) = choose_eval(&pieces, &groups, options);
        let mut report = CreateDatasetReport {
            options: options.clone(),
            eval: Stats::default(),
            training: Stats::default(),
            failures,
            duplicate_groups: 0,
            pieces_in_duplicate_groups: 0,
            groups_straddling_split: 0,
            missing_eval_pieces,
            pieces_used: pieces.iter().filter(|p| !p.examples.is_empty()).count(),
            written: Vec::new(),
        };
        count_groups(&groups, &in_eval, &mut report);
        write_splits(&pieces, &in_eval, &mut report)?;
        Ok(report)
    }

    /// The music files to read, each with its name in the datasets, and the
    /// directories that could not be listed. Directories are walked in sorted
    /// order so that the datasets do not depend on the file system; symbolic
    /// links to directories are not followed (no loops).
    fn collect_files(inputs: &[PathBuf]) -> Result<(Vec<Input>, Vec<FileError>)> {
        let mut files = Vec::new();
        let mut failures = Vec::new();
        for input in inputs {
            let meta = std::fs::metadata(input).map_err(|e| Error::Invalid(format!("{}: {e}", input.display())))?;
            if meta.is_dir() {
                let mut found = Vec::new();
                walk(input, &mut found, &mut failures);
                found.sort();
                files.extend(found.into_iter().map(|path| Input { name: relative_name(&path, input), path }));
            } else {
                let name = relative_name(input, input.parent().unwrap_or(Path::new("")));
                files.push(Input { path: input.clone(), name });
            }
        }
        if files.is_empty() && failures.is_empty() {
            return Err(Error::Invalid("no MIDI or MusicXML file in the inputs".into()));
        }
        Ok((files, failures))
    }

    fn walk(dir: &Path, found: &mut Vec<PathBuf>, failures: &mut Vec<FileError>) {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                failures.push(FileError { path: dir.display().to_string(), error: e.into() });
                return;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&path, found, failures);
            } else if path.is_file() && is_music_file(&path) {
                found.push(path);
            }
        }
    }

    fn is_music_file(path: &Path) -> bool {
        path.file_name().is_some_and(|n| crate::music_file::is_music_file_name(&n.to_string_lossy()))
    }

    /// `path` relative to `root`, with `/` separators.
    fn relative_name(path: &Path, root: &Path) -> String {
        let relative = path.strip_prefix(root).unwrap_or(path);
        relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
    }

    fn read_piece(input: &Input, options: &CreateOptions) -> std::result::Result<Piece, FileError> {
        let reading = options.reading;
        let seq = crate::music_file::read_music_file_as(&input.path, reading)
            .map_err(|error| FileError { path: input.path.display().to_string(), error })?;
        let transpositions: Vec<i32> = if options.key_normalized {
            let key = crate::key::Key::find(seq.notes.iter().map(|n| (n.pitch, n.end_time - n.start_time)));
            vec![key.map_or(0, |k| k.to_c())]
        } else {
            pipeline::TRANSPOSITIONS.collect()
        };
        let (outcomes, stats) = pipeline::extract_sequences(&seq, &transpositions, reading.max_steps());
        let examples = kept_with_transposition(outcomes, &transpositions)
            .into_iter()
            .map(|(t, events)| (t, events.iter().map(|e| e.class() as u16).collect()))
            .collect();
        Ok(Piece { name: input.name.clone(), examples, stats, tune: tune_of(&seq) })
    }

    /// Notes of a melody that make its tune: two pieces whose top lines
    /// begin with the same this many intervals share a tune.
    const TUNE_NOTES: usize = 16;

    /// A piece's tune: the intervals between the first [`TUNE_NOTES`]
    /// pitches of its top line (the part with the highest mean pitch, its
    /// highest note at each onset), repeated pitches merged, so that a tune
    /// harmonized again, in another key or with other rhythms, matches.
    pub(crate) fn tune_of(seq: &crate::NoteSequence) -> Option<Vec<i32>> {
        let mut parts: BTreeMap<u32, (i64, i64)> = BTreeMap::new();
        for n in seq.notes.iter().filter(|n| !n.is_drum) {
            let entry = parts.entry(n.part).or_default();
            entry.0 += i64::from(n.pitch);
            entry.1 += 1;
        }
        let top = parts.iter().max_by(|a, b| (a.1.0 * b.1.1).cmp(&(b.1.0 * a.1.1)))?.0;
        let mut onsets: BTreeMap<i64, i32> = BTreeMap::new();
        for n in seq.notes.iter().filter(|n| n.part == *top && !n.is_drum) {
            let at = (n.start_time * 1e6).round() as i64;
            let highest = onsets.entry(at).or_insert(n.pitch);
            *highest = (*highest).max(n.pitch);
        }
        let mut pitches: Vec<i32> = onsets.into_values().collect();
        pitches.dedup();
        (pitches.len() > TUNE_NOTES).then(|| pitches.windows(2).take(TUNE_NOTES).map(|w| w[1] - w[0]).collect())
    }

    /// Pairs each kept sequence with its transposition. `extract_sequences`
    /// gives one outcome per (sub-sequence, transposition), except a
    /// sub-sequence that failed to quantize (`steps: None`), which gives one.
    fn kept_with_transposition(
        outcomes: Vec<Outcome>,
        transpositions: &[i32],
    ) -> Vec<(i32, Vec<crate::encoding::Event>)> {
        let mut kept = Vec::new();
        let mut k = 0;
        for outcome in outcomes {
            match outcome {
                Outcome::Discarded { steps: None, .. } => continue,
                Outcome::Kept(events) => kept.push((transpositions[k], events)),
                Outcome::Discarded { .. } => {}
            }
            k = (k + 1) % transpositions.len();
        }
        kept
    }

    /// For each piece, the index of the first piece of its group: pieces that
    /// share any kept sequence (in any transposition) are one group, which
    /// catches a chorale stored twice, also in another key; with `by_tune`,
    /// pieces that share a tune ([`tune_of`]) too.
    fn duplicate_groups(pieces: &[Piece], by_tune: bool) -> Vec<usize> {
        let mut parent: Vec<usize> = (0..pieces.len()).collect();
        let mut join = |holder: usize, i: usize| {
            let (a, b) = (root(&parent, holder), root(&parent, i));
            parent[a.max(b)] = a.min(b);
        };
        let mut first_holder: HashMap<&[u16], usize> = HashMap::new();
        let mut first_with_tune: HashMap<&[i32], usize> = HashMap::new();
        for (i, piece) in pieces.iter().enumerate() {
            for (_, events) in &piece.examples {
                join(*first_holder.entry(events.as_slice()).or_insert(i), i);
            }
            if let Some(tune) = piece.tune.as_deref().filter(|_| by_tune) {
                join(*first_with_tune.entry(tune).or_insert(i), i);
            }
        }
        (0..pieces.len()).map(|i| root(&parent, i)).collect()
    }

    fn root(parent: &[usize], mut i: usize) -> usize {
        while parent[i] != i {
            i = parent[i];
        }
        i
    }

    /// Which pieces go to eval, and the listed eval pieces that were not
    /// found. A random draw decides per group (per piece when duplicates are
    /// drawn independently), from the seed and the name of the group's first
    /// piece only: the split does not depend on threads, on input order or
    /// on the other files.
    fn choose_eval(pieces: &[Piece], groups: &[usize], options: &CreateOptions) -> (Vec<bool>, Vec<String>) {
        if let Some(list) = &options.eval_pieces {
            let in_eval = pieces.iter().map(|p| list.iter().any(|n| names_piece(n, &p.name))).collect();
            let missing = list.iter().filter(|n| !pieces.iter().any(|p| names_piece(n, &p.name))).cloned().collect();
            return (in_eval, missing);
        }
        let in_eval = (0..pieces.len())
            .map(|i| {
                let drawn_by = if options.keep_duplicates_together { groups[i] } else { i };
                Rng::derive(options.seed, fnv1a(pieces[drawn_by].name.as_bytes())).next_f64() < options.eval_ratio
            })
            .collect();
        (in_eval, Vec::new())
    }

    /// A listed name matches a piece by its whole name or its file name alone.
    fn names_piece(listed: &str, piece: &str) -> bool {
        listed == piece || piece.rsplit('/').next() == Some(listed)
    }

    fn count_groups(groups: &[usize], in_eval: &[bool], report: &mut CreateDatasetReport) {
        let mut sides: BTreeMap<usize, (usize, bool, bool)> = BTreeMap::new();
        for (&group, &eval) in groups.iter().zip(in_eval) {
            let entry = sides.entry(group).or_default();
            entry.0 += 1;
            if eval { entry.1 = true } else { entry.2 = true }
        }
        for (members, eval, training) in sides.into_values().filter(|s| s.0 > 1) {
            report.duplicate_groups += 1;
            report.pieces_in_duplicate_groups += members;
            report.groups_straddling_split += usize::from(eval && training);
        }
    }

    /// Builds both datasets in input order and writes them.
    fn write_splits(pieces: &[Piece], in_eval: &[bool], report: &mut CreateDatasetReport) -> Result<()> {
        let dir = &report.options.output_dir;
        std::fs::create_dir_all(dir).map_err(|e| Error::Invalid(format!("{}: {e}", dir.display())))?;
        for (split, file, eval) in [("training", TRAINING_FILE, false), ("eval", EVAL_FILE, true)] {
            let mut dataset =
                Dataset { split: split.into(), settings: report.options.settings(), ..Dataset::default() };
            let stats = if eval { &mut report.eval } else { &mut report.training };
            for piece in pieces.iter().zip(in_eval).filter(|(_, e)| **e == eval).map(|(p, _)| p) {
                stats.add(&piece.stats);
                dataset.sources.push(piece.name.clone());
                dataset.sequences.extend(piece.examples.iter().map(|(t, events)| Example {
                    source: piece.name.clone(),
                    transposition: *t,
                    events: events.clone(),
                }));
            }
            let path = dir.join(file);
            let written = std::fs::File::create(&path)
                .map_err(Error::from)
                .and_then(|f| write_dataset(std::io::BufWriter::new(f), &dataset));
            written.map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
            report.written.push(path);
        }
        Ok(())
    }

    /// Discard reasons the original always prints; others appear when they occur.
    const SHOWN_REASONS: [Discard; 4] =
        [Discard::TooShort, Discard::TooLong, Discard::MoreThanOneProgram, Discard::RangeExceeded];

    impl fmt::Display for CreateDatasetReport {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.fmt_settings(f)?;
            let row = |f: &mut fmt::Formatter<'_>, name: &str, eval: usize, training: usize| {
                writeln!(f, "{name:<50}{eval:>10}{training:>10}{:>10}", eval + training)
            };
            writeln!(f, "{:<50}{:>10}{:>10}{:>10}", "", "eval", "training", "total")?;
            let (e, t) = (&self.eval, &self.training);
            row(f, "inputs", e.inputs, t.inputs)?;
            row(f, "sub-sequences", e.subsequences, t.subsequences)?;
            row(f, "transpositions_generated", e.transpositions_generated, t.transpositions_generated)?;
            row(f, "outputs", e.outputs, t.outputs)?;
            let others: BTreeSet<Discard> =
                e.discarded.keys().chain(t.discarded.keys()).filter(|r| !SHOWN_REASONS.contains(r)).copied().collect();
            for reason in SHOWN_REASONS.into_iter().chain(others) {
                let count = |s: &Stats| s.discarded.get(&reason).copied().unwrap_or(0);
                row(f, reason.stat_name(), count(e), count(t))?;
            }
            writeln!(f, "{:<50}{:>30}", "unreadable files (skipped)", self.failures.len())?;
            writeln!(f, "{:<50}{:>30}", "pieces giving at least one sequence", self.pieces_used)?;
            writeln!(f, "Processed {} inputs total. Produced {} outputs.", e.inputs + t.inputs, e.outputs + t.outputs)
        }
    }

    impl CreateDatasetReport {
        fn fmt_settings(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let o = &self.options;
            match &o.eval_pieces {
                Some(list) => writeln!(f, "eval set: the {} listed pieces", list.len())?,
                None => writeln!(f, "eval set: random, eval_ratio {}, seed {}", o.eval_ratio, o.seed)?,
            }
            if !self.missing_eval_pieces.is_empty() {
                writeln!(f, "listed eval pieces not found: {}", self.missing_eval_pieces.join(", "))?;
            }
            let placement = match (&o.eval_pieces, o.keep_duplicates_together) {
                (None, true) => "kept on one side",
                _ => "placed independently",
            };
            writeln!(
                f,
                "duplicates: {} groups of pieces sharing a sequence{} ({} pieces), {placement}; {} groups straddle the split",
                self.duplicate_groups,
                if o.tunes_together { " or a tune" } else { "" },
                self.pieces_in_duplicate_groups,
                self.groups_straddling_split
            )?;
            for path in &self.written {
                writeln!(f, "wrote {}", path.display())?;
            }
            writeln!(f)
        }
    }
}
