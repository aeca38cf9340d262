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
//! A key selected twice has its objects merged: a lean object reads written ones back as maps
//! for that (rare), but async-graphql's containers merge maps only, so the gateway does not mark
//! a request whose operation selects a key twice with a selection set.
//!
//! `Value::Binary` stands for written JSON only in a request marked [`WrittenObjects`]: no output
//! type of the schema yields one (async-graphql makes them for uploads, an input), and only the
//! gateway's HTTP transport, which renders the data with [`write_data`], marks its requests.

use async_graphql::{Name, ServerResult, Value};

/// Marks a request (its data) whose response [`write_data`] renders: its lean objects are
/// written as they resolve.
pub struct WrittenObjects;

/// The object of `fields` (response key and value, in order) as JSON, or `None` when it must
/// stay a map: a field failed or is missing, a key is there twice (its selections merge), or a
/// value is an object map (it may hold a failure) or a list holding one.
pub(crate) fn write_object(fields: &[Option<ServerResult<(Name, Value)>>]) -> Option<bytes::Bytes> {
    let mut size = 2;
    for (index, field) in fields.iter().enumerate() {
        let Some(Ok((key, value))) = field else { return None };
        // Keys asked twice are rare, and few fields have keys of the same length.
        let repeated =
            fields[..index].iter().any(|earlier| matches!(earlier, Some(Ok((earlier, _))) if earlier == key));
        if repeated {
            return None;
        }
        size += key.len() + 4 + estimated_size(value);
    }
    if fields.is_empty() {
        // async-graphql makes an object without fields `null`; the map path does as it does.
        return None;
    }
    let mut json = Vec::with_capacity(size);
    json.push(b'{');
    for (index, (key, value)) in fields.iter().flatten().flatten().enumerate() {
        if index > 0 {
            json.push(b',');
        }
        // A response key is a GraphQL name (`[_A-Za-z][_0-9A-Za-z]*`): nothing to escape.
        json.push(b'"');
        json.extend_from_slice(key.as_bytes());
        json.extend_from_slice(b"\":");
        // Into a `Vec`, serializing cannot fail; a map keeps the object a map.
        if !matches!(write_value(&mut json, value, false), Ok(true)) {
            return None;
        }
    }
    json.push(b'}');
    Some(bytes::Bytes::from(json))
}

/// Turns the written objects of `value` (itself, or the items of a list) back into maps: for a
/// key asked twice, whose selections are merged as maps. Rare: only then is JSON parsed again.
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
