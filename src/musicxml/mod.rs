//! MusicXML (`.xml`, `.musicxml`) and compressed MusicXML (`.mxl`) reader.
//!
//! The reader reproduces the original's (note_seq 0.0.5 `musicxml_parser`)
//! results exactly, quirks included, because the golden event files and the
//! corpus statistics depend on them:
//! - time is a float in seconds, accumulated note by note in the same order
//!   of operations as the original;
//! - the parser state (divisions, tempo, current time signature) is shared by
//!   all parts and not reset between them;
//! - a measure whose voice-1 length differs from the time signature gets its
//!   own time signature (pickups, incomplete measures before fermatas), and
//!   the pickup test compares the length in divisions with the numerator;
//! - ties are ignored (a tied note restarts), `<grace>` is not read (a grace
//!   note has no duration, so it lands at time 0 with zero length), tempo is
//!   read only from `<sound tempo>` inside `<direction>`, only the first
//!   part's tempos count, repeats are not expanded;
//! - `<midi-program>` is taken as written (1-based).
//!
//! What the quirks throw away (tie and grace flags) is kept on each
//! [`Note`](crate::note_sequence::Note) for the full reading
//! ([`crate::music_file::Reading::Full`]). The writer is [`write`].

pub mod write;

pub use write::{Layout, write_musicxml, write_mxl, write_score};

use std::io::Read;

use roxmltree::{Document, Node, ParsingOptions};

use crate::error::{Error, Result};
use crate::music_file::Reading;
use crate::note_sequence::{Note, NoteSequence, Tempo, TimeSignature};

/// MIDI ticks per quarter of the original's conversion; it cancels out but is
/// kept so the float arithmetic is the original's.
const PPQ: f64 = 220.0;
const MUSICXML_MIME_TYPE: &str = "application/vnd.recordare.musicxml+xml";
const NOTE_TYPES: [&str; 14] = [
    "maxima", "long", "breve", "whole", "half", "quarter", "eighth", "16th", "32nd", "64th", "128th",
    "256th", "512th", "1024th",
];

fn err(message: impl Into<String>) -> Error {
    Error::MusicXml(message.into())
}

/// Reads an uncompressed MusicXML document. The [`Reading::Full`] reading
/// gives a time signature only where one is written (ties and grace notes
/// are handled by the caller, [`crate::music_file`]).
pub fn read_musicxml(bytes: &[u8], reading: Reading) -> Result<NoteSequence> {
    let text = decode_text(bytes)?;
    let doc = parse_xml(&text)?;
    Parser { written_signatures_only: reading == Reading::Full, ..Parser::default() }.document(doc.root_element())
}

/// Reads a compressed MusicXML archive: the score is the root file named by
/// `META-INF/container.xml`.
pub fn read_mxl(bytes: &[u8], reading: Reading) -> Result<NoteSequence> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| err(format!("not a zip archive (.mxl): {e}")))?;
    let container = read_entry(&mut archive, "META-INF/container.xml")?
        .ok_or_else(|| err("Unable to locate main .xml file in compressed archive (no META-INF/container.xml)"))?;
    let container_text = decode_text(&container)?;
    let container_doc = parse_xml(&container_text)?;
    let root_file = root_file_path(container_doc.root_element())?;
    let score = read_entry(&mut archive, &root_file)?
        .ok_or_else(|| err(format!("score file {root_file} not found in zip archive")))?;
    read_musicxml(&score, reading)
}

