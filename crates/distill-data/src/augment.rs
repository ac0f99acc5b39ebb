//! Training-split augmentation: seeded new rows with their own row ids.
//!
//! Every augmentation works from the original training rows (not from rows an earlier entry
//! made), on unscaled features, with its own random stream, so adding or reordering entries
//! never changes the split or another entry's rows. Augmentation `k` (0-based, in recipe order)
//! numbers its rows `augment_row_id(k, 0..)`.

use std::collections::BTreeMap;

use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::prepare::{LabelState, Split};
use crate::DataError;
use distill_spec::{AugmentSpec, ImageSpec, Oversample, OversampleMethod};

/// Row ids of augmented rows start here: augmentation `k` uses `[BASE + k·2³², BASE + (k+1)·2³²)`.
pub const AUGMENT_ROW_ID_BASE: u64 = 3 << 32;

/// The row id of the `i`-th row made by augmentation `k`.
pub fn augment_row_id(k: usize, i: u64) -> u64 {
    AUGMENT_ROW_ID_BASE + ((k as u64) << 32) + i
}

/// Whether a row id belongs to an augmented row.
pub fn is_augmented(id: u64) -> bool {
    id >= AUGMENT_ROW_ID_BASE
}

/// The new rows of every augmentation in `specs`, made from `train` (unscaled, `width`
/// features). `image` is needed by `shift` and `flip`.
pub(crate) fn augment(train: &Split, width: usize, specs: &[AugmentSpec], image: Option<ImageSpec>, seed: u64) -> Result<Split, DataError> {
    let mut out = Split::default();
    for (k, spec) in specs.iter().enumerate() {
        let where_ = format!("data.augment[{k}] ({})", spec.as_str());
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Stream 0 is the split's; each augmentation draws from its own.
        rng.set_stream(k as u64 + 1);
        // Sized before the rows are made, so a count that cannot fit is an error, not an abort.
        let expected = train.len().saturating_mul(spec.copies().unwrap_or(1));
        out.x
            .try_reserve(expected.saturating_mul(width))
            .map_err(|_| DataError::Invalid(format!("{where_}: {expected} new rows of {width} features do not fit in memory (lower `copies`)")))?;
        let rows = make_rows(train, width, spec, image, &mut rng, &where_)?;
        let n = rows.len();
        for (i, row) in rows.into_iter().enumerate() {
            out.row_ids.push(augment_row_id(k, i as u64));
            out.x.extend(row.x);
            out.y.push(row.y);
            out.state.push(row.state);
        }
        tracing::info!(augmentation = %spec.as_str(), rows = n, "augmented the training split");
    }
    Ok(out)
}

struct NewRow {
    x: Vec<f32>,
    y: u32,
    state: LabelState,
}

fn make_rows(train: &Split, width: usize, spec: &AugmentSpec, image: Option<ImageSpec>, rng: &mut ChaCha8Rng, where_: &str) -> Result<Vec<NewRow>, DataError> {
    let n = train.len();
    let row = |i: usize| &train.x[i * width..(i + 1) * width];
    let copies = spec.copies().unwrap_or(1);
    if copies == 0 {
        return Err(DataError::Invalid(format!("{where_}: copies must be at least 1")));
    }
    let keep = |i: usize, x: Vec<f32>| NewRow { x, y: train.y[i], state: train.state[i] };
    let mut out = Vec::new();
    match spec {
        AugmentSpec::GaussianNoise(g) => {
            let std = Some(g.std).filter(|s| s.is_finite() && *s > 0.0).ok_or_else(|| DataError::Invalid(format!("{where_}: needs `std` > 0")))?;
            for _ in 0..copies {
                for i in 0..n {
                    let x = row(i).iter().map(|&v| v + (std * normal(rng)) as f32).collect();
                    out.push(keep(i, x));
                }
            }
        }
        AugmentSpec::Mixup(m) => {
            let alpha = m.alpha.unwrap_or(0.2);
            if !(alpha.is_finite() && alpha > 0.0) {
                return Err(DataError::Invalid(format!("{where_}: alpha must be > 0, got {alpha}")));
            }
            if n < 2 {
                return Ok(out);
            }
            for _ in 0..copies {
                for i in 0..n {
                    let j = rng.gen_range(0..n);
                    let lambda = beta(rng, alpha) as f32;
                    let x = row(i).iter().zip(row(j)).map(|(&a, &b)| lambda * a + (1.0 - lambda) * b).collect();
                    // A mix of two classes has no single label: only the teacher labels it.
                    out.push(NewRow { x, y: 0, state: LabelState::Unlabelled });
                }
            }
        }
        AugmentSpec::Oversample(o) => out = oversample(train, width, o, rng, where_)?,
        AugmentSpec::Shift(shift_spec) => {
            let img = image_shape(image, width, where_)?;
            let p = shift_spec.pixels.unwrap_or(1).max(1) as i64;
            for _ in 0..copies {
                for i in 0..n {
                    let (dy, dx) = loop {
                        let d = (rng.gen_range(-p..=p), rng.gen_range(-p..=p));
                        if d != (0, 0) {
                            break d;
                        }
                    };
                    out.push(keep(i, shift(row(i), img, dy, dx)));
                }
            }
        }
        AugmentSpec::Flip => {
            let img = image_shape(image, width, where_)?;
            for i in 0..n {
                out.push(keep(i, flip(row(i), img)));
            }
        }
    }
    Ok(out)
}

