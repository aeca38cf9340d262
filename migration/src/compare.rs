//! Comparing two answers (JSON values) after a field's declared normalisers.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, DurationRound, SecondsFormat, TimeDelta, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::declaration::{FloatTolerance, Normalisers, TimeUnit};
use crate::path::{self, PathPattern, PatternError, Segment};

/// At most this many differences are kept per comparison; the rest are counted.
pub const MAX_DIFFERENCES: usize = 64;

/// One path where the two answers differ.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    /// Where, `$.blocks[2].content`.
    pub path: String,
    /// The same path with list positions as `[*]`, as noise is learned and reported.
    pub general_path: String,
    /// The left (primary) value there; `None` when it has no such path.
    pub left: Option<Value>,
    /// The right (secondary) value there; `None` when it has no such path.
    pub right: Option<Value>,
}

/// The differences between two answers.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Comparison {
    /// The differing paths, in document order, at most [`MAX_DIFFERENCES`].
    pub differences: Vec<Difference>,
    /// How many more differences there were.
    pub omitted: usize,
}

impl Comparison {
    /// Whether the answers agree.
    pub fn is_match(&self) -> bool {
        self.differences.is_empty() && self.omitted == 0
    }
}

/// A field's normalisers, parsed, ready to compare answers.
#[derive(Debug, Clone)]
pub struct Comparator {
    ignore: Vec<PathPattern>,
    float_tolerance: Option<FloatTolerance>,
    timestamps: Vec<(PathPattern, TimeUnit)>,
    unordered: Vec<(PathPattern, String)>,
}

impl Comparator {
    /// Parses the patterns of `normalisers`.
    pub fn new(normalisers: &Normalisers) -> Result<Self, PatternError> {
        Ok(Self {
            ignore: normalisers.ignore.iter().map(|p| PathPattern::parse(p)).collect::<Result<_, _>>()?,
            float_tolerance: normalisers.float_tolerance,
            timestamps: normalisers
                .timestamps
                .iter()
                .map(|rule| Ok((PathPattern::parse(rule.path)?, rule.unit)))
                .collect::<Result<_, PatternError>>()?,
            unordered: normalisers
                .unordered
                .iter()
                .map(|rule| Ok((PathPattern::parse(rule.path)?, rule.key.to_owned())))
                .collect::<Result<_, PatternError>>()?,
        })
    }

    /// A comparator that normalises nothing.
    pub fn exact() -> Self {
        Self { ignore: Vec::new(), float_tolerance: None, timestamps: Vec::new(), unordered: Vec::new() }
    }

    /// The differences between `left` and `right`.
    pub fn compare(&self, left: &Value, right: &Value) -> Comparison {
        let mut out = Comparison::default();
        self.walk(&mut Vec::new(), Some(left), Some(right), &mut out);
        out
    }

    fn walk(
        &self,
        path: &mut Vec<Segment>,
        left: Option<&Value>,
        right: Option<&Value>,
        out: &mut Comparison,
    ) {
        if self.ignore.iter().any(|pattern| pattern.matches(path)) {
            return;
        }
        let (left, right) = match (left, right) {
            (None, None) => return,
            (Some(left), Some(right)) => (left, right),
            (left, right) => return differ(path, left, right, out),
        };
        match (left, right) {
            (Value::Object(l), Value::Object(r)) => {
                let keys: BTreeSet<&String> = l.keys().chain(r.keys()).collect();
                for key in keys {
                    path.push(Segment::Key(key.clone()));
                    self.walk(path, l.get(key), r.get(key), out);
                    path.pop();
                }
            }
            (Value::Array(l), Value::Array(r)) => match self.unordered_key(path) {
                Some(field) => {
                    let (l, r) = (keyed(l, field), keyed(r, field));
                    let values: BTreeSet<&String> = l.keys().chain(r.keys()).collect();
                    for value in values {
                        path.push(Segment::Item { field: field.to_owned(), value: value.clone() });
                        self.walk(path, l.get(value).copied(), r.get(value).copied(), out);
                        path.pop();
                    }
                }
                None => {
                    for index in 0..l.len().max(r.len()) {
                        path.push(Segment::Index(index));
                        self.walk(path, l.get(index), r.get(index), out);
                        path.pop();
                    }
                }
            },
            (Value::Number(_), Value::Number(_)) => {
                if !numbers_agree(left, right, self.float_tolerance) {
                    differ(path, Some(left), Some(right), out);
                }
            }
            (Value::String(l), Value::String(r)) => {
                let agree = match self.timestamps.iter().find(|(pattern, _)| pattern.matches(path)) {
                    Some((_, unit)) => truncated(l, *unit) == truncated(r, *unit),
                    None => l == r,
                };
                if !agree {
                    differ(path, Some(left), Some(right), out);
                }
            }
            _ if left == right => {}
            _ => differ(path, Some(left), Some(right), out),
        }
    }

