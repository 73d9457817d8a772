//! Deserialization with field paths, then semantic checks that collect every error.
use super::{Config, ConfigError, FieldError};

pub fn deserialize(text: &str) -> Result<Config, ConfigError> {
    let de = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        ConfigError::Invalid(vec![FieldError {
            path: e.path().to_string(),
            message: e.inner().to_string(),
        }])
    })
}

pub fn validate(config: &Config) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    let w = config.routing.canary_weight;
    if !(0.0..=100.0).contains(&w) {
        errors.push(FieldError {
            path: "routing.canary_weight".into(),
            message: format!("must be between 0 and 100, got {w}"),
        });
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
