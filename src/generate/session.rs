//! A generation in progress: the batch of rows (every output, and with beam
//! search every beam and branch of it), what each row has written, and the
//! sampling of its next event. The session never runs the model itself:
//! [`Session::inputs`] says what to feed it, and [`Session::feed`] (logits,
//! sampled here) or [`Session::feed_choices`] (events sampled on the model's
//! device) takes its answer, so a driver may await the model between steps.

use super::primer::{self, PrimerEvents};
use super::request::{GenerateError, GenerateOptions, Output, Primer};
use crate::hparams::HParams;
use crate::key::{Key, Mode};
use crate::note_sequence::TimeSignature;
use crate::step_grid::{self, StepNote};
use super::rules::{self, RowState, Rules};
use crate::context::Context;
use crate::encoding::{self, Event, NUM_CLASSES};
use crate::limits;
use crate::rng::Rng;

/// One row of the batch: a beam (or branch) of one output.
#[derive(Clone, Debug)]
struct Row {
    /// The model's stream: primer (when conditioning) or START, then what
    /// was generated or injected.
    events: Vec<Event>,
    /// Events already fed to the model.
    fed: usize,
    steps: usize,
    score: f64,
    /// What the events fed so far leave to continue.
    state: RowState,
    /// The music's state after the events fed so far (a model input).
    context: Context,
}

/// A row's next event as the model chose it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Choice {
    pub class: usize,
    /// Its log-probability under the temperature-scaled softmax.
    pub log_prob: f64,
}

impl Choice {
    /// For rows whose choice is not read (finished, or reading the primer).
    const UNUSED: Choice = Choice { class: 0, log_prob: 0.0 };
}

/// How a session's rows are to be written (see [`Session::assemble`]).
struct Plan {
    qpm: f64,
    primer: Vec<Event>,
    primer_steps: usize,
    /// Steps of each output (the request's `num_steps`, or harmonizing
    /// without one, the melody's).
    output_steps: usize,
    /// Primer events per step, for injection.
    inject: Option<Vec<Vec<Event>>>,
    /// Step of the model's stream where primer step 0 is injected.
    inject_offset: usize,
    /// Steps the model's stream must reach.
    target_steps: usize,
}

/// A generation in progress: ask [`Session::inputs`], run the model, give
/// the logits to [`Session::feed`], until `inputs` says `None`.
pub struct Session {
    options: GenerateOptions,
    rules: Rules,
    plan: Plan,
    /// Length of the model's stream before generation (not scored).
    start_len: usize,
    rows: Vec<Row>,
    /// The rows the model runs, in the order of its batch: every row, less
    /// those a host-sampled run has finished (see [`Session::feed`]).
    live: Vec<usize>,
    /// Rows per output: beam_size · branch_factor.
    group: usize,
    model_steps: usize,
    seed: u64,
    rng: Rng,
    inputs: Vec<usize>,
    /// Each input's [`crate::context`] features.
    features: Vec<Vec<u16>>,
    /// Semitones the music was moved for a key-normalised model: the
    /// outputs are moved back.
    shift: i32,
}

