//! The seeded dataset every stand-in serves.
//!
//! One [`Dataset`] is generated when the devstack starts and shared by the monolith stand-in, the
//! event store and the draft store, so the monolith's legacy views (analytics, drafts) and the
//! services agree on the same data, and a test can predict what any endpoint answers.
//!
//! Facts that hold for every seed (tests rely on them):
//!
//! - Workspaces `1..=3`; templates `1..=600`, 200 per workspace (`1..=200` in workspace 1,
//!   `201..=400` in 2, `401..=600` in 3).
//! - Users `1..=30`. User [`OWNER_USER`] (1) is `owner` of workspaces 1 and 2 and not a member of
//!   3. User 2 is `owner` of 3 and `admin` of 1. User [`VIEWER_ONLY_USER`] (3) is only a `viewer`
//!   of workspace 1. User 4 is `editor` of 2 and `viewer` of 3. User [`NO_WORKSPACE_USER`] (30)
//!   belongs to no workspace. Users `5..=29` get seeded memberships (each in at least one).
//! - Every user's token is [`token_for`]`(seed, user_id)`: 40 lowercase hex characters. Every
//!   user also has a signed-in browser session, [`session_for`]`(seed, user_id)`: 32 characters of
//!   `a-z0-9` like a Django session key, never equal to any token.
//! - Every template has a draft except those whose id is a multiple of 50 ([`has_draft`]); a draft
//!   has 3 to 8 blocks with ids `b1`, `b2`, ... and the first block is a heading.
//! - Roughly 100,000 email events, all within 90 days before [`Dataset::anchor`], none within one
//!   hour of the 24 h / 7 d / 30 d / 90 d window boundaries measured from the anchor, with
//!   sequence numbers from 1 in `occurred_at` order. Each send is `SENT`, then `DELIVERED` (about
//!   95 %) or `BOUNCED` (about 5 %); about 30 % of delivered emails are `OPENED`, some more than
//!   once; about 10 % of delivered emails are `CLICKED` (always after an open).
//!
//! Names, e-mail addresses, subjects and contents come from small word lists and vary with the
//! seed.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use crate::proto::drafts::BlockKind;
use crate::proto::events::EventKind;
use crate::rng::SplitMix64;

/// The seed used when none is configured.
pub const DEFAULT_SEED: u64 = 42;
/// Number of users (ids `1..=USER_COUNT`).
pub const USER_COUNT: u64 = 30;
/// Number of workspaces (ids `1..=WORKSPACE_COUNT`).
pub const WORKSPACE_COUNT: u64 = 3;
/// Templates per workspace.
pub const TEMPLATES_PER_WORKSPACE: u64 = 200;
/// Number of templates (ids `1..=TEMPLATE_COUNT`).
pub const TEMPLATE_COUNT: u64 = WORKSPACE_COUNT * TEMPLATES_PER_WORKSPACE;
/// Owner of workspaces 1 and 2, not a member of workspace 3.
pub const OWNER_USER: u64 = 1;
/// Only a `viewer` (of workspace 1): can read, gets 403 on every write.
pub const VIEWER_ONLY_USER: u64 = 3;
/// Member of no workspace: sees only themselves, no workspace and no template.
pub const NO_WORKSPACE_USER: u64 = 30;
/// The window boundaries (in hours before the anchor) no generated event comes near.
pub const WINDOW_BOUNDARY_HOURS: [i64; 4] = [24, 7 * 24, 30 * 24, 90 * 24];

/// Whether a template has a draft in the seeded dataset: every template except those whose id is
/// a multiple of 50.
pub fn has_draft(template_id: u64) -> bool {
    !template_id.is_multiple_of(50)
}

/// The API token of a user: 40 lowercase hex characters, a pure function of the seed and the user
/// id (the first 160 bits of a SplitMix64 stream seeded from both).
pub fn token_for(seed: u64, user_id: u64) -> String {
    let mut rng = SplitMix64::new(seed ^ user_id.wrapping_mul(0xA076_1D64_78BD_642F) ^ 0x746F_6B65_6E73_2121);
    let mut token = String::with_capacity(48);
    for _ in 0..3 {
        token.push_str(&format!("{:016x}", rng.next_u64()));
    }
    token.truncate(40);
    token
}

