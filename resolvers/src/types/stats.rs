//! `TemplateStats` and the windows it is counted over.

use async_graphql::{Enum, Object};
use banyan_sources::domain::{StatsWindow, TemplateStats};

use super::int;

/// A time window ending now.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Hash)]
#[graphql(name = "StatsWindow")]
pub(crate) enum StatsWindowEnum {
    /// The last 24 hours.
    Last24Hours,
    /// The last 7 days.
    Last7Days,
    /// The last 30 days.
    Last30Days,
    /// The last 90 days.
    Last90Days,
}

crate::written::enum_leaves!(StatsWindowEnum);

impl From<StatsWindowEnum> for StatsWindow {
    fn from(window: StatsWindowEnum) -> Self {
        match window {
            StatsWindowEnum::Last24Hours => Self::Last24Hours,
            StatsWindowEnum::Last7Days => Self::Last7Days,
            StatsWindowEnum::Last30Days => Self::Last30Days,
            StatsWindowEnum::Last90Days => Self::Last90Days,
        }
    }
}

/// How a template's emails fared over a window.
pub(crate) struct TemplateStatsObject {
    pub(crate) stats: TemplateStats,
    pub(crate) window: StatsWindowEnum,
}

/// How a template's emails fared over a window.
#[Object(name = "TemplateStats")]
impl TemplateStatsObject {
    /// The window counted.
    async fn window(&self) -> StatsWindowEnum {
        self.window
    }

    /// Emails handed to the provider.
    async fn sent(&self) -> i32 {
        int(self.stats.sent)
    }

    /// Emails the recipient's server accepted.
    async fn delivered(&self) -> i32 {
        int(self.stats.delivered)
    }

    /// Open events (one recipient can open many times).
    async fn opened(&self) -> i32 {
        int(self.stats.opened)
    }

    /// Click events.
    async fn clicked(&self) -> i32 {
        int(self.stats.clicked)
    }

    /// Emails the recipient's server rejected.
    async fn bounced(&self) -> i32 {
        int(self.stats.bounced)
    }

    /// Distinct recipients who opened at least once.
    async fn unique_opens(&self) -> i32 {
        int(self.stats.unique_opens)
    }

    /// `opened / delivered`, 0 when nothing was delivered.
    async fn open_rate(&self) -> f64 {
        ratio(self.stats.opened, self.stats.delivered)
    }

    /// `clicked / delivered`, 0 when nothing was delivered.
    async fn click_rate(&self) -> f64 {
        ratio(self.stats.clicked, self.stats.delivered)
    }
}

crate::lean::plain_fields!(TemplateStatsObject {
    "window" => window,
    "sent" => sent,
    "delivered" => delivered,
    "opened" => opened,
    "clicked" => clicked,
    "bounced" => bounced,
    "uniqueOpens" => unique_opens,
    "openRate" => open_rate,
    "clickRate" => click_rate,
});

#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}