    fn unordered_key(&self, path: &[Segment]) -> Option<&str> {
        self.unordered.iter().find(|(pattern, _)| pattern.matches(path)).map(|(_, key)| key.as_str())
    }
}

fn differ(path: &[Segment], left: Option<&Value>, right: Option<&Value>, out: &mut Comparison) {
    if out.differences.len() >= MAX_DIFFERENCES {
        out.omitted += 1;
        return;
    }
    out.differences.push(Difference {
        path: path::render(path),
        general_path: path::render_general(path),
        left: left.cloned(),
        right: right.cloned(),
    });
}

/// The items of an unordered list by the text of their key field. An item without the field is
/// named by its position (`#missing-3`), and a repeated key by its occurrence (`b1#2`), so no item
/// is silently dropped.
fn keyed<'v>(items: &'v [Value], field: &str) -> BTreeMap<String, &'v Value> {
    let mut by_key = BTreeMap::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (index, item) in items.iter().enumerate() {
        let name = match item.get(field) {
            Some(Value::String(text)) => text.clone(),
            Some(value) => value.to_string(),
            None => format!("#missing-{index}"),
        };
        let occurrence = seen.entry(name.clone()).or_insert(0);
        *occurrence += 1;
        let name = if *occurrence == 1 { name } else { format!("{name}#{occurrence}") };
        by_key.insert(name, item);
    }
    by_key
}

fn numbers_agree(left: &Value, right: &Value, tolerance: Option<FloatTolerance>) -> bool {
    if let (Some(l), Some(r)) = (left.as_i64(), right.as_i64()) {
        return l == r;
    }
    if let (Some(l), Some(r)) = (left.as_u64(), right.as_u64()) {
        return l == r;
    }
    let (Some(l), Some(r)) = (left.as_f64(), right.as_f64()) else { return false };
    if l == r {
        return true;
    }
    match tolerance {
        Some(FloatTolerance { absolute, relative }) => {
            let gap = (l - r).abs();
            gap <= absolute || gap <= relative * l.abs().max(r.abs())
        }
        None => false,
    }
}

