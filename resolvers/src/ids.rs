//! Relay global ids: `base64("Type:key")`, opaque to clients and unique across types.
//!
//! A key the backend makes unique only within a parent carries the parent too: a block's id is
//! `Block:<template>:<block key>` (block keys repeat across drafts), a membership's is
//! `WorkspaceMember:<workspace>:<user>`. A draft is one per template, so its key is the template's.
//! The ids of users, workspaces and templates are the ones Banyan has always issued.

use std::borrow::Cow;
use std::marker::PhantomData;

use async_graphql::parser::types::Field;
use async_graphql::registry::Registry;
use async_graphql::{ContextSelectionSet, Error, ID, OutputType, Positioned, ServerResult, Value};
use banyan_sources::domain::{TemplateId, UserId, WorkspaceId};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::{coded, codes};
use crate::written::Leaf;

/// The node types a global id can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeType {
    User,
    Workspace,
    Template,
    Draft,
    Block,
    WorkspaceMember,
}

impl NodeType {
    /// The start of its ids' plain text: its name and the colon after it.
    fn prefix(self) -> &'static str {
        match self {
            Self::User => "User:",
            Self::Workspace => "Workspace:",
            Self::Template => "Template:",
            Self::Draft => "Draft:",
            Self::Block => "Block:",
            Self::WorkspaceMember => "WorkspaceMember:",
        }
    }

    /// Its name in the schema: its prefix without the colon.
    fn name(self) -> &'static str {
        let prefix = self.prefix();
        &prefix[..prefix.len() - 1]
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "User" => Some(Self::User),
            "Workspace" => Some(Self::Workspace),
            "Template" => Some(Self::Template),
            "Draft" => Some(Self::Draft),
            "Block" => Some(Self::Block),
            "WorkspaceMember" => Some(Self::WorkspaceMember),
            _ => None,
        }
    }
}

/// What a global id names, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GlobalId {
    User(UserId),
    Workspace(WorkspaceId),
    Template(TemplateId),
    /// The draft of this template.
    Draft(TemplateId),
    /// The block with this key in this template's draft.
    Block(TemplateId, String),
    /// This user's membership of this workspace.
    WorkspaceMember(WorkspaceId, UserId),
}

impl GlobalId {
    fn node_type(&self) -> NodeType {
        match self {
            Self::User(_) => NodeType::User,
            Self::Workspace(_) => NodeType::Workspace,
            Self::Template(_) => NodeType::Template,
            Self::Draft(_) => NodeType::Draft,
            Self::Block(..) => NodeType::Block,
            Self::WorkspaceMember(..) => NodeType::WorkspaceMember,
        }
    }

    /// Its opaque form.
    pub(crate) fn encode(&self) -> ID {
        let key = match self {
            Self::User(id) => id.0.to_string(),
            Self::Workspace(id) => id.0.to_string(),
            Self::Template(id) | Self::Draft(id) => id.0.to_string(),
            Self::Block(template, block) => format!("{}:{block}", template.0),
            Self::WorkspaceMember(workspace, user) => format!("{}:{}", workspace.0, user.0),
        };
        ID(STANDARD.encode(format!("{}{key}", self.node_type().prefix())))
    }
}

/// The global id of a node whose key is one number (a user, workspace, template or draft).
pub(crate) fn encode(node: NodeType, key: u64) -> ID {
    NumberedId::node(node, key).encode()
}

/// An opaque token whose plain text is a fixed prefix and a number, `base64("<prefix><key>")`:
/// the global id of a node whose key is one number, or a page's cursor. In the schema, the
/// scalar `Scalar` (`ID` for an id, `String` for a cursor); written into a response's text
/// with no string made of it ([`Leaf`]). A page's ids and cursors were two allocations each
/// (the text, then its base64), some 300 a page.
#[derive(Debug)]
pub(crate) struct NumberedId<Scalar = ID> {
    prefix: &'static str,
    key: u64,
    scalar: PhantomData<fn() -> Scalar>,
}

// Derived, these would ask the same of `Scalar`.
impl<Scalar> Clone for NumberedId<Scalar> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<Scalar> Copy for NumberedId<Scalar> {}

/// A page's cursor that is an offset into its list.
pub(crate) type OffsetCursor = NumberedId<String>;

/// The start of an offset cursor's plain text.
pub(crate) const OFFSET_PREFIX: &str = "offset:";

/// The longest plain text: the longest prefix (`WorkspaceMember:`, 16) and `u64::MAX` (20 digits).
const LONGEST_PLAIN: usize = 36;

