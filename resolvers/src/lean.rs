//! [`Lean`]: an object type resolved without async-graphql's per-field machinery.
//!
//! async-graphql resolves every object by boxing a future per selected field and driving them
//! through a fresh `FuturesUnordered` (an `Arc`ed task, a waker registration and a release per
//! field), then inserting each value with two lookups of its key. A page of 50 templates with
//! their authors and stats is about 200 objects and 750 fields, and that machinery was about a
//! tenth of the gateway's CPU per request in profiles. [`Lean`] resolves the same selection with
//! the same object's own field resolvers: a field ready on its first poll needs no box of its own
//! and no task, only the waiting ones are kept and polled again, and the response map is sized
//! once and filled in the selection's order: the same values, errors and paths.
//!
//! A type may also list its plain fields ([`PlainFields`], with [`plain_fields!`]): those that
//! read the object's own data, take no argument and never wait. [`Lean`] calls their resolver
//! methods directly, with no future of the generated `resolve_field`: that future is sized for
//! the type's largest field (872 bytes for a template) and was written into a box for every
//! field, so a page of templates moved hundreds of kilobytes per request just to start fields
//! that were ready at once. In a request whose objects are written as JSON (`crate::written`),
//! an object whose every selected field is plain (an author's id and name) or has its value at
//! hand (a template's author and stats once its page prefetched them, an edge's template) is
//! written whole as it starts, with the objects in it: no list of its fields, no outcomes, no
//! future of its own, one buffer (`write_whole`).
//!
//! It applies only on the schema without extensions ([`ExtensionFree`]): with an extension,
//! each field must pass through its `resolve` hook, which only async-graphql's own container
//! calls, so there it resolves as any object does.

use std::any::TypeId;
use std::borrow::Cow;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;

use async_graphql::indexmap::IndexMap;
use async_graphql::indexmap::map::Entry;
use async_graphql::parser::types::{Field, Selection};
use async_graphql::registry::Registry;
use async_graphql::resolver_utils::{resolve_container, resolve_list};
use async_graphql::{
    ContainerType, Context, ContextSelectionSet, Name, OutputType, Positioned, ServerResult, Value,
};

use crate::written::{Leaf, ObjectText, WrittenObjects, push_key, unwrite};

/// Marks the schema that has no extension at all, where [`Lean`] objects take their lean path.
pub(crate) struct ExtensionFree;

/// Whether `ctx`'s schema is the one without extensions, where lean objects and lists take
/// their lean path.
fn extension_free(ctx: &ContextSelectionSet<'_>) -> bool {
    ctx.schema_env.data.contains_key(&TypeId::of::<ExtensionFree>())
}

/// An object type `T`, the same type in the schema, resolved leanly (see the module's doc).
pub(crate) struct Lean<T>(pub(crate) T);

/// Fields of an object type that are plain data: read from the object itself, taking no argument
/// and never waiting. [`Lean`] answers them with the type's own resolver methods, called
/// directly, rather than through the generated `resolve_field`, whose future is sized for the
/// type's largest field (hundreds of bytes, written into a box for every field). Implemented
/// with [`plain_fields!`].
///
/// A field listed must have no effect but its value: should its resolver wait after all, its
/// future is dropped and the generated resolver runs it again.
pub(crate) trait PlainFields {
    /// The plain fields' names in the schema, for a test to check them against it.
    #[cfg(test)]
    const NAMES: &'static [&'static str];

    /// Whether the field named `name` is one of the type's plain fields.
    fn is_plain(name: &str) -> bool;

    /// The value of the plain field `field` of this object, or `None` when it is not one
    /// (its name is not in the type's list, or its resolver did not answer on the first poll).
    fn plain_field(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> Option<ServerResult<Value>>;

    /// Writes the value of the plain field `field` of this object as JSON at the end of `out`
    /// (`crate::written`); `false`, with nothing written, when it is not one.
    fn write_plain_field(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
        out: &mut Vec<u8>,
    ) -> bool;

    /// The names of the fields written whole when what they read is at hand, for a test to
    /// check them against the schema.
    #[cfg(test)]
    const AT_HAND: &'static [&'static str];

    /// Whether the field named `name` is one that an object written whole may write when what it
    /// reads is at hand ([`Self::write_at_hand`]): its object, found on the object itself, or a
    /// value a page's prefetch has loaded. It may take arguments.
    fn is_at_hand(name: &str) -> bool;

    /// Writes the field `field` of this object into `whole` if its value is at hand: its
    /// resolver's answer, with nothing to wait for, the objects in it written whole too.
    /// `false` when it is not (not loaded yet, a failure, an object that cannot be written
    /// whole): the object is then resolved field by field, and what was written is dropped, so
    /// nothing may have an effect before the object is complete but what `whole` defers.
    fn write_at_hand(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
        whole: &mut Whole,
    ) -> bool;
}

/// Implements [`PlainFields`] for an object type: each field's name in the schema and the
/// resolver method that answers it, the one `#[Object]` was given (which its expansion has made
/// take a `&Context` and return a `Result`), so both paths run the same code. A type with no
/// plain field lists none.
///
/// Fields written whole when what they read is at hand follow, with `at hand`, each with its
/// writer: a method taking the field's context and the [`Whole`] it writes into
/// (`PlainFields::write_at_hand`).
macro_rules! plain_fields {
    (
        $object:ty { $($name:literal => $method:ident),* $(,)? }
        $(at hand { $($at_hand:literal => $writer:ident),* $(,)? })?
    ) => {
        impl $crate::lean::PlainFields for $object {
            #[cfg(test)]
            const NAMES: &'static [&'static str] = &[$($name),*];

            #[cfg(test)]
            const AT_HAND: &'static [&'static str] = &[$($($at_hand),*)?];

            fn is_at_hand(name: &str) -> bool {
                match name {
                    $($($at_hand => true,)*)?
                    _ => false,
                }
            }

            fn write_at_hand(
                &self,
                ctx: &async_graphql::ContextSelectionSet<'_>,
                field: &async_graphql::Positioned<async_graphql::parser::types::Field>,
                whole: &mut $crate::lean::Whole,
            ) -> bool {
                match field.node.name.node.as_str() {
                    $($($at_hand => self.$writer(&ctx.with_field(field), whole),)*)?
                    _ => {
                        let _ = (ctx, whole);
                        false
                    }
                }
            }

            fn is_plain(name: &str) -> bool {
                match name {
                    $($name => true,)*
                    _ => false,
                }
            }

            fn plain_field(
                &self,
                ctx: &async_graphql::ContextSelectionSet<'_>,
                field: &async_graphql::Positioned<async_graphql::parser::types::Field>,
            ) -> Option<async_graphql::ServerResult<async_graphql::Value>> {
                match field.node.name.node.as_str() {
                    $($name => {
                        let ctx_field = ctx.with_field(field);
                        $crate::lean::plain(&ctx_field, self.$method(&ctx_field))
                    })*
                    _ => {
                        let _ = ctx;
                        None
                    }
                }
            }

            fn write_plain_field(
                &self,
                ctx: &async_graphql::ContextSelectionSet<'_>,
                field: &async_graphql::Positioned<async_graphql::parser::types::Field>,
                out: &mut Vec<u8>,
            ) -> bool {
                match field.node.name.node.as_str() {
                    $($name => $crate::lean::write_plain(self.$method(&ctx.with_field(field)), out),)*
                    _ => {
                        let _ = (ctx, out);
                        false
                    }
                }
            }
        }
    };
}
pub(crate) use plain_fields;

