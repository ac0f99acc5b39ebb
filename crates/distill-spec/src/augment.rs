//! `data.augment`: extra training rows, one entry per augmentation, its keys decided by its `kind`.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_yaml::Mapping;

use crate::tagged::{self, Family, Kind, Nested};

/// One augmentation of the training split.
///
/// ```yaml
/// augment:
///   - {kind: gaussian_noise, std: 0.5, copies: 2}
///   - {kind: mixup, alpha: 0.2}
///   - {kind: oversample, method: smote, ratio: 0.5, neighbours: 3}
///   - {kind: shift, pixels: 2}
///   - {kind: flip}
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum AugmentSpec {
    /// A copy of each training row with Gaussian noise added to every feature; keeps the
    /// row's label state.
    GaussianNoise(GaussianNoise),
    /// Convex mixes of two random training rows; mixed rows have no label, so only the
    /// teacher's soft targets label them.
    Mixup(Mixup),
    /// New labelled rows for classes with fewer labelled training rows than the largest class.
    Oversample(Oversample),
    /// A copy of each training image shifted by up to `pixels` pixels; keeps the label state.
    Shift(Shift),
    /// One horizontally mirrored copy of each training image; keeps the label state. No keys.
    Flip,
}

/// `gaussian_noise`: a copy of each training row with Gaussian noise added to every feature;
/// keeps the row's label state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GaussianNoise {
    /// How many new rows per training row (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copies: Option<usize>,
    /// Standard deviation of the added noise, in the units of the unscaled features (required).
    pub std: f64,
}

/// `mixup`: convex mixes of two random training rows; mixed rows have no label, so only the
/// teacher's soft targets label them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mixup {
    /// How many new rows per training row (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copies: Option<usize>,
    /// Mixing weights are drawn from Beta(alpha, alpha) (default 0.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
}

/// `oversample`: new labelled rows for classes with fewer labelled training rows than the
/// largest class.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Oversample {
    /// How new rows of a rare class are made: `smote` (default) interpolates between a row and
    /// one of its nearest same-class neighbours; `duplicate` copies rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<OversampleMethod>,
    /// Every class is topped up to this fraction of the largest class's labelled rows (in
    /// (0, 1], default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// Nearest same-class neighbours to interpolate towards (`method: smote`; default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neighbours: Option<usize>,
}

/// `shift`: a copy of each training image (needs `data.image`) shifted by up to `pixels`
/// pixels; keeps the row's label state.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Shift {
    /// How many new rows per training row (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copies: Option<usize>,
    /// Largest shift in pixels, drawn per copy in each direction; vacated pixels become 0
    /// (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixels: Option<usize>,
}

/// How `oversample` makes rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OversampleMethod {
    /// Random duplication of the class's rows.
    Duplicate,
    /// SMOTE: a random point on the segment between a row and a near same-class neighbour.
    #[default]
    Smote,
}

static AUGMENTATIONS: Family = Family {
    describe: |k| format!("`{k}`"),
    kinds: &[
        Kind::of::<GaussianNoise>("gaussian_noise"),
        Kind::of::<Mixup>("mixup"),
        Kind::of::<Oversample>("oversample"),
        Kind::of::<Shift>("shift"),
        Kind::unit("flip", "`flip`: one horizontally mirrored copy of each training image (needs `data.image`); keeps the row's label state. No keys."),
    ],
    leading: &[],
    trailing: &[],
    tagged: true,
};

impl AugmentSpec {
    pub fn as_str(&self) -> &'static str {
        match self {
            AugmentSpec::GaussianNoise(_) => "gaussian_noise",
            AugmentSpec::Mixup(_) => "mixup",
            AugmentSpec::Oversample(_) => "oversample",
            AugmentSpec::Shift(_) => "shift",
            AugmentSpec::Flip => "flip",
        }
    }

    /// `copies`, for the kinds that take it.
    pub fn copies(&self) -> Option<usize> {
        match self {
            AugmentSpec::GaussianNoise(a) => a.copies,
            AugmentSpec::Mixup(a) => a.copies,
            AugmentSpec::Shift(a) => a.copies,
            AugmentSpec::Oversample(_) | AugmentSpec::Flip => None,
        }
    }
}

