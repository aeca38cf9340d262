//! The engine as a process holds it: the live table (with its catalog, recorder and contract
//! index) and the executor that runs serving calls and their shadows. The gateway builds one at
//! start-up; the resolvers read it from the schema's data.

use std::sync::Arc;

use crate::catalog::Catalog;
use crate::evidence::ContractIndex;
use crate::executor::ShadowExecutor;
use crate::live::LiveTable;
use crate::recorder::{RecorderConfig, ShadowRecorder};
use crate::table::RoutingTable;

/// The migration engine of one process. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Engine {
    /// The routing table in force; take one snapshot per request.
    pub live: LiveTable,
    /// Runs the serving call of a migrated field and, when the decision says so, its shadow.
    pub executor: ShadowExecutor,
}

impl Engine {
    /// The engine around `live`, its executor recording into the live table's recorder.
    pub fn new(live: LiveTable) -> Self {
        let executor = ShadowExecutor::new(live.recorder().clone());
        Self { live, executor }
    }

    /// Every field on its declared default backend, no contract index, default recording: what
    /// runs when no routing table is configured.
    pub fn with_defaults(catalog: Arc<Catalog>) -> Self {
        let table = RoutingTable::defaults(&catalog);
        let recorder = Arc::new(ShadowRecorder::new(catalog, RecorderConfig::default()));
        Self::new(LiveTable::new(table, recorder, Arc::new(ContractIndex::default())))
    }

    /// The catalog of declarations the engine routes.
    pub fn catalog(&self) -> &Arc<Catalog> {
        self.live.catalog()
    }
}