impl NumberedId {
    /// The global id of the node of type `node` whose key is `key`.
    pub(crate) fn node(node: NodeType, key: u64) -> Self {
        Self { prefix: node.prefix(), key, scalar: PhantomData }
    }
}

impl OffsetCursor {
    /// The cursor of the item at `offset` in its list.
    pub(crate) fn offset(offset: u64) -> Self {
        Self { prefix: OFFSET_PREFIX, key: offset, scalar: PhantomData }
    }
}

impl<Scalar> NumberedId<Scalar> {
    /// Its base64 text, on the stack, given to `with`.
    fn with_text<R>(&self, with: impl FnOnce(&[u8]) -> R) -> R {
        let mut plain = [0u8; LONGEST_PLAIN];
        let prefix = self.prefix.as_bytes();
        plain[..prefix.len()].copy_from_slice(prefix);
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        let mut rest = self.key;
        loop {
            start -= 1;
            digits[start] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        let end = prefix.len() + digits.len() - start;
        plain[prefix.len()..end].copy_from_slice(&digits[start..]);
        let mut encoded = [0u8; LONGEST_PLAIN.div_ceil(3) * 4];
        match STANDARD.encode_slice(&plain[..end], &mut encoded) {
            Ok(length) => with(&encoded[..length]),
            // Sized for the longest text above, so never; correct all the same.
            Err(_) => with(STANDARD.encode(&plain[..end]).as_bytes()),
        }
    }

    /// Its opaque form.
    pub(crate) fn encode(&self) -> ID {
        ID(self.to_string())
    }
}

/// Its opaque form (the `Node` interface makes an `ID` of it so).
impl<Scalar> std::fmt::Display for NumberedId<Scalar> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // base64 is ASCII.
        self.with_text(|text| f.write_str(&String::from_utf8_lossy(text)))
    }
}

impl<Scalar> Leaf for NumberedId<Scalar> {
    fn write_leaf(&self, out: &mut Vec<u8>) {
        // base64's alphabet needs no escape in a JSON string.
        self.with_text(|text| {
            out.push(b'"');
            out.extend_from_slice(text);
            out.push(b'"');
        });
    }
}

impl<Scalar: OutputType> OutputType for NumberedId<Scalar> {
    fn type_name() -> Cow<'static, str> {
        Scalar::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        Scalar::create_type_info(registry)
    }

    async fn resolve(
        &self,
        _ctx: &ContextSelectionSet<'_>,
        _field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        Ok(Value::String(self.encode().0))
    }
}

/// Any global id, decoded.
pub(crate) fn decode_any(id: &ID) -> Result<GlobalId, Error> {
    let invalid = || coded(codes::BAD_USER_INPUT, format!("{:?} is not a valid id", id.as_str()));
    let bytes = STANDARD.decode(id.as_bytes()).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (type_name, key) = text.split_once(':').ok_or_else(invalid)?;
    let node = NodeType::from_name(type_name).ok_or_else(invalid)?;
    let number = |text: &str| text.parse::<u64>().map_err(|_| invalid());
    Ok(match node {
        NodeType::User => GlobalId::User(UserId(number(key)?)),
        NodeType::Workspace => GlobalId::Workspace(WorkspaceId(number(key)?)),
        NodeType::Template => GlobalId::Template(TemplateId(number(key)?)),
        NodeType::Draft => GlobalId::Draft(TemplateId(number(key)?)),
        NodeType::Block => {
            let (template, block) = key.split_once(':').ok_or_else(invalid)?;
            if block.is_empty() {
                return Err(invalid());
            }
            GlobalId::Block(TemplateId(number(template)?), block.to_owned())
        }
        NodeType::WorkspaceMember => {
            let (workspace, user) = key.split_once(':').ok_or_else(invalid)?;
            GlobalId::WorkspaceMember(WorkspaceId(number(workspace)?), UserId(number(user)?))
        }
    })
}

/// A global id that must name a node of type `expected`.
pub(crate) fn decode_as(id: &ID, expected: NodeType) -> Result<GlobalId, Error> {
    let decoded = decode_any(id)?;
    let node = decoded.node_type();
    if node != expected {
        return Err(coded(
            codes::BAD_USER_INPUT,
            format!("{:?} is the id of a {}, not of a {}", id.as_str(), node.name(), expected.name()),
        ));
    }
    Ok(decoded)
}

