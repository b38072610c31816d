//! The original's training and evaluation metrics, the counts they are
//! derived from, and the run's log of them (`metrics.jsonl`), which the
//! learning curves are drawn from.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Summed counts from which every metric is derived, so that metrics over
/// several batches or windows combine exactly.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub loss_sum: f64,
    pub events: f64,
    pub correct: f64,
    pub step_end_events: f64,
    pub step_end_correct: f64,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.loss_sum += other.loss_sum;
        self.events += other.events;
        self.correct += other.correct;
        self.step_end_events += other.step_end_events;
        self.step_end_correct += other.step_end_correct;
    }

    /// The original's metrics: loss (mean cross-entropy per real event),
    /// perplexity, accuracy, event_accuracy (on events that are not
    /// STEP_END) and no_event_accuracy (on STEP_END).
    pub fn metrics(&self) -> Metrics {
        let loss = self.loss_sum / self.events.max(1.0);
        let other = self.events - self.step_end_events;
        Metrics {
            loss,
            perplexity: loss.exp(),
            accuracy: self.correct / self.events.max(1.0),
            event_accuracy: (self.correct - self.step_end_correct) / other.max(1.0),
            no_event_accuracy: self.step_end_correct / self.step_end_events.max(1.0),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub loss: f64,
    pub perplexity: f64,
    pub accuracy: f64,
    pub event_accuracy: f64,
    pub no_event_accuracy: f64,
}

impl Metrics {
    /// Metrics by name, as bundles and model cards list them.
    pub fn by_name(&self) -> std::collections::BTreeMap<String, f64> {
        [
            ("loss", self.loss),
            ("perplexity", self.perplexity),
            ("accuracy", self.accuracy),
            ("event_accuracy", self.event_accuracy),
            ("no_event_accuracy", self.no_event_accuracy),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// "train" or "eval".
    pub kind: String,
    pub step: u64,
    pub elapsed_secs: f64,
    /// CPU seconds the run has used (all its threads), where the system
    /// says: runs that shared the machine are compared on this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_secs: Option<f64>,
    #[serde(flatten)]
    pub metrics: Metrics,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_per_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gradient_norm: Option<f64>,
}

/// The log's file name in a run directory.
pub const LOG_FILE: &str = "metrics.jsonl";

/// Appends a record to the run's log.
pub fn append_log(run_dir: &Path, record: &LogRecord) -> std::io::Result<()> {
    use std::io::Write;
    let path = run_dir.join(LOG_FILE);
    let line = serde_json::to_string(record).expect("plain data always serializes to JSON");
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
    writeln!(file, "{line}")?;
    file.sync_data()
}

/// Reads the run's log (skipping lines it cannot parse, such as a line cut
/// short by a crash).
pub fn read_log(run_dir: &Path) -> Vec<LogRecord> {
    std::fs::read_to_string(run_dir.join(LOG_FILE))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Cuts the run's log back to the records up to `step`, the checkpoint a
/// run resumes from: what a killed run logged after it is logged again,
/// exactly, by the resumed one.
pub fn truncate_log(run_dir: &Path, step: u64) -> std::io::Result<()> {
    let path = run_dir.join(LOG_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(()) };
    let kept: String = text
        .lines()
        .filter(|l| serde_json::from_str::<LogRecord>(l).is_ok_and(|r| r.step <= step))
        .map(|l| format!("{l}\n"))
        .collect();
    if kept.len() == text.len() {
        return Ok(());
    }
    crate::files::write_atomic(&path, kept.as_bytes())
}

/// Whether the run directory holds a log with any record.
pub fn has_log(run_dir: &Path) -> bool {
    !read_log(run_dir).is_empty()
}

/// CPU seconds (user and system, all threads) this process has used, on
/// Linux; `None` elsewhere.
pub fn process_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses): utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}