/// The key of a user's Django session (the `sessionid` cookie's value): 32 characters of
/// `a-z0-9`, as Django makes them, a pure function of the seed and the user id, and never a token
/// (tokens are hex, 40 characters long).
pub fn session_for(seed: u64, user_id: u64) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = SplitMix64::new(seed ^ user_id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x7365_7373_696F_6E73);
    (0..32).map(|_| char::from(ALPHABET[rng.below(ALPHABET.len() as u64) as usize])).collect()
}

/// A user of the monolith.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Id, `1..=30`.
    pub id: u64,
    /// Login name, unique.
    pub username: String,
    /// E-mail address.
    pub email: String,
    /// Display name.
    pub full_name: String,
    /// When the account was created.
    pub date_joined: DateTime<Utc>,
    /// The key for `Authorization: Token <key>`; see [`token_for`].
    pub token: String,
    /// The user's signed-in browser session, the `sessionid` cookie; see [`session_for`].
    pub session_id: String,
}

/// A workspace (tenant) of the monolith.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Workspace {
    /// Id, `1..=3`.
    pub id: u64,
    /// Display name.
    pub name: String,
    /// URL slug of the name.
    pub slug: String,
    /// When the workspace was created.
    pub created_at: DateTime<Utc>,
}

/// A member's role in a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Full control.
    Owner,
    /// Manages members and content.
    Admin,
    /// Edits content.
    Editor,
    /// Reads only.
    Viewer,
}

impl Role {
    /// Whether the role may change templates (`owner`, `admin` or `editor`).
    pub fn can_edit(self) -> bool {
        !matches!(self, Role::Viewer)
    }

    /// The role's name in the monolith's API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user's membership in a workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Membership {
    /// The workspace.
    pub workspace: u64,
    /// The member.
    pub user: u64,
    /// What the member may do.
    pub role: Role,
    /// When the user joined the workspace.
    pub joined_at: DateTime<Utc>,
}

/// The lifecycle state of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TemplateStatus {
    /// Being written.
    Draft,
    /// In use.
    Active,
    /// Retired.
    Archived,
}

impl TemplateStatus {
    /// The status's name in the monolith's API.
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateStatus::Draft => "draft",
            TemplateStatus::Active => "active",
            TemplateStatus::Archived => "archived",
        }
    }

    /// The status with that API name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "draft" => Some(TemplateStatus::Draft),
            "active" => Some(TemplateStatus::Active),
            "archived" => Some(TemplateStatus::Archived),
            _ => None,
        }
    }
}

/// An email template, as the monolith stores it (before any `PATCH`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Template {
    /// Id, `1..=600`.
    pub id: u64,
    /// The workspace it belongs to: `(id - 1) / 200 + 1`.
    pub workspace: u64,
    /// Display name.
    pub name: String,
    /// The email's subject line.
    pub subject: String,
    /// Lifecycle state.
    pub status: TemplateStatus,
    /// The user who created it (a member of the workspace who can edit).
    pub created_by: u64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// One content block of a draft.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Id, unique within the draft (`b1`, `b2`, ...).
    pub id: String,
    /// What the block renders as (never `Unspecified`).
    pub kind: BlockKind,
    /// Text, URL or label, per kind; empty for dividers.
    pub content: String,
}

/// The working copy of a template's content, as seeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// The template it belongs to.
    pub template: u64,
    /// Current version, at least 1.
    pub version: u64,
    /// The blocks in display order, 3 to 8 of them.
    pub blocks: Vec<Block>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Id of the user who made the last change (a decimal user id).
    pub updated_by: String,
}

/// One seeded email event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Position in the store, from 1, in `occurred_at` order.
    pub sequence: u64,
    /// The template the email was rendered from.
    pub template: u64,
    /// What happened (never `Unspecified`).
    pub kind: EventKind,
    /// The recipient's address.
    pub recipient: Arc<str>,
    /// When it happened; whole seconds, strictly before the anchor.
    pub occurred_at: DateTime<Utc>,
}