/// A plain field's value: its resolver's future (`method`) polled once, and the value it gives
/// completed as async-graphql's generated resolver completes it. `None` if either waits or the
/// resolver fails: the generated resolver then answers the field, error and all.
pub(crate) fn plain<V: OutputType>(
    ctx: &Context<'_>,
    method: impl Future<Output = async_graphql::Result<V>>,
) -> Option<ServerResult<Value>> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let Poll::Ready(Ok(value)) = std::pin::pin!(method).poll(&mut cx) else {
        return None;
    };
    let ctx_object = ctx.with_selection_set(&ctx.item.node.selection_set);
    match std::pin::pin!(value.resolve(&ctx_object, ctx.item)).poll(&mut cx) {
        Poll::Ready(value) => Some(value),
        Poll::Pending => None,
    }
}

/// A plain field written: its resolver's future (`method`) polled once, and the leaf it gives
/// written at the end of `out`. `false`, with nothing written, if it waits or fails.
pub(crate) fn write_plain<V: Leaf>(
    method: impl Future<Output = async_graphql::Result<V>>,
    out: &mut Vec<u8>,
) -> bool {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let Poll::Ready(Ok(value)) = std::pin::pin!(method).poll(&mut cx) else {
        return false;
    };
    value.write_leaf(out);
    true
}

/// Room for this many fields before an object's list of selected fields grows.
const FEW_FIELDS: usize = 8;

impl<T: ContainerType + PlainFields> OutputType for Lean<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn qualified_type_name() -> String {
        T::qualified_type_name()
    }

    fn introspection_type_name(&self) -> Cow<'static, str> {
        self.0.introspection_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        _field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        // The fallbacks are boxed: a field holding this object's future would otherwise be sized
        // for async-graphql's container as well as for the lean path.
        if !extension_free(ctx) {
            return Box::pin(resolve_container(ctx, &self.0)).await;
        }
        let written = ctx.data_opt::<WrittenObjects>();
        if written.is_some_and(WrittenObjects::keys_unique)
            && let Some(json) = write_whole(ctx, &self.0)
        {
            return Ok(Value::Binary(json));
        }
        // A fragment spread is one item for several fields: room for a few at once, rather than
        // growing twice for an object selected through one fragment.
        let mut fields = Vec::with_capacity(ctx.item.node.items.len().max(FEW_FIELDS));
        if !collect_fields::<T>(ctx, &ctx.item.node.items, &mut fields) {
            // A custom directive on a field, or a fragment that is not there (validation
            // refuses it first): async-graphql's own container applies or reports them.
            return Box::pin(resolve_container(ctx, &self.0)).await;
        }
        // Boxed as one type for every object type: a field's future holds its object's only
        // through this box, so an object may hold objects of its own type, and the fields of an
        // object are sized for their own work, not for every object below them.
        let object: Pin<Box<dyn Future<Output = Value> + Send + '_>> =
            Box::pin(resolve_object(ctx, fields, &self.0, written));
        Ok(object.await)
    }
}

/// A list resolved without async-graphql's per-item machinery: its items start one after
/// another and those ready on their first poll need no box of their own and no task, as an
/// object's fields in [`resolve_fields`]; only the waiting ones are kept and polled again.
/// async-graphql's `resolve_list` gives every item a task in a `FuturesOrdered` (an `Arc`ed
/// allocation and a waker each) and moves a future of about 200 bytes into it. Same values,
/// errors and paths: the first failure fails the list, with the item's index in its path. On a
/// schema with extensions it is async-graphql's list, as [`Lean`] objects are its containers.
pub(crate) struct LeanList<L>(pub(crate) L);

/// What a [`LeanList`] holds: its items, in order.
pub(crate) trait ListItems {
    type Item: WholeItem;
    fn items(&self) -> &[Self::Item];
}

impl<T: WholeItem> ListItems for Vec<T> {
    type Item = T;
    fn items(&self) -> &[T] {
        self
    }
}

impl<T: WholeItem> ListItems for &[T] {
    type Item = T;
    fn items(&self) -> &[T] {
        self
    }
}

/// An item of a [`LeanList`], which the list may write whole with the others: a page of edges
/// in one buffer, where each written on its own was a buffer, a copy and a value of its own.
pub(crate) trait WholeItem: OutputType {
    /// How many fields `ctx` selects of each item, when every one may be written whole
    /// ([`writable_fields`]); `None` when not, or for items that are never written whole.
    fn whole_fields(_ctx: &ContextSelectionSet<'_>) -> Option<usize> {
        None
    }

    /// Writes this item whole into `whole` (see [`write_whole`]); `false` when it cannot be.
    fn write_item(&self, _ctx: &ContextSelectionSet<'_>, _whole: &mut Whole) -> bool {
        false
    }
}

impl<T: ContainerType + PlainFields> WholeItem for Lean<T> {
    fn whole_fields(ctx: &ContextSelectionSet<'_>) -> Option<usize> {
        writable_fields::<T>(ctx)
    }

    fn write_item(&self, ctx: &ContextSelectionSet<'_>, whole: &mut Whole) -> bool {
        whole.fields(ctx, &self.0)
    }
}

impl<T: WholeItem + Sync> WholeItem for &T {
    fn whole_fields(ctx: &ContextSelectionSet<'_>) -> Option<usize> {
        T::whole_fields(ctx)
    }

    fn write_item(&self, ctx: &ContextSelectionSet<'_>, whole: &mut Whole) -> bool {
        (**self).write_item(ctx, whole)
    }
}