/// An RFC 3339 timestamp truncated to `unit`, in UTC; text that is no timestamp stays as it is.
fn truncated(text: &str, unit: TimeUnit) -> String {
    let Ok(at) = DateTime::parse_from_rfc3339(text) else { return text.to_owned() };
    let step = match unit {
        TimeUnit::Minute => TimeDelta::minutes(1),
        TimeUnit::Second => TimeDelta::seconds(1),
        TimeUnit::Millisecond => TimeDelta::milliseconds(1),
        TimeUnit::Microsecond => TimeDelta::microseconds(1),
    };
    let at = at.with_timezone(&Utc);
    at.duration_trunc(step).unwrap_or(at).to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::declaration::{TimestampRule, UnorderedList};

    fn diff(path: &str, left: Option<Value>, right: Option<Value>) -> (String, Option<Value>, Option<Value>) {
        (path.to_owned(), left, right)
    }

    fn found(comparison: &Comparison) -> Vec<(String, Option<Value>, Option<Value>)> {
        comparison.differences.iter().map(|d| (d.path.clone(), d.left.clone(), d.right.clone())).collect()
    }

    fn comparator(normalisers: Normalisers) -> Comparator {
        Comparator::new(&normalisers).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn equal_values_match_and_differences_are_listed_with_both_values() {
        let exact = Comparator::exact();
        let a = json!({"sent": 10, "opened": 4, "blocks": [{"id": "b1", "content": "hi"}], "x": null});
        assert!(exact.compare(&a, &a.clone()).is_match());

        let b =
            json!({"sent": 11, "blocks": [{"id": "b1", "content": "ho"}, {"id": "b2"}], "x": false, "y": 1});
        assert_eq!(
            found(&exact.compare(&a, &b)),
            vec![
                diff("$.blocks[0].content", Some(json!("hi")), Some(json!("ho"))),
                diff("$.blocks[1]", None, Some(json!({"id": "b2"}))),
                diff("$.opened", Some(json!(4)), None),
                diff("$.sent", Some(json!(10)), Some(json!(11))),
                diff("$.x", Some(json!(null)), Some(json!(false))),
                diff("$.y", None, Some(json!(1))),
            ]
        );
        // A type change is one difference at that path, not one per child.
        assert_eq!(
            found(&exact.compare(&json!({"a": {"b": 1}}), &json!({"a": [1]}))),
            vec![diff("$.a", Some(json!({"b": 1})), Some(json!([1])))]
        );
    }

    #[test]
    fn ignored_paths_and_wildcards() {
        let c =
            comparator(Normalisers { ignore: &["next_page_token", "events[*].etag"], ..Normalisers::NONE });
        let a = json!({"next_page_token": "p2", "events": [{"etag": "1", "n": 1}, {"etag": "2", "n": 2}]});
        let b = json!({"next_page_token": "abc", "events": [{"etag": "9", "n": 1}, {"etag": "8", "n": 3}]});
        assert_eq!(found(&c.compare(&a, &b)), vec![diff("$.events[1].n", Some(json!(2)), Some(json!(3)))]);
        // An ignored key present on one side only is ignored too.
        assert!(c.compare(&json!({"next_page_token": "p"}), &json!({})).is_match());
    }

    #[test]
    fn float_tolerance_absolute_and_relative() {
        let c = comparator(Normalisers {
            float_tolerance: Some(FloatTolerance { absolute: 0.001, relative: 0.01 }),
            ..Normalisers::NONE
        });
        // within absolute
        assert!(c.compare(&json!(0.1), &json!(0.1009)).is_match());
        // outside absolute, within 1% relative of the larger
        assert!(c.compare(&json!(1000.0), &json!(1009.0)).is_match());
        // outside both
        assert!(!c.compare(&json!(1000.0), &json!(1011.0)).is_match());
        assert!(!c.compare(&json!(0.1), &json!(0.102)).is_match());
        // an integer and a float of the same value agree even with no tolerance
        assert!(Comparator::exact().compare(&json!(3), &json!(3.0)).is_match());
        // integers are exact: tolerance does not apply to counts
        assert!(!c.compare(&json!(1000), &json!(1001)).is_match());
        assert!(!c.compare(&json!(u64::MAX), &json!(u64::MAX - 1)).is_match());
        assert!(!c.compare(&json!(-1), &json!(1)).is_match());
    }

    #[test]
    fn timestamps_truncate_to_the_declared_unit_in_utc() {
        let c = comparator(Normalisers {
            timestamps: &[TimestampRule { path: "events[*].at", unit: TimeUnit::Second }],
            ..Normalisers::NONE
        });
        let a = json!({"events": [{"at": "2026-11-27T10:00:00.999Z"}, {"at": "2026-11-27T10:00:00Z"}]});
        let b = json!({"events": [{"at": "2026-11-27T11:00:00.001+01:00"}, {"at": "2026-11-27T10:00:01Z"}]});
        assert_eq!(
            found(&c.compare(&a, &b)),
            vec![diff(
                "$.events[1].at",
                Some(json!("2026-11-27T10:00:00Z")),
                Some(json!("2026-11-27T10:00:01Z"))
            )]
        );
        // Not a declared path: exact.
        assert!(
            !c.compare(&json!({"at": "2026-11-27T10:00:00.5Z"}), &json!({"at": "2026-11-27T10:00:00Z"}))
                .is_match()
        );
        // Not a timestamp: compared as text.
        assert!(
            !c.compare(&json!({"events": [{"at": "soon"}]}), &json!({"events": [{"at": "later"}]}))
                .is_match()
        );

        let minutes = comparator(Normalisers {
            timestamps: &[TimestampRule { path: "$", unit: TimeUnit::Minute }],
            ..Normalisers::NONE
        });
        assert!(minutes.compare(&json!("2026-11-27T10:00:59Z"), &json!("2026-11-27T10:00:00.5Z")).is_match());
        assert!(!minutes.compare(&json!("2026-11-27T10:00:59Z"), &json!("2026-11-27T10:01:00Z")).is_match());
    }

    #[test]
    fn unordered_lists_match_items_by_key() {
        let c = comparator(Normalisers {
            unordered: &[UnorderedList { path: "blocks", key: "id" }],
            ..Normalisers::NONE
        });
        let a = json!({"blocks": [{"id": "b1", "c": "x"}, {"id": "b2", "c": "y"}, {"id": 7, "c": "n"}]});
        let reordered =
            json!({"blocks": [{"id": 7, "c": "n"}, {"id": "b2", "c": "y"}, {"id": "b1", "c": "x"}]});
        assert!(c.compare(&a, &reordered).is_match());
        // An ordered comparison of the same sees every position differ.
        assert!(!Comparator::exact().compare(&a, &reordered).is_match());

        let changed = json!({"blocks": [{"id": "b2", "c": "Y"}, {"id": "b1", "c": "x"}, {"id": "b3"}]});
        assert_eq!(
            found(&c.compare(&a, &changed)),
            vec![
                diff("$.blocks[id=\"7\"]", Some(json!({"id": 7, "c": "n"})), None),
                diff("$.blocks[id=\"b2\"].c", Some(json!("y")), Some(json!("Y"))),
                diff("$.blocks[id=\"b3\"]", None, Some(json!({"id": "b3"}))),
            ]
        );
        // Repeated keys and items without a key are kept, not dropped.
        let dup = json!({"blocks": [{"id": "b1"}, {"id": "b1", "c": 1}, {"c": 2}]});
        let dup2 = json!({"blocks": [{"id": "b1"}, {"id": "b1", "c": 2}, {"c": 2}]});
        assert_eq!(
            found(&c.compare(&dup, &dup2)),
            vec![diff("$.blocks[id=\"b1#2\"].c", Some(json!(1)), Some(json!(2)))]
        );
    }

    #[test]
    fn differences_are_capped_and_counted() {
        let a = Value::Array((0..100).map(|i| json!(i)).collect());
        let b = Value::Array((0..100).map(|i| json!(i + 1)).collect());
        let comparison = Comparator::exact().compare(&a, &b);
        assert_eq!(comparison.differences.len(), MAX_DIFFERENCES);
        assert_eq!(comparison.omitted, 100 - MAX_DIFFERENCES);
        assert!(!comparison.is_match());
    }

    /// Property: for random documents, comparing a document with itself finds nothing, and
    /// changing one random leaf finds exactly that leaf's path, as computed by the mutation.
    #[test]
    fn property_one_changed_leaf_is_found_at_its_path() {
        let mut rng = Rng(0x5eed);
        for _ in 0..500 {
            let doc = random_doc(&mut rng, 0);
            assert!(Comparator::exact().compare(&doc, &doc.clone()).is_match());
            let mut changed = doc.clone();
            let mut leaves = Vec::new();
            collect_leaves(&doc, String::from("$"), &mut leaves);
            let pick = &leaves[(rng.next() % leaves.len() as u64) as usize];
            let pointer = pick.1.clone();
            if let Some(slot) = changed.pointer_mut(&pointer) {
                *slot = json!("changed-leaf");
            }
            let comparison = Comparator::exact().compare(&doc, &changed);
            let paths: Vec<&str> = comparison.differences.iter().map(|d| d.path.as_str()).collect();
            if doc.pointer(&pointer) == Some(&json!("changed-leaf")) {
                assert!(paths.is_empty());
            } else {
                assert_eq!(paths, vec![pick.0.as_str()], "{doc}");
            }
        }
    }

    /// Property: an unordered list compares equal to any permutation of itself, and a change to
    /// one item's field is reported at `$.items[id="<key>"].<field>`, wherever the item moved.
    #[test]
    fn property_unordered_lists_ignore_order_and_name_changed_items_by_key() {
        let c = comparator(Normalisers {
            unordered: &[UnorderedList { path: "items", key: "id" }],
            ..Normalisers::NONE
        });
        let mut rng = Rng(42);
        for _ in 0..300 {
            let n = 1 + (rng.next() % 12) as usize;
            let items: Vec<Value> =
                (0..n).map(|i| json!({"id": format!("k{i}"), "v": rng.next() % 5, "w": "x"})).collect();
            let mut shuffled = items.clone();
            for i in (1..n).rev() {
                shuffled.swap(i, (rng.next() % (i as u64 + 1)) as usize);
            }
            let (a, b) = (json!({"items": items}), json!({"items": shuffled.clone()}));
            assert!(c.compare(&a, &b).is_match(), "{a} vs {b}");
            let pick = (rng.next() % n as u64) as usize;
            let id = shuffled[pick]["id"].as_str().unwrap_or_default().to_owned();
            shuffled[pick]["w"] = json!("changed");
            let changed = json!({"items": shuffled});
            assert_eq!(
                found(&c.compare(&a, &changed)),
                vec![diff(&format!("$.items[id=\"{id}\"].w"), Some(json!("x")), Some(json!("changed")))]
            );
        }
    }

    /// A tiny deterministic generator (splitmix64), so property tests need no dependency.
    pub(crate) struct Rng(pub(crate) u64);
    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
    }

    fn random_doc(rng: &mut Rng, depth: u32) -> Value {
        let choice = if depth >= 3 { rng.next() % 4 } else { rng.next() % 6 };
        match choice {
            0 => json!(rng.next() % 100),
            1 => json!(format!("s{}", rng.next() % 10)),
            2 => json!(rng.next().is_multiple_of(2)),
            3 => Value::Null,
            4 => Value::Array((0..1 + rng.next() % 3).map(|_| random_doc(rng, depth + 1)).collect()),
            _ => Value::Object(
                (0..1 + rng.next() % 3).map(|i| (format!("k{i}"), random_doc(rng, depth + 1))).collect(),
            ),
        }
    }

    /// Every leaf's rendered path, written independently of `path::render`, with its JSON pointer.
    fn collect_leaves(value: &Value, rendered: String, out: &mut Vec<(String, String)>) {
        fn pointer_of(rendered: &str) -> String {
            rendered
                .trim_start_matches('$')
                .replace('[', ".")
                .replace(']', "")
                .split('.')
                .filter(|s| !s.is_empty())
                .fold(String::new(), |acc, s| acc + "/" + s)
        }
        match value {
            Value::Array(items) if !items.is_empty() => {
                for (i, item) in items.iter().enumerate() {
                    collect_leaves(item, format!("{rendered}[{i}]"), out);
                }
            }
            Value::Object(map) if !map.is_empty() => {
                for (k, item) in map {
                    collect_leaves(item, format!("{rendered}.{k}"), out);
                }
            }
            _ => out.push((rendered.clone(), pointer_of(&rendered))),
        }
    }
}
