//! The training loop of one job: seeded batch order and dropout masks, the host loss, one
//! optimiser step per batch on a [`Trainee`], validation, early stopping, per-epoch checkpoints,
//! and a stop with an error as soon as the loss or the weights are no longer finite.

use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::mlp::Mlp;
use crate::optim::{lr_at, TrainConfig};
use crate::resume::{self, TrainState};
use crate::soft_targets::SoftTargets;
use crate::train::{accuracy, Batch, EpochStats, TrainOptions, TrainTargets, Trainee, Update};
use crate::Loss;

/// A checked training job: everything [`train`](crate::train) needs besides the network and
/// where it runs.
pub(crate) struct Job<'a> {
    data: &'a TrainTargets<'a>,
    loss: &'a dyn Loss,
    pub(crate) options: &'a TrainOptions,
    validation: Option<(&'a [f32], &'a [u32])>,
    teacher: Option<&'a [f32]>,
    soft_targets: Option<SoftTargets>,
    inputs: usize,
    classes: usize,
    /// Width of each dropout layer's mask, with its drop probability.
    dropouts: Vec<(f32, usize)>,
}

/// Everything the loop carries from one epoch to the next (all of it goes into the checkpoint).
struct Progress {
    /// Optimiser steps taken.
    step: i32,
    order: Vec<usize>,
    rng: ChaCha8Rng,
    history: Vec<EpochStats>,
    /// (epoch, validation accuracy, weights) of the best epoch so far, for early stopping.
    best: Option<(usize, f64, Vec<Vec<f32>>)>,
    /// Epochs since the best one.
    stale: usize,
    /// The first epoch still to run.
    start: usize,
}

impl<'a> Job<'a> {
    pub(crate) fn new(
        model: &Mlp,
        data: &'a TrainTargets<'a>,
        loss: &'a dyn Loss,
        options: &'a TrainOptions,
        validation: Option<(&'a [f32], &'a [u32])>,
    ) -> Result<Self, String> {
        model.shape.check()?;
        let inputs = model.shape.inputs();
        let classes = model.shape.classes();
        let n = data.labels.len();
        if data.x.len() != n * inputs {
            return Err(format!("{} feature values for {n} rows × {inputs} inputs", data.x.len()));
        }
        if options.batch == 0 {
            return Err("the batch size must be at least 1".into());
        }
        let teacher = if loss.needs_teacher() { data.teacher_logits } else { None };
        if loss.needs_teacher() && teacher.is_none() {
            return Err("this loss needs teacher logits".into());
        }
        if let Some(t) = teacher {
            if t.len() != n * classes {
                return Err(format!("{} teacher logits for {n} rows × {classes} classes", t.len()));
            }
        }
        // Constant while the student learns: computed once here, not per batch and epoch.
        let soft_targets = teacher.map(|t| SoftTargets::new(t, classes, &loss.soft_target_temperatures()));
        let validation = validation.filter(|(_, y)| !y.is_empty());
        Ok(Self { data, loss, options, validation, teacher, soft_targets, inputs, classes, dropouts: model.dropout_layers() })
    }

    /// The hint's state for a CPU trainee: where it joins `model`, the projection (seeded from
    /// the job's seed, trained at its base rate); `None` without a hint.
    pub(crate) fn hint_projection(&self, model: &Mlp) -> Result<Option<crate::train::HintState>, String> {
        let Some(h) = &self.options.hint else { return Ok(None) };
        let n = self.data.labels.len();
        if h.features.len() != n * h.width {
            return Err(format!("{} hint features for {n} rows × {}", h.features.len(), h.width));
        }
        let pos = model.hidden_output_index(h.student_layer).ok_or_else(|| format!("the student has no hidden layer {} for the hint", h.student_layer))?;
        // The layer's width, from one row.
        let (_, width) = model.hidden_features(&self.data.x[..self.inputs.min(self.data.x.len())], h.student_layer).unwrap_or_default();
        let seed = self.options.seed ^ 0x68696e74;
        let projection = crate::hint::Projection::new(width, h.width, self.options.lr, seed);
        Ok(Some(crate::train::HintState { pos, width, targets: h.clone(), projection: std::sync::Arc::new(std::sync::Mutex::new(projection)) }))
    }

