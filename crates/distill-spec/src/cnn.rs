//! The convolutional parts of a `model:`: conv and pooling layers, the `arch: cnn` shorthand,
//! the feature-map arithmetic (shared with distill-nn, so the recipe check and the network agree)
//! and the checks that tie a cnn to the data's image shape.
//!
//! Feature maps use the data's layout (`data.image`): row-major pixels, channels last, so feature
//! `(y * width + x) * channels + c` is pixel (y, x), channel c. Dense layers read a feature map in
//! that order: flattening is implicit.

use std::fmt;

use schemars::JsonSchema;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::{Arch, DataFormat, DataSpec, ImageSpec, LayerSpec, ModelSpec};

/// A 2-D convolution over a feature map, with a square kernel.
///
/// ```yaml
/// conv: [{filters: 8, kernel: 3, padding: 1}, {filters: 16, kernel: 3, stride: 2}]
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConvSpec {
    /// Output channels (feature maps), ≥ 1.
    pub filters: usize,
    /// Side of the square kernel in pixels, ≥ 1.
    pub kernel: usize,
    /// Pixels between kernel positions, ≥ 1 (default 1).
    #[serde(default = "one")]
    pub stride: usize,
    /// Zero pixels added on each side (default 0); `(kernel - 1) / 2` keeps the size at stride 1.
    #[serde(default)]
    pub padding: usize,
}

fn one() -> usize {
    1
}

impl ConvSpec {
    /// The feature map this convolution makes from `input`, or why it cannot.
    pub fn output(&self, input: ImageSpec) -> Result<ImageSpec, String> {
        let (k, p) = (self.kernel, self.padding);
        if self.filters == 0 || k == 0 || self.stride == 0 {
            return Err("`filters`, `kernel` and `stride` must be at least 1".into());
        }
        if k > input.height + 2 * p || k > input.width + 2 * p {
            return Err(format!("the {k}×{k} kernel is larger than its {} input (with padding {p})", describe(input)));
        }
        let side = |n: usize| (n + 2 * p - k) / self.stride + 1;
        Ok(ImageSpec { height: side(input.height), width: side(input.width), channels: self.filters })
    }

    /// Weights and biases of this convolution on `in_channels` input channels.
    pub fn params(&self, in_channels: usize) -> usize {
        self.kernel * self.kernel * in_channels * self.filters + self.filters
    }
}

/// Pooling over non-overlapping `size`×`size` windows (stride = size; a remainder at the right
/// or bottom edge is dropped, as PyTorch's default). Written `pool: 2` (max) or
/// `pool: {size: 2, kind: avg}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PoolSpec {
    /// Window side in pixels, ≥ 1.
    pub size: usize,
    /// `max` (default) or `avg`.
    pub kind: PoolKind,
}

/// `{size: 2, kind: max|avg}`: the window side and how each window is reduced.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PoolMap {
    /// Window side in pixels, ≥ 1.
    size: usize,
    /// `max` (default) or `avg`.
    #[serde(default)]
    kind: PoolKind,
}

/// The forms a pool is written in (for the schema; [`PoolSpec`]'s `Deserialize` reads them).
#[derive(JsonSchema)]
#[schemars(untagged)]
#[allow(dead_code)]
enum PoolForm {
    /// `2`: max pooling over 2×2 windows.
    Size(usize),
    Map(PoolMap),
}

impl JsonSchema for PoolSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PoolSpec".into()
    }

    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut schema = PoolForm::json_schema(g);
        schema.insert(
            "description".into(),
            "Pooling over non-overlapping size×size windows (a remainder at the edge is dropped): `2` (max) or `{size: 2, kind: max|avg}`.".into(),
        );
        schema
    }
}

impl<'de> Deserialize<'de> for PoolSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SizeOrMap;
        impl<'de> Visitor<'de> for SizeOrMap {
            type Value = PoolSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a window size like `2`, or `{size: 2, kind: max|avg}`")
            }
            fn visit_u64<E: de::Error>(self, size: u64) -> Result<PoolSpec, E> {
                Ok(PoolSpec { size: size as usize, kind: PoolKind::Max })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PoolSpec, A::Error> {
                let m = PoolMap::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(PoolSpec { size: m.size, kind: m.kind })
            }
        }
        d.deserialize_any(SizeOrMap)
    }
}

/// How a pooling window is reduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PoolKind {
    /// The largest value (its gradient goes to the first maximum).
    #[default]
    Max,
    /// The mean.
    Avg,
}