/// A global id that must name a node of type `expected` whose key is one number.
pub(crate) fn decode(id: &ID, expected: NodeType) -> Result<u64, Error> {
    match decode_as(id, expected)? {
        GlobalId::User(UserId(key))
        | GlobalId::Workspace(WorkspaceId(key))
        | GlobalId::Template(TemplateId(key))
        | GlobalId::Draft(TemplateId(key)) => Ok(key),
        GlobalId::Block(..) | GlobalId::WorkspaceMember(..) => {
            Err(coded(codes::BAD_USER_INPUT, format!("{:?} is not a valid id", id.as_str())))
        }
    }
}

/// A block's global id, split into its template and its key within the template's draft.
pub(crate) fn decode_block(id: &ID) -> Result<(TemplateId, String), Error> {
    match decode_as(id, NodeType::Block)? {
        GlobalId::Block(template, key) => Ok((template, key)),
        _ => Err(coded(codes::BAD_USER_INPUT, format!("{:?} is not a valid id", id.as_str()))),
    }
}

/// The global ids of a template and a workspace, as the schema gives them out: for tools that
/// know rows by their numbers (the devstack's GraphiQL samples).
pub fn template_and_workspace_ids(template: u64, workspace: u64) -> (String, String) {
    (encode(NodeType::Template, template).0, encode(NodeType::Workspace, workspace).0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `id`'s value and its JSON against base64 of `plain`, its text, made independently.
    fn check_numbered<Scalar>(id: NumberedId<Scalar>, plain: &str) {
        let expected = STANDARD.encode(plain);
        assert_eq!(id.encode().0, expected, "{plain}");
        let mut written = b"[".to_vec();
        id.write_leaf(&mut written);
        written.push(b']');
        assert_eq!(
            String::from_utf8_lossy(&written),
            serde_json::to_string(&[&expected]).expect("serializes"),
            "{plain}"
        );
    }

    #[test]
    fn numbered_ids_are_base64_of_their_text_as_values_and_as_json() {
        check_numbered(NumberedId::node(NodeType::Template, 0), "Template:0");
        check_numbered(NumberedId::node(NodeType::User, 7), "User:7");
        check_numbered(NumberedId::node(NodeType::Workspace, 1234567890), "Workspace:1234567890");
        check_numbered(NumberedId::node(NodeType::Draft, u64::MAX), &format!("Draft:{}", u64::MAX));
        check_numbered(
            NumberedId::node(NodeType::WorkspaceMember, u64::MAX),
            &format!("WorkspaceMember:{}", u64::MAX),
        );
        check_numbered(OffsetCursor::offset(49), "offset:49");
        check_numbered(OffsetCursor::offset(10_000_000), "offset:10000000");
    }

    #[test]
    fn round_trips_and_rejects_other_types() {
        let id = encode(NodeType::Template, 42);
        assert_eq!(decode(&id, NodeType::Template).ok(), Some(42));
        assert!(decode(&id, NodeType::User).is_err());
        assert!(decode(&ID("not base64!".into()), NodeType::User).is_err());
        assert!(decode(&ID(STANDARD.encode("Template:x")), NodeType::Template).is_err());
    }

    #[test]
    fn block_ids_carry_their_template_and_differ_across_drafts() {
        let first = GlobalId::Block(TemplateId(1), "b1".to_owned()).encode();
        let second = GlobalId::Block(TemplateId(2), "b1".to_owned()).encode();
        assert_ne!(first, second);
        assert_eq!(decode_block(&first).ok(), Some((TemplateId(1), "b1".to_owned())));
        // A block key may itself hold a colon; only the first one splits.
        let odd = GlobalId::Block(TemplateId(3), "a:b".to_owned()).encode();
        assert_eq!(decode_block(&odd).ok(), Some((TemplateId(3), "a:b".to_owned())));
        assert!(decode_block(&encode(NodeType::Template, 1)).is_err());
        assert!(decode_block(&ID(STANDARD.encode("Block:1"))).is_err());
        assert!(decode_block(&ID(STANDARD.encode("Block:1:"))).is_err());
        assert!(decode_block(&ID(STANDARD.encode("Block:x:b1"))).is_err());
    }

    #[test]
    fn memberships_and_drafts_round_trip() {
        let member = GlobalId::WorkspaceMember(WorkspaceId(4), UserId(7));
        assert_eq!(decode_any(&member.encode()).ok(), Some(member));
        let draft = GlobalId::Draft(TemplateId(9));
        assert_eq!(draft.encode(), encode(NodeType::Draft, 9));
        assert_eq!(decode(&draft.encode(), NodeType::Draft).ok(), Some(9));
        assert!(decode(&draft.encode(), NodeType::Template).is_err());
    }
}