impl<L: ListItems + Send + Sync> OutputType for LeanList<L> {
    fn type_name() -> Cow<'static, str> {
        <Vec<L::Item> as OutputType>::type_name()
    }

    fn qualified_type_name() -> String {
        <Vec<L::Item> as OutputType>::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        <Vec<L::Item> as OutputType>::create_type_info(registry)
    }

    async fn resolve(&self, ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> ServerResult<Value> {
        let items = self.0.items();
        if !extension_free(ctx) {
            return Box::pin(resolve_list(ctx, field, items, Some(items.len()))).await;
        }
        if !items.is_empty()
            && ctx.data_opt::<WrittenObjects>().is_some_and(WrittenObjects::keys_unique)
            && let Some(fields) = L::Item::whole_fields(ctx)
            && let Some(json) = write_whole_list(ctx, items, fields)
        {
            return Ok(Value::Binary(json));
        }
        resolve_items(ctx, field, items).await
    }
}

/// The items of a list, resolved side by side; see [`LeanList`].
async fn resolve_items<'a, T: OutputType>(
    ctx: &'a ContextSelectionSet<'a>,
    field: &'a Positioned<Field>,
    items: &'a [T],
) -> ServerResult<Value> {
    let mut values = Vec::with_capacity(items.len());
    let mut waiting = Vec::new();
    let mut spare = None;
    for (index, item) in items.iter().enumerate() {
        let mut slot = boxed(&mut spare, resolve_item(ctx.with_index(index), field, item));
        match poll_fn(|cx| Poll::Ready(slot.as_mut().poll(cx))).await {
            Poll::Ready(value) => {
                values.push(value?);
                spare = Some(slot);
            }
            Poll::Pending => {
                values.push(Value::Null);
                waiting.push((index, slot));
            }
        }
    }
    drop(spare);
    let mut failed = None;
    wait_all(waiting, |index, value| match value {
        Ok(value) => {
            values[index] = value;
            true
        }
        Err(error) => {
            failed.get_or_insert(error);
            false
        }
    })
    .await;
    match failed {
        Some(error) => Err(error),
        None => Ok(Value::List(values)),
    }
}