impl Session {
    /// Checks the request and prepares the batch.
    pub fn new(options: &GenerateOptions) -> Result<Session, GenerateError> {
        let o = options;
        o.check()?;
        let notes = primer::primer_notes(&o.primer)?;
        let key = o.key.or_else(|| Key::of_steps(&notes.notes));
        let PrimerEvents { events: primer, steps: primer_steps, qpm: primer_qpm } = if o.harmonize {
            let line = if o.harmonize_bass { primer::bottom_line(&notes.notes) } else { primer::top_line(&notes.notes) };
            let melody = Primer::Steps { notes: line, steps: notes.steps };
            PrimerEvents { qpm: notes.qpm, ..primer::primer_events(&melody)? }
        } else {
            primer::primer_events(&o.primer)?
        };
        let output_steps = if o.harmonize && o.num_steps == 0 { primer_steps } else { o.num_steps };
        if output_steps == 0 {
            return Err(super::request::bad("num_steps must be at least 1 (or, harmonizing, 0 for the melody's length)"));
        }
        if !o.harmonize && o.num_steps <= primer_steps {
            return Err(super::request::bad(format!(
                "num_steps ({}) must be longer than the primer ({primer_steps} steps)",
                o.num_steps
            )));
        }
        let qpm = primer_qpm.unwrap_or(o.qpm);
        let (start, target_steps, inject_offset) = if o.harmonize {
            (kept_prefix(&notes.notes, o.keep_steps.min(output_steps))?, output_steps, 0)
        } else if o.condition_on_primer {
            (primer.clone(), o.num_steps, primer_steps)
        } else {
            (vec![Event::Start], o.num_steps - primer_steps, 0)
        };
        let inject = (o.harmonize || o.inject_primer_during_generation) && primer_steps > 0;
        let inject = inject.then(|| primer::step_events(&primer));
        let plan = Plan { qpm, primer, primer_steps, output_steps, inject, inject_offset, target_steps };
        Ok(Session::assemble(o, key, start, plan))
    }

    /// The batch, ready to run: every row starts from `start`.
    fn assemble(o: &GenerateOptions, key: Option<Key>, start: Vec<Event>, plan: Plan) -> Session {
        let group = o.beam_size * o.branch_factor;
        let start_len = start.len();
        let mut state = RowState::default();
        state.accept(start[0]);
        let mut context = Context::default();
        context.push(start[0]);
        let row = Row { steps: encoding::num_steps(&start), events: start, fed: 0, score: 0.0, state, context };
        let seed = o.seed.unwrap_or_else(clock_seed);
        let mut session = Session {
            options: o.clone(),
            rules: Rules::of(o, key),
            plan,
            start_len,
            rows: vec![row; o.num_outputs * group],
            live: (0..o.num_outputs * group).collect(),
            group,
            model_steps: 0,
            seed,
            rng: Rng::new(seed),
            inputs: Vec::new(),
            features: Vec::new(),
            shift: 0,
        };
        for r in 0..session.rows.len() {
            session.inject_step(r);
        }
        session.set_inputs();
        session
    }

    /// A live harmonization: one row, harmonizing a line that is given a
    /// step at a time ([`Session::push_line_step`]) as it is played. For a
    /// key-normalised model the line is moved from the request's `key`
    /// (else C major) and the harmony back.
    pub fn live(options: &GenerateOptions, hparams: &HParams) -> Result<Session, GenerateError> {
        let o = GenerateOptions { harmonize: true, num_outputs: 1, beam_size: 1, branch_factor: 1, primer: Primer::None, ..options.clone() };
        o.check()?;
        let shift = if hparams.key_normalized { o.key.unwrap_or(Key::new(0, Mode::Major)).to_c() } else { 0 };
        let key = o.key.map(|k| Key::new((k.tonic as i32 + shift).rem_euclid(12) as u8, k.mode));
        let plan = Plan { qpm: o.qpm, primer: Vec::new(), primer_steps: 0, output_steps: 0, inject: Some(Vec::new()), inject_offset: 0, target_steps: 0 };
        let mut session = Session::assemble(&o, key, vec![Event::Start], plan);
        session.shift = shift;
        Ok(session)
    }

    /// Live: the kept line's events for its next step (a NEW_NOTE or
    /// CONTINUED_NOTE of its pitch, or none for a rest); the session then
    /// has that step to write (run it until [`Session::is_done`]).
    pub fn push_line_step(&mut self, events: &[Event]) -> Result<(), GenerateError> {
        let inject = self.plan.inject.as_mut().ok_or_else(|| super::request::bad("this session is not live"))?;
        limits::check("steps", inject.len() + 1, limits::MAX_OUTPUT_STEPS)?;
        inject.push(transposed(events, self.shift));
        self.plan.target_steps += 1;
        self.plan.output_steps += 1;
        for r in 0..self.rows.len() {
            if self.rows[r].steps + 1 == self.plan.target_steps {
                self.inject_step(r);
            }
        }
        self.set_inputs();
        Ok(())
    }

