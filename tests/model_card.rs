//! The model card's numbers are the shipped bundle's: its slice row is
//! reproduced here with `polyphony create-dataset` and `polyphony evaluate`,
//! as a reader of the card would run them.
//!
//! The card names the slice's pieces, and any `create-dataset` flags that
//! made its data, in an HTML comment (`<!-- slice: --reading full a.mxl
//! b.mxl -->`: pieces are the `.mxl`/`.xml` names) followed by a table whose first data row
//! is `| pieces | sequences | events | loss | perplexity | accuracy | event
//! accuracy | no-event accuracy |`.

mod common;

use common::Scratch;

use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn polyphony(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_polyphony")).args(args).output().expect("binary runs");
    assert!(out.status.success(), "polyphony {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// The slice's piece names, its `create-dataset` flags and its row of
/// numbers (as written), from the card.
fn card_slice(card: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let start = card.find("<!-- slice:").expect("the card has a <!-- slice: ... --> comment");
    let rest = &card[start + "<!-- slice:".len()..];
    let end = rest.find("-->").expect("the slice comment is closed");
    let (pieces, flags) = rest[..end].split_whitespace().map(str::to_string).partition(|w| w.ends_with(".mxl") || w.ends_with(".xml"));
    let row = rest[end..]
        .lines()
        .filter(|l| l.starts_with('|'))
        .nth(2) // header, separator, the row
        .expect("a table row after the slice comment");
    let numbers = row
        .split('|')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .skip(1)
        .map(|c| c.replace(',', ""))
        .collect();
    (pieces, flags, numbers)
}

/// `evaluate`'s numbers: sequences, events, loss, perplexity, accuracy,
/// event accuracy, no-event accuracy.
fn evaluated(output: &str) -> Vec<f64> {
    let mut lines = output.lines();
    let counts: Vec<f64> = lines.next().unwrap().split_whitespace().filter_map(|w| w.parse().ok()).collect();
    let metrics: Vec<f64> = lines.next().unwrap().split_whitespace().filter_map(|w| w.parse().ok()).collect();
    assert_eq!((counts.len(), metrics.len()), (2, 5), "unexpected evaluate output:\n{output}");
    vec![counts[1], counts[0], metrics[0], metrics[1], metrics[2], metrics[3], metrics[4]]
}

#[test]
fn the_cards_slice_row_is_what_evaluate_prints_for_the_bundle() {
    let card = std::fs::read_to_string(Path::new(ROOT).join("assets/MODEL_CARD.md")).expect("assets/MODEL_CARD.md");
    let (pieces, flags, want) = card_slice(&card);
    assert!(!pieces.is_empty() && want.len() == 7, "slice {pieces:?}, row {want:?}");

    let dir = Scratch::new("model-card");
    let list = dir.join("eval_pieces.txt");
    std::fs::write(&list, pieces.join("\n")).unwrap();
    let bach = common::bach_dir();
    let inputs: Vec<PathBuf> = pieces.iter().map(|p| bach.join(p)).collect();
    let mut args = vec!["create-dataset", "--output_dir", dir.to_str().unwrap(), "--eval_pieces", list.to_str().unwrap()];
    args.extend(flags.iter().map(String::as_str));
    args.push("--input");
    args.extend(inputs.iter().map(|p| p.to_str().unwrap()));
    polyphony(&args);

    let bundle = Path::new(ROOT).join("assets/bach-chorales.bundle");
    let eval = dir.join("eval_poly_tracks.polyds");
    let have = evaluated(&polyphony(&["evaluate", "--bundle_file", bundle.to_str().unwrap(), "--sequence_example_file", eval.to_str().unwrap()]));
    let names = ["sequences", "events", "loss", "perplexity", "accuracy", "event accuracy", "no-event accuracy"];
    for ((name, written), h) in names.iter().zip(&want).zip(&have) {
        let w: f64 = written.parse().unwrap_or_else(|e| panic!("{name} {written:?} in the card: {e}"));
        // Equal to the card's rounding: within half a unit of its last digit.
        let decimals = written.split_once('.').map_or(0, |(_, d)| d.len());
        let tolerance = 0.5 * 10f64.powi(-(decimals as i32)) + 1e-9;
        assert!((w - h).abs() <= tolerance, "{name}: the card says {written}, evaluate prints {h}");
    }
}