impl PoolSpec {
    /// The feature map this pooling makes from `input`, or why it cannot.
    pub fn output(&self, input: ImageSpec) -> Result<ImageSpec, String> {
        let s = self.size;
        if s == 0 {
            return Err("the pool size must be at least 1".into());
        }
        if s > input.height || s > input.width {
            return Err(format!("the {s}×{s} pool window is larger than its {} input", describe(input)));
        }
        Ok(ImageSpec { height: input.height / s, width: input.width / s, channels: input.channels })
    }
}

/// "8×8×1" for an image shape.
pub fn describe(image: ImageSpec) -> String {
    format!("{}×{}×{}", image.height, image.width, image.channels)
}

impl ModelSpec {
    /// The layers of an `arch: cnn` model written with `conv`: per conv entry `conv`, `norm`
    /// (when given), `activation`, `pool` (when given); then per `hidden` width `dense`, `norm`,
    /// `activation`, `dropout` — the output layer is added by the network. `None` for any other
    /// model.
    pub fn cnn_layers(&self) -> Option<Vec<LayerSpec>> {
        let convs = self.conv.as_ref().filter(|_| self.arch == Arch::Cnn && self.layers.is_none())?;
        let mut layers = Vec::new();
        for conv in convs {
            layers.push(LayerSpec::Conv(*conv));
            layers.push(LayerSpec::Activation(self.activation));
            layers.extend(self.pool.map(LayerSpec::Pool));
        }
        for &h in &self.hidden {
            layers.push(LayerSpec::Dense(h));
            layers.extend(self.norm.map(LayerSpec::Norm));
            layers.push(LayerSpec::Activation(self.activation));
            if self.dropout > 0.0 {
                layers.push(LayerSpec::Dropout(self.dropout));
            }
        }
        Some(layers)
    }
}

/// What the recipe check knows about the features flowing through a network.
#[derive(Clone, Copy, PartialEq)]
enum Map {
    /// An image of this shape.
    Image(ImageSpec),
    /// An image whose shape is known only once the data is loaded (IDX sources).
    Unknown,
    /// A flat feature vector (after a dense layer).
    Flat,
}

/// Checks the conv-specific keys of a model against the data: `arch: cnn` needs conv layers and
/// image-shaped inputs, every kernel and pool window must fit its input.
pub(crate) fn validate_cnn(path: &str, m: &ModelSpec, data: &DataSpec, bad: &mut impl FnMut(&str, String)) {
    let in_layers = m.layers.as_deref().is_some_and(has_conv_or_pool);
    if m.arch != Arch::Cnn {
        for (key, set) in [("conv", m.conv.is_some()), ("pool", m.pool.is_some())] {
            if set {
                bad(&format!("{path}.{key}"), format!("`{key}` needs `arch: cnn`"));
            }
        }
        if in_layers {
            bad(&format!("{path}.arch"), "conv and pool layers need `arch: cnn`".into());
        }
        return;
    }
    if m.layers.is_some() {
        for (key, set) in [("conv", m.conv.is_some()), ("pool", m.pool.is_some())] {
            if set {
                bad(&format!("{path}.{key}"), format!("with `layers`, `{key}` is a layer: `{{{key}: ...}}`"));
            }
        }
    }
    let has_conv = m.conv.as_ref().is_some_and(|c| !c.is_empty()) || m.layers.as_deref().is_some_and(|l| l.iter().any(is_conv));
    if !has_conv {
        bad(&format!("{path}.arch"), "a cnn needs at least one conv layer, e.g. `conv: [{filters: 8, kernel: 3, padding: 1}]`".into());
        return;
    }
    let idx = data.source.format == Some(DataFormat::Idx) || data.source.labels.is_some();
    let start = match data.image {
        Some(image) => Map::Image(image),
        None if idx => Map::Unknown,
        None => {
            bad(
                &format!("{path}.arch"),
                "a cnn needs image-shaped inputs: set `data.image: {height, width}` (`channels` defaults to 1; inferred only for IDX sources)".into(),
            );
            return;
        }
    };
    match (&m.layers, &m.conv) {
        (Some(layers), _) => {
            walk(&format!("{path}.layers"), layers, start, bad);
        }
        (None, Some(convs)) => {
            let mut map = start;
            for (i, conv) in convs.iter().enumerate() {
                map = step(&format!("{path}.conv[{i}]"), &LayerSpec::Conv(*conv), map, bad);
                if let Some(pool) = m.pool {
                    map = step(&format!("{path}.pool"), &LayerSpec::Pool(pool), map, bad);
                }
            }
        }
        (None, None) => {}
    }
}

fn is_conv(l: &LayerSpec) -> bool {
    match l {
        LayerSpec::Conv(_) => true,
        LayerSpec::Residual(inner) => inner.iter().any(is_conv),
        _ => false,
    }
}