    /// The training loop on `trainee`.
    pub(crate) fn run(&self, trainee: &mut dyn Trainee) -> Result<Vec<EpochStats>, String> {
        let options = self.options;
        if options.config.early_stopping.is_some() && self.validation.is_none() {
            tracing::warn!(model = %options.name, "early stopping needs validation rows; training the full budget");
        }
        if options.config.keep_best && self.validation.is_none() {
            tracing::warn!(model = %options.name, "keep: best_val needs validation rows; keeping the last epoch's weights");
        }
        let n = self.data.labels.len();
        let mut progress =
            Progress { step: 0, order: (0..n).collect(), rng: ChaCha8Rng::seed_from_u64(options.seed), history: Vec::new(), best: None, stale: 0, start: 1 };
        let bar = self.progress_bar();
        let trained = self.resume(trainee, &mut progress, &bar).and_then(|()| self.epochs(trainee, &mut progress, &bar));
        bar.finish_and_clear();
        trained?;
        if let Some(ck) = &options.checkpoint {
            // Training is complete: the checkpoint has served its purpose.
            let _ = std::fs::remove_file(&ck.path);
        }
        if let Some((epoch, acc, weights)) = progress.best.filter(|_| options.config.keep_best) {
            if trainee.set_params(&weights)? {
                tracing::info!(model = %options.name, epoch, val_accuracy = acc, "restored the best epoch's weights");
            }
        }
        Ok(progress.history)
    }