    /// Live: the outputs end after `steps` steps (where the line ended).
    pub fn end_outputs_at(&mut self, steps: usize) {
        self.plan.output_steps = steps.min(self.plan.output_steps);
    }

    /// Row `row`'s last complete step: its pitches, and which of them
    /// were struck in it (in the request's key).
    pub fn last_step(&self, row: usize) -> (Vec<u8>, Vec<u8>) {
        let events = &self.rows[row].events;
        let ends: Vec<usize> = events.iter().enumerate().filter(|(_, e)| **e == Event::StepEnd).map(|(i, _)| i).collect();
        let Some(&end) = ends.last() else { return (Vec::new(), Vec::new()) };
        let begin = ends.len().checked_sub(2).map_or(0, |k| ends[k] + 1);
        let step = transposed(&events[begin..end], -self.shift);
        let sounding = step.iter().filter_map(|e| e.pitch()).collect();
        let struck = step.iter().filter_map(|e| match e {
            Event::NewNote(p) => Some(*p),
            _ => None,
        }).collect();
        (sounding, struck)
    }

    /// A session for a model with `hparams`: for a key-normalised one, the
    /// primer is moved to C major or A minor from its key (the request's
    /// `key`, else the primer's by key finding, else C major) and the
    /// outputs are moved back.
    pub fn for_model(options: &GenerateOptions, hparams: &HParams) -> Result<Session, GenerateError> {
        if !hparams.key_normalized {
            return Session::new(options);
        }
        options.check()?;
        let primer = primer::primer_notes(&options.primer)?;
        let key = options.key.or_else(|| Key::of_steps(&primer.notes)).unwrap_or(Key::new(0, Mode::Major));
        let shift = key.to_c();
        let notes: Vec<StepNote> = primer.notes.iter().map(|n| StepNote { pitch: n.pitch + shift, ..*n }).collect();
        if let Some(n) = notes.iter().find(|n| !(0..=127).contains(&n.pitch)) {
            return Err(super::request::bad(format!("the primer moved to C major or A minor (by {shift}) has pitch {}, outside 0-127", n.pitch)));
        }
        let moved = GenerateOptions {
            primer: Primer::Steps { notes, steps: primer.steps },
            qpm: primer.qpm.unwrap_or(options.qpm),
            key: Some(Key::new((key.tonic as i32 + shift).rem_euclid(12) as u8, key.mode)),
            ..options.clone()
        };
        let mut session = Session::new(&moved)?;
        session.shift = shift;
        Ok(session)
    }

    /// Row `row`'s notes so far, in the request's key (for drawing while
    /// generating).
    pub fn row_notes(&self, row: usize) -> Vec<StepNote> {
        let (notes, _) = encoding::decode_steps(&self.rows[row].events);
        notes.into_iter().map(|n| StepNote { pitch: n.pitch - self.shift, ..n }).filter(|n| (0..=127).contains(&n.pitch)).collect()
    }

    /// Rows in the batch: the model's batch size at the start (rows leave
    /// it as they finish on a host-sampled run, [`Session::feed`]).
    pub fn batch(&self) -> usize {
        self.rows.len()
    }

    /// Model steps taken so far.
    pub fn model_steps(&self) -> usize {
        self.model_steps
    }

    /// Events the model has read so far, all rows together.
    pub fn events_fed(&self) -> usize {
        self.rows.iter().map(|r| r.fed).sum()
    }

    /// Rows per output (beam_size · branch_factor); output `g` is decided
    /// among rows `g · rows_per_output ..`.
    pub fn rows_per_output(&self) -> usize {
        self.group
    }

    /// Steps each row's model stream must reach (num_steps, less the
    /// primer's when not conditioning).
    pub fn target_steps(&self) -> usize {
        self.plan.target_steps
    }

