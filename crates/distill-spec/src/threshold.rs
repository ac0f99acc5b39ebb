//! Check thresholds (`warn: "> 5%"`) and column selections (`columns: "px*"`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A bound on a check's failures: more than (`>`) or at least (`>=`) a count or a percentage
/// of the rows, columns or classes checked.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "ThresholdText", into = "String")]
pub struct Threshold {
    /// `>=` rather than `>`.
    pub inclusive: bool,
    /// A count, or a percentage when `percent`.
    pub value: f64,
    pub percent: bool,
}

impl Threshold {
    /// `> 0`: any failure.
    pub const ANY: Threshold = Threshold { inclusive: false, value: 0.0, percent: false };

    /// Whether `failing` of `total` crosses the threshold.
    pub fn crossed(&self, failing: usize, total: usize) -> bool {
        let v = if self.percent {
            if total == 0 {
                0.0
            } else {
                failing as f64 * 100.0 / total as f64
            }
        } else {
            failing as f64
        };
        if self.inclusive {
            v >= self.value
        } else {
            v > self.value
        }
    }

    /// Parses `> 0`, `>= 10`, `> 5%`, `5%` (= `> 5%`) or `3` (= `> 3`).
    pub fn parse(text: &str) -> Result<Threshold, String> {
        let t = text.trim();
        let (inclusive, rest) = if let Some(r) = t.strip_prefix(">=") {
            (true, r)
        } else if let Some(r) = t.strip_prefix('>') {
            (false, r)
        } else {
            (false, t)
        };
        let rest = rest.trim();
        let (percent, number) = match rest.strip_suffix('%') {
            Some(n) => (true, n.trim()),
            None => (false, rest),
        };
        let bad = || format!("invalid threshold {text:?}: expected a count or percentage such as \"> 0\", \">= 10\" or \"> 5%\"");
        let value: f64 = number.parse().map_err(|_| bad())?;
        if !value.is_finite() || value < 0.0 {
            return Err(bad());
        }
        if percent && value > 100.0 {
            return Err(format!("invalid threshold {text:?}: a percentage must be at most 100%"));
        }
        Ok(Threshold { inclusive, value, percent })
    }
}

impl std::fmt::Display for Threshold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}{}", if self.inclusive { ">=" } else { ">" }, self.value, if self.percent { "%" } else { "" })
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
enum ThresholdText {
    /// A count: `3` is `"> 3"`.
    Number(#[schemars(range(min = 0.0))] f64),
    /// `"> 0"`, `">= 10"`, `"> 5%"` or `"5%"` (quote values that start with `>`).
    Text(#[schemars(regex(pattern = r"^\s*(>=?)?\s*([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*%?\s*$"))] String),
}

impl TryFrom<ThresholdText> for Threshold {
    type Error = String;
    fn try_from(t: ThresholdText) -> Result<Self, String> {
        match t {
            ThresholdText::Number(n) => Threshold::parse(&n.to_string()),
            ThresholdText::Text(s) => Threshold::parse(&s),
        }
    }
}

impl From<Threshold> for String {
    fn from(t: Threshold) -> String {
        t.to_string()
    }
}

/// Columns: `all`, one name or `*` glob, or a list of names and globs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ColumnSelection {
    One(String),
    Many(Vec<String>),
}

impl ColumnSelection {
    /// The patterns; `all` is `*`.
    pub fn patterns(&self) -> Vec<String> {
        match self {
            ColumnSelection::One(s) if s == "all" => vec!["*".into()],
            ColumnSelection::One(s) => vec![s.clone()],
            ColumnSelection::Many(v) => v.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_and_print() {
        let t = |s: &str| Threshold::parse(s).unwrap();
        assert_eq!(t("> 0"), Threshold::ANY);
        assert_eq!(t(">= 10"), Threshold { inclusive: true, value: 10.0, percent: false });
        assert_eq!(t("> 5%"), Threshold { inclusive: false, value: 5.0, percent: true });
        assert_eq!(t("5%"), t("> 5%"));
        assert!(t("> 5%").crossed(6, 100) && !t("> 5%").crossed(5, 100));
        assert!(t(">= 5%").crossed(5, 100));
        assert!(!t("> 5%").crossed(1, 0));
        for bad in ["< 3", "> -1", "> 120%", "lots", ""] {
            assert!(Threshold::parse(bad).is_err(), "{bad}");
        }
        let c: crate::CheckSpec = serde_yaml::from_str("{kind: range, columns: a, max: 1, warn: 2, error: \">= 5%\"}").unwrap();
        assert_eq!(c.warn, Some(t("> 2")));
        let back: crate::CheckSpec = serde_yaml::from_str(&serde_yaml::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c, "resolved pipelines read back the same");
        let err = serde_yaml::from_str::<crate::CheckSpec>("{kind: range, max: 1, error: \"about 5\"}").unwrap_err().to_string();
        assert!(err.starts_with("error: invalid threshold"), "{err}");
    }
}