/// Polls `waiting` (each at its index) until every one is done, handing each output to `done`;
/// `done` answering `false` ends the wait once the pass that met it is over, the rest dropped.
/// Each has just been polled and arranged its wake-up, within this same poll of the task, so the
/// first pass need not poll it again.
async fn wait_all<F: Future>(
    mut waiting: Vec<(usize, Pin<Box<F>>)>,
    mut done: impl FnMut(usize, F::Output) -> bool,
) {
    let mut just_polled = true;
    let mut stop = false;
    poll_fn(|cx| {
        if std::mem::take(&mut just_polled) && !waiting.is_empty() {
            return Poll::Pending;
        }
        waiting.retain_mut(|(index, slot)| match slot.as_mut().poll(cx) {
            Poll::Ready(output) => {
                stop |= !done(*index, output);
                false
            }
            Poll::Pending => true,
        });
        if stop || waiting.is_empty() { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
}

/// `future` in a box: `spare`, the box of a future that was ready as it started, or a new one.
fn boxed<F: Future>(spare: &mut Option<Pin<Box<F>>>, future: F) -> Pin<Box<F>> {
    match spare.take() {
        Some(mut slot) => {
            Pin::set(&mut slot, future);
            slot
        }
        None => Box::pin(future),
    }
}

/// One item of a list, at its index (`ctx`); its error carries its path, as async-graphql's.
async fn resolve_item<'a, T: OutputType>(
    ctx: ContextSelectionSet<'a>,
    field: &'a Positioned<Field>,
    item: &'a T,
) -> ServerResult<Value> {
    item.resolve(&ctx, field).await.map_err(|error| ctx.set_error_path(error))
}

/// The object `root`: its `fields`, resolved side by side, under their response keys; written
/// as JSON when the request is marked `written` and it can be (`crate::written`).
async fn resolve_object<'a, T: ContainerType + PlainFields>(
    ctx: &ContextSelectionSet<'a>,
    fields: Vec<&'a Positioned<Field>>,
    root: &'a T,
    written: Option<&WrittenObjects>,
) -> Value {
    // A key selected twice merges its selections, as maps; an object without fields is null.
    let write = written.is_some_and(|written| written.keys_unique() || !repeats_a_key(&fields));
    let mut text = (write && !fields.is_empty()).then(|| ObjectText::new(fields.len()));
    let outcomes = resolve_fields(ctx, &fields, root, &mut text).await;
    if let Some(text) = text {
        let values = outcomes.iter().filter_map(|outcome| match outcome {
            Outcome::Resolved { at, outcome: Ok((_, value)), written: false } => Some(Some((*at, value))),
            Outcome::Resolved { outcome: Err(_), .. } | Outcome::Waiting { .. } => Some(None),
            Outcome::Resolved { written: true, .. } | Outcome::Written => None,
        });
        if let Some(json) = text.finish(values) {
            return Value::Binary(json);
        }
    }
    // Boxed: rare, and with its own awaits it would be the largest state of this future, which
    // is copied whole into its box for every object.
    Box::pin(into_map(ctx, &fields, outcomes, root)).await
}

/// The object `root` as a map of its `fields`' `outcomes`, errors recorded in `ctx`.
async fn into_map<'a, T: ContainerType>(
    ctx: &ContextSelectionSet<'a>,
    fields: &[&'a Positioned<Field>],
    outcomes: Vec<Outcome>,
    root: &'a T,
) -> Value {
    let mut object = IndexMap::with_capacity(outcomes.len());
    for (field, outcome) in fields.iter().zip(outcomes) {
        let outcome = match outcome {
            Outcome::Resolved { outcome, .. } => outcome,
            // The object stays a map after all (a field beside it failed): a leaf written as
            // text is asked of the generated resolver as a value. (Parsing the text back would
            // not do: serde_json does not read every float back as it wrote it.)
            Outcome::Written => resolve_field(ctx, field, root).await,
            Outcome::Waiting { .. } => continue,
        };
        match outcome {
            Ok((name, value)) => merge_field(&mut object, name, value),
            // As async-graphql's container does: the error is recorded and the field left out;
            // completion (`complete_response`) nulls it and propagates the null.
            Err(error) => ctx.add_error(error),
        }
    }
    if object.is_empty() { Value::Null } else { Value::Object(object) }
}

/// Whether two of `fields` have the same response key.
fn repeats_a_key(fields: &[&Positioned<Field>]) -> bool {
    fields.iter().enumerate().any(|(index, field)| {
        let key = &field.node.response_key().node;
        fields[..index].iter().any(|earlier| earlier.node.response_key().node == *key)
    })
}

/// What became of one selected field of an object.
enum Outcome {
    /// Not answered yet; its value goes at `at` of the object's text, if it is written.
    Waiting { at: usize },
    /// Answered under its response key, or failed; its value goes at `at` of the object's text,
    /// if it is written, and is there already when `written` (it was ready as the field
    /// started; kept for the map should the object stay one).
    Resolved { at: usize, outcome: ServerResult<(Name, Value)>, written: bool },
    /// A plain field written in place in the object's text.
    Written,
}

/// The object `root` written whole as its fields are read, when every field selected is plain
/// ([`PlainFields`]) and answers on its first poll (an author's id and name), or has its value at
/// hand (`PlainFields::write_at_hand`: a template's author and stats once its page prefetched
/// them, an edge's template), the objects in those written whole too: no list of fields, no
/// outcomes, no future of its own to box, and one buffer for the object and every object in
/// it. `None` when a field is neither (a template's draft, whose name says so before anything is
/// written), or fails, waits or is not at hand after all, or the object has no field: what was
/// written is dropped, nothing it deferred takes effect, and the object resolves as any other.
fn write_whole<T: ContainerType + PlainFields>(
    ctx: &ContextSelectionSet<'_>,
    root: &T,
) -> Option<bytes::Bytes> {
    let fields = writable_fields::<T>(ctx)?;
    written_whole(ctx, 2 + fields * 32, |whole| whole.fields(ctx, root))
}

/// The items of a list, each selected by `ctx` with `fields` fields that may be written whole,
/// written whole as one JSON array ([`write_whole`]); `None` when one cannot be, the list then
/// resolved item by item.
fn write_whole_list<T: WholeItem>(
    ctx: &ContextSelectionSet<'_>,
    items: &[T],
    fields: usize,
) -> Option<bytes::Bytes> {
    written_whole(ctx, 2 + items.len() * (3 + fields * 32), |whole| {
        whole.text.push(b'[');
        for (index, item) in items.iter().enumerate() {
            if index > 0 {
                whole.text.push(b',');
            }
            if !item.write_item(&ctx.with_index(index), whole) {
                return false;
            }
        }
        whole.text.push(b']');
        true
    })
}

/// How many fields `ctx` selects of an object of type `T` when each may be written whole: plain
/// ([`PlainFields`], without arguments), at hand (`PlainFields::is_at_hand`) or `__typename`.
/// Read from the names alone, before anything is written. `None` when one may not be, or there
/// is none.
fn writable_fields<T: ContainerType + PlainFields>(ctx: &ContextSelectionSet<'_>) -> Option<usize> {
    let mut fields = 0;
    let writable = each_field::<T>(ctx, &ctx.item.node.items, &mut |field| {
        fields += 1;
        let name = field.node.name.node.as_str();
        name == "__typename" || (field.node.arguments.is_empty() && T::is_plain(name)) || T::is_at_hand(name)
    });
    (writable && fields > 0).then_some(fields)
}

/// What `write` writes into this thread's [`Whole`] (with room for about `size` bytes), copied
/// out at its size, and what it deferred then done; `None`, and nothing done, when it answers
/// `false`.
fn written_whole(
    ctx: &ContextSelectionSet<'_>,
    size: usize,
    write: impl FnOnce(&mut Whole) -> bool,
) -> Option<bytes::Bytes> {
    let mut whole = WHOLE.take();
    whole.text.reserve(size);
    let json = write(&mut whole).then(|| {
        whole.at_hand.commit(ctx);
        bytes::Bytes::copy_from_slice(&whole.text)
    });
    whole.text.clear();
    whole.at_hand.clear();
    if whole.text.capacity() <= WHOLE_TEXT_KEPT {
        WHOLE.set(whole);
    }
    json
}

/// An object being written whole ([`write_whole`]): its JSON so far, and what its fields at
/// hand read of the request and would record (`crate::migrated::AtHand`), recorded once the
/// object is complete.
#[derive(Default)]
pub(crate) struct Whole {
    text: Vec<u8>,
    at_hand: crate::migrated::AtHand,
}

impl Whole {
    /// Writes `null`, the value of a nullable field at hand with nothing in it; `true`.
    pub(crate) fn null(&mut self) -> bool {
        self.text.extend_from_slice(b"null");
        true
    }

    /// What the fields at hand read of the request, and where they defer what they record.
    pub(crate) fn at_hand(&mut self) -> &mut crate::migrated::AtHand {
        &mut self.at_hand
    }

    /// Writes `root`, the value of the field of `ctx`, with that field's selection, whole;
    /// `false` when it cannot be (see [`write_whole`]).
    pub(crate) fn object<T: ContainerType + PlainFields>(&mut self, ctx: &Context<'_>, root: &T) -> bool {
        self.fields(&ctx.with_selection_set(&ctx.item.node.selection_set), root)
    }

    /// Writes `root`'s fields that `ctx` selects as a JSON object; `false`, the text left partly
    /// written, when one cannot be written or there is none.
    fn fields<T: ContainerType + PlainFields>(&mut self, ctx: &ContextSelectionSet<'_>, root: &T) -> bool {
        self.text.push(b'{');
        let first = self.text.len();
        let written = each_field::<T>(ctx, &ctx.item.node.items, &mut |field| {
            let after_another = self.text.len() > first;
            push_key(&mut self.text, field.node.response_key().node.as_str(), after_another);
            let name = field.node.name.node.as_str();
            if name == "__typename" {
                root.introspection_type_name().as_ref().write_leaf(&mut self.text);
                return true;
            }
            (field.node.arguments.is_empty() && root.write_plain_field(ctx, field, &mut self.text))
                || root.write_at_hand(ctx, field, self)
        });
        if !written || self.text.len() == first {
            return false;
        }
        self.text.push(b'}');
        true
    }
}

/// The largest buffer [`WHOLE`] keeps: a page of 100 edges with their templates is about 25
/// KiB; a draft's blocks may be far more, and are not kept.
const WHOLE_TEXT_KEPT: usize = 64 * 1024;

thread_local! {
    /// The buffers the last object written whole on this thread was written in
    /// ([`write_whole`]): each object is written there, then its text copied out at its size. A
    /// `Bytes` made of a buffer with room to spare allocates a second block to count its
    /// references; one of its own size does not.
    static WHOLE: std::cell::Cell<Whole> = const {
        std::cell::Cell::new(Whole { text: Vec::new(), at_hand: crate::migrated::AtHand::new() })
    };
}

/// Gathers the fields `selection` asks of an object of type `T`, through its fragments, in
/// order. `false` when one needs async-graphql's container (see [`Lean`]'s `resolve`).
fn collect_fields<'a, T: ContainerType>(
    ctx: &ContextSelectionSet<'a>,
    selection: &'a [Positioned<Selection>],
    fields: &mut Vec<&'a Positioned<Field>>,
) -> bool {
    each_field::<T>(ctx, selection, &mut |field| {
        fields.push(field);
        true
    })
}

