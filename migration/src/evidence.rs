//! Evidence before a flip: what shadow comparisons have shown for a field, and whether that
//! satisfies the table's `require_evidence`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::declaration::FieldKey;
use crate::recorder::{KeyResults, RecorderSnapshot};
use crate::table::EvidenceRequirement;

/// Which contract operations (`frontend-contract/`) select each migrated field. Built by the
/// caller from the contract (the schema crate knows how to read operations); this crate only
/// joins it with the results.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ContractIndex {
    operations_by_key: BTreeMap<String, BTreeSet<String>>,
    /// The contract could not be read: no requirement on contract operations can be met.
    unreadable: bool,
}

impl ContractIndex {
    /// An index with no operations.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The index of a contract that could not be read. Unlike an empty contract, it satisfies
    /// no `all_contract_operations` requirement: not knowing which operations select a field is
    /// not evidence that none do.
    pub fn unreadable() -> Self {
        Self { unreadable: true, ..Self::default() }
    }

    /// Whether the contract behind the index could be read.
    pub fn is_readable(&self) -> bool {
        !self.unreadable
    }

    /// Records that `operation` selects `key`.
    pub fn add(&mut self, key: &str, operation: &str) {
        self.operations_by_key.entry(key.to_owned()).or_default().insert(operation.to_owned());
    }

    /// Builds an index from `(key, operation)` pairs.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut index = Self::empty();
        for (key, operation) in pairs {
            index.add(key, operation);
        }
        index
    }

    /// The contract operations that select `key`.
    pub fn operations(&self, key: &str) -> impl Iterator<Item = &str> {
        self.operations_by_key.get(key).into_iter().flatten().map(String::as_str)
    }
}

/// What shadow comparisons of one operation have shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperationEvidence {
    /// The operation's name.
    pub operation: String,
    /// Whether it is a contract operation that selects the field.
    pub in_contract: bool,
    /// Compared calls (matched + mismatched).
    pub compared: u64,
    /// Mismatched calls.
    pub mismatched: u64,
    /// `mismatched / compared`, `None` before any comparison.
    pub mismatch_rate: Option<f64>,
}

/// What shadow comparisons of one field have shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyEvidence {
    /// The field.
    pub key: FieldKey,
    /// Compared calls.
    pub compared: u64,
    /// Mismatched calls.
    pub mismatched: u64,
    /// `mismatched / compared`, `None` before any comparison.
    pub mismatch_rate: Option<f64>,
    /// Secondary failures (not compared).
    pub secondary_errors: u64,
    /// Secondary timeouts (not compared).
    pub secondary_timeouts: u64,
    /// Per operation seen in shadow, and per contract operation (seen or not).
    pub operations: Vec<OperationEvidence>,
    /// Whether the contract could be read (otherwise `operations` names no contract operation
    /// for want of knowing them, not because none select the field).
    pub contract_readable: bool,
}

fn rate(mismatched: u64, compared: u64) -> Option<f64> {
    (compared > 0).then(|| mismatched as f64 / compared as f64)
}

impl KeyEvidence {
    /// The evidence for `key` in `results`, joined with the contract.
    pub fn gather(key: FieldKey, snapshot: &RecorderSnapshot, contract: &ContractIndex) -> Self {
        let empty = KeyResults::default();
        let results = snapshot.keys.get(&key).unwrap_or(&empty);
        let contract_ops: BTreeSet<&str> = contract.operations(key.as_str()).collect();
        let mut names: BTreeSet<&str> = results.operations.keys().map(String::as_str).collect();
        names.extend(contract_ops.iter().copied());
        let operations = names
            .into_iter()
            .map(|name| {
                let counters = results.operations.get(name).copied().unwrap_or_default();
                OperationEvidence {
                    operation: name.to_owned(),
                    in_contract: contract_ops.contains(name),
                    compared: counters.compared(),
                    mismatched: counters.mismatched,
                    mismatch_rate: rate(counters.mismatched, counters.compared()),
                }
            })
            .collect();
        let counters = results.counters;
        Self {
            key,
            compared: counters.compared(),
            mismatched: counters.mismatched,
            mismatch_rate: rate(counters.mismatched, counters.compared()),
            secondary_errors: counters.secondary_errors,
            secondary_timeouts: counters.secondary_timeouts,
            operations,
            contract_readable: contract.is_readable(),
        }
    }

