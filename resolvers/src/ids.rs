//! Relay global ids: `base64("Type:key")`, opaque to clients and unique across types.

use async_graphql::{Error, ID};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::{coded, codes};

/// The node types a global id can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeType {
    User,
    Workspace,
    Template,
}

impl NodeType {
    fn name(self) -> &'static str {
        match self {
            Self::User => "User",
            Self::Workspace => "Workspace",
            Self::Template => "Template",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "User" => Some(Self::User),
            "Workspace" => Some(Self::Workspace),
            "Template" => Some(Self::Template),
            _ => None,
        }
    }
}

/// The global id of a node.
pub(crate) fn encode(node: NodeType, key: u64) -> ID {
    ID(STANDARD.encode(format!("{}:{key}", node.name())))
}

/// Any global id, split into its type and key.
pub(crate) fn decode_any(id: &ID) -> Result<(NodeType, u64), Error> {
    let invalid = || coded(codes::BAD_USER_INPUT, format!("{:?} is not a valid id", id.as_str()));
    let bytes = STANDARD.decode(id.as_bytes()).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (type_name, key) = text.split_once(':').ok_or_else(invalid)?;
    let node = NodeType::from_name(type_name).ok_or_else(invalid)?;
    let key = key.parse().map_err(|_| invalid())?;
    Ok((node, key))
}

/// A global id that must name a node of type `expected`.
pub(crate) fn decode(id: &ID, expected: NodeType) -> Result<u64, Error> {
    let (node, key) = decode_any(id)?;
    if node != expected {
        return Err(coded(
            codes::BAD_USER_INPUT,
            format!("{:?} is the id of a {}, not of a {}", id.as_str(), node.name(), expected.name()),
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_other_types() {
        let id = encode(NodeType::Template, 42);
        assert_eq!(decode(&id, NodeType::Template).ok(), Some(42));
        assert!(decode(&id, NodeType::User).is_err());
        assert!(decode(&ID("not base64!".into()), NodeType::User).is_err());
        assert!(decode(&ID(STANDARD.encode("Template:x")), NodeType::Template).is_err());
    }
}
