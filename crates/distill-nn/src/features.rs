//! The shape of the features between two layers: a width, and for image-shaped features (the
//! input of a cnn, the output of its conv and pool layers) the feature map they form.

use crate::mlp::Layer;
use distill_spec::{describe_image, ImageSpec};

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Features {
    pub width: usize,
    /// The map, channels last; `None` after a dense layer (dense layers flatten).
    pub map: Option<ImageSpec>,
}

impl Features {
    /// The features after `layer` (a residual block keeps them; its inside is checked apart).
    pub(crate) fn after(self, layer: &Layer) -> Result<Self, String> {
        let mapped = |m: ImageSpec| Self { width: m.height * m.width * m.channels, map: Some(m) };
        match layer {
            Layer::Dense(units) => Ok(Self { width: *units, map: None }),
            Layer::Conv(c) => Ok(mapped(c.output(self.image("a conv layer")?)?)),
            Layer::Pool(p) => Ok(mapped(p.output(self.image("a pool layer")?)?)),
            Layer::Activation(_) | Layer::Dropout(_) | Layer::LayerNorm | Layer::Residual(_) => Ok(self),
        }
    }

    /// The feature map `what` reads, or why there is none.
    pub(crate) fn image(&self, what: &str) -> Result<ImageSpec, String> {
        match self.map {
            Some(m) if m.height * m.width * m.channels == self.width => Ok(m),
            Some(m) => Err(format!("data.image is {} = {} values per row, but there are {} features", describe_image(m), m.height * m.width * m.channels, self.width)),
            None => Err(format!(
                "{what} needs image-shaped input: set `data.image: {{height, width}}` (inferred only for IDX pixel columns), and put conv and pool layers before dense ones"
            )),
        }
    }
}