fn has_conv_or_pool(layers: &[LayerSpec]) -> bool {
    layers.iter().any(|l| match l {
        LayerSpec::Conv(_) | LayerSpec::Pool(_) => true,
        LayerSpec::Residual(inner) => has_conv_or_pool(inner),
        _ => false,
    })
}

fn walk(path: &str, layers: &[LayerSpec], mut map: Map, bad: &mut impl FnMut(&str, String)) -> Map {
    for (i, layer) in layers.iter().enumerate() {
        let at = format!("{path}[{i}]");
        map = match layer {
            LayerSpec::Conv(_) => step(&format!("{at}.conv"), layer, map, bad),
            LayerSpec::Pool(_) => step(&format!("{at}.pool"), layer, map, bad),
            LayerSpec::Dense(_) => Map::Flat,
            LayerSpec::Residual(inner) => {
                let out = walk(&format!("{at}.residual"), inner, map, bad);
                if let (Map::Image(a), Map::Image(b)) = (map, out) {
                    if a != b {
                        bad(
                            &format!("{at}.residual"),
                            format!("a residual block must keep the feature map: it takes {} and returns {}", describe(a), describe(b)),
                        );
                    }
                }
                map
            }
            LayerSpec::Activation(_) | LayerSpec::Dropout(_) | LayerSpec::Norm(_) => map,
        };
    }
    map
}