    /// Why the evidence falls short of `requirement`; empty when it is enough.
    pub fn shortfalls(&self, requirement: &EvidenceRequirement) -> Vec<String> {
        let mut reasons = Vec::new();
        if self.compared < requirement.min_compared {
            reasons.push(format!("{} calls compared, {} required", self.compared, requirement.min_compared));
        }
        if let Some(rate) = self.mismatch_rate
            && rate > requirement.max_mismatch_rate
        {
            reasons.push(format!(
                "mismatch rate {rate:.4} ({} of {}) is above {}",
                self.mismatched, self.compared, requirement.max_mismatch_rate
            ));
        }
        if requirement.all_contract_operations && !self.contract_readable {
            reasons.push(
                "the frontend contract could not be read, so no contract operation can be checked".to_owned(),
            );
        }
        if requirement.all_contract_operations {
            for op in self.operations.iter().filter(|op| op.in_contract) {
                match op.mismatch_rate {
                    None => reasons.push(format!("contract operation {} not yet compared", op.operation)),
                    Some(rate) if rate > requirement.max_mismatch_rate => reasons.push(format!(
                        "contract operation {} mismatches at {rate:.4} ({} of {})",
                        op.operation, op.mismatched, op.compared
                    )),
                    Some(_) => {}
                }
            }
        }
        reasons
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::recorder::Counters;

    fn snapshot(key: FieldKey, ops: &[(&str, u64, u64)]) -> RecorderSnapshot {
        let mut results = KeyResults::default();
        for (op, matched, mismatched) in ops {
            let c = Counters { matched: *matched, mismatched: *mismatched, ..Counters::default() };
            results.operations.insert((*op).to_owned(), c);
            results.counters.matched += matched;
            results.counters.mismatched += mismatched;
        }
        RecorderSnapshot { keys: [(key, results)].into_iter().collect() }
    }

    #[test]
    fn requirements_name_each_shortfall() {
        let catalog = Catalog::banyan().unwrap_or_else(|e| panic!("{e}"));
        let key = catalog.key("Template.stats").unwrap_or_else(|| panic!("declared"));
        let contract = ContractIndex::from_pairs([
            ("Template.stats", "TemplateList"),
            ("Template.stats", "AnalyticsDashboard"),
        ]);
        let requirement =
            EvidenceRequirement { min_compared: 100, max_mismatch_rate: 0.01, all_contract_operations: true };

        // 60 compared in TemplateList with 2 mismatches (3.3%), AnalyticsDashboard never seen.
        let evidence = KeyEvidence::gather(key, &snapshot(key, &[("TemplateList", 58, 2)]), &contract);
        assert_eq!((evidence.compared, evidence.mismatched), (60, 2));
        assert_eq!(
            evidence.shortfalls(&requirement),
            vec![
                "60 calls compared, 100 required".to_owned(),
                "mismatch rate 0.0333 (2 of 60) is above 0.01".to_owned(),
                "contract operation AnalyticsDashboard not yet compared".to_owned(),
                "contract operation TemplateList mismatches at 0.0333 (2 of 60)".to_owned(),
            ]
        );

        // Enough, clean, both seen; an operation outside the contract is listed but not required.
        let evidence = KeyEvidence::gather(
            key,
            &snapshot(key, &[("TemplateList", 500, 0), ("AnalyticsDashboard", 500, 1), ("Adhoc", 0, 3)]),
            &contract,
        );
        assert_eq!(evidence.compared, 1004);
        assert!(evidence.shortfalls(&requirement).is_empty(), "{:?}", evidence.shortfalls(&requirement));
        let adhoc = evidence.operations.iter().find(|o| o.operation == "Adhoc");
        assert_eq!(adhoc.map(|o| o.in_contract), Some(false));

        // Without the contract rule, unseen contract operations do not matter.
        let lenient = EvidenceRequirement { all_contract_operations: false, ..requirement };
        let evidence = KeyEvidence::gather(key, &snapshot(key, &[("TemplateList", 100, 0)]), &contract);
        assert!(evidence.shortfalls(&lenient).is_empty());
        assert_eq!(
            evidence.shortfalls(&requirement),
            vec!["contract operation AnalyticsDashboard not yet compared"]
        );
    }

    #[test]
    fn an_unreadable_contract_meets_no_contract_requirement() {
        let catalog = Catalog::banyan().unwrap_or_else(|e| panic!("{e}"));
        let key = catalog.key("Template.stats").unwrap_or_else(|| panic!("declared"));
        let requirement =
            EvidenceRequirement { min_compared: 10, max_mismatch_rate: 0.01, all_contract_operations: true };
        let seen = snapshot(key, &[("TemplateList", 500, 0)]);

        // An empty contract (no operation selects the field) asks for nothing more.
        let evidence = KeyEvidence::gather(key, &seen, &ContractIndex::empty());
        assert!(evidence.shortfalls(&requirement).is_empty(), "{:?}", evidence.shortfalls(&requirement));

        // A contract that could not be read is not an empty one.
        let evidence = KeyEvidence::gather(key, &seen, &ContractIndex::unreadable());
        assert!(!evidence.contract_readable);
        assert_eq!(
            evidence.shortfalls(&requirement),
            vec!["the frontend contract could not be read, so no contract operation can be checked"]
        );
        let lenient = EvidenceRequirement { all_contract_operations: false, ..requirement };
        assert!(evidence.shortfalls(&lenient).is_empty());
    }
}