    /// The primer's length in steps.
    pub fn primer_steps(&self) -> usize {
        self.plan.primer_steps
    }

    /// The tempo of the outputs (the MIDI primer's, else the options').
    pub fn qpm(&self) -> f64 {
        self.plan.qpm
    }

    /// Row `row`'s model stream so far: START (or the primer, when
    /// conditioning), then the generated and injected events. Beam search
    /// may replace rows at any [`Session::feed`].
    pub fn row_events(&self, row: usize) -> &[Event] {
        &self.rows[row].events
    }

    /// Steps row `row` has completed.
    pub fn row_steps(&self, row: usize) -> usize {
        self.rows[row].steps
    }

    /// Share of the work done, 0 to 1 (steps reached over steps wanted).
    pub fn progress(&self) -> f64 {
        let start = if self.options.condition_on_primer { self.plan.primer_steps } else { 0 };
        let want = (self.plan.target_steps - start) * self.rows.len();
        let have: usize = self.rows.iter().map(|r| r.steps.min(self.plan.target_steps).saturating_sub(start)).sum();
        if want == 0 { 1.0 } else { have as f64 / want as f64 }
    }

    /// Whether every row has its steps.
    pub fn is_done(&self) -> bool {
        self.rows.iter().all(|r| self.row_done(r))
    }

    /// The next step's input classes, one per row the model runs; `None`
    /// when done.
    pub fn inputs(&self) -> Option<&[usize]> {
        if self.is_done() { None } else { Some(&self.inputs) }
    }

    /// The [`crate::context`] features of each row's next input (for a
    /// network with context inputs; others ignore them).
    pub fn features(&self) -> &[Vec<u16>] {
        &self.features
    }

    fn row_done(&self, row: &Row) -> bool {
        row.steps >= self.plan.target_steps
    }

    fn set_inputs(&mut self) {
        self.inputs.clear();
        self.features.clear();
        for row in self.live.iter().map(|&r| &self.rows[r]) {
            // A finished row is fed its last event again; its outputs are ignored.
            let e = row.events.get(row.fed).or(row.events.last()).expect("START at least");
            self.inputs.push(e.class());
            self.features.push(row.context.features());
        }
    }

    /// The primer's events for the row's current step, if any.
    fn injected(&self, r: usize) -> Option<&[Event]> {
        let k = self.rows[r].steps.checked_sub(self.plan.inject_offset)?;
        self.plan.inject.as_ref()?.get(k).map(Vec::as_slice)
    }

    /// Puts the primer's events for the row's current step into its stream
    /// (a kept bass line waits for the step's end) and tells the rules.
    fn inject_step(&mut self, r: usize) {
        let Some(events) = self.injected(r).map(<[Event]>::to_vec) else { return };
        let bass = self.bass_kept();
        self.rows[r].state.keep_line(&events, bass);
        if !bass {
            self.rows[r].events.extend_from_slice(&events);
        }
    }

    fn bass_kept(&self) -> bool {
        self.options.harmonize && self.options.harmonize_bass
    }

    /// For each row the model runs, the class its next event must have: the primer's (while
    /// reading it) or an injected one; `None` where the model chooses (and
    /// for finished rows). A model that samples on its device takes these as
    /// given.
    pub fn forced(&self) -> Vec<Option<usize>> {
        self.live
            .iter()
            .map(|&r| &self.rows[r])
            .map(|row| if self.row_done(row) { None } else { row.events.get(row.fed + 1).map(|e| e.class()) })
            .collect()
    }

    /// Each running row's log-weight for every class, `[batch, 259]` row-major, by
    /// the request's [`rules`]: where the model chooses, what they give
    /// (−∞ forbids a class); else 0.
    pub fn bias(&self) -> Vec<f32> {
        self.bias_given(&self.forced())
    }