/// The map after one conv or pool layer; reports a layer that does not fit.
fn step(at: &str, layer: &LayerSpec, map: Map, bad: &mut impl FnMut(&str, String)) -> Map {
    let image = match map {
        Map::Image(image) => image,
        Map::Unknown => return Map::Unknown,
        Map::Flat => {
            bad(at, "needs a feature map, but it follows a dense layer (conv and pool layers come before dense ones)".into());
            return Map::Unknown;
        }
    };
    let out = match layer {
        LayerSpec::Conv(c) => c.output(image),
        LayerSpec::Pool(p) => p.output(image),
        _ => Ok(image),
    };
    match out {
        Ok(next) => Map::Image(next),
        Err(message) => {
            bad(at, message);
            Map::Unknown
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Activation;

    fn data(image: &str) -> DataSpec {
        serde_yaml::from_str(&format!("{{source: {{path: d.csv}}, label: y{image}}}")).unwrap()
    }

    fn problems(model: &str, image: &str) -> Vec<(String, String)> {
        let m: ModelSpec = serde_yaml::from_str(model).unwrap();
        let mut out = Vec::new();
        validate_cnn("m", &m, &data(image), &mut |p: &str, s: String| out.push((p.to_string(), s)));
        out
    }

    const EIGHT: &str = ", image: {height: 8, width: 8}";

    #[test]
    fn pools_parse_from_a_size_or_a_map() {
        let m: ModelSpec = serde_yaml::from_str("{arch: cnn, conv: [{filters: 4, kernel: 3}], pool: 2}").unwrap();
        assert_eq!(m.pool, Some(PoolSpec { size: 2, kind: PoolKind::Max }));
        let l: Vec<LayerSpec> = serde_yaml::from_str("[{pool: {size: 3, kind: avg}}, {conv: {filters: 2, kernel: 1}}]").unwrap();
        assert_eq!(l[0], LayerSpec::Pool(PoolSpec { size: 3, kind: PoolKind::Avg }));
        assert_eq!(l[1], LayerSpec::Conv(ConvSpec { filters: 2, kernel: 1, stride: 1, padding: 0 }));
        let err = serde_yaml::from_str::<Vec<LayerSpec>>("[{pool: {size: 2, stride: 1}}]").unwrap_err().to_string();
        assert!(err.contains("unknown field `stride`"), "{err}");
        assert!(serde_yaml::from_str::<ModelSpec>("{pool: max}").unwrap_err().to_string().contains("window size"));
        assert!(serde_yaml::from_str::<ModelSpec>("{conv: [{filters: 4, kernel: 3, dilation: 2}]}").is_err());
        // Written back as maps, read again the same.
        let back: ModelSpec = serde_yaml::from_str(&serde_yaml::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn the_shorthand_expands_to_blocks_then_dense_layers() {
        let m: ModelSpec = serde_yaml::from_str(
            "{arch: cnn, conv: [{filters: 4, kernel: 3}, {filters: 8, kernel: 3}], pool: 2, hidden: [16], activation: tanh, dropout: 0.1}",
        )
        .unwrap();
        let conv = |f| LayerSpec::Conv(ConvSpec { filters: f, kernel: 3, stride: 1, padding: 0 });
        let (act, pool) = (LayerSpec::Activation(Activation::Tanh), LayerSpec::Pool(PoolSpec { size: 2, kind: PoolKind::Max }));
        assert_eq!(
            m.cnn_layers().unwrap(),
            [conv(4), act.clone(), pool.clone(), conv(8), act.clone(), pool, LayerSpec::Dense(16), act, LayerSpec::Dropout(0.1)]
        );
        let mlp: ModelSpec = serde_yaml::from_str("{hidden: [4]}").unwrap();
        assert_eq!(mlp.cnn_layers(), None);
    }

    #[test]
    fn output_sizes_follow_pytorch() {
        let img = ImageSpec { height: 8, width: 8, channels: 1 };
        let c = ConvSpec { filters: 4, kernel: 3, stride: 1, padding: 1 };
        assert_eq!(c.output(img).unwrap(), ImageSpec { height: 8, width: 8, channels: 4 });
        let c = ConvSpec { filters: 2, kernel: 3, stride: 2, padding: 0 };
        assert_eq!(c.output(ImageSpec { height: 28, width: 9, channels: 3 }).unwrap(), ImageSpec { height: 13, width: 4, channels: 2 });
        assert_eq!(c.params(3), 3 * 3 * 3 * 2 + 2);
        let p = PoolSpec { size: 2, kind: PoolKind::Max };
        assert_eq!(p.output(ImageSpec { height: 7, width: 6, channels: 5 }).unwrap(), ImageSpec { height: 3, width: 3, channels: 5 });
        assert!(ConvSpec { filters: 1, kernel: 9, stride: 1, padding: 0 }.output(img).unwrap_err().contains("9×9 kernel is larger than its 8×8×1 input"));
        assert!(p.output(ImageSpec { height: 1, width: 8, channels: 1 }).is_err());
    }

    #[test]
    fn cnn_keys_are_checked_against_the_image() {
        assert!(problems("{arch: cnn, conv: [{filters: 8, kernel: 3, padding: 1}], pool: 2, hidden: [32]}", EIGHT).is_empty());
        assert!(problems("{arch: cnn, layers: [{conv: {filters: 4, kernel: 3}}, {activation: relu}, {pool: 2}, {dense: 8}]}", EIGHT).is_empty());
        let p = problems("{arch: cnn, conv: [{filters: 8, kernel: 3}]}", "");
        assert_eq!(p[0].0, "m.arch");
        assert!(p[0].1.contains("data.image"), "{p:?}");
        let p = problems("{arch: cnn, conv: [{filters: 8, kernel: 3}, {filters: 8, kernel: 9}]}", EIGHT);
        assert_eq!(p[0].0, "m.conv[1]");
        assert!(p[0].1.contains("9×9 kernel is larger than its 6×6×8 input"), "{p:?}");
        let p = problems("{arch: cnn, conv: [{filters: 8, kernel: 3}], pool: 7}", EIGHT);
        assert_eq!(p[0].0, "m.pool");
        let p = problems("{arch: cnn, layers: [{dense: 8}, {conv: {filters: 4, kernel: 1}}]}", EIGHT);
        assert_eq!(p[0].0, "m.layers[1].conv");
        assert!(p[0].1.contains("follows a dense layer"));
        assert_eq!(problems("{arch: cnn, hidden: [8]}", EIGHT)[0].0, "m.arch");
        assert_eq!(problems("{conv: [{filters: 8, kernel: 3}]}", EIGHT)[0].0, "m.conv");
        assert_eq!(problems("{layers: [{pool: 2}]}", EIGHT)[0].0, "m.arch");
        assert_eq!(problems("{arch: cnn, layers: [{conv: {filters: 2, kernel: 3}}], pool: 2}", EIGHT)[0].0, "m.pool");
        let p =
            problems("{arch: cnn, layers: [{conv: {filters: 2, kernel: 3, padding: 1}}, {residual: [{conv: {filters: 3, kernel: 3, padding: 1}}]}]}", EIGHT);
        assert!(p[0].1.contains("takes 8×8×2 and returns 8×8×3"), "{p:?}");
        // IDX images are inferred when the data loads; sizes are checked then.
        let m: ModelSpec = serde_yaml::from_str("{arch: cnn, conv: [{filters: 8, kernel: 3}]}").unwrap();
        let idx: DataSpec = serde_yaml::from_str("{source: {path: i.gz, format: idx, labels: l.gz}, label: label}").unwrap();
        let mut out = Vec::new();
        validate_cnn("m", &m, &idx, &mut |p: &str, s: String| out.push((p.to_string(), s)));
        assert!(out.is_empty(), "{out:?}");
    }
}
