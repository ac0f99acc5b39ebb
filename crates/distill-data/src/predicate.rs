//! Size bounds on a `sql` check's predicate, checked before it is parsed. A chain of `n`
//! operators (`a = 1 OR a = 2 OR ...`) becomes an expression tree `n` levels deep, and the SQL
//! translation, polars' planner and even dropping the tree recurse once per level: thousands of
//! terms overflow the stack and abort the process. So the operators and the nesting are counted
//! first (outside string literals and quoted names) and a predicate past the bounds is refused.

/// The most bytes a predicate may have.
pub const MAX_PREDICATE_BYTES: usize = 64 * 1024;
/// The most operators (`AND`, `OR`, comparisons, arithmetic, ...): each may add a tree level.
/// Measured: a chain of 2,000 operators is still evaluated on a 2 MiB thread stack, 4,000 is not.
pub const MAX_PREDICATE_OPERATORS: usize = 1000;
/// The deepest nesting of parentheses. The SQL parser backtracks exponentially on deep nesting
/// (`(NOT (NOT ...` takes a second at 36 levels and does not finish at 40) and gives up with an
/// unhelpful message near 50; 24 levels parse in under a millisecond.
pub const MAX_PREDICATE_NESTING: usize = 24;

/// Keywords that join or wrap terms, each a level of the tree. `IN (...)` lists are not: a list
/// is one node however long.
const WORD_OPERATORS: [&str; 8] = ["AND", "OR", "NOT", "XOR", "BETWEEN", "LIKE", "ILIKE", "IS"];

/// What a predicate holds, as the bounds count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PredicateSize {
    pub operators: usize,
    pub nesting: usize,
}

/// Counts operators and the deepest parenthesis nesting of `text`.
pub fn predicate_size(text: &str) -> PredicateSize {
    let bytes = text.as_bytes();
    let (mut size, mut depth, mut i) = (PredicateSize::default(), 0usize, 0);
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\'' | b'"' | b'`' => i = skip_quoted(bytes, i),
            b'(' => {
                depth += 1;
                size.nesting = size.nesting.max(depth);
            }
            b')' => depth = depth.saturating_sub(1),
            b'=' | b'<' | b'>' | b'!' | b'+' | b'-' | b'*' | b'/' | b'%' | b'|' | b'&' => {
                size.operators += 1;
                // `<=`, `<>`, `!=`, `||`: one operator.
                while bytes.get(i + 1).is_some_and(|n| matches!(n, b'=' | b'<' | b'>' | b'|')) {
                    i += 1;
                }
            }
            _ if b.is_ascii_alphabetic() || b == b'_' => {
                let start = i;
                while bytes.get(i + 1).is_some_and(|n| n.is_ascii_alphanumeric() || *n == b'_') {
                    i += 1;
                }
                let word = &text[start..=i];
                size.operators += usize::from(WORD_OPERATORS.iter().any(|w| w.eq_ignore_ascii_case(word)));
            }
            _ => {}
        }
        i += 1;
    }
    size
}

/// The index of the closing quote of the literal or name opened at `open` (a doubled quote is
/// an escaped one), or the end of the text.
fn skip_quoted(bytes: &[u8], open: usize) -> usize {
    let quote = bytes[open];
    let mut i = open + 1;
    while i < bytes.len() {
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i;
        }
        i += 1;
    }
    bytes.len()
}

/// Refuses a predicate past the bounds, saying which and by how much.
pub fn check_predicate_size(text: &str) -> Result<(), String> {
    if text.len() > MAX_PREDICATE_BYTES {
        return Err(format!("the predicate has {} bytes; at most {MAX_PREDICATE_BYTES} are allowed (split it into several `sql` checks)", text.len()));
    }
    let size = predicate_size(text);
    if size.operators > MAX_PREDICATE_OPERATORS {
        return Err(format!(
            "the predicate has {} operators; at most {MAX_PREDICATE_OPERATORS} are allowed (split it into several `sql` checks, or use `col IN (...)` for a list of values)",
            size.operators
        ));
    }
    if size.nesting > MAX_PREDICATE_NESTING {
        return Err(format!("the predicate nests parentheses {} deep; at most {MAX_PREDICATE_NESTING} are allowed", size.nesting));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_operators_and_nesting_outside_quotes() {
        assert_eq!(predicate_size("px0 >= 0 AND label IN (0, 1)"), PredicateSize { operators: 2, nesting: 1 });
        assert_eq!(predicate_size("a <> 1 or not (b != 2)"), PredicateSize { operators: 4, nesting: 1 });
        assert_eq!(predicate_size("name = 'a OR b (((' AND \"odd\"\"col AND\" > 1"), PredicateSize { operators: 3, nesting: 0 });
        assert_eq!(predicate_size("operator_x = 1"), PredicateSize { operators: 1, nesting: 0 }, "`or` inside a name is no operator");
    }

    #[test]
    fn long_chains_and_deep_nesting_are_refused_with_the_bound() {
        let chain = (0..5000).map(|i| format!("a = {i}")).collect::<Vec<_>>().join(" OR ");
        assert!(check_predicate_size(&chain).unwrap_err().contains("9999 operators"));
        let deep = format!("{}a > 0{}", "(".repeat(500), ")".repeat(500));
        assert!(check_predicate_size(&deep).unwrap_err().contains("500 deep"));
        let long = format!("a IN ({})", (0..20_000).map(|i| i.to_string()).collect::<Vec<_>>().join(","));
        assert!(check_predicate_size(&long).unwrap_err().contains("bytes"));
        let ok = (0..400).map(|i| format!("a = {i}")).collect::<Vec<_>>().join(" OR ");
        assert_eq!(check_predicate_size(&ok), Ok(()));
    }
}