/// An entry's bytes, inflated up to [`crate::limits::MAX_INFLATED_BYTES`]
/// (a small archive can hold an entry that inflates to gigabytes);
/// `Ok(None)` when the archive has no such entry. Errors name the entry:
/// one that cannot be read or inflates past the limit is not "not found".
fn read_entry(archive: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>, name: &str) -> Result<Option<Vec<u8>>> {
    let limit = crate::limits::MAX_INFLATED_BYTES;
    let too_large = |size: u64| err(format!("{name}: {}", crate::limits::LimitError { what: "the inflated size in bytes", found: size.into(), limit: limit.into() }));
    let entry = match archive.by_name(name) {
        Ok(entry) => entry,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(err(format!("{name}: {e}"))),
    };
    if entry.size() > limit {
        return Err(too_large(entry.size()));
    }
    let mut data = Vec::new();
    entry
        .take(limit + 1)
        .read_to_end(&mut data)
        .map_err(|e| err(format!("cannot decompress {name}: {e}")))?;
    if data.len() as u64 > limit {
        return Err(too_large(data.len() as u64));
    }
    Ok(Some(data))
}

/// The score's path inside the archive. Like the original: the one rootfile
/// with the MusicXML media type, or without a media type; two is an error.
fn root_file_path(container: Node) -> Result<String> {
    let mut found: Option<String> = None;
    for rootfiles in children(container, "rootfiles") {
        for rootfile in children(rootfiles, "rootfile") {
            let is_score = rootfile.attribute("media-type").is_none_or(|t| t == MUSICXML_MIME_TYPE);
            if !is_score {
                continue;
            }
            if found.is_some() {
                return Err(err("Multiple MusicXML files found in compressed archive"));
            }
            let path = rootfile.attribute("full-path").ok_or_else(|| err("rootfile without full-path"))?;
            found = Some(path.to_string());
        }
    }
    found.ok_or_else(|| err("Unable to locate main .xml file in compressed archive"))
}

/// UTF-8 (with or without a byte-order mark), UTF-16 with a byte-order mark,
/// else Latin-1, which never fails.
fn decode_text(bytes: &[u8]) -> Result<String> {
    if bytes.is_empty() {
        return Err(err("the file is empty"));
    }
    let utf16 = |bytes: &[u8], decode: fn([u8; 2]) -> u16| {
        let units: Vec<u16> = bytes.chunks_exact(2).map(|c| decode([c[0], c[1]])).collect();
        String::from_utf16(&units).map_err(|_| err("invalid UTF-16 text"))
    };
    match bytes {
        [0xEF, 0xBB, 0xBF, rest @ ..] => String::from_utf8(rest.to_vec()).map_err(|e| err(format!("invalid UTF-8: {e}"))),
        [0xFF, 0xFE, rest @ ..] => utf16(rest, u16::from_le_bytes),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, u16::from_be_bytes),
        _ => Ok(match std::str::from_utf8(bytes) {
            Ok(text) => text.to_string(),
            Err(_) => bytes.iter().map(|&b| b as char).collect(),
        }),
    }
}

fn parse_xml(text: &str) -> Result<Document<'_>> {
    let options = ParsingOptions { allow_dtd: true, ..ParsingOptions::default() };
    // roxmltree's message carries the line and column.
    Document::parse_with_options(text, options).map_err(|e| err(format!("malformed XML: {e}")))
}

fn children<'a, 'i>(node: Node<'a, 'i>, name: &'a str) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.children().filter(move |c| c.is_element() && c.tag_name().name() == name)
}

fn child<'a, 'i>(node: Node<'a, 'i>, name: &'a str) -> Option<Node<'a, 'i>> {
    children(node, name).next()
}

/// "line L" of a node, for error messages.
fn line_of(node: Node) -> String {
    let pos = node.document().text_pos_at(node.range().start);
    format!("line {}", pos.row)
}

/// The element's text parsed as Python's `int()` would (surrounding blanks allowed).
fn int_text(node: Node) -> Result<i64> {
    let text = node.text().unwrap_or("").trim();
    text.parse::<i64>().map_err(|_| {
        err(format!("<{}> at {}: {text:?} is not an integer", node.tag_name().name(), line_of(node)))
    })
}

fn int_child(node: Node, name: &str) -> Result<i64> {
    let c = child(node, name)
        .ok_or_else(|| err(format!("<{}> at {} has no <{name}>", node.tag_name().name(), line_of(node))))?;
    int_text(c)
}