    /// [`Session::bias`] with the rows' [`Session::forced`] classes at hand.
    fn bias_given(&self, forced: &[Option<usize>]) -> Vec<f32> {
        let mut bias = vec![0.0; self.live.len() * NUM_CLASSES];
        if self.rules.restrict() {
            let rows = self.live.iter().map(|&r| &self.rows[r]);
            for ((row, b), f) in rows.zip(bias.chunks_exact_mut(NUM_CLASSES)).zip(forced) {
                if f.is_none() && !self.row_done(row) {
                    row.state.bias(&self.rules, b);
                }
            }
        }
        bias
    }

    /// Nucleus sampling's probability mass (1: all classes).
    pub fn top_p(&self) -> f64 {
        self.options.top_p
    }

    /// The temperature the outputs are sampled at.
    pub fn temperature(&self) -> f64 {
        self.options.temperature
    }

    /// The seed of the session's random numbers (the request's, or one from
    /// the clock), for a model that samples on its own device.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Takes the model's `[batch, 259]` logits for the current inputs and
    /// samples each row's next event here, on the host.
    /// Returns `Some(rows)` when the model's state must be reordered: new
    /// row `i` takes old row `rows[i]`. That is beam search's pruning, and
    /// without beams the rows that have just finished leaving the batch (a
    /// finished row's step is wasted work: the outputs' lengths in events
    /// differ by a tenth or more).
    pub fn feed(&mut self, logits: &[f32]) -> Result<Option<Vec<usize>>, GenerateError> {
        assert_eq!(logits.len(), self.live.len() * NUM_CLASSES, "one row of logits per sequence");
        let inv_t = (1.0 / self.options.temperature) as f32;
        let mut probs = vec![0.0f64; NUM_CLASSES];
        let forced = self.forced();
        let bias = self.bias_given(&forced);
        let top_p = self.options.top_p;
        let mut choices = Vec::with_capacity(self.live.len());
        for (i, row) in self.live.iter().map(|&r| &self.rows[r]).enumerate() {
            let reading_primer = forced[i].is_some() && row.fed + 1 < self.start_len;
            if self.row_done(row) || reading_primer {
                choices.push(Choice::UNUSED);
                continue;
            }
            let span = i * NUM_CLASSES..(i + 1) * NUM_CLASSES;
            let choice = host_choice(&logits[span.clone()], &bias[span], inv_t, top_p, forced[i], &mut probs, &mut self.rng)
                .ok_or(GenerateError::NotANumber { model_step: self.model_steps })?;
            choices.push(choice);
        }
        match self.feed_choices(&choices)? {
            Some(reorder) => Ok(Some(reorder)),
            None => Ok(self.drop_finished()),
        }
    }

    /// Without beams, takes the rows that have finished out of the batch
    /// (while one is still running: a live session's row comes back) and
    /// says which model rows stay.
    fn drop_finished(&mut self) -> Option<Vec<usize>> {
        if self.group > 1 {
            return None;
        }
        let keep: Vec<usize> = (0..self.live.len()).filter(|&i| !self.row_done(&self.rows[self.live[i]])).collect();
        if keep.is_empty() || keep.len() == self.live.len() {
            return None;
        }
        self.live = keep.iter().map(|&i| self.live[i]).collect();
        self.set_inputs();
        Some(keep)
    }