/// Hands `visit` each field `selection` asks of an object of type `T`, through its fragments,
/// in order, until it answers `false`. `false` then, or when a field needs async-graphql's
/// container (see [`Lean`]'s `resolve`).
fn each_field<'a, T: ContainerType>(
    ctx: &ContextSelectionSet<'a>,
    selection: &'a [Positioned<Selection>],
    visit: &mut impl FnMut(&'a Positioned<Field>) -> bool,
) -> bool {
    for item in selection {
        let (condition, selection_set) = match &item.node {
            Selection::Field(field) => {
                if !field.node.directives.is_empty() || !visit(field) {
                    return false;
                }
                continue;
            }
            Selection::FragmentSpread(spread) => {
                let Some(fragment) = ctx.query_env.fragments.get(&spread.node.fragment_name.node) else {
                    return false;
                };
                (Some(&fragment.node.type_condition.node.on.node), &fragment.node.selection_set)
            }
            Selection::InlineFragment(fragment) => (
                fragment.node.type_condition.as_ref().map(|condition| &condition.node.on.node),
                &fragment.node.selection_set,
            ),
        };
        let applies = condition.is_none_or(|condition| {
            let name = T::type_name();
            condition.as_str() == name
                || ctx
                    .schema_env
                    .registry
                    .implements
                    .get(name.as_ref())
                    .is_some_and(|interfaces| interfaces.contains(condition.as_str()))
        });
        if applies && !each_field::<T>(ctx, &selection_set.node.items, visit) {
            return false;
        }
    }
    true
}

/// Resolves `fields` of `root` side by side; their outcomes in the order of `fields`. With
/// `text`, each field's key is written there as the field starts, and its value with it when it
/// is plain or ready; `text` is dropped as soon as the object cannot be written (a field failed,
/// or a value is a map).
///
/// A plain field ([`PlainFields`]) is answered on the spot. Each other field's future lives in
/// a box only while it waits: a field that is ready on its first poll hands its box to the next
/// field, and a waiting field's box is freed as soon as it is done. So an object of seven
/// fields, two of them loading, holds three boxes at most, and two once the others are resolved.
async fn resolve_fields<'a, T: ContainerType + PlainFields>(
    ctx: &ContextSelectionSet<'a>,
    fields: &[&'a Positioned<Field>],
    root: &'a T,
    text: &mut Option<ObjectText>,
) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(fields.len());
    let mut spare = None;
    let mut waiting = Vec::new();
    for (index, field) in fields.iter().enumerate() {
        let plain = field.node.arguments.is_empty();
        let at = match text.as_mut() {
            Some(text) => {
                let at = text.key(field.node.response_key().node.as_str());
                if plain && root.write_plain_field(ctx, field, text.text()) {
                    outcomes.push(Outcome::Written);
                    continue;
                }
                at
            }
            None => {
                if plain && let Some(outcome) = root.plain_field(ctx, field) {
                    let outcome = outcome.map(|value| (field.node.response_key().node.clone(), value));
                    outcomes.push(Outcome::Resolved { at: 0, outcome, written: false });
                    continue;
                }
                0
            }
        };
        let mut slot = boxed(&mut spare, resolve_field(ctx, field, root));
        // Polled once here, with the waker of whoever awaits this object's resolution.
        match poll_fn(|cx| Poll::Ready(slot.as_mut().poll(cx))).await {
            Poll::Ready(outcome) => {
                // Ready as it started: written in place, so that an object whose fields are
                // all ready needs no second buffer.
                let written = match (text.as_mut(), &outcome) {
                    (Some(text), Ok((_, value))) => text.value(value),
                    _ => false,
                };
                if !written {
                    // A failure, or a map among the values: the object stays a map, so its
                    // other fields are answered as values.
                    *text = None;
                }
                outcomes.push(Outcome::Resolved { at, outcome, written });
                spare = Some(slot);
            }
            Poll::Pending => {
                outcomes.push(Outcome::Waiting { at });
                waiting.push((index, slot));
            }
        }
    }
    drop(spare);
    wait_all(waiting, |index, outcome| {
        if let Outcome::Waiting { at } = outcomes[index] {
            outcomes[index] = Outcome::Resolved { at, outcome, written: false };
        }
        true
    })
    .await;
    outcomes
}

/// One selected field of `root`, by its response key. One function for every field, so the
/// object's fields are futures of one type, and a box one has finished with can take the next.
/// It borrows the object's context, and names its key once answered: it is copied whole into
/// its box as it starts, and a copy of the context held across the wait made it a fifth larger.
async fn resolve_field<'a, T: ContainerType>(
    ctx: &ContextSelectionSet<'a>,
    field: &'a Positioned<Field>,
    root: &'a T,
) -> ServerResult<(Name, Value)> {
    let key = || field.node.response_key().node.clone();
    if field.node.name.node == "__typename" {
        return Ok((key(), Value::String(root.introspection_type_name().into_owned())));
    }
    let value = root.resolve_field(&ctx.with_field(field)).await?;
    Ok((key(), value.unwrap_or_default()))
}

