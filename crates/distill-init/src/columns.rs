//! What `init` needs to know about each column: its type, nulls, how many distinct values, and
//! from that the label (given or guessed) and the feature columns.

use polars::prelude::*;

/// Label columns may have at most this many classes (more looks like a measurement).
const MAX_CLASSES: usize = 100;
/// Names that are the label when present (compared case-insensitively).
const LABEL_NAMES: [&str; 4] = ["label", "target", "class", "y"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Int,
    Float,
    Text,
    Bool,
    Other,
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub ty: Type,
    pub nulls: usize,
    /// Distinct non-null values.
    pub distinct: usize,
    /// Non-null min and max of a numeric column.
    pub min_max: Option<(f64, f64)>,
}

impl Column {
    fn numeric(&self) -> bool {
        matches!(self.ty, Type::Int | Type::Float)
    }
}

/// Every column of `df`.
pub fn observe(df: &DataFrame) -> Result<Vec<Column>, String> {
    df.columns().iter().map(|c| column(c.as_materialized_series())).collect()
}

fn column(s: &Series) -> Result<Column, String> {
    let dtype = s.dtype();
    let ty = if dtype.is_integer() {
        Type::Int
    } else if dtype.is_float() {
        Type::Float
    } else if matches!(dtype, DataType::String) {
        Type::Text
    } else if matches!(dtype, DataType::Boolean) {
        Type::Bool
    } else {
        Type::Other
    };
    let nulls = s.null_count();
    let distinct = s.drop_nulls().n_unique().map_err(|e| format!("column `{}`: {e}", s.name()))?;
    let min_max = if matches!(ty, Type::Int | Type::Float) {
        let cast = s.cast(&DataType::Float64).map_err(|e| e.to_string())?;
        let values = cast.f64().map_err(|e| e.to_string())?;
        values.iter().flatten().filter(|v| v.is_finite()).fold(None, |acc: Option<(f64, f64)>, v| Some(acc.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v)))))
    } else {
        None
    };
    Ok(Column { name: s.name().to_string(), ty, nulls, distinct, min_max })
}

/// The label column and, when it was guessed, why.
pub fn label(cols: &[Column], given: Option<&str>, rows: usize) -> Result<(usize, Option<String>), String> {
    let names = || cols.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ");
    if let Some(name) = given {
        let j = cols.iter().position(|c| c.name == name).ok_or_else(|| format!("--label {name}: no such column (columns: {})", names()))?;
        return classes_ok(&cols[j]).map(|()| (j, None));
    }
    if let Some(j) = cols.iter().position(|c| LABEL_NAMES.contains(&c.name.to_ascii_lowercase().as_str())) {
        return classes_ok(&cols[j]).map(|()| (j, Some(format!("guessed from its name (`{}`)", cols[j].name))));
    }
    // Otherwise the last integer, text or bool column with few distinct values.
    let few = |c: &Column| c.distinct >= 2 && c.distinct <= MAX_CLASSES.min((rows / 2).max(2));
    let j = cols.iter().rposition(|c| matches!(c.ty, Type::Int | Type::Text | Type::Bool) && few(c)).ok_or_else(|| {
        format!(
            "cannot guess the label: no column is named label/target/class/y and none has few distinct integer or text values; pass --label COL (columns: {})",
            names()
        )
    })?;
    let kind = match cols[j].ty {
        Type::Text => "text",
        Type::Bool => "true/false",
        _ => "integer",
    };
    Ok((j, Some(format!("guessed: the last {kind} column with few distinct values ({} classes)", cols[j].distinct))))
}

fn classes_ok(c: &Column) -> Result<(), String> {
    if c.distinct < 2 {
        return Err(format!("label column `{}` has {} distinct value(s): a classifier needs at least 2 classes", c.name, c.distinct));
    }
    if c.ty == Type::Float && c.distinct > MAX_CLASSES {
        return Err(format!("label column `{}` holds {} distinct decimal values: distill trains classifiers, not regressions", c.name, c.distinct));
    }
    Ok(())
}

/// Feature columns: the numeric columns other than the label, without nulls, that are not a row
/// key. The others are returned with the reason they are left out.
pub fn features(cols: &[Column], label: usize, rows: usize) -> (Vec<usize>, Vec<(usize, String)>) {
    let (mut used, mut left) = (Vec::new(), Vec::new());
    for (j, c) in cols.iter().enumerate() {
        if j == label {
            continue;
        }
        let why = if !c.numeric() {
            Some("not numeric".to_string())
        } else if c.nulls > 0 {
            Some(format!("{} nulls (a feature value must not be null)", c.nulls))
        } else if is_row_key(c, rows) {
            Some("a row key (every value distinct, 1 apart)".to_string())
        } else {
            None
        };
        match why {
            Some(w) => left.push((j, w)),
            None => used.push(j),
        }
    }
    (used, left)
}

/// An integer column that numbers the rows: every value distinct and they span exactly `rows`.
fn is_row_key(c: &Column, rows: usize) -> bool {
    let span = c.min_max.map(|(lo, hi)| hi - lo + 1.0);
    c.ty == Type::Int && rows > 2 && c.distinct == rows && span == Some(rows as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, ty: Type, distinct: usize, nulls: usize, min_max: Option<(f64, f64)>) -> Column {
        Column { name: name.into(), ty, nulls, distinct, min_max }
    }

    #[test]
    fn labels_by_name_by_shape_or_given() {
        let cols = vec![
            col("id", Type::Int, 50, 0, Some((1.0, 50.0))),
            col("x", Type::Float, 50, 0, None),
            col("kind", Type::Text, 3, 0, None),
            col("n", Type::Float, 4, 0, None),
        ];
        let (j, why) = label(&cols, None, 50).unwrap();
        assert_eq!((j, why.unwrap().contains("text column")), (2, true));
        assert_eq!(label(&cols, Some("x"), 50).unwrap(), (1, None));
        assert!(label(&cols, Some("nope"), 50).unwrap_err().contains("columns: id, x, kind, n"));
        let mut named = cols.clone();
        named.push(col("Target", Type::Int, 2, 0, Some((0.0, 1.0))));
        assert_eq!(label(&named, None, 50).unwrap().0, 4);
        assert!(label(&cols[..2], None, 50).is_err(), "floats and a row key are no label");
        let (used, left) = features(&cols, 2, 50);
        assert_eq!(used, vec![1, 3]);
        assert_eq!(left.iter().map(|(j, _)| *j).collect::<Vec<_>>(), vec![0]);
    }
}