    /// Takes each row's next event as chosen by the model (sampled, or the
    /// [`Session::forced`] class) with its log-probability; rows that are
    /// finished or still reading the primer ignore theirs. Returns what
    /// [`Session::feed`] returns. A choice that is not a number, and a step
    /// that never ends, are errors.
    pub fn feed_choices(&mut self, choices: &[Choice]) -> Result<Option<Vec<usize>>, GenerateError> {
        assert_eq!(choices.len(), self.live.len(), "one choice per sequence");
        let model_step = self.model_steps;
        for (i, choice) in choices.iter().enumerate() {
            let r = self.live[i];
            if self.row_done(&self.rows[r]) {
                continue;
            }
            let start_len = self.start_len;
            let row = &mut self.rows[r];
            row.fed += 1;
            let known = row.events.get(row.fed).copied();
            let event = match known {
                Some(e) => e, // the primer's or injected
                None => {
                    let e = Event::from_class(choice.class).filter(|_| !choice.log_prob.is_nan()).ok_or(GenerateError::NotANumber { model_step })?;
                    row.events.push(e);
                    e
                }
            };
            // The model ends a step whose kept bass is still to come: the
            // bass goes first, then the end.
            let bass = (known.is_none() && event == Event::StepEnd && self.bass_kept()).then(|| self.injected(r).map(<[Event]>::to_vec)).flatten();
            let row = &mut self.rows[r];
            let event = match bass {
                Some(bass) if !bass.is_empty() => {
                    row.events.pop();
                    row.events.extend(bass);
                    row.events.push(Event::StepEnd);
                    row.events[row.fed]
                }
                _ => event,
            };
            row.state.accept(event);
            row.context.push(event);
            if row.fed < start_len {
                continue; // still reading the primer
            }
            if row.state.events_in_step() > limits::MAX_EVENTS_PER_STEP {
                return Err(GenerateError::EndlessStep { events: row.state.events_in_step(), model_step });
            }
            row.score += choice.log_prob;
            if event == Event::StepEnd {
                row.steps += 1;
                self.inject_step(r);
            }
        }
        self.model_steps += 1;
        let reorder = if self.group > 1 && self.model_steps.is_multiple_of(self.options.steps_per_iteration) {
            Some(self.prune())
        } else {
            None
        };
        self.set_inputs();
        Ok(reorder)
    }

    /// Keeps each output's `beam_size` best rows, each repeated
    /// `branch_factor` times (the next iteration's branches).
    fn prune(&mut self) -> Vec<usize> {
        let (beam, branch) = (self.options.beam_size, self.options.branch_factor);
        let mut order = Vec::with_capacity(self.rows.len());
        for g in 0..self.options.num_outputs {
            let mut idx: Vec<usize> = (g * self.group..(g + 1) * self.group).collect();
            idx.sort_by(|&a, &b| self.rows[b].score.total_cmp(&self.rows[a].score).then(a.cmp(&b)));
            for &i in idx.iter().take(beam) {
                order.extend(std::iter::repeat_n(i, branch));
            }
        }
        self.rows = order.iter().map(|&i| self.rows[i].clone()).collect();
        order
    }

    /// The outputs: each output's most likely row, shaped as asked.
    pub fn finish(self) -> Vec<Output> {
        let o = &self.options;
        (0..o.num_outputs)
            .map(|g| {
                let best = (g * self.group..(g + 1) * self.group)
                    .max_by(|&a, &b| self.rows[a].score.total_cmp(&self.rows[b].score).then(b.cmp(&a)))
                    .expect("rows in every group");
                let row = &self.rows[best];
                let mut events = if o.condition_on_primer || o.harmonize {
                    row.events.clone()
                } else {
                    let mut e = self.plan.primer.clone();
                    e.extend(row.events.iter().skip(1));
                    e
                };
                encoding::set_length(&mut events, self.plan.output_steps);
                if !o.primer_in_output && !o.harmonize && self.plan.primer_steps > 0 {
                    let cut = events
                        .iter()
                        .enumerate()
                        .filter(|(_, e)| **e == Event::StepEnd)
                        .nth(self.plan.primer_steps - 1)
                        .map_or(1, |(i, _)| i + 1);
                    events.splice(0..cut, [Event::Start]);
                }
                let events = transposed(&rules::drop_orphan_continuations(&events), -self.shift);
                let (notes, _) = encoding::decode_steps(&events);
                let mut sequence = step_grid::to_sequence(&notes, self.plan.qpm, encoding::DECODE_VELOCITY, encoding::num_steps(&events));
                if let Primer::Sequence(primer) = &o.primer {
                    // The primer's metre, if it has one.
                    sequence.time_signatures = primer.time_signatures.first().map(|t| TimeSignature { time: 0.0, ..*t }).into_iter().collect();
                }
                Output { events, sequence, log_likelihood: row.score }
            })
            .collect()
    }
}

