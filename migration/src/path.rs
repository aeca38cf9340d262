//! Paths into JSON values, and the patterns that normalisers and noise use to name them.
//!
//! A path renders as `$.blocks[2].content`; an item of an unordered list, matched by its key
//! field, as `$.blocks[id="b1"].content`; keys that are not plain words as `$["a key"]`.
//! A pattern is written without the `$` (which is allowed): `blocks[*].content`, where `[*]`
//! matches any item of a list and `*` any key of an object.

use std::fmt::{self, Write as _};

/// One step into a JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// An object's key.
    Key(String),
    /// A list's item, by position.
    Index(usize),
    /// An unordered list's item, by the value of its key field.
    Item {
        /// The key field.
        field: String,
        /// Its value, as text.
        value: String,
    },
}

/// Renders a path, `$.a[0].b`.
pub fn render(path: &[Segment]) -> String {
    let mut out = String::from("$");
    for segment in path {
        match segment {
            Segment::Key(key) => push_key(&mut out, key),
            Segment::Index(index) => {
                let _ = write!(out, "[{index}]");
            }
            Segment::Item { field, value } => {
                let _ = write!(out, "[{field}={value:?}]");
            }
        }
    }
    out
}

/// Renders a path as the pattern that matches it with every list position made `[*]`, so noise
/// learned at `$.events[3].at` covers `$.events[5].at`.
pub fn render_general(path: &[Segment]) -> String {
    let mut out = String::from("$");
    for segment in path {
        match segment {
            Segment::Key(key) => push_key(&mut out, key),
            Segment::Index(_) | Segment::Item { .. } => out.push_str("[*]"),
        }
    }
    out
}

fn push_key(out: &mut String, key: &str) {
    let plain = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        out.push('.');
        out.push_str(key);
    } else {
        let _ = write!(out, "[{key:?}]");
    }
}

/// One step of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PatternSegment {
    Key(String),
    AnyKey,
    AnyItem,
}

/// A path pattern: `blocks[*].content`, `*.sent`, `$` (the whole value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    text: String,
    segments: Vec<PatternSegment>,
}

/// A pattern that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad path pattern {pattern:?}: {reason}")]
pub struct PatternError {
    /// The pattern.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl PathPattern {
    /// Parses a pattern.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let error = |reason| PatternError { pattern: text.to_owned(), reason };
        let body = text.strip_prefix('$').unwrap_or(text);
        let body = body.strip_prefix('.').unwrap_or(body);
        let mut segments = Vec::new();
        if !body.is_empty() {
            for piece in body.split('.') {
                let (name, mut rest) = match piece.find('[') {
                    Some(at) => piece.split_at(at),
                    None => (piece, ""),
                };
                match name {
                    "" if rest.is_empty() => return Err(error("empty key between dots")),
                    // `[*]` at the start or straight after a dot: items of the list there.
                    "" => {}
                    "*" => segments.push(PatternSegment::AnyKey),
                    name if name.contains(']') => return Err(error("`]` without `[`")),
                    name => segments.push(PatternSegment::Key(name.to_owned())),
                }
                while !rest.is_empty() {
                    match rest.strip_prefix("[*]") {
                        Some(after) => {
                            segments.push(PatternSegment::AnyItem);
                            rest = after;
                        }
                        None => return Err(error("only `[*]` may follow a key")),
                    }
                }
            }
        }
        Ok(Self { text: text.to_owned(), segments })
    }

    /// Whether `path` is exactly what the pattern names.
    pub fn matches(&self, path: &[Segment]) -> bool {
        self.segments.len() == path.len()
            && self.segments.iter().zip(path).all(|(pattern, segment)| match (pattern, segment) {
                (PatternSegment::Key(want), Segment::Key(key)) => want == key,
                (PatternSegment::AnyKey, Segment::Key(_)) => true,
                (PatternSegment::AnyItem, Segment::Index(_) | Segment::Item { .. }) => true,
                _ => false,
            })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Segment {
        Segment::Key(k.to_owned())
    }

    #[test]
    fn paths_render_as_written_by_hand() {
        let path = vec![key("blocks"), Segment::Index(2), key("content")];
        assert_eq!(render(&path), "$.blocks[2].content");
        assert_eq!(render_general(&path), "$.blocks[*].content");
        let item = vec![key("blocks"), Segment::Item { field: "id".into(), value: "b1".into() }];
        assert_eq!(render(&item), r#"$.blocks[id="b1"]"#);
        assert_eq!(render(&[key("a key"), key("")]), r#"$["a key"][""]"#);
        assert_eq!(render(&[]), "$");
    }

    #[test]
    fn patterns_match_exactly_what_they_name() {
        let pattern = PathPattern::parse("blocks[*].content").unwrap_or_else(|e| panic!("{e}"));
        assert!(pattern.matches(&[key("blocks"), Segment::Index(7), key("content")]));
        assert!(pattern.matches(&[
            key("blocks"),
            Segment::Item { field: "id".into(), value: "x".into() },
            key("content")
        ]));
        assert!(!pattern.matches(&[key("blocks"), Segment::Index(7)]));
        assert!(!pattern.matches(&[key("blocks"), key("7"), key("content")]));
        assert!(!pattern.matches(&[key("blocks"), Segment::Index(7), key("content"), key("x")]));

        let any = PathPattern::parse("$.*.sent").unwrap_or_else(|e| panic!("{e}"));
        assert!(any.matches(&[key("42"), key("sent")]));
        assert!(!any.matches(&[Segment::Index(0), key("sent")]));

        let root_list = PathPattern::parse("[*].at").unwrap_or_else(|e| panic!("{e}"));
        assert!(root_list.matches(&[Segment::Index(0), key("at")]));
        let nested = PathPattern::parse("grid[*][*]").unwrap_or_else(|e| panic!("{e}"));
        assert!(nested.matches(&[key("grid"), Segment::Index(0), Segment::Index(1)]));

        let root = PathPattern::parse("$").unwrap_or_else(|e| panic!("{e}"));
        assert!(root.matches(&[]));
    }

    #[test]
    fn bad_patterns_say_why() {
        for (bad, reason) in [
            ("a..b", "empty key between dots"),
            ("a.", "empty key between dots"),
            ("a[0]", "only `[*]` may follow a key"),
            ("a[*", "only `[*]` may follow a key"),
            ("a]", "`]` without `[`"),
        ] {
            assert_eq!(PathPattern::parse(bad).map_err(|e| e.reason), Err(reason), "{bad}");
        }
    }
}
