//! Options objects: how the JSON a host passes (`options_json` in the C ABI, the bindings' option
//! strings) becomes a typed options struct. Every options struct of the crate (sessions, trainers,
//! fine-tuners, loads) parses through [`parse_json`], so they reject unknown keys and wrong types
//! with the same messages.

use crate::error::{Error, Result};

/// Parses a JSON object of options into `T` (whose fields all have defaults). Errors name the
/// offending key: unknown keys and values of the wrong type alike.
pub fn parse_json<T: serde::de::DeserializeOwned>(json: &str) -> Result<T> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| Error::arg(format!("options: not valid JSON: {e}")))?;
    // serde would read a struct from an array too (`[]` as all defaults): only objects pass.
    let map = match value {
        serde_json::Value::Object(map) => map,
        other => {
            return Err(Error::arg(format!(
                "options: expected a JSON object ({{\"key\": value, ...}}), got {}",
                crate::error::json_kind(&other)
            )));
        }
    };
    match serde_json::from_value::<T>(serde_json::Value::Object(map.clone())) {
        Ok(t) => Ok(t),
        Err(whole) => {
            // Find the key: try each one alone over the defaults.
            for (k, v) in &map {
                let one = serde_json::Value::Object([(k.clone(), v.clone())].into_iter().collect());
                if let Err(e) = serde_json::from_value::<T>(one) {
                    return Err(Error::arg(format!("options: key {k:?}: {e}")));
                }
            }
            Err(Error::arg(format!("options: {whole}")))
        }
    }
}
