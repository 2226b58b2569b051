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

/// `base` with the keys of the JSON object `json` over it (the CLI's `--options`: flags first,
/// then the object), parsed and checked as [`parse_json`] does; `what` names the JSON in errors.
pub fn merge_json<T: serde::Serialize + serde::de::DeserializeOwned>(base: &T, json: &str, what: &str) -> Result<T> {
    let extra: serde_json::Value =
        serde_json::from_str(json).map_err(|e| Error::arg(format!("{what}: not valid JSON: {e}")))?;
    let serde_json::Value::Object(extra) = extra else {
        return Err(Error::arg(format!("{what} must be a JSON object, got {}", crate::error::json_kind(&extra))));
    };
    let mut map = match serde_json::to_value(base) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => return Err(Error::Internal("options do not serialize to a JSON object".into())),
    };
    map.extend(extra);
    parse_json(&serde_json::Value::Object(map).to_string())
}

/// The `dropout` option of trainers and fine-tuners. Absent (or `true`): config.json's
/// `hidden_dropout_prob` and `attention_probs_dropout_prob`, as HF trains; `false`: none (the
/// network as in eval, the bits of a run without dropout); a number p: both probabilities p.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum DropoutSetting {
    /// `true`: the config's; `false`: none.
    Config(bool),
    /// Both probabilities.
    Probability(f32),
}

impl Default for DropoutSetting {
    fn default() -> Self {
        DropoutSetting::Config(true)
    }
}

impl DropoutSetting {
    /// `(hidden, attention)` probabilities for a config that says `(hidden, attention)`, checked
    /// to lie in [0, 1) (the message names `what`).
    pub fn probabilities(self, config: (f32, f32), what: &str) -> Result<(f32, f32)> {
        let (h, a) = match self {
            DropoutSetting::Config(true) => config,
            DropoutSetting::Config(false) => (0.0, 0.0),
            DropoutSetting::Probability(p) => (p, p),
        };
        for p in [h, a] {
            if !(0.0..1.0).contains(&p) {
                return Err(Error::arg(format!("{what}: dropout probability {p} is outside [0, 1)")));
            }
        }
        Ok((h, a))
    }

    /// Parses the CLI's `--dropout`: `true`, `false` (or `on`, `off`) or a probability.
    pub fn parse(s: &str) -> Result<Self> {
        let d =
            match s.trim() {
                "true" | "on" => DropoutSetting::Config(true),
                "false" | "off" | "none" => DropoutSetting::Config(false),
                x => DropoutSetting::Probability(x.parse::<f32>().map_err(|_| {
                    Error::arg(format!("dropout {s:?}: expected true, false or a probability in [0, 1)"))
                })?),
            };
        d.probabilities((0.0, 0.0), "dropout")?;
        Ok(d)
    }
}