    fn progress_bar(&self) -> ProgressBar {
        let bar = if self.data.labels.is_empty() { ProgressBar::hidden() } else { ProgressBar::new(self.options.epochs as u64) };
        bar.set_style(
            ProgressStyle::with_template("{prefix:>9} [{bar:30}] epoch {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(self.options.name.clone());
        bar
    }

    /// Continues from the checkpoint of an interrupted run, when asked to and one exists.
    fn resume(&self, trainee: &mut dyn Trainee, progress: &mut Progress, bar: &ProgressBar) -> Result<(), String> {
        let options = self.options;
        let Some(ck) = options.checkpoint.as_ref().filter(|ck| ck.resume) else { return Ok(()) };
        let Some(state) = resume::load(&ck.path, &ck.job)? else { return Ok(()) };
        let restored = state.order.len() == self.data.labels.len()
            && trainee.set_params(&state.params)?
            && trainee.set_optimizer_state(&state.optimizer)?
            && trainee.set_extra_state(&state.extra);
        if !restored {
            return Err(format!("checkpoint {} does not fit this model and data", ck.path.display()));
        }
        tracing::info!(model = %options.name, epoch = state.epoch, step = state.step, "resuming from the checkpoint of an interrupted run");
        progress.rng.set_word_pos(state.rng_word_pos);
        progress.start = if state.done { options.epochs + 1 } else { state.epoch + 1 };
        (progress.step, progress.order, progress.history, progress.best, progress.stale) = (state.step, state.order, state.history, state.best, state.stale);
        bar.set_position(state.epoch as u64);
        Ok(())
    }

    /// Every remaining epoch: train, check the weights, validate, record, maybe stop, checkpoint.
    fn epochs(&self, trainee: &mut dyn Trainee, progress: &mut Progress, bar: &ProgressBar) -> Result<(), String> {
        let options = self.options;
        for epoch in progress.start..=options.epochs {
            let train_loss = self.epoch(trainee, progress, epoch)?;
            let params = trainee.params()?;
            // A model that is no longer finite is nonsense from here on: stop before it is
            // validated, checkpointed or stored.
            if params.iter().flatten().any(|v| !v.is_finite()) {
                return Err(format!("the weights became NaN or infinite in epoch {epoch} (after step {}); {}", progress.step, self.advice()));
            }
            let val_accuracy = match self.validation {
                Some((vx, vy)) => Some(accuracy(&trainee.predict(vx)?, vy, self.classes)),
                None => None,
            };
            bar.set_message(match val_accuracy {
                Some(a) => format!("loss {train_loss:.4} val acc {a:.4}"),
                None => format!("loss {train_loss:.4}"),
            });
            bar.inc(1);
            tracing::debug!(model = %options.name, epoch, train_loss, ?val_accuracy, "epoch done");
            progress.history.push(EpochStats { epoch, train_loss, val_accuracy });
            let mut done = epoch == options.epochs || options.max_steps.is_some_and(|max| progress.step as usize >= max);
            done |= self.early_stop(progress, epoch, val_accuracy, &params);
            if let Some(ck) = &options.checkpoint {
                let state = TrainState {
                    epoch,
                    step: progress.step,
                    done,
                    order: progress.order.clone(),
                    rng_word_pos: progress.rng.get_word_pos(),
                    history: progress.history.clone(),
                    best: progress.best.clone(),
                    stale: progress.stale,
                    params,
                    optimizer: trainee.optimizer_state()?,
                    extra: trainee.extra_state(),
                };
                resume::save(&ck.path, &ck.job, &state)?;
                resume::interrupt_hook(&options.name, epoch);
            }
            if done {
                break;
            }
        }
        Ok(())
    }

    /// Records the epoch for `keep: best_val` and early stopping; true when training should stop.
    fn early_stop(&self, progress: &mut Progress, epoch: usize, val_accuracy: Option<f64>, params: &[Vec<f32>]) -> bool {
        let config = &self.options.config;
        let Some(acc) = val_accuracy.filter(|_| config.keep_best || config.early_stopping.is_some()) else { return false };
        if improves(progress.best.as_ref().map(|b| b.1), acc, config) {
            progress.best = Some((epoch, acc, params.to_vec()));
            progress.stale = 0;
        } else {
            progress.stale += 1;
        }
        match &config.early_stopping {
            Some(rule) if progress.stale >= rule.patience => {
                tracing::info!(model = %self.options.name, epoch, patience = rule.patience, "early stopping: no validation improvement");
                true
            }
            _ => false,
        }
    }

    /// One pass over the shuffled rows (or up to the step limit); the mean training loss.
    fn epoch(&self, trainee: &mut dyn Trainee, progress: &mut Progress, epoch: usize) -> Result<f64, String> {
        let options = self.options;
        let Progress { step, order, rng, .. } = progress;
        order.shuffle(rng);
        let (mut loss_sum, mut seen) = (0.0, 0);
        let steps_per_epoch = options.steps_per_epoch(self.data.labels.len());
        let total_steps = options.max_steps.unwrap_or(usize::MAX).min(options.epochs * steps_per_epoch);
        for rows in order.chunks(options.batch) {
            if options.max_steps.is_some_and(|max| *step as usize >= max) {
                break;
            }
            let lr = lr_at(&options.config, options.lr, *step as usize, steps_per_epoch, total_steps);
            *step += 1;
            loss_sum += self.batch(trainee, rows, rng, Update { clip: options.config.clip_grad_norm, lr, step: *step }, epoch)? * rows.len() as f64;
            seen += rows.len();
        }
        Ok(if seen == 0 { 0.0 } else { loss_sum / seen as f64 })
    }

    /// One optimiser step on `rows`; the batch's mean loss.
    fn batch(&self, trainee: &mut dyn Trainee, rows: &[usize], rng: &mut ChaCha8Rng, update: Update, epoch: usize) -> Result<f64, String> {
        let (b, classes) = (rows.len(), self.classes);
        let x = gather_rows(self.data.x, self.inputs, rows);
        // Masks in forward order, drawn from the shuffling stream (one draw per unit).
        let masks = self
            .dropouts
            .iter()
            .map(|&(p, h)| {
                let keep = 1.0 / (1.0 - p);
                (0..b * h).map(|_| if rng.gen::<f32>() < p { 0.0 } else { keep }).collect()
            })
            .collect();
        let labels: Vec<u32> = rows.iter().map(|&r| self.data.labels[r]).collect();
        let teacher_rows = self.teacher.map(|t| gather_rows(t, classes, rows));
        let soft = self.soft_targets.as_ref().map(|s| s.gather(rows)).unwrap_or_default();
        let mut loss = 0.0;
        let mut loss_grad = |logits: &[f32]| {
            let (value, grad) = self.loss.value_and_grad_soft(logits, teacher_rows.as_deref(), &soft, &labels, classes)?;
            if grad.len() != b * classes {
                return Err(format!("the loss returned {} gradient values for a {b}×{classes} batch", grad.len()));
            }
            if !value.is_finite() || grad.iter().any(|g| !g.is_finite()) {
                let what = if value.is_nan() {
                    "loss became NaN"
                } else if value.is_infinite() {
                    "loss became infinite"
                } else {
                    "loss gradient became NaN or infinite"
                };
                return Err(format!("the {what} at epoch {epoch} step {}; {}", update.step, self.advice()));
            }
            loss = value;
            Ok(grad)
        };
        let hint = self.options.hint.as_ref().map(|h| gather_rows(&h.features, h.width, rows));
        trainee.step(Batch { x, rows: b, masks, hint }, &mut loss_grad, update)?;
        Ok(loss)
    }

    /// What to change when training diverges.
    fn advice(&self) -> String {
        format!("lower {}.optimizer.lr (or set {0}.clip_grad_norm)", self.options.train_key)
    }
}

/// Whether validation accuracy `acc` beats the best so far: by more than early stopping's
/// `min_delta` (0 without early stopping); the first epoch always does.
fn improves(best: Option<f64>, acc: f64, config: &TrainConfig) -> bool {
    let min_delta = config.early_stopping.as_ref().map_or(0.0, |e| e.min_delta);
    best.is_none_or(|best| acc > best + min_delta)
}

/// The epoch whose weights a finished training run ended with, from its history: the best
/// validation epoch under `keep: best_val` (the same rule the loop applies), else the last.
/// `None` for an empty history.
pub fn kept_epoch(history: &[EpochStats], config: &TrainConfig) -> Option<usize> {
    let last = history.last()?.epoch;
    if !config.keep_best {
        return Some(last);
    }
    let mut best: Option<(usize, f64)> = None;
    for e in history {
        if let Some(acc) = e.val_accuracy {
            if improves(best.map(|b| b.1), acc, config) {
                best = Some((e.epoch, acc));
            }
        }
    }
    Some(best.map_or(last, |b| b.0))
}

fn gather_rows(x: &[f32], width: usize, rows: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * width);
    for &r in rows {
        out.extend_from_slice(&x[r * width..(r + 1) * width]);
    }
    out
}