/// A reduced fraction (Python's `Fraction`), denominator positive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fraction(i64, i64);

impl Fraction {
    /// Reduced in 128 bits, so that no value of the file can overflow.
    fn new(n: i64, d: i64) -> Result<Fraction> {
        if d == 0 {
            return Err(err("time signature or measure with a zero denominator"));
        }
        let g = i128::from(gcd(n.unsigned_abs(), d.unsigned_abs()).max(1)) * i128::from(d.signum());
        let part = |x: i64| i64::try_from(i128::from(x) / g).map_err(|_| err(format!("time signature or measure length {n}/{d} is too large")));
        Ok(Fraction(part(n)?, part(d)?))
    }
}

fn saturating_i32(x: i64) -> i32 {
    i32::try_from(x).unwrap_or(if x < 0 { i32::MIN } else { i32::MAX })
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A time signature as the parser tracks it; `time` is 0 unless set.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Signature {
    numerator: i64,
    denominator: i64,
    time: f64,
}

/// What a note needs from the previous note when it is a `<chord/>` member.
#[derive(Clone, Copy)]
struct PreviousNote {
    duration: i64,
    time: f64,
}

/// The original's parser state, shared by all parts of a document.
struct Parser {
    divisions: i64,
    qpm: f64,
    seconds_per_quarter: f64,
    time: f64,
    velocity: u8,
    program: u8,
    channel: u32,
    previous: Option<PreviousNote>,
    transpose: i64,
    signature: Option<Signature>,
    /// No time signature of its own for a measure shorter than written.
    written_signatures_only: bool,
    // Results.
    notes: Vec<Note>,
    signatures: Vec<Signature>,
    first_part_tempos: Vec<Tempo>,
    total_time: f64,
}

impl Default for Parser {
    fn default() -> Self {
        Parser {
            divisions: 1,
            qpm: 120.0,
            seconds_per_quarter: 0.5,
            time: 0.0,
            velocity: 64,
            program: 0,
            channel: 0,
            previous: None,
            transpose: 0,
            signature: None,
            written_signatures_only: false,
            notes: Vec::new(),
            signatures: Vec::new(),
            first_part_tempos: Vec::new(),
            total_time: 0.0,
        }
    }
}

/// A part's MIDI settings from `<part-list>`.
#[derive(Clone, Copy, Default)]
struct ScorePart {
    channel: u32,
    program: u8,
}

/// A measure's child as the parser sees it: the original replaces the lone
/// `<forward>` of an empty measure with a whole-measure rest at its end.
enum Item<'a, 'i> {
    Element(Node<'a, 'i>),
    Rest { duration: i64 },
}

impl Parser {
    fn document(mut self, score: Node) -> Result<NoteSequence> {
        let score_parts = self.score_parts(score)?;
        for (index, part) in children(score, "part").enumerate() {
            let settings = part.attribute("id").and_then(|id| {
                score_parts.iter().find(|(pid, _)| pid == id).map(|(_, s)| *s)
            });
            self.part(part, index as u32, settings.unwrap_or_default())?;
            if self.time > self.total_time {
                self.total_time = self.time;
            }
        }
        let tempos = if self.first_part_tempos.is_empty() {
            vec![Tempo { time: 0.0, qpm: self.qpm }]
        } else {
            self.first_part_tempos
        };
        Ok(NoteSequence {
            notes: self.notes,
            tempos,
            time_signatures: self
                .signatures
                .iter()
                .map(|s| TimeSignature { time: s.time, numerator: saturating_i32(s.numerator), denominator: saturating_i32(s.denominator) })
                .collect(),
            total_time: self.total_time,
            ticks_per_quarter: PPQ as u16,
            ..NoteSequence::default()
        })
    }

    fn score_parts(&self, score: Node) -> Result<Vec<(String, ScorePart)>> {
        let Some(list) = child(score, "part-list") else { return Ok(Vec::new()) };
        children(list, "score-part")
            .map(|sp| {
                let id = sp
                    .attribute("id")
                    .ok_or_else(|| err(format!("<score-part> at {} has no id", line_of(sp))))?;
                let mut settings = ScorePart::default();
                if let Some(instrument) = child(sp, "midi-instrument") {
                    if child(instrument, "midi-channel").is_some() && child(instrument, "midi-program").is_some() {
                        settings.channel = u32::try_from(int_child(instrument, "midi-channel")?)
                            .map_err(|_| err(format!("negative <midi-channel> at {}", line_of(instrument))))?;
                        settings.program = u8::try_from(int_child(instrument, "midi-program")?)
                            .map_err(|_| err(format!("<midi-program> outside 0-255 at {}", line_of(instrument))))?;
                    }
                }
                Ok((id.to_string(), settings))
            })
            .collect()
    }

    fn part(&mut self, part: Node, index: u32, settings: ScorePart) -> Result<()> {
        self.time = 0.0;
        self.channel = settings.channel;
        self.program = settings.program;
        self.transpose = 0;
        for measure in children(part, "measure") {
            self.measure(measure, index)?;
        }
        Ok(())
    }

    fn measure_items<'a, 'i>(measure: Node<'a, 'i>) -> Result<Vec<Item<'a, 'i>>> {
        let elements: Vec<Node> = measure.children().filter(|c| c.is_element()).collect();
        let forwards: Vec<Node> = elements.iter().copied().filter(|c| c.tag_name().name() == "forward").collect();
        let has_notes = elements.iter().any(|c| c.tag_name().name() == "note");
        if !has_notes && forwards.len() == 1 {
            let duration = int_child(forwards[0], "duration")?;
            let mut items: Vec<Item> = elements
                .into_iter()
                .filter(|c| *c != forwards[0])
                .map(Item::Element)
                .collect();
            items.push(Item::Rest { duration });
            return Ok(items);
        }
        Ok(elements.into_iter().map(Item::Element).collect())
    }

    fn measure(&mut self, measure: Node, part: u32) -> Result<()> {
        let start_time = self.time;
        // The measure's voice-1 length in divisions, chords counted once.
        let mut length: i64 = 0;
        let mut signature: Option<Signature> = None;
        for item in Self::measure_items(measure)? {
            let node = match item {
                Item::Rest { duration } => {
                    length = length.saturating_add(duration);
                    self.synthetic_rest(duration);
                    continue;
                }
                Item::Element(node) => node,
            };
            match node.tag_name().name() {
                "attributes" => self.attributes(node, &mut signature)?,
                "backup" => {
                    let seconds = self.seconds(int_child(node, "duration")?);
                    self.time -= seconds;
                }
                "forward" => {
                    let seconds = self.seconds(int_child(node, "duration")?);
                    self.time += seconds;
                }
                "direction" => self.direction(node, part)?,
                "note" => {
                    if let Some((duration, counts)) = self.note(node, part)? {
                        if counts {
                            length = length.saturating_add(duration);
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some(s) = self.fix_time_signature(length, signature, start_time)? {
            if !self.signatures.contains(&s) {
                self.signatures.push(s);
            }
        }
        Ok(())
    }

    /// Seconds of `duration` divisions at the current tempo, computed as the
    /// original does (via MIDI ticks).
    fn seconds(&self, duration: i64) -> f64 {
        let ticks = duration as f64 * (PPQ / self.divisions as f64);
        (ticks / PPQ) * self.seconds_per_quarter
    }

    /// The whole-measure rest that replaces an empty measure's `<forward>`.
    fn synthetic_rest(&mut self, duration: i64) {
        let seconds = self.seconds(duration);
        self.previous = Some(PreviousNote { duration, time: self.time });
        self.time += seconds;
    }

    fn attributes(&mut self, attributes: Node, signature: &mut Option<Signature>) -> Result<()> {
        for c in attributes.children().filter(|c| c.is_element()) {
            match c.tag_name().name() {
                "divisions" => {
                    let divisions = int_text(c)?;
                    if divisions <= 0 {
                        return Err(err(format!("<divisions> at {} must be positive, got {divisions}", line_of(c))));
                    }
                    self.divisions = divisions;
                }
                "key" => {
                    if child(c, "fifths").is_none() {
                        return Err(err(format!(
                            "<key> at {}: could not find fifths attribute in key signature",
                            line_of(c)
                        )));
                    }
                }
                "time" => {
                    if signature.is_some() {
                        return Err(err(format!("measure with multiple time signatures at {}", line_of(c))));
                    }
                    let parsed = self.time_signature(c)?;
                    *signature = Some(parsed);
                    self.signature = Some(parsed);
                }
                "transpose" => self.transpose = int_child(c, "chromatic")?,
                _ => {}
            }
        }
        Ok(())
    }

    fn time_signature(&self, time: Node) -> Result<Signature> {
        if children(time, "beats").count() > 1 || children(time, "beat-type").count() > 1 {
            return Err(err(format!("alternating time signature at {}", line_of(time))));
        }
        let text = |name| child(time, name).and_then(|n| n.text()).unwrap_or("").trim().to_string();
        let (beats, beat_type) = (text("beats"), text("beat-type"));
        match (beats.parse::<i64>(), beat_type.parse::<i64>()) {
            (Ok(numerator), Ok(denominator)) => Ok(Signature { numerator, denominator, time: self.time }),
            _ => Err(err(format!("could not parse time signature {beats}/{beat_type} at {}", line_of(time)))),
        }
    }

    /// `<sound tempo>` counts only as a direct child of `<direction>`.
    fn direction(&mut self, direction: Node, part: u32) -> Result<()> {
        for sound in children(direction, "sound") {
            let Some(tempo) = sound.attribute("tempo") else { continue };
            let mut qpm: f64 = tempo
                .trim()
                .parse()
                .map_err(|_| err(format!("<sound tempo={tempo:?}> at {} is not a number", line_of(sound))))?;
            if qpm == 0.0 {
                qpm = 120.0;
            }
            if part == 0 {
                self.first_part_tempos.push(Tempo { time: self.time, qpm });
            }
            self.qpm = qpm;
            self.seconds_per_quarter = 60.0 / qpm;
            if let Some(dynamics) = sound.attribute("dynamics") {
                self.velocity = dynamics
                    .trim()
                    .parse::<u8>()
                    .map_err(|_| err(format!("<sound dynamics={dynamics:?}> at {} is not a velocity", line_of(sound))))?;
            }
        }
        Ok(())
    }

    /// Reads one `<note>`; returns its duration in divisions and whether it
    /// counts towards the measure's length (voice 1, not a chord member).
    fn note(&mut self, node: Node, part: u32) -> Result<Option<(i64, bool)>> {
        let mut in_chord = false;
        let mut duration: i64 = 0;
        let mut seconds = 0.0;
        let mut time = 0.0; // a note without <duration> (a grace note) stays at 0
        let mut pitch: Option<i64> = None;
        let mut is_rest = false;
        let mut voice: i64 = 1;
        let (mut tie_start, mut tie_stop, mut is_grace) = (false, false, false);
        for c in node.children().filter(|c| c.is_element()) {
            match c.tag_name().name() {
                "chord" => in_chord = true,
                "duration" => {
                    duration = int_text(c)?;
                    if in_chord {
                        let previous = self
                            .previous
                            .ok_or_else(|| err(format!("<chord/> note without a previous note at {}", line_of(c))))?;
                        duration = previous.duration;
                        seconds = self.seconds(duration);
                        time = previous.time;
                    } else {
                        seconds = self.seconds(duration);
                        time = self.time;
                        self.time += seconds;
                    }
                }
                "pitch" => pitch = Some(self.pitch(c)?),
                "rest" => is_rest = true,
                "voice" => voice = int_text(c)?,
                "type" => {
                    let name = c.text().unwrap_or("");
                    if !NOTE_TYPES.contains(&name) {
                        return Err(err(format!("note duration type {name:?} at {} is not valid", line_of(c))));
                    }
                }
                "time-modification" => {
                    int_child(c, "actual-notes")?;
                    int_child(c, "normal-notes")?;
                }
                "unpitched" => return Err(err(format!("unpitched notes are not supported (at {})", line_of(c)))),
                "tie" => match c.attribute("type") {
                    Some("start") => tie_start = true,
                    Some("stop") => tie_stop = true,
                    _ => {}
                },
                "grace" => is_grace = true,
                _ => {}
            }
        }
        self.previous = Some(PreviousNote { duration, time });
        if !is_rest {
            let pitch = pitch.ok_or_else(|| err(format!("<note> at {} has neither <pitch> nor <rest>", line_of(node))))?;
            let start_time = time.max(0.0);
            self.notes.push(Note {
                part,
                voice: voice.max(0) as u32,
                instrument: self.channel,
                program: self.program,
                tie_start,
                tie_stop,
                is_grace,
                ..Note::new(
                    i32::try_from(pitch).map_err(|_| err(format!("pitch {pitch} out of range")))?,
                    self.velocity,
                    start_time,
                    start_time + seconds,
                )
            });
        }
        Ok(Some((duration, voice == 1 && !in_chord)))
    }

    /// MIDI pitch of a `<pitch>`: note that the octave is not adjusted when an
    /// alteration crosses it (the original's Cb4 is 71, not 59).
    fn pitch(&self, node: Node) -> Result<i64> {
        let step = child(node, "step").and_then(|s| s.text()).unwrap_or("").trim();
        let class: i64 = match step {
            "C" => 0,
            "D" => 2,
            "E" => 4,
            "F" => 5,
            "G" => 7,
            "A" => 9,
            "B" => 11,
            _ => return Err(err(format!("unable to parse pitch step {step:?} at {}", line_of(node)))),
        };
        let alter: f64 = match child(node, "alter").and_then(|a| a.text()).map(str::trim) {
            None | Some("") => 0.0,
            Some(text) => text
                .parse()
                .map_err(|_| err(format!("<alter> {text:?} at {} is not a number", line_of(node))))?,
        };
        let octave = int_child(node, "octave")?;
        let class = (class + alter.trunc() as i64).rem_euclid(12);
        // Saturating: a wild octave becomes a pitch far out of range, which
        // is reported as such, never an overflow.
        Ok(octave.saturating_mul(12).saturating_add(12 + class).saturating_add(self.transpose))
    }

    /// The original's `_fix_time_signature`: decides the measure's time
    /// signature from its actual length, and updates the running one.
    fn fix_time_signature(
        &mut self,
        length: i64,
        written: Option<Signature>,
        start_time: f64,
    ) -> Result<Option<Signature>> {
        let actual = Fraction::new(length, self.divisions.saturating_mul(4))?;
        let Some(current) = self.signature else {
            let s = Signature { numerator: actual.0, denominator: actual.1, time: 0.0 };
            self.signature = Some(s);
            return Ok(Some(s));
        };
        if self.written_signatures_only {
            return Ok(written);
        }
        let current_fraction = Fraction::new(current.numerator, current.denominator)?;
        let pickup = length < current.numerator;
        let candidate = if actual == Fraction(1, 1) && !pickup {
            Signature { numerator: current.denominator, denominator: current.denominator, time: 0.0 }
        } else {
            Signature { numerator: actual.0, denominator: actual.1, time: 0.0 }
        };
        if pickup || (written.is_none() && actual != current_fraction) {
            let s = Signature { time: start_time, ..candidate };
            self.signature = Some(s);
            return Ok(Some(s));
        }
        Ok(written)
    }
}