/// Everything the stand-ins serve, in its initial state.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The seed it was generated from.
    pub seed: u64,
    /// The instant the data is relative to (the devstack's start, in whole seconds): events lie
    /// in the 90 days before it.
    pub anchor: DateTime<Utc>,
    /// Users, by id.
    pub users: Vec<User>,
    /// Workspaces, by id.
    pub workspaces: Vec<Workspace>,
    /// Memberships, by workspace then user.
    pub memberships: Vec<Membership>,
    /// Templates, by id.
    pub templates: Vec<Template>,
    /// Drafts, by template id (templates with an id divisible by 50 have none).
    pub drafts: Vec<Draft>,
    /// Events, by sequence.
    pub events: Vec<Event>,
}

impl Dataset {
    /// Generates the dataset for `seed`, relative to `anchor` (truncated to whole seconds). The
    /// same seed gives the same data, shifted with the anchor.
    pub fn generate(seed: u64, anchor: DateTime<Utc>) -> Dataset {
        let anchor = anchor.trunc_subsecs(0);
        let mut rng = SplitMix64::new(seed);
        let workspaces = gen_workspaces(&mut rng, anchor);
        let users = gen_users(&mut rng, seed, anchor);
        let memberships = gen_memberships(&mut rng, &users, &workspaces, anchor);
        let templates = gen_templates(&mut rng, &memberships, &workspaces, anchor);
        let drafts = gen_drafts(&mut rng, &templates, &memberships);
        let events = gen_events(&mut rng, &templates, anchor);
        Dataset { seed, anchor, users, workspaces, memberships, templates, drafts, events }
    }

    /// The user with this id.
    pub fn user(&self, id: u64) -> Option<&User> {
        by_id(&self.users, id, |u| u.id)
    }

    /// The user whose token this is.
    pub fn user_by_token(&self, token: &str) -> Option<&User> {
        self.users.iter().find(|u| u.token == token)
    }

    /// The workspace with this id.
    pub fn workspace(&self, id: u64) -> Option<&Workspace> {
        by_id(&self.workspaces, id, |w| w.id)
    }

    /// The template with this id (initial state).
    pub fn template(&self, id: u64) -> Option<&Template> {
        by_id(&self.templates, id, |t| t.id)
    }

    /// The seeded draft of this template.
    pub fn draft(&self, template_id: u64) -> Option<&Draft> {
        self.drafts.iter().find(|d| d.template == template_id)
    }

    /// The user's role in the workspace, if they are a member.
    pub fn role(&self, user: u64, workspace: u64) -> Option<Role> {
        self.memberships.iter().find(|m| m.user == user && m.workspace == workspace).map(|m| m.role)
    }

