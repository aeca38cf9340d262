//! Objects written as JSON while they resolve: a response rendered as bytes (the gateway's HTTP
//! transport) gets a lean object (`crate::lean`) as the JSON text it will be sent as, carried in
//! the response's value tree as a [`Value::Binary`], instead of as an object map.
//!
//! Why: async-graphql's object value is an `IndexMap` keyed by SipHash. A page of 50 templates
//! is about 200 objects and 750 fields, each hashed and pushed into its map, then walked again
//! to serialize, then dropped; about a tenth of the gateway's CPU per request in profiles. A
//! written object is one buffer, filled in the selection's order, that its parent copies.
//!
//! Only what nothing touches after execution is written. The gateway completes failed fields
//! (`crate::complete_response`) and orders objects after execution, walking the paths of
//! errors and the keys of objects; so an object is written only when every one of its fields
//! resolved, and each value is a leaf, `null`, a written object, or a list of those. An object
//! with a failed field, and every object above it, stays a map: no error's path ever leads into
//! a written object. Its fields' values are serialized as the whole response would be
//! (`serde_json` on async-graphql's values), so the bytes sent are the same either way.
//!
//! A plain field's value (`crate::lean::PlainFields`) is a [`Leaf`]: it is written into its
//! object's text as it is read, with no value made of it; should the object stay a map, the
//! field's generated resolver is asked for its value.
//!
//! A key selected twice has its objects merged: a lean object reads written ones back as maps
//! for that (rare), but async-graphql's containers merge maps only, so the gateway does not mark
//! a request whose operation selects a key twice with a selection set.
//!
//! `Value::Binary` stands for written JSON only in a request marked [`WrittenObjects`]: no output
//! type of the schema yields one (async-graphql makes them for uploads, an input), and only the
//! gateway's HTTP transport, which renders the data with [`write_data`], marks its requests.

use async_graphql::resolver_utils::EnumType;
use async_graphql::{ID, Value};
use chrono::{DateTime, Datelike, Timelike, Utc};

/// Marks a request (its data) whose response [`write_data`] renders: its lean objects are
/// written as they resolve.
pub struct WrittenObjects {
    keys_unique: bool,
}

impl WrittenObjects {
    /// For an operation that may select a response key twice in one object: each object looks
    /// for one as it resolves, and one that has it stays a map.
    pub fn checking_keys() -> Self {
        Self { keys_unique: false }
    }

    /// For an operation known to select each response key once per object (the gateway reads
    /// that from the document once, with its fragments): no object looks again.
    pub fn with_unique_keys() -> Self {
        Self { keys_unique: true }
    }

    /// Whether no object of the operation selects a key twice.
    pub(crate) fn keys_unique(&self) -> bool {
        self.keys_unique
    }
}

/// An object's JSON text as its fields resolve: its keys, its plain fields' leaves ([`Leaf`])
/// and the values of the fields ready as they start, written in place in the selection's order;
/// the other fields' values go in where they belong once every field has resolved
/// ([`ObjectText::finish`]).
pub(crate) struct ObjectText {
    json: Vec<u8>,
}

impl ObjectText {
    /// The text of an object of `fields` fields, before its first.
    pub(crate) fn new(fields: usize) -> Self {
        let mut json = Vec::with_capacity(2 + fields * 32);
        json.push(b'{');
        Self { json }
    }

    /// Writes the next field's key (a GraphQL name, `[_A-Za-z][_0-9A-Za-z]*`: nothing to
    /// escape); where its value goes.
    pub(crate) fn key(&mut self, key: &str) -> usize {
        let after_another = self.json.len() > 1;
        push_key(&mut self.json, key, after_another);
        self.json.len()
    }

    /// The text, for a leaf to be written at its end.
    pub(crate) fn text(&mut self) -> &mut Vec<u8> {
        &mut self.json
    }

    /// Writes `value` at the end of the text, as the value of the key just written. `false`
    /// when it cannot be (an object map, or a list holding one), the text then left partly
    /// written: the object stays a map, as [`Self::finish`] would find.
    pub(crate) fn value(&mut self, value: &Value) -> bool {
        // Room for it and what follows it (a comma or the closing brace) at once: a template
        // written into its edge's text, sized for two short fields, grew it twice otherwise.
        self.json.reserve(estimated_size(value) + 1);
        matches!(write_value(&mut self.json, value, false), Ok(true))
    }

