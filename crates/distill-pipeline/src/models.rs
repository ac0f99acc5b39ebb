//! The network a recipe's `model:` describes: built in (`mlp`), or described by a plugin
//! architecture in the host's layer vocabulary and built here like a built-in one.

use distill_data::Prepared;
use distill_nn::{Layer, MlpShape};
use distill_plugin_host::{Activation as PluginActivation, Layer as PluginLayer, PluginRegistry};
use distill_spec::{Activation, Arch, ModelSpec};

use crate::PipelineError;

/// The layers of the model at `key` (e.g. `student.model`) for the data's features (and image
/// shape, which conv layers need) and classes. A plugin architecture is asked once; its answer is
/// checked by the plugin host (widths, output size) and again by distill-nn, and errors name the
/// key, plugin and symbol.
pub(crate) fn model_shape(spec: &ModelSpec, key: &str, plugins: &PluginRegistry, data: &Prepared) -> Result<MlpShape, PipelineError> {
    let (inputs, classes) = (data.features(), data.classes());
    let name = match &spec.arch {
        Arch::Mlp | Arch::Cnn => {
            let shape = MlpShape::from_spec(spec, inputs, classes).with_image(data.image);
            shape.check().map_err(|e| PipelineError::key(key, e.to_string()))?;
            return Ok(shape);
        }
        Arch::Plugin(name) => name,
    };
    let arch = plugins.require_architecture(name).map_err(|source| PipelineError::Plugin { key: format!("{key}.arch"), source: Box::new(source) })?;
    let params = spec.params.clone().map(serde_json::Value::Object).unwrap_or(serde_json::Value::Null);
    let layers = arch.describe(inputs, classes, &params).map_err(|source| PipelineError::Plugin { key: format!("{key}.arch"), source: Box::new(source) })?;
    let shape = MlpShape::from_layers(inputs, layers.iter().map(host_layer).collect())
        .map_err(|e| PipelineError::key(format!("{key}.arch"), format!("architecture `{name}` from plugin {}: {e}", arch.plugin())))?;
    tracing::info!(key, arch = %name, plugin = %arch.plugin(), params = shape.param_count(), "plugin architecture");
    Ok(shape)
}

/// A plugin's layer in distill-nn's vocabulary (a superset of the plugin one).
fn host_layer(layer: &PluginLayer) -> Layer {
    match layer {
        PluginLayer::Dense(units) => Layer::Dense(*units),
        PluginLayer::Activation(PluginActivation::Relu) => Layer::Activation(Activation::Relu),
        PluginLayer::Activation(PluginActivation::Tanh) => Layer::Activation(Activation::Tanh),
        PluginLayer::Dropout(p) => Layer::Dropout(*p as f32),
        PluginLayer::Residual(inner) => Layer::Residual(inner.iter().map(host_layer).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_layers_map_one_to_one() {
        let plugin = [
            PluginLayer::Dense(8),
            PluginLayer::Activation(PluginActivation::Tanh),
            PluginLayer::Residual(vec![PluginLayer::Dense(8), PluginLayer::Dropout(0.25)]),
            PluginLayer::Dense(3),
        ];
        let host: Vec<Layer> = plugin.iter().map(host_layer).collect();
        assert_eq!(
            host,
            vec![Layer::Dense(8), Layer::Activation(Activation::Tanh), Layer::Residual(vec![Layer::Dense(8), Layer::Dropout(0.25)]), Layer::Dense(3)]
        );
        assert_eq!(MlpShape::from_layers(4, host).unwrap().param_count(), 4 * 8 + 8 + 8 * 8 + 8 + 8 * 3 + 3);
    }
}