impl JsonSchema for AugmentSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "AugmentSpec".into()
    }

    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let description = "An augmentation of the training split: a `kind` with that kind's keys.";
        AUGMENTATIONS.tagged_schema(g, &crate::schema::Shape { description, ..Default::default() })
    }
}

impl<'de> Deserialize<'de> for AugmentSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = tagged::mapping(d, "an augmentation")?;
        read_augment(map).map_err(serde::de::Error::custom)
    }
}

fn read_augment(mut map: Mapping) -> Result<AugmentSpec, Nested> {
    let f = &AUGMENTATIONS;
    let Some(kind) = tagged::take_kind(&mut map)? else {
        let kinds: Vec<String> = f.names().iter().map(|k| format!("`{k}`")).collect();
        return Err(Nested::at("", format!("an augmentation needs `kind`, one of {}", kinds.join(", "))));
    };
    Ok(match kind.as_str() {
        "gaussian_noise" => AugmentSpec::GaussianNoise(f.body(&kind, map)?),
        "mixup" => AugmentSpec::Mixup(f.body(&kind, map)?),
        "oversample" => AugmentSpec::Oversample(f.body(&kind, map)?),
        "shift" => AugmentSpec::Shift(f.body(&kind, map)?),
        "flip" => {
            f.no_body(&kind, map)?;
            AugmentSpec::Flip
        }
        other => return Err(f.unknown_kind(other)),
    })
}

impl Serialize for AugmentSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let kind = Some(self.as_str());
        let (leading, trailing) = (Mapping::new(), Mapping::new());
        match self {
            AugmentSpec::GaussianNoise(a) => tagged::serialize_tagged(s, leading, kind, a, trailing),
            AugmentSpec::Mixup(a) => tagged::serialize_tagged(s, leading, kind, a, trailing),
            AugmentSpec::Oversample(a) => tagged::serialize_tagged(s, leading, kind, a, trailing),
            AugmentSpec::Shift(a) => tagged::serialize_tagged(s, leading, kind, a, trailing),
            AugmentSpec::Flip => tagged::serialize_tagged(s, leading, kind, &(), trailing),
        }
    }
}

/// Values of one augmentation that its kind's keys must satisfy.
pub(crate) fn validate_augment(path: &str, a: &AugmentSpec, bad: &mut impl FnMut(&str, String)) {
    if a.copies() == Some(0) {
        bad(&format!("{path}.copies"), "must be at least 1".into());
    }
    match a {
        AugmentSpec::GaussianNoise(g) => {
            if !(g.std.is_finite() && g.std > 0.0) {
                bad(&format!("{path}.std"), format!("must be > 0, got {}", g.std));
            }
        }
        AugmentSpec::Mixup(m) => {
            if let Some(al) = m.alpha {
                if !(al.is_finite() && al > 0.0) {
                    bad(&format!("{path}.alpha"), format!("must be > 0, got {al}"));
                }
            }
        }
        AugmentSpec::Oversample(o) => {
            if let Some(r) = o.ratio {
                if !(r > 0.0 && r <= 1.0) {
                    bad(&format!("{path}.ratio"), format!("must be in (0, 1], got {r}"));
                }
            }
            if o.neighbours == Some(0) {
                bad(&format!("{path}.neighbours"), "must be at least 1".into());
            }
            if o.neighbours.is_some() && o.method == Some(OversampleMethod::Duplicate) {
                bad(&format!("{path}.neighbours"), "`neighbours` applies only to `method: smote`".into());
            }
        }
        AugmentSpec::Shift(s) => {
            if s.pixels == Some(0) {
                bad(&format!("{path}.pixels"), "must be at least 1".into());
            }
        }
        AugmentSpec::Flip => {}
    }
}
