//! The operations the harness sends, and how many backend calls each may cost.
//!
//! [`OPERATIONS`] is the one table: the smoke run (`load --smoke`, in CI) checks every
//! operation's calls per request against its [`Operation::expected_calls`]. When a change lowers
//! a count (fewer calls is the point of batching), lower it here in the same commit.

use serde_json::{Value, json};

/// The user every request is sent as: owner of workspaces 1 and 2 in the seeded dataset.
pub const BENCH_USER: u64 = 1;

/// `base64("Workspace:1")`: the global id of workspace 1 (the harness's user owns it).
pub const WORKSPACE_1: &str = "V29ya3NwYWNlOjE=";
/// `base64("Template:1")`: the global id of template 1 (in workspace 1).
pub const TEMPLATE_1: &str = "VGVtcGxhdGU6MQ==";

/// One operation of the benchmark.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    /// The name used on the command line and in reports.
    pub name: &'static str,
    /// The GraphQL document.
    pub query: &'static str,
    /// The operation to run (the contract documents hold fragments besides the query).
    pub operation_name: Option<&'static str>,
    /// Its variables, as JSON text.
    pub variables: &'static str,
    /// Backend calls one request makes today, per endpoint or method (the devstack's call-log
    /// keys). A count above it is a regression; below it, lower the table.
    pub expected_calls: &'static [(&'static str, u64)],
}

impl Operation {
    /// The JSON body of a `POST /graphql`.
    pub fn body(&self) -> Value {
        let variables: Value = serde_json::from_str(self.variables).unwrap_or(Value::Null);
        let mut body = json!({ "query": self.query, "variables": variables });
        if let Some(name) = self.operation_name {
            body["operationName"] = json!(name);
        }
        body
    }

    /// The total of [`expected_calls`](Self::expected_calls).
    pub fn expected_total(&self) -> u64 {
        self.expected_calls.iter().map(|(_, n)| n).sum()
    }
}

/// The templates table: a page of 50 templates with author and 7-day stats.
pub const TEMPLATE_LIST: Operation = Operation {
    name: "TemplateList",
    query: include_str!("../../frontend-contract/TemplateList/TemplateList.graphql"),
    operation_name: Some("TemplateList"),
    variables: r#"{"workspaceId": "V29ya3NwYWNlOjE=", "first": 50}"#,
    expected_calls: &[
        ("GET /api/v1/templates/", 1),
        ("GET /api/v1/users/", 1),
        ("EventService/GetTemplateStats", 1),
    ],
};

/// The block editor: one template and its draft.
pub const TEMPLATE_EDITOR: Operation = Operation {
    name: "TemplateEditor",
    query: concat!(
        include_str!("../../frontend-contract/TemplateEditor/TemplateEditor.graphql"),
        "\n",
        include_str!("../../frontend-contract/TemplateEditor/DraftContent.graphql"),
    ),
    operation_name: Some("TemplateEditor"),
    variables: r#"{"id": "VGVtcGxhdGU6MQ=="}"#,
    expected_calls: &[
        ("GET /api/v1/templates/", 1),
        ("DraftService/BatchGetDrafts", 1),
        ("GET /api/v1/users/", 1),
    ],
};

/// The analytics page: one template's 30-day stats and its latest 20 events.
pub const ANALYTICS_DASHBOARD: Operation = Operation {
    name: "AnalyticsDashboard",
    query: include_str!("../../frontend-contract/AnalyticsDashboard/AnalyticsDashboard.graphql"),
    operation_name: Some("AnalyticsDashboard"),
    variables: r#"{"id": "VGVtcGxhdGU6MQ==", "window": "LAST_30_DAYS"}"#,
    expected_calls: &[
        ("GET /api/v1/templates/", 1),
        ("EventService/GetTemplateStats", 1),
        ("EventService/ListEvents", 1),
    ],
};

/// The smallest query that needs the caller: what per-request setup costs (`me` is one
/// `/api/v1/me/` call of its own; the identity check before it is cached).
pub const ME: Operation = Operation {
    name: "Me",
    query: "{ me { id } }",
    operation_name: None,
    variables: "{}",
    expected_calls: &[("GET /api/v1/me/", 1)],
};

/// The smallest operation there is: no field that reaches a backend. What the gateway spends on
/// every request before and after its fields (HTTP, the middleware, the document cache, the
/// executor's setup, the answer's writing), to set against what the floor spends on a whole page.
pub const TYPENAME: Operation = Operation {
    name: "Typename",
    query: "{ __typename }",
    operation_name: None,
    variables: "{}",
    expected_calls: &[],
};

/// A wide query nesting lists three levels deep (workspaces, their templates, each draft's
/// blocks), with per-item fields at every level: what batching across list items must hold.
pub const WIDE: Operation = Operation {
    name: "Wide",
    query: "query Wide { workspaces { id name members { role user { fullName } } \
            templates(first: 10) { edges { node { id name createdBy { fullName } \
            stats { sent openRate } draft { version blocks { id kind } } } } } } }",
    operation_name: Some("Wide"),
    variables: "{}",
    // The minimum: one call per backend method per level (the batch scheduler); members of
    // every workspace come from one memberships call, templates are one page per workspace (two).
    expected_calls: &[
        ("GET /api/v1/workspaces/", 1),
        ("GET /api/v1/memberships/", 1),
        ("GET /api/v1/templates/", 2),
        ("GET /api/v1/users/", 1),
        ("EventService/GetTemplateStats", 1),
        ("DraftService/BatchGetDrafts", 1),
    ],
};

/// Every operation, in report order.
pub const OPERATIONS: &[Operation] =
    &[TEMPLATE_LIST, TEMPLATE_EDITOR, ANALYTICS_DASHBOARD, ME, WIDE, TYPENAME];

/// The operation called `name` (case-insensitive).
pub fn by_name(name: &str) -> Option<&'static Operation> {
    OPERATIONS.iter().find(|op| op.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    #[test]
    fn global_ids_name_what_they_say() {
        assert_eq!(STANDARD.encode("Workspace:1"), WORKSPACE_1);
        assert_eq!(STANDARD.encode("Template:1"), TEMPLATE_1);
    }

    #[test]
    fn every_body_has_its_variables() {
        for op in OPERATIONS {
            let body = op.body();
            assert!(body["variables"].is_object(), "{}: variables are not an object", op.name);
        }
    }
}