    /// The object's JSON: its text with `values` (each where its key's value goes, in order)
    /// written in. `None` when it must stay a map: a value is missing (a field failed), or is an
    /// object map (it may hold a failure) or a list holding one.
    pub(crate) fn finish<'v>(
        mut self,
        values: impl Iterator<Item = Option<(usize, &'v Value)>> + Clone,
    ) -> Option<bytes::Bytes> {
        let mut size = self.json.len() + 1;
        let mut any = false;
        for value in values.clone() {
            let (_, value) = value?;
            size += estimated_size(value);
            any = true;
        }
        if !any {
            // Every field a leaf written in place: the text is the object.
            self.json.push(b'}');
            return Some(bytes::Bytes::from(self.json));
        }
        let mut json = Vec::with_capacity(size);
        let mut from = 0;
        for (at, value) in values.flatten() {
            json.extend_from_slice(&self.json[from..at]);
            // Into a `Vec`, serializing cannot fail; a map keeps the object a map.
            if !matches!(write_value(&mut json, value, false), Ok(true)) {
                return None;
            }
            from = at;
        }
        json.extend_from_slice(&self.json[from..]);
        json.push(b'}');
        Some(bytes::Bytes::from(json))
    }
}

/// Writes an object's next key at the end of `out`: a GraphQL name (`[_A-Za-z][_0-9A-Za-z]*`:
/// nothing to escape), after a comma when it follows another field (`after_another`), then the
/// colon its value follows.
pub(crate) fn push_key(out: &mut Vec<u8>, key: &str, after_another: bool) {
    if after_another {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

/// A value a plain field gives, written as JSON exactly as `serde_json` writes the value
/// async-graphql's `OutputType::resolve` makes of it, without making that value (for a string,
/// an allocation and a copy, then a walk of the value to serialize it and a free).
pub(crate) trait Leaf {
    /// Appends the value's JSON to `out`.
    fn write_leaf(&self, out: &mut Vec<u8>);
}

/// Appends `value`'s JSON to `out`.
fn write_json(out: &mut Vec<u8>, value: &(impl serde::Serialize + ?Sized)) {
    // Into a `Vec`, a string or a number cannot fail to serialize.
    if let Err(error) = serde_json::to_writer(out, value) {
        tracing::error!(%error, "a leaf does not serialize");
    }
}

impl<T: Leaf + ?Sized> Leaf for &T {
    fn write_leaf(&self, out: &mut Vec<u8>) {
        (**self).write_leaf(out);
    }
}

impl<T: Leaf> Leaf for Option<T> {
    fn write_leaf(&self, out: &mut Vec<u8>) {
        match self {
            Some(value) => value.write_leaf(out),
            None => out.extend_from_slice(b"null"),
        }
    }
}

/// Implements [`Leaf`] for types whose async-graphql value serde_json writes as it writes the
/// type itself: a string as a string, an integer as a number, a float as a number or, not
/// finite, `null` (async-graphql makes such a float `null`).
macro_rules! serialized_leaves {
    ($($leaf:ty),*) => {
        $(impl Leaf for $leaf {
            fn write_leaf(&self, out: &mut Vec<u8>) {
                write_json(out, self);
            }
        })*
    };
}

serialized_leaves!(str, String, bool, i32, u32, f64);

impl Leaf for ID {
    fn write_leaf(&self, out: &mut Vec<u8>) {
        write_json(out, self.as_str());
    }
}

impl Leaf for DateTime<Utc> {
    /// As async-graphql's scalar, which is chrono's `to_rfc3339`: RFC 3339 in UTC (`+00:00`), a
    /// fraction of a second in 3, 6 or 9 digits, the fewest that hold it, and none when it is
    /// zero. Written here digit by digit: chrono makes a string for it (its formatter, a string
    /// for the offset's name). Digits, `-`, `:`, `.`, `T` and `+`: nothing to escape.
    fn write_leaf(&self, out: &mut Vec<u8>) {
        // Read once as UTC's own date and time: each of `DateTime`'s readers converts to the
        // local time first (no change in UTC, but a call each).
        let at = self.naive_utc();
        let year = at.year();
        if !(0..=9999).contains(&year) {
            // A signed year of five digits or more: never met, chrono's own text.
            write_json(out, &self.to_rfc3339());
            return;
        }
        // A leap second is the 60th second, its nanoseconds past a billion.
        let (second, nanos) = match at.nanosecond().checked_sub(1_000_000_000) {
            Some(nanos) => (at.second() + 1, nanos),
            None => (at.second(), at.nanosecond()),
        };
        out.reserve(b"\"2026-12-01T00:00:00.123456789+00:00\"".len());
        out.push(b'"');
        push_digits(out, year as u32, 4);
        out.push(b'-');
        push_digits(out, at.month(), 2);
        out.push(b'-');
        push_digits(out, at.day(), 2);
        out.push(b'T');
        push_digits(out, at.hour(), 2);
        out.push(b':');
        push_digits(out, at.minute(), 2);
        out.push(b':');
        push_digits(out, second, 2);
        if nanos != 0 {
            out.push(b'.');
            if nanos.is_multiple_of(1_000_000) {
                push_digits(out, nanos / 1_000_000, 3);
            } else if nanos.is_multiple_of(1_000) {
                push_digits(out, nanos / 1_000, 6);
            } else {
                push_digits(out, nanos, 9);
            }
        }
        out.extend_from_slice(b"+00:00\"");
    }
}

/// Appends the last `width` decimal digits of `value`, zeros first.
fn push_digits(out: &mut Vec<u8>, value: u32, width: u32) {
    let mut place = 10u32.pow(width - 1);
    while place > 0 {
        out.push(b'0' + (value / place % 10) as u8);
        place /= 10;
    }
}

/// Writes an enum's value as its name in the schema, as async-graphql's `enum_value` makes it.
pub(crate) fn write_enum<T: EnumType>(value: T, out: &mut Vec<u8>) {
    match T::items().iter().find(|item| item.value == value) {
        Some(item) => write_json(out, item.name),
        // Every value of a derived enum has an item (async-graphql panics without one).
        None => out.extend_from_slice(b"null"),
    }
}

/// Implements [`Leaf`] for enum types of the schema (`#[derive(Enum)]`).
macro_rules! enum_leaves {
    ($($enum:ty),* $(,)?) => {
        $(impl $crate::written::Leaf for $enum {
            fn write_leaf(&self, out: &mut Vec<u8>) {
                $crate::written::write_enum(*self, out);
            }
        })*
    };
}
pub(crate) use enum_leaves;

/// Turns the written objects of `value` (itself, or the items of a list) back into maps: for a
/// key asked twice, whose selections are merged as maps. Rare: only then is JSON parsed again.
/// A float may come back a last digit off (serde_json without `float_roundtrip`), so the
/// gateway never needs this: it does not mark a request that merges objects.
pub(crate) fn unwrite(value: &mut Value) {
    match value {
        Value::Binary(written) => match serde_json::from_slice::<Value>(written) {
            Ok(object) => *value = object,
            Err(error) => tracing::error!(%error, "a written object does not parse"),
        },
        Value::List(items) => items.iter_mut().for_each(unwrite),
        _ => {}
    }
}

/// About how many bytes `value` takes as JSON, to size an object's buffer once.
fn estimated_size(value: &Value) -> usize {
    match value {
        Value::Null => 4,
        Value::Boolean(_) => 5,
        Value::Number(_) => 12,
        Value::String(text) => text.len() + 2,
        Value::Enum(name) => name.len() + 2,
        Value::Binary(written) => written.len(),
        Value::List(items) => 2 + items.iter().map(|item| estimated_size(item) + 1).sum::<usize>(),
        Value::Object(_) => 0,
    }
}

/// Writes `data`, a response's data, as JSON into `out`: a written object as it was written,
/// everything else as `serde_json` serializes async-graphql's values.
pub fn write_data(out: &mut Vec<u8>, data: &Value) -> serde_json::Result<()> {
    write_value(out, data, true).map(|_| ())
}

/// Writes `value` as JSON into `out`: a written object as it was written, a leaf as `serde_json`
/// serializes async-graphql's values, and an object map likewise when `maps`. Without `maps`,
/// `Ok(false)` at the first map, `out` then holding part of `value`.
fn write_value(out: &mut Vec<u8>, value: &Value, maps: bool) -> serde_json::Result<bool> {
    match value {
        Value::Binary(written) => out.extend_from_slice(written),
        Value::List(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                if !write_value(out, item, maps)? {
                    return Ok(false);
                }
            }
            out.push(b']');
        }
        Value::Object(_) if !maps => return Ok(false),
        Value::Object(object) => {
            out.push(b'{');
            for (index, (key, value)) in object.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key.as_str())?;
                out.push(b':');
                write_value(out, value, maps)?;
            }
            out.push(b'}');
        }
        leaf => serde_json::to_writer(&mut *out, leaf)?,
    }
    Ok(true)
}