/// The stream a harmonization starts from: START, then the first `steps`
/// steps of the primer in every voice (notes cut at that step), which the
/// model reads and the output keeps.
fn kept_prefix(notes: &[StepNote], steps: usize) -> Result<Vec<Event>, GenerateError> {
    if steps == 0 {
        return Ok(vec![Event::Start]);
    }
    let cut: Vec<StepNote> = notes.iter().filter(|n| n.start < steps as i64).map(|n| StepNote { end: n.end.min(steps as i64), ..*n }).collect();
    Ok(primer::primer_events(&Primer::Steps { notes: cut, steps })?.events)
}

/// Events moved by `shift` semitones; notes that would leave 0..=127 are
/// left out.
fn transposed(events: &[Event], shift: i32) -> Vec<Event> {
    if shift == 0 {
        return events.to_vec();
    }
    let moved = |p: u8| u8::try_from(i32::from(p) + shift).ok().filter(|p| *p <= 127);
    events
        .iter()
        .filter_map(|&e| match e {
            Event::NewNote(p) => moved(p).map(Event::NewNote),
            Event::ContinuedNote(p) => moved(p).map(Event::ContinuedNote),
            other => Some(other),
        })
        .collect()
}

fn clock_seed() -> u64 {
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    }
    #[cfg(target_arch = "wasm32")]
    {
        js_sys::Date::now().to_bits()
    }
}

/// Samples a row's next event from its logits plus the rules' `bias` (or
/// takes the forced one) and scores it: softmax at temperature `1 / inv_t`
/// in f64, cut to the nucleus of mass `top_p`, one draw of `rng` per
/// sampled event. `None` when the logits are not numbers (a damaged model),
/// so nothing sensible can be drawn.
fn host_choice(logits: &[f32], bias: &[f32], inv_t: f32, top_p: f64, forced: Option<usize>, probs: &mut [f64], rng: &mut Rng) -> Option<Choice> {
    let scaled = |(&x, &b): (&f32, &f32)| if b == f32::NEG_INFINITY { f32::NEG_INFINITY } else { x * inv_t + b };
    let max = logits.iter().zip(bias).map(scaled).fold(f32::NEG_INFINITY, f32::max) as f64;
    if !max.is_finite() {
        return None;
    }
    let mut sum = 0.0f64;
    for (p, x) in probs.iter_mut().zip(logits.iter().zip(bias).map(scaled)) {
        *p = (x as f64 - max).exp();
        sum += *p;
    }
    if !sum.is_finite() {
        return None;
    }
    if top_p < 1.0 {
        sum = nucleus(probs, sum * top_p);
    }
    let class = forced.unwrap_or_else(|| {
        let mut u = rng.next_f64() * sum;
        for (c, &p) in probs.iter().enumerate() {
            if u < p {
                return c;
            }
            u -= p;
        }
        // Rounding left u at the very top: the last allowed class.
        probs.iter().rposition(|&p| p > 0.0).unwrap_or(NUM_CLASSES - 1)
    });
    // A forced class outside the nucleus keeps its own probability.
    let p = if probs[class] > 0.0 { probs[class] / sum } else { f64::MIN_POSITIVE };
    Some(Choice { class, log_prob: p.ln() })
}

/// Keeps the most likely classes whose (unnormalised) probabilities reach
/// `mass`, zeroes the rest; returns the kept total.
fn nucleus(probs: &mut [f64], mass: f64) -> f64 {
    let mut order: Vec<usize> = (0..probs.len()).filter(|&c| probs[c] > 0.0).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    let (mut kept, mut cut) = (0.0, order.len());
    for (i, &c) in order.iter().enumerate() {
        kept += probs[c];
        if kept >= mass {
            cut = i + 1;
            break;
        }
    }
    for &c in &order[cut..] {
        probs[c] = 0.0;
    }
    kept
}