/// Puts a field's value under its response key; a key selected twice (through two fragments)
/// has its sub-selections merged, as async-graphql does, written objects read back as maps.
fn merge_field(object: &mut IndexMap<Name, Value>, key: Name, mut value: Value) {
    // One hash of the key: an insert that finds the key occupied merges instead.
    let earlier = match object.entry(key) {
        Entry::Vacant(entry) => {
            entry.insert(value);
            return;
        }
        Entry::Occupied(entry) => entry.into_mut(),
    };
    unwrite(earlier);
    unwrite(&mut value);
    match (earlier, value) {
        (Value::Object(earlier), Value::Object(later)) => {
            for (key, value) in later {
                merge_field(earlier, key, value);
            }
        }
        (Value::List(earlier), Value::List(later)) => {
            for (earlier, later) in earlier.iter_mut().zip(later) {
                if let (Value::Object(earlier), Value::Object(later)) = (earlier, later) {
                    for (key, value) in later {
                        merge_field(earlier, key, value);
                    }
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use async_graphql::parser::types::Selection;
    use async_graphql::{Context, EmptyMutation, EmptySubscription, Interface, Object, Result, Schema};

    use super::{ExtensionFree, Lean, LeanList, PlainFields};

    /// An object with a field of every kind the lean path meets.
    struct Item(u32);

    #[Object]
    impl Item {
        async fn id(&self) -> u32 {
            self.0
        }

        /// Ready only on its second poll, so it completes after the fields beside it.
        async fn waits(&self) -> u32 {
            tokio::task::yield_now().await;
            self.0 * 10
        }

        async fn fails(&self) -> Result<Option<u32>> {
            Err(format!("item {} has no such value", self.0).into())
        }

        async fn fails_non_null(&self) -> Result<u32> {
            Err("never".into())
        }

        async fn child(&self) -> Lean<Item> {
            Lean(Item(self.0 + 1))
        }

        /// Ready on its second poll; at hand (`Item::write_later`) for items not a multiple of 3.
        async fn later(&self) -> Lean<Item> {
            tokio::task::yield_now().await;
            Lean(Item(self.0 * 2))
        }

        async fn children(&self) -> LeanList<Vec<Lean<Item>>> {
            LeanList((1..=3).map(|i| Lean(Item(self.0 * 100 + i))).collect())
        }

        /// Text that JSON must escape: quotes, a backslash, control characters, and beyond ASCII.
        async fn text(&self) -> String {
            format!("\"{}\" \\ \t\n\u{1} é ✓ 😀 \u{7f}", self.0)
        }

        async fn maybe(&self) -> Option<&str> {
            self.0.is_multiple_of(2).then_some("even")
        }

        async fn ident(&self) -> async_graphql::ID {
            async_graphql::ID(format!("Item:{}", self.0))
        }

        async fn count(&self) -> i32 {
            i32::MIN + self.0 as i32
        }

        async fn flag(&self) -> bool {
            self.0.is_multiple_of(3)
        }

        /// Not finite for some items (async-graphql makes those null), and fractions that
        /// print long.
        async fn ratio(&self) -> f64 {
            match self.0 % 4 {
                0 => f64::NAN,
                1 => f64::INFINITY,
                2 => -0.0,
                _ => 1.0 / f64::from(self.0),
            }
        }

        async fn kind(&self) -> Kind {
            if self.0.is_multiple_of(2) { Kind::Even } else { Kind::OddOne }
        }

        /// Without fractions of a second, with fractions of 3, 6 and 9 digits, and one leap
        /// second (item 39's second is the 59th of its minute).
        async fn at(&self) -> chrono::DateTime<chrono::Utc> {
            let nanos = if self.0 == 39 {
                1_250_000_000
            } else {
                [0, 120_000_000, 123_450_000, 123_456_789][self.0 as usize % 4]
            };
            chrono::DateTime::from_timestamp(1_700_000_000 + i64::from(self.0), nanos).unwrap_or_default()
        }
    }

    #[derive(async_graphql::Enum, Clone, Copy, PartialEq, Eq)]
    enum Kind {
        Even,
        OddOne,
    }

    crate::written::enum_leaves!(Kind);

    // `waits` and the failing fields are listed to exercise the fallbacks: the first waits, the
    // others fail, and the generated resolver answers each.
    super::plain_fields!(Item {
        "id" => id,
        "waits" => waits,
        "fails" => fails,
        "failsNonNull" => fails_non_null,
        "text" => text,
        "maybe" => maybe,
        "ident" => ident,
        "count" => count,
        "flag" => flag,
        "ratio" => ratio,
        "kind" => kind,
        "at" => at,
    } at hand {
        "child" => write_child,
        "later" => write_later,
    });

    /// The item's fields written whole when at hand: its child always, `later` for items not a
    /// multiple of 3 (so a list of items from 1 is written whole up to its third item, then not).
    impl Item {
        fn write_child(&self, ctx: &Context<'_>, whole: &mut super::Whole) -> bool {
            whole.object(ctx, &Item(self.0 + 1))
        }

        fn write_later(&self, ctx: &Context<'_>, whole: &mut super::Whole) -> bool {
            !self.0.is_multiple_of(3) && whole.object(ctx, &Item(self.0 * 2))
        }
    }

    /// What [`PlainFields`] gave for each field selected under `Root.probe`, in order.
    #[derive(Default)]
    struct Probed(Mutex<Vec<String>>);

    #[derive(Interface)]
    #[graphql(field(name = "id", ty = "u32"))]
    enum Thing {
        Item(Item),
    }

    struct Root;

    #[Object]
    impl Root {
        async fn item(&self) -> Lean<Item> {
            Lean(Item(1))
        }

        async fn items(&self) -> LeanList<Vec<Lean<Item>>> {
            LeanList((1..=40).map(|i| Lean(Item(i))).collect())
        }

        async fn thing(&self) -> Thing {
            Thing::Item(Item(7))
        }

        /// An item, and what its plain fields answer to each field selected under this one
        /// (kept in the schema's [`Probed`]).
        async fn probe(&self, ctx: &Context<'_>) -> Lean<Item> {
            let item = Item(5);
            let ctx_object = ctx.with_selection_set(&ctx.item.node.selection_set);
            let answers =
                ctx.item.node.selection_set.node.items.iter().filter_map(|selection| match &selection.node {
                    Selection::Field(field) => Some(match item.plain_field(&ctx_object, field) {
                        None => "generated".to_owned(),
                        Some(Ok(value)) => value.to_string(),
                        Some(Err(error)) => error.message,
                    }),
                    _ => None,
                });
            if let Some(probed) = ctx.data_opt::<Arc<Probed>>() {
                probed.0.lock().expect("not poisoned").extend(answers);
            }
            Lean(item)
        }
    }

    type TestSchema = Schema<Root, EmptyMutation, EmptySubscription>;

    /// Lean when `lean`, else resolved by async-graphql's containers (no marker).
    fn schema(lean: bool) -> TestSchema {
        let builder = Schema::build(Root, EmptyMutation, EmptySubscription).register_output_type::<Thing>();
        if lean { builder.data(ExtensionFree).finish() } else { builder.finish() }
    }

    /// `value` with every object's keys sorted: the two paths may insert keys in different
    /// orders (the gateway orders every response afterwards).
    fn sorted(value: serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.into_iter().map(|(key, value)| (key, sorted(value))).collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                serde_json::Value::Object(entries.into_iter().collect())
            }
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.into_iter().map(sorted).collect())
            }
            other => other,
        }
    }

    /// The response as JSON, its objects' keys sorted and its errors sorted by path, then message.
    async fn answer(schema: &TestSchema, query: &str) -> serde_json::Value {
        let response = schema.execute(query).await;
        let mut errors: Vec<serde_json::Value> =
            response.errors.iter().map(|error| serde_json::to_value(error).expect("serializes")).collect();
        errors.sort_by_key(|error| error.to_string());
        serde_json::json!({ "data": sorted(response.data.into_json().expect("JSON data")), "errors": errors })
    }

    #[tokio::test]
    async fn the_marked_schema_takes_the_lean_path_and_the_other_async_graphqls() {
        // async-graphql's container inserts fields as they complete; the lean path in the
        // selection's order. Which order comes back says which path ran.
        let keys = |response: async_graphql::Response| match response.data {
            async_graphql::Value::Object(data) => match &data["item"] {
                async_graphql::Value::Object(item) => item.keys().map(|key| key.to_string()).collect(),
                other => panic!("item: {other:?}"),
            },
            other => panic!("data: {other:?}"),
        };
        let query = "{ item { waits id } }";
        let lean: Vec<String> = keys(schema(true).execute(query).await);
        let container: Vec<String> = keys(schema(false).execute(query).await);
        assert_eq!(lean, ["waits", "id"]);
        assert_eq!(container, ["id", "waits"]);
    }

    #[tokio::test]
    async fn plain_fields_answer_from_their_resolvers_and_leave_the_rest_to_the_generated_ones() {
        let probed = Arc::new(Probed::default());
        let schema = Schema::build(Root, EmptyMutation, EmptySubscription).data(probed.clone()).finish();
        let response = schema.execute("{ probe { id waits fails failsNonNull child { id } } }").await;
        assert_eq!(
            probed.0.lock().expect("not poisoned").as_slice(),
            ["5", "generated", "generated", "generated", "generated"]
        );
        // The fields the plain path left are answered by the generated resolvers, errors included.
        let messages: Vec<&str> = response.errors.iter().map(|error| error.message.as_str()).collect();
        assert_eq!(messages, ["item 5 has no such value", "never"], "{response:?}");
    }

    /// Documents over every kind of field and selection the lean path meets.
    const DOCUMENTS: [&str; 16] = [
        "{ item { id waits child { id waits } } }",
        "{ items { id waits children { id waits children { id } } } }",
        // Aliases, a field asked twice, and an object asked twice with different selections.
        "{ item { a: id b: waits id id child { id } child { waits child { id } } } }",
        "{ items { children { id } children { waits } } }",
        // Fragments: named, inline with and without a condition, on the interface it implements.
        "{ item { ...F ... { waits } ... on Item { child { id } } ... on Thing { thingId: id } } } \
         fragment F on Item { id child { ...G } } fragment G on Item { waits __typename }",
        "{ thing { id ... on Item { waits child { id __typename } } } }",
        "{ item { __typename t: __typename } }",
        // Fragments skipped and included by their directives.
        "{ item { id ...F @skip(if: true) ... @include(if: false) { waits } ... @include(if: true) { child { id } } } } \
         fragment F on Item { fails }",
        // Errors, nullable and not, at several depths and list indexes.
        "{ item { id fails child { fails waits } } }",
        "{ item { id child { failsNonNull id } } items { id fails } }",
        "{ items { children { id failsNonNull } } }",
        // Every kind of leaf, written in place, and read back where a failure keeps a map.
        "{ items { text maybe ident count flag ratio kind at children { at kind ratio text } } }",
        "{ items { text maybe ident count fails flag ratio kind at child { ratio fails text } } }",
        // Lists written whole, and fields at hand for some items and not others, at several
        // depths.
        "{ items { id text kind child { at ratio child { id __typename } } } }",
        "{ items { id later { id text later { id kind } } child { later { at } child { id } } } }",
        "{ items { child { id later { id } waits } later { child { child { ratio } } } } }",
    ];

    #[tokio::test]
    async fn lean_objects_answer_as_async_graphqls_containers() {
        let (lean, container) = (schema(true), schema(false));
        for query in DOCUMENTS {
            let expected = answer(&container, query).await;
            assert_eq!(answer(&lean, query).await, expected, "{query}");
            assert!(expected["data"].is_object(), "{query}: {expected}");
        }
    }

    /// An `Int` whose resolution fails for even numbers, after yielding once when `late`. Lean
    /// objects never fail (they record their fields' errors and answer), so a list item that
    /// fails is one of another output type: this one.
    struct Failing {
        number: u32,
        late: bool,
    }

    impl async_graphql::OutputType for Failing {
        fn type_name() -> std::borrow::Cow<'static, str> {
            <i32 as async_graphql::OutputType>::type_name()
        }

        fn create_type_info(registry: &mut async_graphql::registry::Registry) -> String {
            <i32 as async_graphql::OutputType>::create_type_info(registry)
        }

        async fn resolve(
            &self,
            _: &async_graphql::ContextSelectionSet<'_>,
            _: &async_graphql::Positioned<async_graphql::parser::types::Field>,
        ) -> async_graphql::ServerResult<async_graphql::Value> {
            if self.late {
                tokio::task::yield_now().await;
            }
            if self.number.is_multiple_of(2) {
                return Err(async_graphql::ServerError::new(format!("{} is even", self.number), None));
            }
            Ok(async_graphql::Value::from(self.number))
        }
    }

    impl super::WholeItem for Failing {}

    struct FailingRoot;

    #[Object]
    impl FailingRoot {
        /// Items 2 and 4 fail as they start.
        async fn at_once(&self) -> LeanList<Vec<Failing>> {
            LeanList((1..=5).map(|number| Failing { number, late: false }).collect())
        }

        /// Every item waits; items 2 and 4 then fail.
        async fn late(&self) -> Option<LeanList<Vec<Failing>>> {
            Some(LeanList((1..=5).map(|number| Failing { number, late: true }).collect()))
        }

        /// Every item waits and none fails.
        async fn fine(&self) -> LeanList<Vec<Failing>> {
            LeanList([1, 3, 5].map(|number| Failing { number, late: true }).into())
        }
    }

    /// A lean list whose item fails fails as async-graphql's `resolve_list` does: with the first
    /// failure, the item's index in its path.
    #[tokio::test]
    async fn a_lean_lists_failing_item_fails_it_with_the_items_index_in_its_path() {
        let lean = Schema::build(FailingRoot, EmptyMutation, EmptySubscription).data(ExtensionFree).finish();
        let container = Schema::build(FailingRoot, EmptyMutation, EmptySubscription).finish();
        for (query, failed) in [("{ atOnce fine }", "atOnce"), ("{ late fine }", "late")] {
            let (expected, answered) = (container.execute(query).await, lean.execute(query).await);
            assert_eq!(answered.data, expected.data, "{query}");
            assert_eq!(answered.errors, expected.errors, "{query}");
            let [error] = expected.errors.as_slice() else { panic!("{query}: {expected:?}") };
            assert_eq!(error.message, "2 is even", "{query}");
            assert_eq!(
                error.path,
                [async_graphql::PathSegment::Field(failed.to_owned()), async_graphql::PathSegment::Index(1)],
                "{query}"
            );
            let fine = async_graphql::Value::List([1, 3, 5].map(async_graphql::Value::from).into());
            let async_graphql::Value::Object(data) = &answered.data else { panic!("{query}: {answered:?}") };
            assert_eq!(data.get("fine"), Some(&fine), "{query}");
        }
    }

    #[tokio::test]
    async fn objects_written_as_they_resolve_render_as_their_maps_and_hold_no_failure() {
        use async_graphql::{PathSegment, Request, Value};

        use crate::written::{WrittenObjects, write_data};

        /// How many objects of `value` were written.
        fn written(value: &Value) -> usize {
            match value {
                Value::Binary(_) => 1,
                Value::List(items) => items.iter().map(written).sum(),
                Value::Object(object) => object.values().map(written).sum(),
                _ => 0,
            }
        }
        let lean = schema(true);
        let mut written_in_all = 0;
        // As the gateway marks them: a document that asks no key twice in one object with
        // unique keys, where an object whose fields are all plain is written at once; every
        // document also checking its keys, where none is. The third, fourth and fifth ask a key
        // twice (`id`, `children`, and `child` through two fragments).
        let marks = DOCUMENTS.iter().enumerate().flat_map(|(index, query)| {
            let unique = (!matches!(index, 2..=4)).then(WrittenObjects::with_unique_keys);
            [Some(WrittenObjects::checking_keys()), unique]
                .into_iter()
                .flatten()
                .map(move |mark| (*query, mark))
        });
        for (query, mark) in marks {
            let maps = lean.execute(query).await;
            let response = lean.execute(Request::new(query).data(mark)).await;
            let mut bytes = Vec::new();
            write_data(&mut bytes, &response.data).expect("writes");
            let expected = serde_json::to_vec(&maps.data).expect("serializes");
            assert_eq!(String::from_utf8_lossy(&bytes), String::from_utf8_lossy(&expected), "{query}");
            assert_eq!(response.errors, maps.errors, "{query}");
            // Completion and ordering walk errors' paths and objects' keys after execution:
            // none may lead into a written object.
            for error in &response.errors {
                let mut at = &response.data;
                for segment in &error.path {
                    assert!(
                        !matches!(at, Value::Binary(_)),
                        "{query}: {:?} passes a written object",
                        error.path
                    );
                    at = match (segment, at) {
                        (PathSegment::Field(key), Value::Object(object)) => match object.get(key.as_str()) {
                            Some(value) => value,
                            None => break,
                        },
                        (PathSegment::Index(index), Value::List(items)) => &items[*index],
                        _ => break,
                    };
                }
            }
            written_in_all += written(&response.data);
            assert_eq!(written(&maps.data), 0, "{query}: written unasked");
        }
        assert!(written_in_all >= 40, "{written_in_all} objects written");
    }

    #[test]
    fn every_plain_field_listed_is_a_leaf_without_arguments_of_its_type() {
        use crate::types::{
            BlockObject, DraftObject, EmailEventConnection, EmailEventObject, MemberObject, TemplateEdge,
            TemplateObject, TemplateStatsObject, UserObject, WorkspaceObject,
        };
        use async_graphql::OutputType;
        use async_graphql::registry::{MetaType, MetaTypeName};

        let registry = crate::type_registry();
        let lists: [(std::borrow::Cow<'static, str>, &[&str]); 10] = [
            (TemplateObject::type_name(), TemplateObject::NAMES),
            (UserObject::type_name(), UserObject::NAMES),
            (WorkspaceObject::type_name(), WorkspaceObject::NAMES),
            (MemberObject::type_name(), MemberObject::NAMES),
            (TemplateStatsObject::type_name(), TemplateStatsObject::NAMES),
            (DraftObject::type_name(), DraftObject::NAMES),
            (BlockObject::type_name(), BlockObject::NAMES),
            (EmailEventObject::type_name(), EmailEventObject::NAMES),
            (TemplateEdge::type_name(), TemplateEdge::NAMES),
            (EmailEventConnection::type_name(), EmailEventConnection::NAMES),
        ];
        let mut checked = 0;
        for (type_name, names) in lists {
            let ty = registry.types.get(type_name.as_ref()).unwrap_or_else(|| panic!("{type_name}"));
            for name in names {
                let field = ty.field_by_name(name).unwrap_or_else(|| panic!("{type_name} has no {name}"));
                assert!(field.args.is_empty(), "{type_name}.{name} takes arguments");
                let leaf = registry.types.get(MetaTypeName::concrete_typename(&field.ty));
                assert!(
                    matches!(leaf, Some(MetaType::Scalar { .. } | MetaType::Enum { .. })),
                    "{type_name}.{name} is not a leaf"
                );
                checked += 1;
            }
        }
        assert!(checked > 30, "{checked} plain fields checked");
        let at_hand = [
            (TemplateObject::type_name(), TemplateObject::AT_HAND),
            (TemplateEdge::type_name(), TemplateEdge::AT_HAND),
        ];
        for (type_name, names) in at_hand {
            let ty = registry.types.get(type_name.as_ref()).unwrap_or_else(|| panic!("{type_name}"));
            for name in names {
                assert!(ty.field_by_name(name).is_some(), "{type_name} has no {name}");
            }
        }
    }

    #[test]
    fn a_key_asked_twice_merges_its_selections_and_keeps_its_first_place() {
        use async_graphql::indexmap::IndexMap;
        use async_graphql::{Name, Value};
        let object = |entries: &[(&str, Value)]| {
            Value::Object(entries.iter().map(|(key, value)| (Name::new(key), value.clone())).collect())
        };
        let mut merged = IndexMap::new();
        super::merge_field(&mut merged, Name::new("a"), object(&[("x", Value::from(1))]));
        super::merge_field(&mut merged, Name::new("b"), Value::from(2));
        super::merge_field(
            &mut merged,
            Name::new("a"),
            object(&[("y", Value::from(3)), ("x", Value::from(9))]),
        );
        super::merge_field(&mut merged, Name::new("b"), Value::from(4));
        super::merge_field(
            &mut merged,
            Name::new("c"),
            Value::List(vec![object(&[("p", Value::from(5))]), object(&[("p", Value::from(6))])]),
        );
        super::merge_field(
            &mut merged,
            Name::new("c"),
            Value::List(vec![object(&[("q", Value::from(7))]), object(&[("q", Value::from(8))])]),
        );
        assert_eq!(
            Value::Object(merged).into_json().expect("JSON").to_string(),
            r#"{"a":{"x":1,"y":3},"b":2,"c":[{"p":5,"q":7},{"p":6,"q":8}]}"#
        );
    }
}
