//! `User`.

use std::sync::Arc;

use async_graphql::Object;
use banyan_sources::domain::User;
use chrono::{DateTime, Utc};

use crate::ids::{NodeType, NumberedId};

/// A person who can sign in.
pub(crate) struct UserObject(pub(crate) Arc<User>);

/// A person who can sign in.
#[Object(name = "User")]
impl UserObject {
    /// The user's global id.
    pub(crate) async fn id(&self) -> NumberedId {
        NumberedId::node(NodeType::User, self.0.id.0)
    }

    /// Login name.
    async fn username(&self) -> &str {
        &self.0.username
    }

    /// Email address.
    async fn email(&self) -> &str {
        &self.0.email
    }

    /// Name to display.
    async fn full_name(&self) -> &str {
        &self.0.full_name
    }

    /// When the account was created.
    async fn date_joined(&self) -> DateTime<Utc> {
        self.0.date_joined
    }
}

crate::lean::plain_fields!(UserObject {
    "id" => id,
    "username" => username,
    "email" => email,
    "fullName" => full_name,
    "dateJoined" => date_joined,
});