/// `oversample`: new labelled rows for every class below `ratio` × the largest class's
/// labelled rows, duplicated or interpolated towards near same-class neighbours (SMOTE).
fn oversample(train: &Split, width: usize, o: &Oversample, rng: &mut ChaCha8Rng, where_: &str) -> Result<Vec<NewRow>, DataError> {
    let n = train.len();
    let row = |i: usize| &train.x[i * width..(i + 1) * width];
    let mut out = Vec::new();
    let ratio = o.ratio.unwrap_or(1.0);
    if !(ratio > 0.0 && ratio <= 1.0) {
        return Err(DataError::Invalid(format!("{where_}: ratio must be in (0, 1], got {ratio}")));
    }
    let method = o.method.unwrap_or_default();
    let k = o.neighbours.unwrap_or(5).max(1);
    let mut by_class: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for i in (0..n).filter(|&i| train.state[i] == LabelState::Labelled) {
        by_class.entry(train.y[i]).or_default().push(i);
    }
    let largest = by_class.values().map(Vec::len).max().unwrap_or(0);
    let target = (largest as f64 * ratio).ceil() as usize;
    for (&class, members) in &by_class {
        let mut neighbours: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for _ in members.len()..target {
            let base = members[rng.gen_range(0..members.len())];
            let x = if method == OversampleMethod::Duplicate || members.len() < 2 {
                row(base).to_vec()
            } else {
                let near = neighbours.entry(base).or_insert_with(|| nearest(train, width, base, members, k));
                let other = near[rng.gen_range(0..near.len())];
                let u: f32 = rng.gen();
                row(base).iter().zip(row(other)).map(|(&a, &b)| a + u * (b - a)).collect()
            };
            out.push(NewRow { x, y: class, state: LabelState::Labelled });
        }
    }
    Ok(out)
}

fn image_shape(image: Option<ImageSpec>, width: usize, where_: &str) -> Result<ImageSpec, DataError> {
    let img = image.ok_or_else(|| DataError::Invalid(format!("{where_}: needs the image shape; set `data.image: {{height, width}}`")))?;
    if img.height * img.width * img.channels != width {
        return Err(DataError::Invalid(format!(
            "{where_}: data.image {}×{}×{} = {} values per row, but there are {width} features",
            img.height,
            img.width,
            img.channels,
            img.height * img.width * img.channels
        )));
    }
    Ok(img)
}

/// The image moved down by `dy` and right by `dx` pixels; vacated pixels are 0.
pub(crate) fn shift(x: &[f32], img: ImageSpec, dy: i64, dx: i64) -> Vec<f32> {
    let (h, w, c) = (img.height as i64, img.width as i64, img.channels);
    let mut out = vec![0f32; x.len()];
    for y in 0..h {
        for xx in 0..w {
            let (sy, sx) = (y - dy, xx - dx);
            if (0..h).contains(&sy) && (0..w).contains(&sx) {
                let to = ((y * w + xx) as usize) * c;
                let from = ((sy * w + sx) as usize) * c;
                out[to..to + c].copy_from_slice(&x[from..from + c]);
            }
        }
    }
    out
}

/// The image mirrored left to right.
pub(crate) fn flip(x: &[f32], img: ImageSpec) -> Vec<f32> {
    let (h, w, c) = (img.height, img.width, img.channels);
    let mut out = vec![0f32; x.len()];
    for y in 0..h {
        for xx in 0..w {
            let to = (y * w + xx) * c;
            let from = (y * w + (w - 1 - xx)) * c;
            out[to..to + c].copy_from_slice(&x[from..from + c]);
        }
    }
    out
}

/// The `k` rows of `members` nearest to `base` (squared Euclidean), `base` itself left out;
/// ties go to the earlier row so the result is deterministic.
fn nearest(train: &Split, width: usize, base: usize, members: &[usize], k: usize) -> Vec<usize> {
    let b = &train.x[base * width..(base + 1) * width];
    let mut d: Vec<(f64, usize)> = members
        .iter()
        .filter(|&&m| m != base)
        .map(|&m| {
            let r = &train.x[m * width..(m + 1) * width];
            (b.iter().zip(r).map(|(p, q)| ((p - q) as f64).powi(2)).sum(), m)
        })
        .collect();
    d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    d.into_iter().take(k).map(|(_, m)| m).collect()
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]: ln is finite
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A Gamma(shape, 1) draw (Marsaglia–Tsang; shape < 1 boosted by U^(1/shape)).
fn gamma(rng: &mut impl Rng, shape: f64) -> f64 {
    if shape < 1.0 {
        let u: f64 = 1.0 - rng.gen::<f64>();
        return gamma(rng, shape + 1.0) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let z = normal(rng);
        let v = (1.0 + c * z).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u: f64 = 1.0 - rng.gen::<f64>();
        if u.ln() < 0.5 * z * z + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// A Beta(alpha, alpha) draw.
fn beta(rng: &mut impl Rng, alpha: f64) -> f64 {
    let a = gamma(rng, alpha);
    let b = gamma(rng, alpha);
    if a + b > 0.0 {
        a / (a + b)
    } else {
        0.5
    }
}
