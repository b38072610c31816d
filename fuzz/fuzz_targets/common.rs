//! What a music file goes through once read: the pipeline's events, the
//! voicing count, and use as a primer. None of it may panic, hang or
//! allocate without bound, whatever the bytes.

pub fn music(name: &str, bytes: &[u8]) {
    let Ok(seq) = polyphony::music_file::read_music_bytes(name, bytes) else { return };
    let _ = polyphony::pipeline::events_report(&seq, 0, false);
    let _ = polyphony::judge::Judgement::of_piece(&seq);
    let _ = polyphony::generate::primer_events(&polyphony::generate::Primer::Sequence(seq));
}
