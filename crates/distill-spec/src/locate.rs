//! Maps key paths (`student.loss.temperature`, `data.checks[2].min`) to line and column in the
//! YAML text, so that errors found after deserialization still point at the right place.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Where each key path starts in a YAML document (1-based line and column).
#[derive(Debug, Default, Clone)]
pub struct Locations {
    positions: HashMap<String, (usize, usize)>,
}

impl Locations {
    /// Index every key and sequence item of `text`. Text that does not parse gives an empty index.
    pub fn index(text: &str) -> Self {
        let mut recorder = Recorder::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut recorder, false).is_err() {
            return Self::default();
        }
        Self { positions: recorder.positions }
    }

    /// The position of exactly `path`.
    pub fn get(&self, path: &str) -> Option<(usize, usize)> {
        self.positions.get(path).copied()
    }

    /// The position of `path`, or of its closest indexed ancestor.
    pub fn find(&self, path: &str) -> Option<(usize, usize)> {
        let mut candidate = path.to_string();
        loop {
            if let Some(pos) = self.positions.get(&candidate) {
                return Some(*pos);
            }
            let cut = candidate.rfind(['.', '['])?;
            candidate.truncate(cut);
        }
    }
}

enum Frame {
    /// A mapping: the key whose value comes next, if a key has been read.
    Map { base: String, pending_key: Option<String> },
    /// A sequence: the index of the next item.
    Seq { base: String, next: usize },
}

#[derive(Default)]
struct Recorder {
    stack: Vec<Frame>,
    positions: HashMap<String, (usize, usize)>,
}

fn join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_string()
    } else {
        format!("{base}.{key}")
    }
}

impl Recorder {
    /// The path of the value that starts at this event, or `None` when the event is a map key.
    fn value_path(&mut self, event: &Event, mark: Marker) -> Option<String> {
        let pos = (mark.line(), mark.col() + 1);
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { base, next }) => {
                let path = format!("{base}[{next}]");
                *next += 1;
                self.positions.entry(path.clone()).or_insert(pos);
                Some(path)
            }
            Some(Frame::Map { base, pending_key }) => match pending_key.take() {
                Some(key) => Some(join(base, &key)),
                None => {
                    // A key: remember where it is written and wait for its value.
                    let key = match event {
                        Event::Scalar(s, ..) => s.clone(),
                        _ => String::from("?"),
                    };
                    let path = join(base, &key);
                    self.positions.entry(path).or_insert(pos);
                    *pending_key = Some(key);
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for Recorder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match &event {
            Event::Scalar(..) | Event::Alias(_) => {
                self.value_path(&event, mark);
            }
            Event::MappingStart(..) => {
                if let Some(base) = self.value_path(&event, mark) {
                    self.stack.push(Frame::Map { base, pending_key: None });
                } else {
                    // A complex key: track it so the stack stays balanced.
                    self.stack.push(Frame::Map { base: "?".into(), pending_key: None });
                }
            }
            Event::SequenceStart(..) => {
                let base = self.value_path(&event, mark).unwrap_or_else(|| "?".into());
                self.stack.push(Frame::Seq { base, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_block_and_flow_keys() {
        let text = "a: 1\nb:\n  c: {d: 2, e: [x, y]}\n  f:\n    - g: 3\n    - g: 4\n";
        let loc = Locations::index(text);
        assert_eq!(loc.find("a"), Some((1, 1)));
        assert_eq!(loc.find("b.c"), Some((3, 3)));
        assert_eq!(loc.find("b.c.e"), Some((3, 13)));
        // Lines are exact; yaml-rust2 may place a key inside a block sequence item one column late.
        assert_eq!(loc.find("b.f[1].g").map(|p| p.0), Some(6));
        assert_eq!(loc.find("b.f[1].missing").map(|p| p.0), Some(6));
    }
}