    /// Ids of the workspaces the user is a member of, ascending.
    pub fn workspaces_of(&self, user: u64) -> Vec<u64> {
        let mut ids: Vec<u64> =
            self.memberships.iter().filter(|m| m.user == user).map(|m| m.workspace).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Ids of the users `user` can see (those sharing a workspace with them, and themselves),
    /// ascending.
    pub fn visible_users(&self, user: u64) -> Vec<u64> {
        let workspaces = self.workspaces_of(user);
        let mut ids: Vec<u64> =
            self.memberships.iter().filter(|m| workspaces.contains(&m.workspace)).map(|m| m.user).collect();
        if self.user(user).is_some() {
            ids.push(user);
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

fn by_id<T>(items: &[T], id: u64, key: impl Fn(&T) -> u64) -> Option<&T> {
    items.binary_search_by_key(&id, key).ok().and_then(|i| items.get(i))
}

const FIRST_NAMES: &[&str] = &[
    "Ada", "Alan", "Amara", "Ana", "Ben", "Carla", "Chen", "Dana", "David", "Elena", "Emil", "Fatima",
    "Felix", "Grace", "Hannah", "Hugo", "Ines", "Ivan", "Jonas", "Julia", "Kai", "Karin", "Leo", "Lina",
    "Marco", "Maya", "Nadia", "Noah", "Olga", "Omar", "Paula", "Priya", "Rafael", "Rosa", "Sami", "Sofia",
    "Tariq", "Tessa", "Victor", "Yuki",
];

const LAST_NAMES: &[&str] = &[
    "Almeida",
    "Becker",
    "Castillo",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ito",
    "Jansen",
    "Kowalski",
    "Larsen",
    "Moreau",
    "Nakamura",
    "Novak",
    "Okafor",
    "Petrov",
    "Quinn",
    "Rossi",
    "Schmidt",
    "Silva",
    "Tanaka",
    "Usman",
    "Varga",
    "Weber",
    "Xu",
    "Yilmaz",
    "Zhang",
    "Brennan",
    "Costa",
    "Duarte",
    "Lindqvist",
    "Murphy",
    "Nguyen",
    "Patel",
    "Romero",
    "Sato",
    "Takacs",
    "Vogel",
    "Wright",
];

const WORKSPACE_NAMES: &[&str] = &[
    "Acme Marketing",
    "Northwind Lifecycle",
    "Globex Newsletters",
    "Initech Growth",
    "Umbrella Retention",
    "Hooli Campaigns",
    "Stark Onboarding",
    "Wayne Retail",
];

const TEMPLATE_PREFIXES: &[&str] = &[
    "Spring",
    "Summer",
    "Autumn",
    "Holiday",
    "Weekly",
    "Monthly",
    "Quarterly",
    "VIP",
    "Flash",
    "Black Friday",
    "New Year",
    "Back to School",
];

const TEMPLATE_TOPICS: &[&str] = &[
    "Sale",
    "Newsletter",
    "Product Update",
    "Webinar Invite",
    "Onboarding Step",
    "Welcome Series",
    "Abandoned Cart Reminder",
    "Feedback Request",
    "Renewal Notice",
    "Event Recap",
    "Loyalty Rewards",
    "Price Drop Alert",
];

const SUBJECT_PATTERNS: &[&str] = &[
    "Your {topic} is here",
    "{{first_name}}, don't miss our {prefix} {topic}",
    "Last chance: {prefix} {topic}",
    "Inside: the {prefix} {topic} you asked for",
    "{{first_name}}, something new for you",
    "Quick update from the team",
    "Ends tonight: {prefix} {topic}",
    "We saved you a seat",
];

const MONTHS: &[&str] = &[
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

const SENTENCES: &[&str] = &[
    "Thanks for being with us this season.",
    "Here is everything that changed since your last visit.",
    "Our team picked a few favourites we think you will like.",
    "Prices go back up at midnight, so now is the time.",
    "Reply to this email if you have any questions.",
    "You are receiving this because you signed up on our website.",
    "We would love to hear what you think.",
    "Your account is ready and waiting for you.",
    "Join us live and bring your questions.",
    "Free shipping on every order this week.",
];

const BUTTON_LABELS: &[&str] =
    &["Shop now", "Read more", "Claim your offer", "Register", "Get started", "Tell us", "Renew today"];

const RECIPIENT_DOMAINS: &[&str] =
    &["example.com", "example.org", "example.net", "mail.example.com", "inbox.example.org"];

fn slugify(name: &str) -> String {
    let mut slug = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.trim_matches('-').to_string()
}

fn days(n: u64) -> Duration {
    Duration::days(n as i64)
}

fn seconds(n: u64) -> Duration {
    Duration::seconds(n as i64)
}

fn gen_workspaces(rng: &mut SplitMix64, anchor: DateTime<Utc>) -> Vec<Workspace> {
    let mut names: Vec<&str> = WORKSPACE_NAMES.to_vec();
    (1..=WORKSPACE_COUNT)
        .map(|id| {
            let name = names.remove(rng.below(names.len() as u64) as usize);
            Workspace {
                id,
                name: name.to_string(),
                slug: slugify(name),
                created_at: anchor - days(rng.range(700, 1000)) - seconds(rng.below(86_400)),
            }
        })
        .collect()
}

fn gen_users(rng: &mut SplitMix64, seed: u64, anchor: DateTime<Utc>) -> Vec<User> {
    let mut taken = HashSet::new();
    (1..=USER_COUNT)
        .map(|id| {
            let (first, last) = loop {
                let pair = (*rng.pick(FIRST_NAMES), *rng.pick(LAST_NAMES));
                if taken.insert(pair) {
                    break pair;
                }
            };
            let username = format!("{}.{}", first.to_lowercase(), last.to_lowercase());
            User {
                id,
                email: format!("{username}@staff.example.com"),
                username,
                full_name: format!("{first} {last}"),
                date_joined: anchor - days(rng.range(400, 1000)) - seconds(rng.below(86_400)),
                token: token_for(seed, id),
                session_id: session_for(seed, id),
            }
        })
        .collect()
}

fn gen_memberships(
    rng: &mut SplitMix64,
    users: &[User],
    workspaces: &[Workspace],
    anchor: DateTime<Utc>,
) -> Vec<Membership> {
    let mut pairs: Vec<(u64, u64, Role)> = vec![
        (1, 1, Role::Owner),
        (2, 1, Role::Owner),
        (3, 2, Role::Owner),
        (1, 2, Role::Admin),
        (1, 3, Role::Viewer),
        (2, 4, Role::Editor),
        (3, 4, Role::Viewer),
    ];
    for user in 5..NO_WORKSPACE_USER {
        let primary = (user - 5) % WORKSPACE_COUNT + 1;
        let role = match rng.below(20) {
            0..=2 => Role::Admin,
            3..=12 => Role::Editor,
            _ => Role::Viewer,
        };
        pairs.push((primary, user, role));
        if rng.chance(0.3) {
            let second = primary % WORKSPACE_COUNT + 1;
            let role = if rng.chance(0.5) { Role::Editor } else { Role::Viewer };
            pairs.push((second, user, role));
        }
    }
    pairs.sort_by_key(|(w, u, _)| (*w, *u));
    pairs
        .into_iter()
        .map(|(workspace, user, role)| {
            let since = [
                by_id(users, user, |u| u.id).map(|u| u.date_joined),
                by_id(workspaces, workspace, |w| w.id).map(|w| w.created_at),
            ]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(anchor);
            Membership { workspace, user, role, joined_at: since + seconds(rng.below(30 * 86_400)) }
        })
        .collect()
}

fn editors_of(memberships: &[Membership], workspace: u64) -> Vec<u64> {
    memberships.iter().filter(|m| m.workspace == workspace && m.role.can_edit()).map(|m| m.user).collect()
}

fn gen_templates(
    rng: &mut SplitMix64,
    memberships: &[Membership],
    workspaces: &[Workspace],
    anchor: DateTime<Utc>,
) -> Vec<Template> {
    let editors: BTreeMap<u64, Vec<&Membership>> = workspaces
        .iter()
        .map(|w| {
            let members = memberships.iter().filter(|m| m.workspace == w.id && m.role.can_edit()).collect();
            (w.id, members)
        })
        .collect();
    (1..=TEMPLATE_COUNT)
        .map(|id| {
            let workspace = (id - 1) / TEMPLATES_PER_WORKSPACE + 1;
            let prefix = *rng.pick(TEMPLATE_PREFIXES);
            let topic = *rng.pick(TEMPLATE_TOPICS);
            let mut name = format!("{prefix} {topic}");
            if rng.chance(0.5) {
                name.push_str(&format!(" ({})", rng.pick(MONTHS)));
            }
            let subject = rng
                .pick(SUBJECT_PATTERNS)
                .replace("{prefix}", prefix)
                .replace("{topic}", &topic.to_lowercase());
            let status = match rng.below(20) {
                0..=10 => TemplateStatus::Active,
                11..=16 => TemplateStatus::Draft,
                _ => TemplateStatus::Archived,
            };
            let creator = editors.get(&workspace).filter(|e| !e.is_empty()).map(|e| *rng.pick(e));
            let created_by = creator.map_or(OWNER_USER, |m| m.user);
            // Created after its creator joined the workspace, at least a day ago.
            let oldest = creator
                .map_or(600 * 86_400, |m| u64::try_from((anchor - m.joined_at).num_seconds()).unwrap_or(0));
            let age = rng.range(86_400, oldest.clamp(86_400, 600 * 86_400));
            let created_at = anchor - seconds(age);
            let updated_at = created_at + seconds(rng.below(age));
            Template { id, workspace, name, subject, status, created_by, created_at, updated_at }
        })
        .collect()
}

fn gen_drafts(rng: &mut SplitMix64, templates: &[Template], memberships: &[Membership]) -> Vec<Draft> {
    templates
        .iter()
        .filter(|t| has_draft(t.id))
        .map(|t| {
            let count = rng.range(3, 8);
            let mut blocks = Vec::with_capacity(count as usize);
            for n in 1..=count {
                let kind = if n == 1 {
                    BlockKind::Heading
                } else {
                    match rng.below(10) {
                        0..=3 => BlockKind::Text,
                        4..=5 => BlockKind::Image,
                        6..=7 => BlockKind::Button,
                        _ => BlockKind::Divider,
                    }
                };
                let content = match kind {
                    BlockKind::Heading => t.name.clone(),
                    BlockKind::Text => {
                        let a = rng.pick(SENTENCES);
                        let b = rng.pick(SENTENCES);
                        format!("{a} {b}")
                    }
                    BlockKind::Image => {
                        format!("https://cdn.example.com/templates/{}/image-{n}.png", t.id)
                    }
                    BlockKind::Button => rng.pick(BUTTON_LABELS).to_string(),
                    BlockKind::Divider | BlockKind::Unspecified => String::new(),
                };
                blocks.push(Block { id: format!("b{n}"), kind, content });
            }
            let editors = editors_of(memberships, t.workspace);
            let updated_by = if editors.is_empty() { t.created_by } else { *rng.pick(&editors) };
            Draft {
                template: t.id,
                version: rng.range(1, 20),
                blocks,
                updated_at: t.updated_at,
                updated_by: updated_by.to_string(),
            }
        })
        .collect()
}

/// Moves an event age (seconds before the anchor) out of the one-hour zones around the window
/// boundaries, towards the anchor. Monotone, so the funnel order of a send survives.
fn clear_of_boundaries(age: i64) -> i64 {
    for hours in WINDOW_BOUNDARY_HOURS {
        let boundary = hours * 3600;
        if (boundary - 3600..=boundary + 3600).contains(&age) {
            return boundary - 3601;
        }
    }
    age
}

/// A generated event before it gets its sequence number: (age in seconds, template, kind,
/// recipient index).
type RawEvent = (i64, u64, EventKind, u32);

fn gen_events(rng: &mut SplitMix64, templates: &[Template], anchor: DateTime<Utc>) -> Vec<Event> {
    let recipients: Vec<Arc<str>> = (0..3000)
        .map(|_| {
            let first = rng.pick(FIRST_NAMES).to_lowercase();
            let last = rng.pick(LAST_NAMES).to_lowercase();
            let n = rng.below(100);
            let domain = rng.pick(RECIPIENT_DOMAINS);
            Arc::from(format!("{first}.{last}{n}@{domain}"))
        })
        .collect();
    let max_age = 90 * 86_400 - 3601;
    let mut raw: Vec<RawEvent> = Vec::with_capacity(110_000);
    for template in templates {
        let sends = rng.range(30, 102);
        for _ in 0..sends {
            let recipient = rng.below(recipients.len() as u64) as u32;
            let sent = rng.range(60, max_age) as i64;
            let mut push = |age: i64, kind: EventKind| {
                let age = clear_of_boundaries(age);
                if age >= 1 {
                    raw.push((age, template.id, kind, recipient));
                }
            };
            push(sent, EventKind::Sent);
            if rng.chance(0.05) {
                push(sent - rng.range(1, 300) as i64, EventKind::Bounced);
                continue;
            }
            let delivered = sent - rng.range(1, 120) as i64;
            push(delivered, EventKind::Delivered);
            if !rng.chance(0.30) {
                continue;
            }
            // Opens cluster soon after delivery: cube a uniform to skew towards short delays.
            let skew = rng.next_f64().powi(3);
            let first_open = delivered - 60 - (skew * 3.0 * 86_400.0) as i64;
            push(first_open, EventKind::Opened);
            let mut last_open = first_open;
            while rng.chance(0.3) {
                last_open -= rng.range(300, 2 * 86_400) as i64;
                push(last_open, EventKind::Opened);
            }
            if rng.chance(1.0 / 3.0) {
                push(first_open - rng.range(5, 600) as i64, EventKind::Clicked);
            }
        }
    }
    // Oldest first; the sort is stable, so events of one send at the same second keep their
    // funnel order.
    raw.sort_by_key(|e| std::cmp::Reverse(e.0));
    raw.into_iter()
        .enumerate()
        .map(|(i, (age, template, kind, recipient))| Event {
            sequence: i as u64 + 1,
            template,
            kind,
            recipient: recipients[recipient as usize].clone(),
            occurred_at: anchor - Duration::seconds(age),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anchor() -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default()
    }

    #[test]
    fn same_seed_same_data() {
        let a = Dataset::generate(42, anchor());
        let b = Dataset::generate(42, anchor());
        assert_eq!(a.users, b.users);
        assert_eq!(a.templates, b.templates);
        assert_eq!(a.drafts, b.drafts);
        assert_eq!(a.events.len(), b.events.len());
        assert_eq!(a.events.last(), b.events.last());
        let c = Dataset::generate(7, anchor());
        assert_ne!(a.users[0].token, c.users[0].token);
    }

    #[test]
    fn shape_matches_the_promises() {
        let d = Dataset::generate(DEFAULT_SEED, anchor());
        assert_eq!(d.users.len(), 30);
        assert_eq!(d.workspaces.len(), 3);
        assert_eq!(d.templates.len(), 600);
        assert_eq!(d.drafts.len(), 600 - 12);
        assert!(d.drafts.iter().all(|x| (3..=8).contains(&x.blocks.len())));
        assert!((90_000..=110_000).contains(&d.events.len()), "{}", d.events.len());
        assert_eq!(d.role(OWNER_USER, 1), Some(Role::Owner));
        assert_eq!(d.role(OWNER_USER, 2), Some(Role::Owner));
        assert_eq!(d.role(OWNER_USER, 3), None);
        assert_eq!(d.workspaces_of(VIEWER_ONLY_USER), vec![1]);
        assert_eq!(d.role(VIEWER_ONLY_USER, 1), Some(Role::Viewer));
        assert!(d.workspaces_of(NO_WORKSPACE_USER).is_empty());
        for user in 5..NO_WORKSPACE_USER {
            assert!(!d.workspaces_of(user).is_empty());
        }
        let tokens: HashSet<&str> = d.users.iter().map(|u| u.token.as_str()).collect();
        assert_eq!(tokens.len(), 30);
        let sessions: HashSet<&str> = d.users.iter().map(|u| u.session_id.as_str()).collect();
        assert_eq!(sessions.len(), 30);
        assert!(sessions.iter().all(|s| s.len() == 32 && !tokens.contains(s)));
        assert!(d.users.iter().all(|u| {
            u.token.len() == 40 && u.token.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        }));
        for t in &d.templates {
            assert_eq!(t.workspace, (t.id - 1) / 200 + 1);
            assert!(d.role(t.created_by, t.workspace).is_some_and(Role::can_edit));
            assert!(t.created_at <= t.updated_at && t.updated_at <= d.anchor);
            let joined = d
                .memberships
                .iter()
                .find(|m| m.user == t.created_by && m.workspace == t.workspace)
                .map(|m| m.joined_at);
            assert!(joined.is_some_and(|j| j <= t.created_at));
        }
    }

    #[test]
    fn events_respect_order_and_boundaries() {
        let d = Dataset::generate(DEFAULT_SEED, anchor());
        let mut previous = None;
        for (i, e) in d.events.iter().enumerate() {
            assert_eq!(e.sequence, i as u64 + 1);
            assert!(e.occurred_at < d.anchor);
            assert!(e.occurred_at > d.anchor - Duration::days(90));
            for hours in WINDOW_BOUNDARY_HOURS {
                let boundary = d.anchor - Duration::hours(hours);
                assert!((e.occurred_at - boundary).num_seconds().abs() > 3600);
            }
            if let Some(p) = previous {
                assert!(p <= e.occurred_at);
            }
            previous = Some(e.occurred_at);
        }
        let count = |k: EventKind| d.events.iter().filter(|e| e.kind == k).count() as f64;
        let sent = count(EventKind::Sent);
        let delivered = count(EventKind::Delivered);
        assert!((count(EventKind::Bounced) / sent - 0.05).abs() < 0.01);
        assert!((count(EventKind::Clicked) / delivered - 0.10).abs() < 0.02);
    }

    #[test]
    fn slugs_are_clean() {
        assert_eq!(slugify("Acme Marketing"), "acme-marketing");
        assert_eq!(slugify("  Back to School!! "), "back-to-school");
    }
}
